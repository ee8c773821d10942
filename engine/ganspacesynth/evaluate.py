"""How good is a model? Its clips measured against the real clips it was trained on.

``evaluate(model, dataset_dir)`` generates, for each pitch label the model and
the dataset share, ``clips_per_pitch`` clips from the same random z every
time (``seed``), and measures them beside the real clips:

* **Pitch**, with an independent tracker, pYIN (librosa), not the project's
  own YIN: the share of clips in which pYIN finds a pitch (at least half of
  the sounding frames voiced; sounding = within 30 dB of the clip's loudest
  frame) and the median of the clips' pitch errors in cents from the label
  (each clip's error is the median over its voiced sounding frames).
* **NDB**, the number of statistically different bins (Richardson & Weiss
  2018, as the GANSynth paper used it): k-means on the log-mel spectrograms
  of a reference half of the real clips, then for each bin a two-proportion
  z-test between the reference's share and the test set's. The test set is
  the generated clips, and, for the ceiling, the other half of the real
  clips (as many per pitch as generated ones, so that both tests have the
  same power).
* **Timbre and envelope**: the share of energy above 7 kHz, the spectral
  flatness (``describe.spectral_flatness``), and the RMS of the first,
  middle and last quarter second, with the edges as ratios to the middle:
  medians over clips, real and generated side by side.
* A PNG: for each pitch, real and generated log-mel spectrograms in a grid.

The real clips' own figures are the ceiling to compare with: a perfect
model's clips would be indistinguishable from the held-out half.
"""

import concurrent.futures
import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .errors import GanspacesynthError

HIGH_HZ = 7000.0
EDGE_SECONDS = 0.25
SOUNDING_DB = 30.0
VOICED_SHARE = 0.5
NDB_ALPHA = 0.05
# A pitch label "passes" when pYIN hears a pitch in this share of its clips
# and their median error is within this many cents (the default model's bar).
PASS_VOICED = 0.8
PASS_CENTS = 50.0

FRAME = 2048
HOP = 512
MELS = 64


# --- pitch -----------------------------------------------------------------

def _pyin_range(pitches):
    """pYIN's search range: an octave either side of the labels, within 30 Hz..Nyquist/2."""
    import librosa

    fmin = max(30.0, float(librosa.midi_to_hz(min(pitches) - 12)))
    fmax = min(4000.0, float(librosa.midi_to_hz(max(pitches) + 12)))
    return fmin, fmax


def _track(args):
    """pYIN on a few clips (in a worker process): per clip (voiced?, cents from its label)."""
    import librosa

    clips, midi, sample_rate, fmin, fmax = args
    f0, voiced, _ = librosa.pyin(np.asarray(clips, np.float32), fmin=fmin, fmax=fmax, sr=sample_rate,
                                 frame_length=FRAME, hop_length=HOP)
    rms = librosa.feature.rms(y=np.asarray(clips, np.float32), frame_length=FRAME, hop_length=HOP)[:, 0, :]
    out = []
    for clip_f0, clip_voiced, clip_rms, label in zip(f0, voiced, rms, midi):
        loudest = clip_rms.max()
        if loudest <= 1e-8:
            out.append((False, math.nan))
            continue
        sounding = clip_rms >= loudest * 10 ** (-SOUNDING_DB / 20)
        heard = clip_voiced & sounding & np.isfinite(clip_f0)
        if heard.sum() < VOICED_SHARE * sounding.sum():
            out.append((False, math.nan))
            continue
        hz = float(np.median(clip_f0[heard]))
        out.append((True, 1200.0 * math.log2(hz / float(librosa.midi_to_hz(label)))))
    return out


def track_pitches(clips, midi, sample_rate=16000, pitch_range=None, workers=None):
    """pYIN on each clip: (voiced (n,) bool, cents (n,) float, NaN where unvoiced).

    ``midi``: each clip's expected MIDI pitch (for the error and, unless
    ``pitch_range`` = (fmin, fmax) in Hz is given, for the search range).
    Runs in ``workers`` processes (default: the machine's cores).
    """
    clips = np.asarray(clips, np.float32)
    midi = np.asarray(midi).reshape(-1)
    if clips.ndim != 2 or len(clips) != len(midi):
        raise ValueError(f"expected (n, samples) clips and n pitches, got {clips.shape} and {midi.shape}")
    if len(clips) == 0:
        return np.zeros(0, bool), np.zeros(0)
    fmin, fmax = pitch_range or _pyin_range(midi)
    chunk = 8
    jobs = [(clips[i:i + chunk], midi[i:i + chunk], sample_rate, fmin, fmax)
            for i in range(0, len(clips), chunk)]
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(jobs) > 1:
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            results = [row for part in pool.map(_track, jobs) for row in part]
    else:
        results = [row for job in jobs for row in _track(job)]
    voiced = np.array([v for v, _ in results], bool)
    cents = np.array([c for _, c in results], np.float64)
    return voiced, cents


def pitch_summary(voiced, cents):
    """{"clips", "voiced_share", "median_cents", "median_abs_cents"} of one label's clips."""
    heard = cents[voiced]
    return {
        "clips": int(len(voiced)),
        "voiced_share": float(np.mean(voiced)) if len(voiced) else math.nan,
        "median_cents": float(np.median(heard)) if len(heard) else math.nan,
        "median_abs_cents": float(np.median(np.abs(heard))) if len(heard) else math.nan,
    }


def passes(summary) -> bool:
    return (summary["voiced_share"] >= PASS_VOICED and math.isfinite(summary["median_abs_cents"])
            and summary["median_abs_cents"] <= PASS_CENTS)


# --- NDB --------------------------------------------------------------------

def log_mel_features(clips, sample_rate=16000):
    """Flattened log-mel spectrograms (64 mels, 2048/512 STFT, 4 frames averaged): NDB's space."""
    import librosa

    clips = np.asarray(clips, np.float32)
    mel = librosa.feature.melspectrogram(y=clips, sr=sample_rate, n_fft=FRAME, hop_length=HOP,
                                         n_mels=MELS, fmax=sample_rate / 2)
    frames = mel.shape[-1] // 4 * 4
    mel = mel[..., :frames].reshape(*mel.shape[:-1], frames // 4, 4).mean(axis=-1)
    return np.log(mel + 1e-6).reshape(len(clips), -1)


def ndb(reference, test, bins=20, alpha=NDB_ALPHA, seed=0):
    """Number of statistically different bins between two sets of feature rows.

    k-means with ``bins`` clusters on ``reference``; each ``test`` row goes
    to its nearest centre; a bin differs when a two-sided two-proportion
    z-test of the two shares rejects equality at ``alpha``. Returns
    {"bins", "different", "reference_share", "test_share"}.
    """
    from scipy.stats import norm
    from sklearn.cluster import KMeans

    reference, test = np.asarray(reference, np.float64), np.asarray(test, np.float64)
    if len(reference) < bins:
        raise ValueError(f"NDB with {bins} bins needs at least {bins} reference clips, got {len(reference)}")
    kmeans = KMeans(n_clusters=bins, n_init=10, random_state=seed).fit(reference)
    n_ref, n_test = len(reference), len(test)
    ref_counts = np.bincount(kmeans.labels_, minlength=bins).astype(np.float64)
    test_counts = np.bincount(kmeans.predict(test), minlength=bins).astype(np.float64)
    p_ref, p_test = ref_counts / n_ref, test_counts / n_test
    pooled = (ref_counts + test_counts) / (n_ref + n_test)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n_test))
    z = np.divide(p_ref - p_test, se, out=np.zeros(bins), where=se > 0)
    different = np.abs(z) > norm.ppf(1 - alpha / 2)
    return {"bins": int(bins), "different": int(different.sum()),
            "reference_share": p_ref.tolist(), "test_share": p_test.tolist()}


# --- timbre and envelope ----------------------------------------------------------

def high_energy_share(clips, sample_rate=16000, above_hz=HIGH_HZ):
    """Per clip: the share of the power spectrum's energy above ``above_hz``."""
    clips = np.asarray(clips, np.float64)
    spectrum = np.abs(np.fft.rfft(clips, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(clips.shape[-1], 1.0 / sample_rate)
    total = spectrum.sum(axis=-1)
    return np.divide(spectrum[:, freqs > above_hz].sum(axis=-1), total,
                     out=np.zeros(len(clips)), where=total > 0)


def envelope(clips, sample_rate=16000, seconds=EDGE_SECONDS):
    """Per clip: RMS of the first, middle and last ``seconds``, shape (n, 3)."""
    clips = np.asarray(clips, np.float64)
    n = int(round(seconds * sample_rate))
    middle = (clips.shape[-1] - n) // 2
    parts = [clips[:, :n], clips[:, middle:middle + n], clips[:, -n:]]
    return np.stack([np.sqrt(np.mean(p ** 2, axis=-1)) for p in parts], axis=-1)


def timbre_summary(clips, sample_rate=16000):
    """Medians (and 10th/90th percentiles) over clips of the timbre and envelope figures."""
    from .describe import spectral_flatness

    rms = envelope(clips, sample_rate)
    middle = np.maximum(rms[:, 1], 1e-9)
    figures = {
        "high_energy_share": high_energy_share(clips, sample_rate),
        "flatness": np.atleast_1d(spectral_flatness(clips, sample_rate)),
        "rms_first": rms[:, 0], "rms_middle": rms[:, 1], "rms_last": rms[:, 2],
        "first_to_middle": rms[:, 0] / middle, "last_to_middle": rms[:, 2] / middle,
    }
    out = {}
    for name, values in figures.items():
        values = values[np.isfinite(values)]
        out[name] = {"median": float(np.median(values)) if len(values) else math.nan,
                     "p10": float(np.percentile(values, 10)) if len(values) else math.nan,
                     "p90": float(np.percentile(values, 90)) if len(values) else math.nan}
    return out


# --- the whole evaluation ----------------------------------------------------------

@dataclasses.dataclass
class Evaluation:
    model: str
    dataset: str
    seed: int
    clips_per_pitch: int
    # MIDI pitch -> {"real": pitch_summary, "generated": pitch_summary}
    pitch: Dict[int, Dict[str, dict]]
    ndb: Dict[str, dict]            # "real" (held-out half) and "generated" against the reference half
    timbre: Dict[str, dict]         # "real" and "generated": timbre_summary
    plot: Optional[str] = None

    def passing_labels(self, which="generated") -> List[int]:
        return [p for p, row in self.pitch.items() if passes(row[which])]

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["pitch"] = {str(p): row for p, row in self.pitch.items()}
        data["passing_labels"] = {w: self.passing_labels(w) for w in ("real", "generated")}
        data["pass_rule"] = {"voiced_share_at_least": PASS_VOICED, "median_abs_cents_at_most": PASS_CENTS}
        return data

    def format(self) -> str:
        def pct(x):
            return "   -" if not math.isfinite(x) else f"{100 * x:3.0f}%"

        def cents(x):
            return "     -" if not math.isfinite(x) else f"{x:+6.0f}"

        counts = sorted({row["real"]["clips"] for row in self.pitch.values()})
        per_pitch = str(counts[0]) if len(counts) == 1 else f"{counts[0]}..{counts[-1]}"
        lines = [f"model {self.model} against {self.dataset}: {per_pitch} clips per pitch "
                 f"(real: held out; generated: seed {self.seed})", "",
                 "pitch (pYIN)      real                      generated",
                 "MIDI   voiced  cents  |cents|      voiced  cents  |cents|"]
        for midi, row in self.pitch.items():
            r, g = row["real"], row["generated"]
            lines.append(f"{midi:4d}   {pct(r['voiced_share'])}  {cents(r['median_cents'])} "
                         f"{cents(r['median_abs_cents'])}       {pct(g['voiced_share'])}  "
                         f"{cents(g['median_cents'])} {cents(g['median_abs_cents'])}")
        n = len(self.pitch)
        lines.append(f"labels with a pitch in >= {PASS_VOICED:.0%} of clips within {PASS_CENTS:.0f} cents: "
                     f"real {len(self.passing_labels('real'))}/{n}, "
                     f"generated {len(self.passing_labels('generated'))}/{n}")
        lines.append("")
        r, g = self.ndb["real"], self.ndb["generated"]
        lines.append(f"NDB (k-means on log-mel, {r['bins']} bins, alpha {NDB_ALPHA}): real held-out "
                     f"{r['different']}/{r['bins']}, generated {g['different']}/{g['bins']}")
        lines.append("")
        lines.append(f"{'median (p10..p90)':<22} {'real':<28} generated")
        labels = [("high_energy_share", "energy above 7 kHz", "pct"), ("flatness", "spectral flatness", "g"),
                  ("rms_first", "RMS first 0.25 s", "g"), ("rms_middle", "RMS middle 0.25 s", "g"),
                  ("rms_last", "RMS last 0.25 s", "g"), ("first_to_middle", "first / middle", "g"),
                  ("last_to_middle", "last / middle", "g")]
        for key, label, kind in labels:
            cells = []
            for which in ("real", "generated"):
                s = self.timbre[which][key]
                if kind == "pct":
                    cells.append(f"{100 * s['median']:.1f}% ({100 * s['p10']:.1f}..{100 * s['p90']:.1f})")
                else:
                    cells.append(f"{s['median']:.3g} ({s['p10']:.2g}..{s['p90']:.2g})")
            lines.append(f"{label:<22} {cells[0]:<28} {cells[1]}")
        if self.plot:
            lines += ["", f"spectrograms: {self.plot}"]
        return "\n".join(lines)


def _split_real(pitches, per_pitch, seed):
    """Indices of a held-out set (``per_pitch`` clips of each pitch, at most half) and the rest."""
    rng = np.random.default_rng([seed, 7])
    held, rest = [], []
    for pitch in sorted(set(pitches.tolist())):
        index = rng.permutation(np.flatnonzero(pitches == pitch))
        take = min(per_pitch, len(index) // 2)
        held += index[:take].tolist()
        rest += index[take:].tolist()
    return np.array(held, int), np.array(rest, int)


def evaluate(model, dataset_dir, clips_per_pitch=16, seed=0, ndb_bins=20, plot=None, progress=None,
             workers=None) -> Evaluation:
    """Measure ``model`` (a Model or anything ``load_model`` takes) against a prepared dataset."""
    from .data import load_dataset
    from .model import load_model

    name = model if isinstance(model, (str, os.PathLike)) else getattr(model, "name", "model")
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    say = progress or (lambda text: None)
    waves, pitches, _ = load_dataset(dataset_dir)
    if len(waves) == 0:
        raise GanspacesynthError(f"{dataset_dir}: the dataset has no clips")
    shared = sorted(set(pitches.tolist()) & set(model.pitches))
    if not shared:
        raise GanspacesynthError(f"{dataset_dir}: none of its pitches ({sorted(set(pitches.tolist()))}) "
                                 f"is one of the model's ({model.pitches})")
    keep = np.isin(pitches, shared)
    waves, pitches = waves[keep], pitches[keep]
    held, rest = _split_real(pitches, clips_per_pitch, seed)
    if len(held) == 0:
        raise GanspacesynthError(f"{dataset_dir}: at least two clips per pitch are needed")
    real, real_pitches = waves[held], pitches[held]

    say(f"generating {len(real)} clips")
    generated = np.empty_like(real)
    for pitch in shared:
        rows = np.flatnonzero(real_pitches == pitch)
        z = model.random_z(len(rows), seed=[seed, int(pitch)])
        for first in range(0, len(rows), 16):
            generated[rows[first:first + 16]] = model.generate(z[first:first + 16], int(pitch))

    say(f"tracking pitch in {2 * len(real)} clips (pYIN)")
    pitch_range = _pyin_range(shared)
    both = np.concatenate([real, generated])
    voiced, cents = track_pitches(both, np.concatenate([real_pitches, real_pitches]), model.sample_rate,
                                  pitch_range, workers)
    n = len(real)
    pitch_rows = {}
    for pitch in shared:
        rows = real_pitches == pitch
        pitch_rows[int(pitch)] = {
            "real": pitch_summary(voiced[:n][rows], cents[:n][rows]),
            "generated": pitch_summary(voiced[n:][rows], cents[n:][rows]),
        }

    say("NDB")
    reference = log_mel_features(waves[rest], model.sample_rate)
    real_features = log_mel_features(real, model.sample_rate)
    generated_features = log_mel_features(generated, model.sample_rate)
    bins = min(ndb_bins, len(rest))
    ndb_result = {"real": ndb(reference, real_features, bins, seed=seed),
                  "generated": ndb(reference, generated_features, bins, seed=seed)}
    timbre = {"real": timbre_summary(real, model.sample_rate),
              "generated": timbre_summary(generated, model.sample_rate)}
    result = Evaluation(str(name), str(dataset_dir), int(seed), int(clips_per_pitch), pitch_rows,
                        ndb_result, timbre)
    if plot:
        result.plot = str(plot_grid(real_features, generated_features, real_pitches, plot,
                                    title=f"{name}: real (left) and generated (right)"))
    return result


def plot_grid(real, generated, pitches, path, columns=2, title=None):
    """For each pitch (up to 13, spread over the range), ``columns`` real and generated log-mel images.

    ``real`` and ``generated``: the clips' ``log_mel_features`` rows.
    """
    from .plot import save_figure, subplots

    chosen = sorted(set(np.asarray(pitches).tolist()))
    if len(chosen) > 13:
        chosen = [chosen[i] for i in np.linspace(0, len(chosen) - 1, 13).round().astype(int)]
    figure, axes = subplots(len(chosen), 2 * columns, figsize=(2.2 * 2 * columns, 1.1 * len(chosen) + 0.6),
                            dpi=90, squeeze=False)
    for row, pitch in enumerate(chosen):
        rows = np.flatnonzero(np.asarray(pitches) == pitch)[:columns]
        for col in range(2 * columns):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            source = real if col < columns else generated
            if col % columns < len(rows):
                ax.imshow(source[rows[col % columns]].reshape(MELS, -1), origin="lower", aspect="auto",
                          cmap="magma")
            if col == 0:
                ax.set_ylabel(str(pitch), rotation=0, labelpad=14, fontsize=8)
            if row == 0:
                ax.set_title("real" if col < columns else "generated", fontsize=8)
    return save_figure(figure, path, title)


def save_json(result: Evaluation, path):
    Path(path).write_text(json.dumps(result.to_json(), indent=2) + "\n")
