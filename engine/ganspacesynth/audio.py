"""Writing audio files: one place for WAV naming, subtype and clipping rules."""

from pathlib import Path

import numpy as np

SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}


def resample(audio, from_rate, to_rate, quality="HQ"):
    """Band-limited resampling (soxr) of a 1-D clip; float32 out, the input itself at equal rates."""
    audio = np.asarray(audio, dtype=np.float32)
    if float(from_rate) == float(to_rate):
        return audio
    import soxr

    return np.ascontiguousarray(soxr.resample(audio, float(from_rate), float(to_rate), quality=quality),
                                dtype=np.float32)


def resample_start(audio_start, from_rate, to_rate, quality="HQ"):
    """The samples of ``resample(whole, ...)`` that the start ``audio_start`` of a clip
    already determines, bit for bit.

    A band-limited resampler looks ahead: its last outputs for a cut clip
    depend on input beyond the cut. soxr's stream gives out only samples it
    will not change, and its output does not depend on how the input is cut
    into chunks (the same filter, run once over the whole input), so what it
    gives for the start is the start of the one-shot result."""
    audio_start = np.asarray(audio_start, dtype=np.float32)
    if float(from_rate) == float(to_rate):
        return audio_start
    import soxr

    stream = soxr.ResampleStream(float(from_rate), float(to_rate), 1, dtype="float32", quality=quality)
    return np.ascontiguousarray(stream.resample_chunk(audio_start, last=False), dtype=np.float32)


def write_wav(path, audio, sample_rate, subtype="float"):
    """Write one clip (1-D) or several (2-D, one per row) and return the paths written.

    Several clips go to ``stem_0.wav``, ``stem_1.wav``... beside ``path``.
    PCM subtypes clip to [-1, 1] instead of wrapping around.
    """
    import soundfile

    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    if subtype not in SUBTYPES:
        raise ValueError(f"unknown WAV subtype {subtype!r}: choose one of {', '.join(SUBTYPES)}")
    if audio.ndim == 1:
        clips, paths = [audio], [path]
    else:
        clips = list(audio)
        paths = [path] if len(clips) == 1 else [
            path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(len(clips))]
    path.parent.mkdir(parents=True, exist_ok=True)
    for clip, out in zip(clips, paths):
        if subtype != "float":
            clip = np.clip(clip, -1.0, 1.0)
        soundfile.write(str(out), clip, int(sample_rate), subtype=SUBTYPES[subtype])
    return paths
