"""What a GANSpace direction does to the sound: audio descriptors, and sweeps along components.

Descriptors (numpy only; each takes one clip (samples,) and returns a float,
or several clips (n, samples) and returns an array):

* ``spectral_centroid`` ("brightness"), in Hz: the magnitude-weighted mean
  frequency of each frame, averaged over frames weighted by their energy. A
  sine gives its frequency.
* ``rms_db`` ("loudness"), in dBFS: 20 log10 of the whole clip's RMS (a
  full-scale sine gives -3.01; silence is floored at -120).
* ``spectral_flatness`` ("noisiness"): geometric over arithmetic mean of each frame's power
  spectrum, averaged over frames weighted by their energy: about 0 for a
  sine, about 0.56 for white noise (the flatness of one noise periodogram:
  e^-gamma), 1 only for a perfectly flat spectrum.
* ``pitch_salience`` ("pitch-salience"): 1 - YIN's aperiodicity, energy-weighted
  over audible frames: 1 for a steady tone, near 0 for noise.
* ``f0`` ("pitch"): fundamental frequency in Hz, YIN-style (cumulative mean normalised
  difference, absolute threshold, parabolic interpolation) per frame; the
  median over voiced frames when at least half of the audible frames are
  voiced, NaN otherwise (noise, silence, clusters without a pitch).

Frames are 2048 samples with a hop of 512 and a Hann window (GANSynth's
STFT); frames more than 60 dB below the loudest one count as silence and are
left out, so a clip's decaying tail does not decide its flatness or pitch.

``sweep`` synthesises each of the first components from -2 to +2 (the others
at 0) and measures the descriptors; ``format_sweep`` and ``plot_sweep`` show
it, ``format_most_moved`` says which descriptor each component moves most.
``disentanglement`` measures, for each direction, Spearman's rho of every
descriptor with the coefficient, averaged over starting points, and marks
the directions that "move one thing" (own |rho| > 0.9, others < 0.3);
``format_matrix`` and ``plot_matrix`` show it.
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


def _yin_cmnd(clip, sample_rate, fmin, fmax):
    """YIN's cumulative mean normalised difference per frame: (cmnd (frames, lags), audible-frame
    mask, frame energies, tau_min, tau_max)."""
    clip = np.asarray(clip, dtype=np.float64)
    window = FRAME // 2
    tau_min = max(2, int(sample_rate / fmax))
    tau_max = min(FRAME - window - 1, int(math.ceil(sample_rate / fmin)))
    if tau_min >= tau_max:
        raise ValueError(f"fmin {fmin} .. fmax {fmax} Hz leaves no lags at {sample_rate} Hz")
    frames = np.array(_frames(clip))
    power = np.mean(frames ** 2, axis=1)
    active = _active(power)
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
    return cmnd, active, power, tau_min, tau_max


def f0_track(clip, sample_rate=16000, fmin=30.0, fmax=2000.0, threshold=0.15):
    """Per-frame fundamental frequency (Hz, NaN where unvoiced) and the audible-frame mask.

    YIN (de Cheveigne & Kawahara 2002) steps 1-5: the difference function
    over a window of FRAME/2 samples, cumulative mean normalisation, the
    first dip below ``threshold`` (then down to its local minimum), parabolic
    interpolation. A frame without such a dip is unvoiced.
    """
    cmnd, active, _, tau_min, tau_max = _yin_cmnd(clip, sample_rate, fmin, fmax)
    f0 = np.full(len(cmnd), np.nan)
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


def _salience(clip, sample_rate, fmin, fmax):
    cmnd, active, energy, tau_min, tau_max = _yin_cmnd(clip, sample_rate, fmin, fmax)
    if not active.any():
        return math.nan
    periodicity = 1.0 - np.clip(cmnd[active, tau_min:tau_max].min(axis=1), 0.0, 1.0)
    return float(np.average(periodicity, weights=np.maximum(energy[active], 1e-30)))


def pitch_salience(audio, sample_rate=16000, fmin=30.0, fmax=2000.0):
    """How periodic (pitched) the sound is: 1 for a steady tone, near 0 for noise; NaN for silence.

    One minus YIN's aperiodicity, the smallest cumulative mean normalised
    difference over the lags of ``fmin`` .. ``fmax``, per audible frame,
    averaged with the frames' energies as weights. A harmonicity measure
    that needs no f0 decision: it moves smoothly where ``f0`` jumps to NaN.
    """
    return _per_clip(_salience, audio, sample_rate, fmin, fmax)


# name -> (function of (audio, sample_rate), column heading, plot label). The names are what a
# musician would call them; named directions and the disentanglement matrix use them too.
DESCRIPTORS = {
    "brightness": (lambda a, sr: spectral_centroid(a, sr), "centroid Hz", "spectral centroid (Hz)"),
    "loudness": (lambda a, sr: rms_db(a), "RMS dBFS", "RMS loudness (dBFS)"),
    "noisiness": (lambda a, sr: spectral_flatness(a, sr), "flatness", "spectral flatness"),
    "pitch-salience": (lambda a, sr: pitch_salience(a, sr), "salience", "pitch salience (1 - YIN aperiodicity)"),
    "pitch": (lambda a, sr: f0(a, sr), "f0 Hz", "fundamental frequency (Hz)"),
}
_FORMATS = {"brightness": "{:.1f}", "loudness": "{:.2f}", "noisiness": "{:.3g}", "pitch-salience": "{:.3f}",
            "pitch": "{:.1f}"}


def check_descriptors(names):
    """A list of descriptor names, checked (ValueError naming the known ones)."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [n for n in names if n not in DESCRIPTORS]
    if unknown or not names:
        why = f"unknown descriptor {unknown[0]!r}" if unknown else "no descriptors"
        raise ValueError(f"{why}: choose from {', '.join(DESCRIPTORS)}")
    if len(set(names)) != len(names):
        raise ValueError("each descriptor may be named once")
    return names


def descriptors(audio, sample_rate=16000, names=None):
    """The descriptors ``names`` (default all) of one clip or several: name -> float or (n,) array."""
    names = list(DESCRIPTORS) if names is None else check_descriptors(names)
    return {name: DESCRIPTORS[name][0](audio, sample_rate) for name in names}


def sweep(model, pca, components=4, points=9, limit=2.0, z=None, pitch=None, space=None, progress=None,
          names=None, length=None):
    """Synthesise each of the first ``components`` from ``-limit`` to ``+limit`` (others 0) and
    measure the clips.

    Returns a dict: ``coefficients`` (points,), ``components`` (their
    indices), ``labels`` (their names, or "component i"), ``stdev`` and
    ``explained_variance_ratio`` of them, and one (components, points) array
    per descriptor (``names``, default all). ``z``, ``pitch``, ``space`` and
    ``length`` are ``synthesize``'s.
    """
    k = min(int(components), pca.n_components)
    if k < 1:
        raise ValueError("components must be at least 1")
    if int(points) < 2:
        raise ValueError("points must be at least 2")
    names = list(DESCRIPTORS) if names is None else check_descriptors(names)
    values = np.linspace(-float(limit), float(limit), int(points))
    result = {"coefficients": values, "components": np.arange(k), "labels": [pca.label(i) for i in range(k)],
              "stdev": pca.stdev[:k].astype(float),
              "explained_variance_ratio": pca.explained_variance_ratio[:k].astype(float)}
    measured = {name: np.full((k, len(values)), np.nan) for name in names}
    for i in range(k):
        rows = np.zeros((len(values), i + 1))
        rows[:, i] = values
        audio = model.synthesize(pca, rows, z=z, pitch=pitch, space=space, length=length)
        for name, found in descriptors(audio, model.sample_rate, names).items():
            measured[name][i] = found
        if progress is not None:
            progress(i + 1, k)
    result.update(measured)
    return result


def correlations(result):
    """Spearman's rho of each descriptor with the coefficient, per swept component:
    name -> (components,) array. A descriptor that does not change along a sweep gets 0; one
    with fewer than three measurable points (f0 of unpitched clips), NaN."""
    from scipy.stats import spearmanr

    out = {}
    for name in (n for n in DESCRIPTORS if n in result):
        rhos = []
        for row in np.asarray(result[name]):
            finite = np.isfinite(row)
            if finite.sum() < 3:
                rhos.append(np.nan)
            elif np.ptp(row[finite]) == 0:
                rhos.append(0.0)
            else:
                rhos.append(float(spearmanr(result["coefficients"][finite], row[finite]).statistic))
        out[name] = np.array(rhos)
    return out


def format_most_moved(result) -> str:
    """One line per swept component: the descriptor it moves most, by |Spearman rho|."""
    rho = correlations(result)
    lines = []
    for row, label in enumerate(result["labels"]):
        ranked = sorted(((abs(r[row]), name, r[row]) for name, r in rho.items() if np.isfinite(r[row])),
                        reverse=True)
        if not ranked:
            lines.append(f"{label}: no descriptor could be measured")
            continue
        rest = ", ".join(f"{name} {r:+.2f}" for _, name, r in ranked[1:])
        lines.append(f"{label} moves {ranked[0][1]} most (rho {ranked[0][2]:+.2f}; {rest})")
    return "\n".join(lines)


# The disentanglement criterion: a direction "moves one thing" when its own descriptor's |rho|
# passes OWN_RHO and every other descriptor's stays below OTHER_RHO.
OWN_RHO = 0.9
OTHER_RHO = 0.3
MATRIX_DESCRIPTORS = ("brightness", "loudness", "noisiness", "pitch-salience")


def disentanglement(model, pca, components=4, names=MATRIX_DESCRIPTORS, points=9, limit=2.0, starts=4,
                    space=None, pitch=None, seed=0, length=None, progress=None):
    """Spearman's rho of each descriptor with each direction's coefficient over -limit..limit,
    averaged over starting points: the measured version of the paper's Table 1.

    ``space`` "layer" (the default) starts from the PCA's mean (one start);
    "z" and "latent" from ``starts`` random z (seeded by ``seed``), each at
    ``pitch``, or by default at a pitch drawn from all of the model's (a
    direction is played at every pitch; what it does at one pitch is not what
    it does at another). A direction's own descriptor is its name when it is a
    descriptor (named directions), else the one it moves most; it "moves one
    thing" when that |rho| > OWN_RHO and every other < OTHER_RHO (a descriptor
    that cannot be measured counts as not moving). Returns a dict:
    ``labels``, ``descriptors``, ``rho`` (components, descriptors) averaged,
    ``rho_starts`` (starts, components, descriptors), ``own`` (index per
    direction), ``moves_one`` (bool per direction), ``space``, ``starts``,
    ``pitches`` (per start; None in layer space), ``per_pitch`` (whether
    the starts were swept along sets per pitch).

    Directions fitted pitch by pitch (``pca.pitch_sets``) sweep each start,
    in ``z`` and ``latent`` space, along its own pitch's set, as synthesis
    plays them.
    """
    names = check_descriptors(names)
    space = space or "layer"
    if space == "layer":
        centres, pitches = [None], [None]
    else:
        if int(starts) < 1:
            raise ValueError("starts must be at least 1")
        centres = list(model.random_z(int(starts), seed=seed))
        pitches = ([int(p) for p in np.random.default_rng(seed).choice(model.pitches, len(centres))]
                   if pitch is None else [pitch] * len(centres))
    k = min(int(components), pca.n_components)
    per_start = []
    for s, (z, at) in enumerate(zip(centres, pitches)):
        result = sweep(model, pca, components=k, points=points, limit=limit, z=z, pitch=at, space=space,
                       names=names, length=length,
                       progress=None if progress is None else (
                           lambda done, total, s=s: progress(s * total + done, len(centres) * total)))
        rho = correlations(result)
        per_start.append(np.stack([rho[name] for name in names], axis=1))
    rho_starts = np.array(per_start)
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(rho_starts).sum(axis=0)
        rho = np.where(counts > 0, np.nansum(rho_starts, axis=0) / np.maximum(counts, 1), np.nan)
    labels = [pca.label(i) for i in range(k)]
    magnitude = np.nan_to_num(np.abs(rho), nan=0.0)
    own = np.array([names.index(label) if label in names else int(np.argmax(magnitude[i]))
                    for i, label in enumerate(labels)])
    others = magnitude.copy()
    others[np.arange(k), own] = 0.0
    moves_one = (magnitude[np.arange(k), own] > OWN_RHO) & (others.max(axis=1) < OTHER_RHO)
    return {"labels": labels, "descriptors": names, "rho": rho, "rho_starts": rho_starts, "own": own,
            "moves_one": moves_one, "space": space, "starts": len(centres), "pitches": pitches,
            "per_pitch": space != "layer" and pca.pitch_sets is not None,
            "coefficients": np.linspace(-float(limit), float(limit), int(points))}


def format_matrix(matrix) -> str:
    """The matrix as a table: rho per direction and descriptor, the own descriptor in [brackets],
    and whether the direction moves one thing."""
    names = matrix["descriptors"]
    width = max(len(label) for label in matrix["labels"] + ["direction"])
    cell = max(8, *(len(n) for n in names))
    lines = [f"Spearman rho of each descriptor with the coefficient ({matrix['coefficients'][0]:+g}.."
             f"{matrix['coefficients'][-1]:+g}), {matrix['space']} space, mean over {matrix['starts']} "
             f"start{'s' if matrix['starts'] > 1 else ''}{_pitch_note(matrix)}; [own descriptor]; moves one thing: own |rho| > "
             f"{OWN_RHO}, others < {OTHER_RHO}",
             "direction".ljust(width) + "".join(n.rjust(cell + 2) for n in names) + "  moves one thing"]
    for i, label in enumerate(matrix["labels"]):
        cells = []
        for j in range(len(names)):
            r = matrix["rho"][i, j]
            text = "-" if not np.isfinite(r) else f"{r:+.2f}"
            cells.append((f"[{text}]" if j == matrix["own"][i] else f" {text} ").rjust(cell + 2))
        verdict = f"yes ({names[matrix['own'][i]]})" if matrix["moves_one"][i] else "no"
        lines.append(label.ljust(width) + "".join(cells) + "  " + verdict)
    return "\n".join(lines)


def _pitch_note(matrix):
    pitches = [p for p in matrix.get("pitches") or [] if p is not None]
    if not pitches:
        return ""
    where = f" at pitch {pitches[0]}" if len(set(pitches)) == 1 else f" at pitches {min(pitches)}..{max(pitches)}"
    return where + (" (each along its pitch's own set)" if matrix.get("per_pitch") else "")


def plot_matrix(matrix, path, title=None):
    """The matrix as a heat map PNG (rho from -1 blue to +1 red), own descriptors framed."""
    from matplotlib.patches import Rectangle

    from .plot import save_figure, subplots

    rho = matrix["rho"]
    k, m = rho.shape
    figure, ax = subplots(figsize=(1.6 * m + 3, 0.55 * k + 2), dpi=100)
    image = ax.imshow(np.nan_to_num(rho, nan=0.0), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for i in range(k):
        for j in range(m):
            text = "-" if not np.isfinite(rho[i, j]) else f"{rho[i, j]:+.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="white" if np.isfinite(rho[i, j]) and abs(rho[i, j]) > 0.6 else "black")
        ax.add_patch(Rectangle((matrix["own"][i] - 0.5, i - 0.5), 1, 1, fill=False,
                               edgecolor="black" if matrix["moves_one"][i] else "grey",
                               linewidth=2.5 if matrix["moves_one"][i] else 1))
    ax.set_xticks(range(m), matrix["descriptors"])
    ax.set_yticks(range(k), [label + (" *" if one else "") for label, one in
                             zip(matrix["labels"], matrix["moves_one"])])
    ax.set_xlabel(f"descriptor (Spearman rho with the coefficient; * moves one thing)")
    figure.colorbar(image, ax=ax, fraction=0.04)
    return save_figure(figure, path, title)


def format_sweep(result) -> str:
    """The sweep as text: one table per component, a row per coefficient."""
    names = [n for n in DESCRIPTORS if n in result]
    headings = ["coeff"] + [DESCRIPTORS[n][1] for n in names]
    widths = [max(7, len(h)) for h in headings]
    blocks = []
    for row, i in enumerate(result["components"]):
        label = result["labels"][row] if "labels" in result else f"component {i}"
        lines = [f"{label} (stdev {result['stdev'][row]:.4g}, "
                 f"{100 * result['explained_variance_ratio'][row]:.2f}% of the variance)",
                 "  ".join(h.rjust(w) for h, w in zip(headings, widths))]
        for col, c in enumerate(result["coefficients"]):
            cells = [f"{c:+.2f}"] + [
                "-" if not np.isfinite(result[n][row, col]) else _FORMATS[n].format(result[n][row, col])
                for n in names]
            lines.append("  ".join(cell.rjust(w) for cell, w in zip(cells, widths)))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot_sweep(result, path, title=None):
    """A PNG: one panel per descriptor, descriptor against coefficient, one line per component."""
    from .plot import save_figure, subplots

    names = [n for n in DESCRIPTORS if n in result]
    columns = math.ceil(len(names) / 2)
    figure, axes = subplots(2, columns, figsize=(5 * columns, 7), dpi=100, sharex=True, squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        for row, label in enumerate(result.get("labels") or [f"component {i}" for i in result["components"]]):
            ax.plot(result["coefficients"], result[name][row], marker="o", markersize=3, label=label)
        ax.set_ylabel(DESCRIPTORS[name][2])
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("coefficient (stdevs along the component)")
    axes.flat[0].legend(fontsize="small")
    return save_figure(figure, path, title)
