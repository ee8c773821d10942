"""Pictures of audio, for people who want to see what they made (PNG via matplotlib's Agg)."""

from pathlib import Path

import numpy as np


def subplots(*args, **kwargs):
    """matplotlib's subplots on the Agg backend: PNGs without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(figure, path, title=None):
    """Write ``figure`` as a PNG (creating its folder), free it, and return the path."""
    import matplotlib.pyplot as plt

    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


# The quietest level a spectrogram shows, below its loudest bin: digital silence (a rest in a
# Hallu composition, a 16-bit file's zeros) has bins of exactly zero power, whose -inf dB
# would warn and stretch the colours down to nothing.
SPECTROGRAM_RANGE_DB = 120.0
SPECTROGRAM_NFFT, SPECTROGRAM_OVERLAP = 1024, 768


def save_spectrogram(path, audio, sample_rate, title=None):
    """A log-magnitude spectrogram of ``audio`` as a PNG (``SPECTROGRAM_RANGE_DB`` deep);
    returns the path."""
    from matplotlib import mlab

    audio = np.asarray(audio, dtype=np.float64)
    figure_seconds = len(audio) / sample_rate
    if len(audio) <= SPECTROGRAM_NFFT:  # one frame, padded, without matplotlib's warning about it
        audio = np.pad(audio, (0, SPECTROGRAM_NFFT + 1 - len(audio)))
    power, frequencies, times = mlab.specgram(audio, NFFT=SPECTROGRAM_NFFT, Fs=sample_rate,
                                              noverlap=SPECTROGRAM_OVERLAP)
    floor = max(float(power.max()), np.finfo(np.float64).tiny) * 10 ** (-SPECTROGRAM_RANGE_DB / 10)
    decibels = 10 * np.log10(np.maximum(power, floor))
    half_hop = (SPECTROGRAM_NFFT - SPECTROGRAM_OVERLAP) / sample_rate / 2  # as Axes.specgram places frames
    figure, axes = subplots(figsize=(max(6.0, min(18.0, figure_seconds)), 4), dpi=100)
    axes.imshow(decibels, origin="lower", aspect="auto", cmap="magma",
                extent=(times[0] - half_hop, times[-1] + half_hop, frequencies[0], frequencies[-1]))
    axes.set_xlabel("time (s)")
    axes.set_ylabel("frequency (Hz)")
    return save_figure(figure, path, title)
