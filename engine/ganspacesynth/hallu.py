"""Hallu: compose a hallucination by travelling through GANSpace coefficient space.

A composition is a list of *steps* (principal points: coefficient vectors
along the PCA's components). Between each pair of steps, ``interp_steps``
points are placed by linear interpolation, so n steps give
``n + (n - 1) * interp_steps`` points. Each point is synthesised (in batches),
cut to its note and shaped by an envelope, normalised by its absolute peak,
and overlap-added ``spacing`` seconds after the previous one; the mix is
normalised to ``peak``.

The note of a 4-second clip: skip ``start_trim`` seconds, then ``attack``
(linear 0 -> 1), ``sustain`` (1) and ``release`` (linear 1 -> 0). The note is
``attack + sustain + release`` long, so the mix lasts
``spacing * (points - 1) + attack + sustain + release`` seconds.

How the original Pd tool's settings map here:

* its "interpolation steps" k placed k - 1 points between steps; here
  ``interp_steps`` is the number of points between steps (k - 1), as the
  paper describes it;
* its start trim left ``start_trim`` seconds of silence at the start of
  every note; here the trimmed part is cut, so the notes start at once and
  the timing is otherwise the same;
* it normalised notes and the mix by ``max()``, not by the absolute peak, and
  then halved the mix; here both use the absolute peak and the mix is scaled
  to ``peak`` (0.5 reproduces the original's level).

Modes (see ``pca.py`` for the synthesis formula): ``layer`` (the paper's: z
and pitch have no effect), ``z`` (the edit is added to the activation of one
latent vector ``z``, drawn from ``seed`` unless given, at ``pitch``) and
``latent`` (pitch-preserving latent directions, around ``z`` or the centre).
In the z and latent modes ``pitch`` may also be a list with one MIDI pitch
per step: a step's notes and the points leading from it to the next step are
played at its pitch, so a composition can be a melody as well as a path.
"""

import dataclasses
import json
from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from .errors import GanspacesynthError

SESSION_FORMAT = "ganspacesynth-hallu"
SESSION_VERSION = 1
MODES = ("layer", "z", "latent")


@dataclasses.dataclass
class HalluSettings:
    """Stitching settings, defaults as the original tool's."""
    interp_steps: int = 1
    spacing: float = 0.2
    start_trim: float = 0.0
    attack: float = 0.5
    sustain: float = 0.5
    release: float = 0.5
    peak: float = 0.9

    def validate(self, clip_seconds: float):
        if int(self.interp_steps) != self.interp_steps or self.interp_steps < 0:
            raise GanspacesynthError(f"interp_steps must be a whole number >= 0, got {self.interp_steps}")
        for name in ("spacing", "start_trim", "attack", "sustain", "release", "peak"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise GanspacesynthError(f"{name} must be a finite number >= 0, got {value}")
        if self.spacing <= 0:
            raise GanspacesynthError(f"spacing must be more than 0 s, got {self.spacing}")
        if self.attack + self.sustain + self.release <= 0:
            raise GanspacesynthError("attack + sustain + release is 0 s: the notes would be empty")
        total = self.start_trim + self.attack + self.sustain + self.release
        if total > clip_seconds + 1e-9:
            raise GanspacesynthError(
                f"start trim + attack + sustain + release = {total:g} s does not fit in a "
                f"{clip_seconds:g} s clip")

    def note_samples(self, sample_rate: int, clip_length: int):
        """(samples trimmed, samples the note keeps); rounding each time to whole samples
        may overshoot a note that fills the clip by a sample or two, so the clip bounds it."""
        trim = int(round(self.start_trim * sample_rate))
        note = sum(int(round(t * sample_rate)) for t in (self.attack, self.sustain, self.release))
        return trim, min(note, clip_length - trim)

    def kept_samples(self, model) -> int:
        """How far into each of ``model``'s clips a note reaches: all Hallu needs generated."""
        return sum(self.note_samples(model.sample_rate, model.audio_length))


def interpolate_steps(steps, interp_steps: int) -> np.ndarray:
    """All points of a composition: each step, then ``interp_steps`` points towards the next."""
    steps = _steps_array(steps)
    points = []
    for a, b in zip(steps[:-1], steps[1:]):
        for j in range(interp_steps + 1):
            points.append(a + (b - a) * (j / (interp_steps + 1)))
    points.append(steps[-1])
    return np.array(points, dtype=np.float32)


def point_pitches(pitch, n_steps: int, interp_steps: int):
    """The pitch of every point: one for all, or each step's for its own points (a list)."""
    if pitch is None or np.ndim(pitch) == 0:
        return pitch
    pitches = list(pitch)
    if len(pitches) != n_steps:
        raise GanspacesynthError(f"{len(pitches)} pitches for {n_steps} steps: give one pitch per "
                                 "step, or a single pitch")
    try:
        pitches = [int(p) for p in pitches]
    except (TypeError, ValueError):
        raise GanspacesynthError(f"pitches must be MIDI numbers, got {pitch!r}") from None
    points = [p for p in pitches[:-1] for _ in range(interp_steps + 1)]
    return np.array(points + pitches[-1:])


def _steps_array(steps) -> np.ndarray:
    if steps is None or len(steps) == 0:
        raise GanspacesynthError("a composition needs at least one step")
    width = max(len(np.atleast_1d(step)) for step in steps)
    if width == 0:
        raise GanspacesynthError("every step is empty: give at least one coefficient")
    array = np.zeros((len(steps), width), dtype=np.float64)
    for i, step in enumerate(steps):
        values = np.atleast_1d(np.asarray(step, dtype=np.float64))
        if values.ndim != 1:
            raise GanspacesynthError(f"step {i} must be a list of numbers")
        array[i, :len(values)] = values  # shorter steps: the remaining coefficients are 0
    if not np.all(np.isfinite(array)):
        raise GanspacesynthError("steps contain NaN or infinite coefficients")
    return array


def envelope(clip_length: int, sample_rate: int, start_trim, attack, sustain, release) -> np.ndarray:
    """The gain curve over a whole clip: 0 before the trim, linear attack, sustain at 1,
    linear release, 0 after."""
    trim, a, s, r = (int(round(t * sample_rate)) for t in (start_trim, attack, sustain, release))
    gain = np.zeros(clip_length, dtype=np.float32)
    # Ramps end on their far value at the next segment's first sample, so
    # a ramp of N samples never repeats the sustain level.
    gain[trim:trim + a] = np.arange(a, dtype=np.float32) / max(a, 1)
    gain[trim + a:trim + a + s] = 1.0
    gain[trim + a + s:trim + a + s + r] = 1.0 - (np.arange(r, dtype=np.float32) + 1) / max(r, 1)
    return gain


def stitch(clips: np.ndarray, sample_rate: int, settings: HalluSettings) -> np.ndarray:
    """Trim, envelope, normalise and overlap-add clips (n, clip_length) into one mix."""
    clips = np.asarray(clips, dtype=np.float32)
    trim, note_length = settings.note_samples(sample_rate, clips.shape[1])
    gain = envelope(clips.shape[1], sample_rate, settings.start_trim, settings.attack,
                    settings.sustain, settings.release)[trim:trim + note_length]
    hop = settings.spacing * sample_rate
    starts = [int(round(i * hop)) for i in range(len(clips))]
    mix = np.zeros(starts[-1] + note_length, dtype=np.float32)
    for start, clip in zip(starts, clips):
        note = clip[trim:trim + note_length] * gain
        mix[start:start + note_length] += note / max(float(np.abs(note).max()), 1e-12)
    return mix * (settings.peak / max(float(np.abs(mix).max()), 1e-12))


def hallucinate(model, pca, steps, interp_steps=1, spacing=0.2, start_trim=0.0, attack=0.5,
                sustain=0.5, release=0.5, peak=0.9, mode="layer", pitch=None, z=None, seed=0,
                batch_size=8, progress=None):
    """Render a composition; returns ``(audio, points)``.

    ``audio`` is float32 at ``model.sample_rate``; ``points`` the (P, k)
    coefficient vectors synthesised, in order. ``progress``, if given, is
    called with the fraction done (0..1) after each batch.
    """
    settings = HalluSettings(interp_steps, spacing, start_trim, attack, sustain, release, peak)
    settings.validate(model.audio_length / model.sample_rate)
    if mode not in MODES:
        raise GanspacesynthError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    points = interpolate_steps(steps, int(interp_steps))
    kwargs = {"space": mode}
    pitches = None
    if mode in ("z", "latent"):
        kwargs["pitch"] = model.default_pitch if pitch is None else pitch
        pitches = point_pitches(kwargs["pitch"], len(steps), int(interp_steps))
    elif pitch is not None and np.ndim(pitch) != 0:
        raise GanspacesynthError("pitches per step need the z or latent mode: in layer mode the "
                                 "pitch is part of the activation the directions move")
    if mode == "z" and z is None:
        z = model.random_z(1, seed=seed)[0]
    # Only what the notes keep is generated: a 1.5 s note needs the first
    # 1.5 s of each clip, and so only the spectrogram frames under it.
    kwargs["length"] = settings.kept_samples(model)
    clips = []
    for start in range(0, len(points), batch_size):
        batch = points[start:start + batch_size]
        if pitches is not None and np.ndim(pitches) == 1:
            kwargs["pitch"] = pitches[start:start + batch_size]
        if z is not None:
            kwargs["z"] = np.repeat(np.reshape(np.asarray(z, np.float32), (1, -1)), len(batch), axis=0)
        clips.append(model.synthesize(pca, batch, **kwargs))
        if progress is not None:
            progress(min(1.0, (start + len(batch)) / len(points)))
    return stitch(np.concatenate(clips), model.sample_rate, settings), points


@dataclasses.dataclass
class HalluSession:
    """Everything that makes a composition, so that it can be rendered again exactly.

    ``model`` and ``pca`` are paths (relative ones are relative to the
    session file) or ``default``; ``pca`` may also name a file in the model's
    folder without its ``.npz`` (``named``, the default model's named
    directions).
    """
    model: str
    pca: str
    steps: List[List[float]]
    settings: HalluSettings = dataclasses.field(default_factory=HalluSettings)
    mode: str = "layer"
    pitch: Optional[Union[int, List[int]]] = None  # one for all steps, or one per step
    seed: int = 0
    base_dir: Optional[Path] = dataclasses.field(default=None, compare=False, repr=False)

    def to_json(self) -> dict:
        return {"format": SESSION_FORMAT, "version": SESSION_VERSION, "model": self.model,
                "pca": self.pca, "steps": [list(map(float, s)) for s in self.steps],
                "settings": dataclasses.asdict(self.settings), "mode": self.mode,
                "pitch": self.pitch, "seed": self.seed}

    def save(self, path):
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path) -> "HalluSession":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise GanspacesynthError(f"{path}: cannot be read as a Hallu session: {error}") from None
        if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
            raise GanspacesynthError(f"{path}: not a Hallu session (no \"format\": \"{SESSION_FORMAT}\")")
        try:
            settings = HalluSettings(**data.get("settings", {}))
            return cls(model=str(data["model"]), pca=str(data["pca"]), steps=data["steps"],
                       settings=settings, mode=data.get("mode", "layer"), pitch=data.get("pitch"),
                       seed=int(data.get("seed", 0)), base_dir=path.resolve().parent)
        except (KeyError, TypeError, ValueError) as error:
            raise GanspacesynthError(f"{path}: bad Hallu session: {error}") from None

    def resolve(self, name: str) -> str:
        if name == "default" or self.base_dir is None or Path(name).is_absolute():
            return name
        return str(self.base_dir / name)

    def render(self, model=None, pca=None, progress=None):
        """Load what the session names (unless given) and render it: ``(audio, points)``."""
        from .model import load_model
        from .pca import load_pca

        model = model or load_model(self.resolve(self.model))
        if pca is None:
            path = self.resolve(self.pca)
            if not Path(path).is_file() and Path(path).name == self.pca and not Path(self.pca).suffix:
                path = self.pca  # a bare name: also looked for in the model's folder (load_pca)
            pca = load_pca(path, model=model)
        return hallucinate(model, pca, self.steps, **dataclasses.asdict(self.settings),
                           mode=self.mode, pitch=self.pitch, seed=self.seed, progress=progress)
