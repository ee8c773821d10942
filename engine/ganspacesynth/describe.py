"""What a GANSpace direction does to the sound: audio descriptors, and sweeps along components.

Descriptors (numpy only; each takes one clip (samples,) and returns a float,
or several clips (n, samples) and returns an array):

* ``spectral_centroid``: brightness, in Hz: the magnitude-weighted mean
  frequency of each frame, averaged over frames weighted by their energy. A
  sine gives its frequency.
* ``rms_db``: loudness, in dBFS: 20 log10 of the whole clip's RMS (a
  full-scale sine gives -3.01; silence is floored at -120).
* ``spectral_flatness``: geometric over arithmetic mean of each frame's power
  spectrum, averaged over frames weighted by their energy: about 0 for a
  sine, about 0.56 for white noise (the flatness of one noise periodogram:
  e^-gamma), 1 only for a perfectly flat spectrum.
* ``f0``: fundamental frequency in Hz, YIN-style (cumulative mean normalised
  difference, absolute threshold, parabolic interpolation) per frame; the
  median over voiced frames when at least half of the audible frames are
  voiced, NaN otherwise (noise, silence, clusters without a pitch).

Frames are 2048 samples with a hop of 512 and a Hann window (GANSynth's
STFT); frames more than 60 dB below the loudest one count as silence and are
left out, so a clip's decaying tail does not decide its flatness or pitch.

``sweep`` synthesises each of the first components from -2 to +2 (the others
at 0) and measures all four; ``format_sweep`` and ``plot_sweep`` show it.
"""

import math

import numpy as np

FRAME = 2048
HOP = 512
SILENCE_DB = 60.0
FLOOR_DB = -120.0


def _clips(audio):
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim not in (1, 2) or audio.shape[-1] < 2:
        raise ValueError("audio must be one clip (samples,) or several (n, samples), "
                         f"got shape {audio.shape}")
    return audio.reshape(-1, audio.shape[-1]), audio.ndim == 1


def _frames(clip, frame=FRAME, hop=HOP):
    """(frames, frame) views of one clip, zero-padded so that every sample is in a frame."""
    if len(clip) < frame:
        clip = np.pad(clip, (0, frame - len(clip)))
    count = 1 + math.ceil((len(clip) - frame) / hop)
    clip = np.pad(clip, (0, (count - 1) * hop + frame - len(clip)))
    return np.lib.stride_tricks.sliding_window_view(clip, frame)[::hop]


def _active(frame_power):
    """Frames within SILENCE_DB of the loudest (and not digital silence)."""
    loudest = frame_power.max()
    if loudest <= 1e-20:
        return np.zeros(len(frame_power), dtype=bool)
    return frame_power >= loudest * 10 ** (-SILENCE_DB / 10)


def _power_spectra(clip, sample_rate):
    frames = _frames(clip) * np.hanning(FRAME + 1)[:-1]
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(FRAME, 1.0 / sample_rate)
    return power, freqs


def _per_clip(fn, audio, *args):
    clips, single = _clips(audio)
    out = np.array([fn(clip, *args) for clip in clips], dtype=np.float64)
    return float(out[0]) if single else out


def _sounding_frames(clip, sample_rate):
    """Power spectra, bin frequencies and energies of the frames above silence (None if none)."""
    power, freqs = _power_spectra(clip, sample_rate)
    energy = power.sum(axis=1)
    active = _active(energy)
    if not active.any():
        return None
    return power[active], freqs, energy[active]


def _centroid(clip, sample_rate):
    frames = _sounding_frames(clip, sample_rate)
    if frames is None:
        return math.nan
    power, freqs, energy = frames
    magnitude = np.sqrt(power)
    centroids = (magnitude @ freqs) / np.maximum(magnitude.sum(axis=1), 1e-30)
    return float(np.average(centroids, weights=energy))


def spectral_centroid(audio, sample_rate=16000):
    """Brightness in Hz (NaN for silence); see the module docstring."""
    return _per_clip(_centroid, audio, sample_rate)


def rms_db(audio):
    """Loudness of the whole clip in dBFS (20 log10 RMS; floored at -120)."""
    clips, single = _clips(audio)
    rms = np.sqrt(np.mean(clips ** 2, axis=1))
    db = 20 * np.log10(np.maximum(rms, 10 ** (FLOOR_DB / 20)))
    return float(db[0]) if single else db


def _flatness(clip, sample_rate):
    frames = _sounding_frames(clip, sample_rate)
    if frames is None:
        return math.nan
    power, _, energy = frames
    power = np.maximum(power, 1e-20)
    flatness = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    return float(np.average(flatness, weights=energy))


def spectral_flatness(audio, sample_rate=16000):
    """0 (a pure tone) .. 1 (a flat spectrum); NaN for silence. See the module docstring."""
    return _per_clip(_flatness, audio, sample_rate)


def f0_track(clip, sample_rate=16000, fmin=30.0, fmax=2000.0, threshold=0.15):
    """Per-frame fundamental frequency (Hz, NaN where unvoiced) and the audible-frame mask.

    YIN (de Cheveigne & Kawahara 2002) steps 1-5: the difference function
    over a window of FRAME/2 samples, cumulative mean normalisation, the
    first dip below ``threshold`` (then down to its local minimum), parabolic
    interpolation. A frame without such a dip is unvoiced.
    """
    clip = np.asarray(clip, dtype=np.float64)
    window = FRAME // 2
    tau_min = max(2, int(sample_rate / fmax))
    tau_max = min(FRAME - window - 1, int(math.ceil(sample_rate / fmin)))
    if tau_min >= tau_max:
        raise ValueError(f"fmin {fmin} .. fmax {fmax} Hz leaves no lags at {sample_rate} Hz")
    frames = np.array(_frames(clip))
    active = _active(np.mean(frames ** 2, axis=1))
    # d(tau) = sum_j (x_j - x_{j+tau})^2 for j < window, from energies and one FFT correlation.
    n_fft = 1 << int(math.ceil(math.log2(FRAME + window)))
    spectrum = np.fft.rfft(frames, n_fft, axis=1)
    head = np.fft.rfft(frames[:, :window], n_fft, axis=1)
    cross = np.fft.irfft(spectrum * np.conj(head), n_fft, axis=1)[:, :tau_max + 1]
    squares = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames ** 2, axis=1)], axis=1)
    taus = np.arange(tau_max + 1)
    energy = squares[:, taus + window] - squares[:, taus]
    diff = np.maximum(energy[:, :1] + energy - 2 * cross, 0.0)
    cumulative = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, tau_max + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] / np.maximum(cumulative, 1e-30)
    f0 = np.full(len(frames), np.nan)
    for i in np.flatnonzero(active):
        below = np.flatnonzero(cmnd[i, tau_min:tau_max] < threshold)
        if not below.size:
            continue
        tau = tau_min + below[0]
        while tau + 1 < tau_max and cmnd[i, tau + 1] < cmnd[i, tau]:
            tau += 1
        left, mid, right = cmnd[i, tau - 1], cmnd[i, tau], cmnd[i, tau + 1]
        curvature = left - 2 * mid + right
        shift = 0.5 * (left - right) / curvature if curvature > 0 else 0.0
        f0[i] = sample_rate / (tau + float(np.clip(shift, -1, 1)))
    return f0, active


def _f0(clip, sample_rate, fmin, fmax, threshold):
    track, active = f0_track(clip, sample_rate, fmin, fmax, threshold)
    voiced = np.isfinite(track)
    if not active.any() or voiced.sum() < 0.5 * active.sum():
        return math.nan
    return float(np.median(track[voiced]))


def f0(audio, sample_rate=16000, fmin=30.0, fmax=2000.0, threshold=0.15):
    """Fundamental frequency in Hz, or NaN where there is none; see the module docstring."""
    return _per_clip(_f0, audio, sample_rate, fmin, fmax, threshold)


# name -> (function of (audio, sample_rate), column heading, plot label)
DESCRIPTORS = {
    "centroid": (lambda a, sr: spectral_centroid(a, sr), "centroid Hz", "spectral centroid (Hz)"),
    "rms": (lambda a, sr: rms_db(a), "RMS dBFS", "RMS loudness (dBFS)"),
    "flatness": (lambda a, sr: spectral_flatness(a, sr), "flatness", "spectral flatness"),
    "f0": (lambda a, sr: f0(a, sr), "f0 Hz", "fundamental frequency (Hz)"),
}


def descriptors(audio, sample_rate=16000):
    """Every descriptor of one clip or several: name -> float or (n,) array."""
    return {name: fn(audio, sample_rate) for name, (fn, _, _) in DESCRIPTORS.items()}


def sweep(model, pca, components=4, points=9, limit=2.0, z=None, pitch=None, space=None, progress=None):
    """Synthesise each of the first ``components`` from ``-limit`` to ``+limit`` (others 0) and
    measure the clips.

    Returns a dict: ``coefficients`` (points,), ``components`` (their
    indices), ``stdev`` and ``explained_variance_ratio`` of them, and one
    (components, points) array per descriptor. ``z``, ``pitch`` and ``space``
    are ``synthesize``'s.
    """
    k = min(int(components), pca.n_components)
    if k < 1:
        raise ValueError("components must be at least 1")
    if int(points) < 2:
        raise ValueError("points must be at least 2")
    values = np.linspace(-float(limit), float(limit), int(points))
    result = {"coefficients": values, "components": np.arange(k), "stdev": pca.stdev[:k].astype(float),
              "explained_variance_ratio": pca.explained_variance_ratio[:k].astype(float)}
    measured = {name: np.full((k, len(values)), np.nan) for name in DESCRIPTORS}
    for i in range(k):
        rows = np.zeros((len(values), i + 1))
        rows[:, i] = values
        audio = model.synthesize(pca, rows, z=z, pitch=pitch, space=space)
        for name, found in descriptors(audio, model.sample_rate).items():
            measured[name][i] = found
        if progress is not None:
            progress(i + 1, k)
    result.update(measured)
    return result


def format_sweep(result) -> str:
    """The sweep as text: one table per component, a row per coefficient."""
    names = list(DESCRIPTORS)
    headings = ["coeff"] + [DESCRIPTORS[n][1] for n in names]
    widths = [max(7, len(h)) for h in headings]
    formats = {"centroid": "{:.1f}", "rms": "{:.2f}", "flatness": "{:.3g}", "f0": "{:.1f}"}
    blocks = []
    for row, i in enumerate(result["components"]):
        lines = [f"component {i} (stdev {result['stdev'][row]:.4g}, "
                 f"{100 * result['explained_variance_ratio'][row]:.2f}% of the variance)",
                 "  ".join(h.rjust(w) for h, w in zip(headings, widths))]
        for col, c in enumerate(result["coefficients"]):
            cells = [f"{c:+.2f}"] + [
                "-" if not np.isfinite(result[n][row, col]) else formats[n].format(result[n][row, col])
                for n in names]
            lines.append("  ".join(cell.rjust(w) for cell, w in zip(cells, widths)))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot_sweep(result, path, title=None):
    """A PNG: one panel per descriptor, descriptor against coefficient, one line per component."""
    from .plot import save_figure, subplots

    figure, axes = subplots(2, 2, figsize=(10, 7), dpi=100, sharex=True)
    for ax, name in zip(axes.flat, DESCRIPTORS):
        for row, i in enumerate(result["components"]):
            ax.plot(result["coefficients"], result[name][row], marker="o", markersize=3,
                    label=f"component {i}")
        ax.set_ylabel(DESCRIPTORS[name][2])
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("coefficient (stdevs along the component)")
    axes.flat[0].legend(fontsize="small")
    return save_figure(figure, path, title)
