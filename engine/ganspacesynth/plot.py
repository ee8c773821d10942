"""Pictures of audio, for people who want to see what they made (PNG via matplotlib's Agg)."""

from pathlib import Path

import numpy as np


def save_spectrogram(path, audio, sample_rate, title=None):
    """A log-magnitude spectrogram of ``audio`` as a PNG; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    audio = np.asarray(audio, dtype=np.float32)
    figure, axes = plt.subplots(figsize=(max(6.0, min(18.0, len(audio) / sample_rate)), 4), dpi=100)
    axes.specgram(audio + 1e-9, NFFT=1024, Fs=sample_rate, noverlap=768, cmap="magma", scale="dB")
    axes.set_xlabel("time (s)")
    axes.set_ylabel("frequency (Hz)")
    if title:
        axes.set_title(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
