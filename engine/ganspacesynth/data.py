"""Training data: cut a musician's recordings into GANSynth clips, and read them back.

GANSynth trains on 4-second mono clips at 16 kHz (64000 samples), each with a
MIDI pitch label. ``prepare_dataset`` turns a folder of recordings of any
format, length, rate and channel count into such a dataset folder::

    OUT_DIR/audio/<name>.wav     one clip per file, 16 kHz mono, 64000 samples
    OUT_DIR/meta.json            {name: {"pitch": P, "source": ..., "start": ...}, ...}
    OUT_DIR/prepare_summary.json what was read, kept and skipped, and why

``meta.json`` has the layout SopiMlab's GANSynth tools wrote and their fork of
Magenta reads: one note dict per clip with at least ``"pitch"``; the sorted
distinct pitches are the model's label set. ``load_dataset``,
``iter_batches`` and ``dataset_pitches`` read the folder back for training
(they also read NSynth's own json/wav release, ``examples.json`` + ``audio/``).

How recordings become clips
---------------------------
* Each file is mixed down to mono (channel average) and resampled to 16 kHz
  with soxr, streamed in blocks so that an hour-long recording never sits in
  memory whole.
* Clips start every ``hop`` seconds (4 by default: back to back; less makes
  them overlap, which multiplies a small dataset).
* ``tail="pad"`` (default) keeps the audio after the last full clip as one
  more clip padded with silence, and so keeps files shorter than 4 s (one-shot
  samples) as one padded clip each. NSynth notes, which GANSynth was designed
  for, are themselves a sound decaying into silence, and musicians' datasets
  are small enough that discarding material hurts more than padding does.
  A tail that adds less than ``min_tail`` seconds of audio not already in the
  previous clip is dropped, since it would mostly repeat that clip (with
  overlapping hops) or be a crumb of sound in 4 s of silence. A file shorter
  than 4 s is never dropped for that reason. ``tail="drop"`` keeps full
  clips only.
* ``normalize="file"`` (default) scales each file so that its peak is at
  ``peak_db`` dBFS (-1). Recordings arrive at whatever gain the session had;
  GANSynth learns loudness as part of the sound, so unequal levels between
  files become a spurious variation in the latent space. Scaling whole files
  keeps what happens inside a recording (decays, swells) intact.
  ``"clip"`` scales every clip to the peak, which flattens decays and lifts
  quiet passages and noise to full level; ``"none"`` keeps the levels.
* ``skip_silent`` (default on) drops clips whose RMS over the whole 4 s
  (padding included) is below ``silence_db`` dBFS (-60). The level is measured
  after file normalisation, so the threshold is relative to each file's peak,
  and before clip normalisation, which would otherwise raise the noise floor
  of a silent clip to full scale.
* Pitch: a trailing ``_<0..127>`` in the file name (``cello_A_57.wav`` -> 57),
  else the fixed ``pitch`` (32, the single pitch the original GANSpaceSynth
  custom datasets used). Beware names such as ``take_3.wav``, which read as
  pitch 3; the summary lists the pitches found, and ``pitch_from_name=False``
  turns the rule off.
* Clips are written as 16-bit PCM by default: NSynth, on which GANSynth was
  designed, is 16-bit, SopiMlab's ``make_dataset`` accepts only 16-bit WAVs,
  it halves the size of float and every sampler or editor opens it, so the
  musician can audition and weed out clips. ``bit_depth="float"`` keeps the
  resampler's output exactly (PCM clips at full scale; the summary counts
  clipped clips).
* Clip names are ``<source>-<k>_<pitch>``: the source's path below IN_DIR
  (folders joined by ``-``, its own pitch suffix removed), the clip's index
  ``k`` on the hop grid (so names do not shift when a clip is skipped), then
  the pitch, so that the names also carry the label for tools that read it
  from there (SopiMlab's ``make_dataset``, or this function run again).

Unreadable files (corrupt, truncated, not audio) are reported in the summary
and skipped; a file that fails halfway contributes no clip at all, so a file
is either wholly in the dataset or listed as skipped. Files and folders whose
name starts with a dot (``.DS_Store``, macOS ``._x.wav`` resource forks) are
ignored. When no clip at all is produced, ``NoClipsError`` is raised after the
summary is written, and ``meta.json`` is not written.

NSynth-style TFRecords (files named ``*.tfrecord`` inside IN_DIR, or given as
``tfrecords``) are read with TensorFlow, imported only then: features
``audio`` (float32) and ``pitch`` (int64), optional ``note_str`` for the clip
name (else ``<tfrecord name>-<record number>``) and ``sample_rate``,
``instrument_source``, ``instrument_str``, ``instrument_family``, ``velocity``
carried into meta.json. Each record is treated as a file of its own (so
``normalize="file"`` normalises each note); a record longer than 4 s is cut
like any recording.
"""

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .audio import resample
from .errors import GanspacesynthError

SAMPLE_RATE = 16000
CLIP_SECONDS = 4
CLIP_SAMPLES = SAMPLE_RATE * CLIP_SECONDS
DEFAULT_PITCH = 32

AUDIO_DIR = "audio"
META_FILE = "meta.json"
SUMMARY_FILE = "prepare_summary.json"
NSYNTH_META_FILE = "examples.json"

TAIL_MODES = ("pad", "drop")
NORMALIZE_MODES = ("file", "clip", "none")
BIT_DEPTHS = ("16", "24", "float")

# Reasons a clip or a file is skipped, as they appear in the summaries.
SILENT = "silent"
TAIL_DROPPED = "tail dropped"
TAIL_TOO_SHORT = "tail too short"
NO_AUDIO = "record without audio"
UNREADABLE = "unreadable"
UNSUPPORTED = "unsupported format"
NOT_AUDIO = "not audio"
EMPTY = "empty"

# Extensions that say "this was meant to be audio": a file with one of these
# that libsndfile cannot open is corrupt, any other such file is just not audio.
_AUDIO_SUFFIXES = {
    ".wav", ".wave", ".bwf", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff",
    ".aifc", ".mp3", ".caf", ".w64", ".rf64", ".au", ".snd", ".sd2", ".voc",
}
# Common audio formats libsndfile does not decode: worth a hint, not "corrupt".
_UNSUPPORTED_SUFFIXES = {".m4a", ".aac", ".mp4", ".alac", ".wma", ".ape", ".wv", ".mka", ".webm"}
_TFRECORD_NAME = re.compile(r"\.tfrecords?(-\d+-of-\d+)?$", re.IGNORECASE)
_PITCH_SUFFIX = re.compile(r"_(\d{1,3})$")
_UNSAFE_NAME_CHARS = re.compile(r"[^\w.+-]+")

# Blocks of about 10 s keep memory flat for long recordings while making the
# per-block overhead negligible.
_BLOCK_SECONDS = 10


def pitch_from_name(stem):
    """The MIDI pitch in a trailing ``_<0..127>`` of a file name without extension, else None."""
    match = _PITCH_SUFFIX.search(stem)
    if match is None or int(match.group(1)) > 127:
        return None
    return int(match.group(1))


@dataclass
class SkippedFile:
    """A file that gave no clip, and why."""

    path: str
    reason: str
    detail: str = ""


@dataclass
class SourceReport:
    """What one audio file (or one TFRecord file) gave."""

    path: str
    kind: str  # "audio" or "tfrecord"
    seconds: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    pitch: int | None = None  # None for TFRecords: each record has its own
    pitch_from: str = ""  # "name", "default" or "tfrecord"
    records: int = 0
    clips: int = 0
    skipped: dict = field(default_factory=dict)


@dataclass
class PrepareSummary:
    """The outcome of ``prepare_dataset``, also written to ``prepare_summary.json``."""

    in_dir: str
    out_dir: str
    options: dict
    files_read: int = 0
    seconds_read: float = 0.0
    clips_kept: int = 0
    clips_skipped: dict = field(default_factory=dict)
    clipped: int = 0
    pitches: dict = field(default_factory=dict)
    files_skipped: list = field(default_factory=list)
    sources: list = field(default_factory=list)

    def to_dict(self):
        data = asdict(self)
        data["pitches"] = {str(p): n for p, n in sorted(self.pitches.items())}
        return data

    def format(self):
        """The summary as a musician reads it on the terminal."""
        lines = [f"read {self.files_read} file{_s(self.files_read)} "
                 f"({self.seconds_read:.1f} s of audio) from {self.in_dir}"]
        pitches = ", ".join(f"{p} ({n})" for p, n in sorted(self.pitches.items()))
        lines.append(f"clips kept:    {self.clips_kept} -> {Path(self.out_dir) / AUDIO_DIR}"
                     + (f"; pitches (clips): {pitches}" if pitches else ""))
        skipped = sum(self.clips_skipped.values())
        details = ", ".join(f"{n} {reason}" for reason, n in sorted(self.clips_skipped.items()))
        lines.append(f"clips skipped: {skipped}" + (f" ({details})" if details else ""))
        if self.clipped:
            lines.append(f"warning: {self.clipped} clip{_s(self.clipped)} exceeded full scale and "
                         f"were clipped; use --normalize file or --bit-depth float")
        lines.append(f"files skipped: {len(self.files_skipped)}")
        for skipped_file in self.files_skipped:
            detail = f": {skipped_file.detail}" if skipped_file.detail else ""
            lines.append(f"  {skipped_file.path}: {skipped_file.reason}{detail}")
        return "\n".join(lines)


class NoClipsError(GanspacesynthError):
    """``prepare_dataset`` produced no clip; ``summary`` says what happened to every file."""

    def __init__(self, message, summary):
        super().__init__(message)
        self.summary = summary


def _s(n):
    return "" if n == 1 else "s"


@dataclass(frozen=True)
class _Options:
    hop: int
    tail: str
    min_tail: int
    skip_silent: bool
    silence_db: float
    normalize: str
    peak: float
    pitch: int
    pitch_from_name: bool
    bit_depth: str


def prepare_dataset(in_dir, out_dir, *, hop=4.0, tail="pad", min_tail=0.5, skip_silent=True,
                    silence_db=-60.0, normalize="file", peak_db=-1.0, pitch=DEFAULT_PITCH,
                    pitch_from_name=True, bit_depth="16", tfrecords=(), overwrite=False,
                    progress=False):
    """Cut every recording below ``in_dir`` into 4-s 16 kHz clips in the dataset folder ``out_dir``.

    ``in_dir`` may also be a single audio or TFRecord file; ``tfrecords`` adds
    TFRecord files from elsewhere. ``out_dir`` must be new or empty, or a
    folder this function wrote before when ``overwrite`` is true (its old
    clips are removed first). ``progress``: True shows a tqdm bar, None shows
    it only on a terminal. The options are described in the module
    docstring. Returns a ``PrepareSummary``; raises ``NoClipsError`` when no
    clip was produced and ``GanspacesynthError`` for bad arguments or folders.
    """
    opts = _check_options(hop, tail, min_tail, skip_silent, silence_db, normalize, peak_db,
                          pitch, pitch_from_name, bit_depth)
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.exists():
        raise GanspacesynthError(f"{in_dir}: no such folder or file")
    tfrecord_paths = [Path(p) for p in tfrecords]
    for path in tfrecord_paths:
        if not path.is_file():
            raise GanspacesynthError(f"{path}: no such TFRecord file")
    _prepare_out_dir(out_dir, overwrite)

    summary = PrepareSummary(
        in_dir=str(in_dir), out_dir=str(out_dir),
        options={"hop": hop, "tail": tail, "min_tail": min_tail, "skip_silent": skip_silent,
                 "silence_db": silence_db, "normalize": normalize, "peak_db": peak_db,
                 "pitch": pitch, "pitch_from_name": pitch_from_name, "bit_depth": opts.bit_depth,
                 "tfrecords": [str(p) for p in tfrecord_paths]})
    audio_files, tfrecord_files = _scan(in_dir, out_dir, summary)
    tfrecord_files += [(path, str(path)) for path in tfrecord_paths]

    from tqdm import tqdm

    writer = _ClipWriter(out_dir, opts, summary)
    total = float(sum(info.frames / info.samplerate for _, _, info in audio_files))
    bar = tqdm(total=total, desc="prepare", disable=None if progress is None else not progress,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s "
                          "[{elapsed}<{remaining}]{postfix}")
    try:
        for path, rel, info in audio_files:
            bar.set_postfix_str(rel, refresh=False)
            _prepare_audio_file(path, rel, info, opts, writer, summary, bar)
        for path, rel in tfrecord_files:
            bar.set_postfix_str(rel, refresh=False)
            _prepare_tfrecord(path, rel, opts, writer, summary, bar)
    finally:
        bar.close()

    summary.files_skipped.sort(key=lambda skipped: skipped.path)
    summary.seconds_read = round(summary.seconds_read, 6)
    _write_json(out_dir / SUMMARY_FILE, summary.to_dict())
    if summary.clips_kept == 0:
        raise NoClipsError(f"no clip was produced from {in_dir} (see {out_dir / SUMMARY_FILE})",
                           summary)
    _write_json(out_dir / META_FILE, writer.meta)
    return summary


def _check_options(hop, tail, min_tail, skip_silent, silence_db, normalize, peak_db, pitch,
                   pitch_from_name, bit_depth):
    if not (math.isfinite(float(hop)) and round(float(hop) * SAMPLE_RATE) >= 1):
        raise GanspacesynthError(f"hop must be a positive number of seconds, not {hop}")
    if tail not in TAIL_MODES:
        raise GanspacesynthError(f"tail must be one of {', '.join(TAIL_MODES)}, not {tail!r}")
    if not (math.isfinite(float(min_tail)) and float(min_tail) >= 0):
        raise GanspacesynthError(f"min_tail must be zero or more seconds, not {min_tail}")
    if normalize not in NORMALIZE_MODES:
        raise GanspacesynthError(
            f"normalize must be one of {', '.join(NORMALIZE_MODES)}, not {normalize!r}")
    if not float(peak_db) <= 0:
        raise GanspacesynthError(f"peak_db must be at most 0 dBFS, not {peak_db}")
    if isinstance(pitch, bool) or int(pitch) != pitch or not 0 <= pitch <= 127:
        raise GanspacesynthError(f"pitch must be a MIDI note number 0..127, not {pitch}")
    bit_depth = str(bit_depth)
    if bit_depth not in BIT_DEPTHS:
        raise GanspacesynthError(f"bit depth must be one of {', '.join(BIT_DEPTHS)}, not {bit_depth!r}")
    return _Options(hop=round(float(hop) * SAMPLE_RATE), tail=tail, min_tail=round(float(min_tail) * SAMPLE_RATE),
                    skip_silent=bool(skip_silent), silence_db=float(silence_db),
                    normalize=normalize, peak=10 ** (float(peak_db) / 20), pitch=int(pitch),
                    pitch_from_name=bool(pitch_from_name), bit_depth=bit_depth)


def _prepare_out_dir(out_dir, overwrite):
    """Refuse to mix with other data; replace only a dataset this module wrote."""
    if out_dir.exists() and not out_dir.is_dir():
        raise GanspacesynthError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        # The summary file marks a folder as ours: never delete WAVs from a
        # folder that might hold the musician's own recordings.
        if not (out_dir / SUMMARY_FILE).is_file():
            raise GanspacesynthError(f"{out_dir}: folder is not empty and was not written by "
                                     f"prepare; choose a new or empty folder")
        if not overwrite:
            raise GanspacesynthError(f"{out_dir}: already holds a prepared dataset; "
                                     f"use --overwrite to replace it")
        for name in (META_FILE, SUMMARY_FILE):
            (out_dir / name).unlink(missing_ok=True)
        if (out_dir / AUDIO_DIR).is_dir():
            for wav in (out_dir / AUDIO_DIR).glob("*.wav"):
                wav.unlink()
    (out_dir / AUDIO_DIR).mkdir(parents=True, exist_ok=True)


def _scan(in_dir, out_dir, summary):
    """Sort the files below ``in_dir`` into audio (with their soundfile info) and TFRecords."""
    import soundfile

    if in_dir.is_file():
        root, paths = in_dir.parent, [in_dir]
    else:
        root, paths = in_dir, []
        skip = out_dir.resolve()
        for folder, dirs, files in os.walk(in_dir):
            # A dataset written inside its own input folder must not be read back in.
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                             and (Path(folder) / d).resolve() != skip)
            paths += [Path(folder) / f for f in files if not f.startswith(".")]
    named = sorted(((path, path.relative_to(root).as_posix()) for path in paths),
                   key=lambda item: item[1])

    audio_files, tfrecord_files = [], []
    for path, rel in named:
        if _TFRECORD_NAME.search(path.name):
            tfrecord_files.append((path, rel))
            continue
        suffix = path.suffix.lower()
        try:
            info = soundfile.info(str(path))
        except (RuntimeError, OSError) as error:
            if suffix in _UNSUPPORTED_SUFFIXES:
                summary.files_skipped.append(SkippedFile(
                    rel, UNSUPPORTED, f"libsndfile cannot decode {suffix} files; convert to WAV or FLAC"))
            elif suffix in _AUDIO_SUFFIXES:
                summary.files_skipped.append(SkippedFile(rel, UNREADABLE, _error_text(error)))
            else:
                summary.files_skipped.append(SkippedFile(rel, NOT_AUDIO))
            continue
        if info.frames <= 0 or info.samplerate <= 0:
            summary.files_skipped.append(SkippedFile(rel, EMPTY, "no audio frames"))
            continue
        audio_files.append((path, rel, info))
    return audio_files, tfrecord_files


def _error_text(error):
    """The reason without the path, which the summary already shows."""
    return str(getattr(error, "error_string", None) or getattr(error, "strerror", None) or error)


def _mono_blocks(path, sample_rate, channels):
    """The file as a stream of 16 kHz mono float32 blocks."""
    import soundfile
    import soxr

    block = int(sample_rate * _BLOCK_SECONDS)
    stream = None if sample_rate == SAMPLE_RATE else soxr.ResampleStream(
        sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
    with soundfile.SoundFile(str(path)) as sound:
        while True:
            data = sound.read(block, dtype="float32", always_2d=True)
            last = len(data) < block
            mono = data.mean(axis=1, dtype=np.float32) if channels > 1 else data[:, 0]
            out = np.ascontiguousarray(mono) if stream is None else stream.resample_chunk(
                np.ascontiguousarray(mono), last=last)
            if len(out):
                yield out
            if last:
                return


def _cut(blocks, opts):
    """Yield ``(start, clip or None, audio samples, skip reason or None)`` on the hop grid.

    ``start`` and lengths are in 16 kHz samples; ``clip`` is None for a
    tail that is not kept, with the reason.
    """
    buffer = np.zeros(0, np.float32)
    buffer_start = 0  # position of buffer[0] in the stream
    start = 0  # next clip's start
    total = 0
    previous_end = 0
    count = 0
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        total += len(block)
        while start + CLIP_SAMPLES <= total:
            offset = start - buffer_start
            yield start, buffer[offset:offset + CLIP_SAMPLES].copy(), CLIP_SAMPLES, None
            count += 1
            previous_end = start + CLIP_SAMPLES
            start += opts.hop
        keep = min(start, total)
        buffer = buffer[keep - buffer_start:]
        buffer_start = keep
    if start >= total or (count and previous_end >= total):
        return
    audio = total - start
    if opts.tail == "drop":
        yield start, None, audio, TAIL_DROPPED
    elif count and total - max(start, previous_end) < opts.min_tail:
        yield start, None, audio, TAIL_TOO_SHORT
    else:
        clip = np.zeros(CLIP_SAMPLES, np.float32)
        clip[:audio] = buffer[start - buffer_start:]
        yield start, clip, audio, None


def _rms_db(clip):
    rms = math.sqrt(float(np.mean(np.square(clip, dtype=np.float64))))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def _peak_gain(peak, opts):
    return opts.peak / peak if peak > 0 else 1.0


class _ClipWriter:
    """Writes kept clips and their meta.json entries, and can take back a failed file's clips."""

    def __init__(self, out_dir, opts, summary):
        self.audio_dir = out_dir / AUDIO_DIR
        self.opts = opts
        self.summary = summary
        self.meta = {}
        self._bases = set()

    def unique_base(self, base):
        """``base``, or ``base-2``, ``base-3``... if taken (case-insensitively, for macOS and Windows)."""
        base = _UNSAFE_NAME_CHARS.sub("_", base).strip("_") or "clip"
        candidate, n = base, 1
        while candidate.casefold() in self._bases:
            n += 1
            candidate = f"{base}-{n}"
        self._bases.add(candidate.casefold())
        return candidate

    def process(self, cuts, gain, name_for, entry_for, report, written):
        """Level-check, normalise and write the clips of one source, appending their names to ``written``.

        ``written`` belongs to the caller so that a read error halfway through
        still leaves it the list of clips to take back.
        """
        from .audio import write_wav

        opts, summary = self.opts, self.summary
        for k, (start, clip, audio, reason) in enumerate(cuts):
            if clip is not None:
                clip *= gain
                if opts.skip_silent and _rms_db(clip) < opts.silence_db:
                    reason = SILENT
            if reason is not None:
                report.skipped[reason] = report.skipped.get(reason, 0) + 1
                summary.clips_skipped[reason] = summary.clips_skipped.get(reason, 0) + 1
                continue
            peak = float(np.max(np.abs(clip)))
            if opts.normalize == "clip":
                clip *= _peak_gain(peak, opts)
            elif opts.bit_depth != "float" and peak > 1.0:
                summary.clipped += 1
            name = name_for(start // opts.hop)
            write_wav(self.audio_dir / f"{name}.wav", clip, SAMPLE_RATE, subtype=opts.bit_depth)
            entry = entry_for(start, audio)
            self.meta[name] = entry
            written.append(name)
            report.clips += 1
            summary.clips_kept += 1
            summary.pitches[entry["pitch"]] = summary.pitches.get(entry["pitch"], 0) + 1

    def take_back(self, names, report):
        """Remove a source's clips and counts after it failed halfway."""
        for name in names:
            entry = self.meta.pop(name)
            (self.audio_dir / f"{name}.wav").unlink(missing_ok=True)
            self.summary.clips_kept -= 1
            self.summary.pitches[entry["pitch"]] -= 1
            if not self.summary.pitches[entry["pitch"]]:
                del self.summary.pitches[entry["pitch"]]
        for reason, n in report.skipped.items():
            self.summary.clips_skipped[reason] -= n
            if not self.summary.clips_skipped[reason]:
                del self.summary.clips_skipped[reason]


def _prepare_audio_file(path, rel, info, opts, writer, summary, bar):
    stem = Path(rel).with_suffix("").as_posix()
    pitch = pitch_from_name(Path(rel).stem) if opts.pitch_from_name else None
    pitch_from = "default" if pitch is None else "name"
    if pitch is None:
        pitch = opts.pitch
    else:
        stem = _PITCH_SUFFIX.sub("", stem)
    report = SourceReport(rel, "audio", seconds=round(info.frames / info.samplerate, 6),
                          sample_rate=info.samplerate, channels=info.channels,
                          pitch=pitch, pitch_from=pitch_from)
    base = writer.unique_base(stem.replace("/", "-"))

    def counted(blocks):
        for block in blocks:
            bar.update(len(block) / SAMPLE_RATE)
            yield block

    written = []
    try:
        gain = 1.0
        if opts.normalize == "file":
            # A first pass for the peak: the resampled peak, since removing
            # the content above 8 kHz can lower it a lot.
            peak = 0.0
            for block in _mono_blocks(path, info.samplerate, info.channels):
                peak = max(peak, float(np.max(np.abs(block))))
            gain = _peak_gain(peak, opts)
        writer.process(
            _cut(counted(_mono_blocks(path, info.samplerate, info.channels)), opts), gain,
            name_for=lambda k: f"{base}-{k:04d}_{pitch}",
            entry_for=lambda start, audio: {
                "pitch": pitch, "instrument_str": base, "instrument_source": 0, "source": rel,
                "start": round(start / SAMPLE_RATE, 6), "audio_seconds": round(audio / SAMPLE_RATE, 6)},
            report=report, written=written)
    except (RuntimeError, OSError) as error:
        writer.take_back(written, report)
        summary.files_skipped.append(SkippedFile(rel, UNREADABLE, _error_text(error)))
        return
    summary.files_read += 1
    summary.seconds_read += report.seconds
    summary.sources.append(report)


_TF_FEATURES = {
    "audio": "float", "pitch": "int", "note_str": "str", "sample_rate": "int",
    "instrument_source": "int", "instrument_str": "str", "instrument_family": "int",
    "velocity": "int",
}


def _import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _tfrecord_examples(tf, path):
    """Yield one dict per record of an NSynth-style TFRecord, with numpy arrays of the features present."""
    dtypes = {"float": tf.float32, "int": tf.int64, "str": tf.string}
    # VarLen for every feature: records that lack one, or whose audio is not
    # 64000 samples long, are still read rather than failing the whole file.
    spec = {key: tf.io.VarLenFeature(dtypes[kind]) for key, kind in _TF_FEATURES.items()}

    def parse(record):
        example = tf.io.parse_single_example(record, spec)
        return {key: value.values for key, value in example.items()}

    yield from tf.data.TFRecordDataset(str(path)).map(parse).as_numpy_iterator()


def _first(example, key, default=None):
    values = example[key]
    if not len(values):
        return default
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value.item()


def _prepare_tfrecord(path, rel, opts, writer, summary, bar):
    try:
        tf = _import_tensorflow()
    except ImportError as error:
        summary.files_skipped.append(SkippedFile(
            rel, UNREADABLE, f"TensorFlow is needed to read TFRecords ({error})"))
        return
    report = SourceReport(rel, "tfrecord", sample_rate=SAMPLE_RATE, channels=1,
                          pitch_from="tfrecord")
    stem = _TFRECORD_NAME.sub("", Path(rel).name) or Path(rel).name
    written = []
    try:
        for index, example in enumerate(_tfrecord_examples(tf, path)):
            report.records = index + 1
            audio = example["audio"].astype(np.float32)
            if not len(audio):
                report.skipped[NO_AUDIO] = report.skipped.get(NO_AUDIO, 0) + 1
                summary.clips_skipped[NO_AUDIO] = summary.clips_skipped.get(NO_AUDIO, 0) + 1
                continue
            audio = resample(audio, int(_first(example, "sample_rate", SAMPLE_RATE)), SAMPLE_RATE)
            seconds = len(audio) / SAMPLE_RATE
            bar.total += seconds
            bar.update(seconds)
            report.seconds += seconds
            pitch = int(_first(example, "pitch", opts.pitch))
            note_str = _first(example, "note_str")
            base = writer.unique_base(note_str or f"{stem}-{index:05d}")
            entry = {"pitch": pitch, "instrument_str": _first(example, "instrument_str", base),
                     "instrument_source": int(_first(example, "instrument_source", 0)),
                     "source": rel, "record": index}
            for key in ("note_str", "instrument_family", "velocity"):
                if _first(example, key) is not None:
                    entry[key] = _first(example, key)
            cuts = list(_cut([audio], opts))
            gain = _peak_gain(float(np.max(np.abs(audio))), opts) if opts.normalize == "file" else 1.0
            # One record, one clip (the NSynth case): the clip keeps the note's name.
            writer.process(
                cuts, gain,
                name_for=(lambda k, base=base: base) if len(cuts) == 1 else (
                    lambda k, base=base: f"{base}-{k:04d}"),
                entry_for=lambda start, length, entry=entry: {
                    **entry, "start": round(start / SAMPLE_RATE, 6),
                    "audio_seconds": round(length / SAMPLE_RATE, 6)},
                report=report, written=written)
    except (tf.errors.OpError, OSError) as error:
        writer.take_back(written, report)
        detail = str(getattr(error, "message", None) or error).strip().splitlines()[0]
        summary.files_skipped.append(SkippedFile(rel, UNREADABLE, detail))
        return
    report.seconds = round(report.seconds, 6)
    summary.files_read += 1
    summary.seconds_read += report.seconds
    summary.sources.append(report)


def _write_json(path, data):
    """Write atomically, so that an interrupted run never leaves half a meta.json."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


# Reading a dataset back


def read_meta(dataset_dir):
    """The ``{name: note dict}`` of a dataset folder (``meta.json``, or NSynth's ``examples.json``)."""
    dataset_dir = Path(dataset_dir)
    for name in (META_FILE, NSYNTH_META_FILE):
        path = dataset_dir / name
        if path.is_file():
            break
    else:
        raise GanspacesynthError(f"{dataset_dir}: no {META_FILE} here; is this a folder "
                                 f"written by 'ganspacesynth prepare'?")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as error:
        raise GanspacesynthError(f"{path}: cannot be read as JSON ({error})") from None
    if not isinstance(meta, dict):
        raise GanspacesynthError(f"{path}: expected a JSON object mapping clip names to notes")
    for name, note in meta.items():
        pitch = note.get("pitch") if isinstance(note, dict) else None
        if isinstance(pitch, bool) or not isinstance(pitch, int) or not 0 <= pitch <= 127:
            raise GanspacesynthError(f"{path}: clip {name!r} has no MIDI pitch 0..127")
    return meta


def dataset_pitches(dataset_dir):
    """The sorted distinct pitches of a dataset: the model's label set."""
    return sorted({note["pitch"] for note in read_meta(dataset_dir).values()})


def dataset_pitch_counts(dataset_dir):
    """``{pitch: number of clips}``, sorted by pitch, e.g. to draw labels in the data's proportions."""
    counts = {}
    for note in read_meta(dataset_dir).values():
        counts[note["pitch"]] = counts.get(note["pitch"], 0) + 1
    return dict(sorted(counts.items()))


def read_clip(path):
    """One clip as float32 (64000,), checked to be 16 kHz mono and 4 s long."""
    import soundfile

    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as error:
        raise GanspacesynthError(f"{path}: cannot read clip ({_error_text(error)})") from None
    problems = []
    if rate != SAMPLE_RATE:
        problems.append(f"{rate} Hz instead of {SAMPLE_RATE}")
    if audio.shape[1] != 1:
        problems.append(f"{audio.shape[1]} channels instead of 1")
    if audio.shape[0] != CLIP_SAMPLES:
        problems.append(f"{audio.shape[0]} samples instead of {CLIP_SAMPLES}")
    if problems:
        raise GanspacesynthError(f"{path}: not a training clip ({', '.join(problems)}); "
                                 f"make the dataset with 'ganspacesynth prepare'")
    return audio[:, 0]


def iter_batches(dataset_dir, batch_size=64, *, shuffle=False, seed=None):
    """Yield ``(waves (b, 64000) float32, pitches (b,) int64, names)`` batches.

    Reads only one batch of audio at a time, for datasets too big for memory.
    The last batch may be smaller. ``shuffle`` draws a new order from ``seed``.
    """
    dataset_dir = Path(dataset_dir)
    meta = read_meta(dataset_dir)
    names = list(meta)
    if shuffle:
        names = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    for first in range(0, len(names), batch_size):
        chunk = names[first:first + batch_size]
        waves = np.empty((len(chunk), CLIP_SAMPLES), np.float32)
        for i, name in enumerate(chunk):
            waves[i] = read_clip(dataset_dir / AUDIO_DIR / f"{name}.wav")
        yield waves, np.array([meta[name]["pitch"] for name in chunk], np.int64), chunk


def load_dataset(dataset_dir):
    """The whole dataset: ``(waves (n, 64000) float32, pitches (n,) int64, names)`` in meta.json order.

    Needs 256 kB of memory per clip; ``iter_batches`` streams instead.
    """
    dataset_dir = Path(dataset_dir)
    meta = read_meta(dataset_dir)
    names = list(meta)
    waves = np.empty((len(names), CLIP_SAMPLES), np.float32)
    for i, name in enumerate(names):
        waves[i] = read_clip(dataset_dir / AUDIO_DIR / f"{name}.wav")
    return waves, np.array([meta[name]["pitch"] for name in names], np.int64), names
