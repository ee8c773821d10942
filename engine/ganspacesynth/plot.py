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


def save_spectrogram(path, audio, sample_rate, title=None):
    """A log-magnitude spectrogram of ``audio`` as a PNG; returns the path."""
    audio = np.asarray(audio, dtype=np.float32)
    figure, axes = subplots(figsize=(max(6.0, min(18.0, len(audio) / sample_rate)), 4), dpi=100)
    axes.specgram(audio + 1e-9, NFFT=1024, Fs=sample_rate, noverlap=768, cmap="magma", scale="dB")
    axes.set_xlabel("time (s)")
    axes.set_ylabel("frequency (Hz)")
    return save_figure(figure, path, title)
