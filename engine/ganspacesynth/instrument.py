"""The playable instrument behind the Pd external (and the pyext fallback).

An ``Instrument`` holds everything a patch can set -- model, PCA,
coefficients, z, pitch, synthesis mode, Hallu steps and settings -- with one
method per message. Every method checks its input and raises
``GanspacesynthError`` with a message a musician can act on, so the hosts
only have to show ``str(error)``; nothing here knows about Pd.

Hosts call it from one worker thread at a time; it is not thread-safe.
Instruments that load the same model share one loaded copy
(``shared_models.py``), which is safe to use from their threads at once.

Testing aid: the environment variable ``GANSPACESYNTH_TEST_DELAY`` (seconds,
read at every call) makes ``generate`` and ``hallucinate`` sleep that long
before working (``generate_parts`` before each part and before the whole),
so that tests can show a host stays responsive while a generation runs.
Leave it unset in normal use.
"""

import contextlib
import functools
import math
import os
import time

import numpy as np

from . import spectral
from .audio import resample, resample_start
from .errors import GanspacesynthError
from .threads import check_threads

MODES = ("layer", "z", "latent")

# Hallu settings a host may set by name, with the keyword hallucinate() takes
# and the original tool's default.
HALLU_SETTINGS = {
    "interp": ("interp_steps", 1),
    "spacing": ("spacing", 0.2),
    "trim": ("start_trim", 0.0),
    "attack": ("attack", 0.5),
    "sustain": ("sustain", 0.5),
    "release": ("release", 0.5),
}
MAX_INTERP_STEPS = 32
# `find`'s search, kept small so that it ends in seconds on a small model (see ``find``).
FIND_STEPS = 20         # Adam steps on z
FIND_LAYER_STEPS = 20   # then on the PCA's layer itself
FIND_STARTS = 2         # random z tried per pitch label before the steps
MAX_FIND_STEPS = 100000
NO_PCA = "none"     # load MODEL none: the model without its own PCA
# Test hooks, for tests of hosts (the Pd external) that need a slow engine: seconds slept
# before each part and whole clip, and before each check of generate_parts' later parts
# and whole clip (which are then checked between their steps whatever they take).
TEST_DELAY_ENV = "GANSPACESYNTH_TEST_DELAY"
TEST_CHECK_DELAY_ENV = "GANSPACESYNTH_TEST_CHECK_DELAY"
# generate_parts: the leading spectrogram frames of each part, the first as short as the
# resampler's look-ahead allows to be worth playing (about 90 ms), the later ones for models
# whose whole clip takes longer than that (about 0.28 s and 0.8 s of sound). Each part is
# made from scratch, and each must be ready before the one before it has played out: for
# the full-size architecture on one core (10, 16 and 32 frames in about 60, 75 and 115 ms,
# the whole clip in 290) a part of 32 frames straight after the first came 20-25 ms late.
PART_FRAMES = (10, 16, 32)
# ... and it goes on to the whole clip once the part in hand plays for this many times
# what the whole clip took last time: room for a busy machine.
PART_MARGIN = 2.0
# ... and when the whole clip took at least this long when the model was loaded, it and the
# later parts are computed a few layers at a time with generate_parts' ``check`` between,
# so that a newer change can stop them (Model.checking_between_layers): on the full-size
# architecture, whose whole clip takes 0.3 s, a change then waits for one layer, 60 ms at
# most. On a small model the 0.5-1 ms each step's own graph costs would be a third of its
# clip's time, for a wait that is short anyway.
CHECKED_WHOLE_SECONDS = 0.15
# ... but not the first two parts, each in one graph: steps cost time (10-15 ms of the full
# size's 75-ms 16-frame part), the first part is what a change waits to be heard, and the
# second must come before the first has played out (with it in steps, 468 blocks starved
# in 50 changes under JACK, against 4).
UNCHECKED_PARTS = 2


def _vector(values, what):
    try:
        vector = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise GanspacesynthError(f"{what}: expected numbers") from None
    if vector.ndim != 1:
        raise GanspacesynthError(f"{what}: expected a flat list of numbers")
    bad = np.flatnonzero(~np.isfinite(vector))
    if bad.size:
        i = int(bad[0])
        raise GanspacesynthError(f"{what}: value {i} is {vector[i]} (NaN and infinity are not allowed)")
    return vector


def _finite(value, what):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise GanspacesynthError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(value):
        raise GanspacesynthError(f"{what}: {value} is not a finite number")
    return value


def _whole(value, what):
    value = _finite(value, what)
    if value != int(value):
        raise GanspacesynthError(f"{what}: expected a whole number, got {value:g}")
    return int(value)


def _prefixed(what, error):
    """The error with `what: ` in front (once), so that a host can tell which message failed."""
    text = str(error)
    if text.startswith(f"{what}:"):
        return error
    try:
        return type(error)(f"{what}: {text}")
    except TypeError:  # a subclass with another constructor
        return GanspacesynthError(f"{what}: {text}")


def _test_seconds(variable):
    text = os.environ.get(variable, "")
    try:
        seconds = float(text) if text else 0.0
    except ValueError:
        return 0.0
    return seconds if seconds > 0 else 0.0


def _test_delay():
    delay = _test_seconds(TEST_DELAY_ENV)
    if delay:
        time.sleep(delay)


def _slept_first(seconds, check):
    time.sleep(seconds)
    check()


class Instrument:
    """One player's state: what to synthesise, and the calls that synthesise it."""

    def __init__(self, threads=None):
        """``threads``: TensorFlow's compute threads (see ``threads.py``); None for the default."""
        self.threads = None if threads is None else check_threads(threads)
        self.model = None
        self.pca = None
        self.model_name = None
        self.coefficients = np.zeros(0)
        self.z = None
        self.pitch = None
        self.mode = "layer"
        self.steps = []
        self.hallu = {name: default for name, (_, default) in HALLU_SETTINGS.items()}
        self.whole_seconds = 0.0  # what the last whole clip took to make: how far parts must reach
        self.check_layers = False  # whether generate_parts checks between steps (a slow model)

    # --- what is loaded -------------------------------------------------
    @property
    def n_components(self):
        return int(self.pca.n_components) if self.pca is not None else 0

    def info(self):
        """(n_components, sample_rate, audio_length) of what is loaded; zeros without a model."""
        if self.model is None:
            return (0, 0, 0)
        return (self.n_components, int(self.model.sample_rate), int(self.model.audio_length))

    def _need_model(self, what):
        if self.model is None:
            raise GanspacesynthError(f"{what}: no model loaded (send 'load MODEL' first)")
        return self.model

    def _need_pca(self, what):
        if self.pca is None:
            raise GanspacesynthError(f"{what}: no PCA loaded (send 'pca FILE', or 'mode z' to play "
                                     "z and pitch alone)")
        return self.pca

    def load(self, model_path, pca_path=None):
        """Load a model folder (or ``default``) and the PCA to play it with.

        ``pca_path`` None (or empty) takes the model's own PCA, the file
        ``pca.npz`` in its folder, when the folder has one (the default model
        does), and none otherwise; ``"none"`` loads no PCA; anything else is
        a PCA file. On failure the previous model stays loaded. z restarts
        at seed 0 and pitch at the model's default, so a fresh load always
        sounds the same.
        """
        from .model import resolve_model_path
        from .pca import DEFAULT_PCA_FILE
        from .shared_models import shared_model

        model_path = str(model_path)
        if not model_path:
            raise GanspacesynthError("load: expected a model folder or 'default'")
        try:
            # Voices on one model share one loaded copy (see shared_models.py).
            model = shared_model(model_path, threads=self.threads)
        except GanspacesynthError as error:
            raise _prefixed("load", error) from None
        pca = None
        pca_path = "" if pca_path is None else str(pca_path)
        if not pca_path:
            own = resolve_model_path(model_path) / DEFAULT_PCA_FILE
            if own.is_file():
                try:
                    pca = self._read_pca(model, own)
                except GanspacesynthError as error:
                    raise GanspacesynthError(
                        f"load: the model's own PCA cannot be used ({error}); send "
                        f"'load {model_path} none' to load the model without it") from None
        elif pca_path != NO_PCA:
            pca = self._read_pca(model, pca_path)
        self.model, self.model_name, self.pca = model, model_path, pca
        self.z = model.random_z(1, seed=0)[0]
        self.pitch = model.default_pitch
        self._prepare()
        return self.info()

    def set_threads(self, threads=None):
        """Ask for ``threads`` compute threads (None: only report); return the count in effect.

        TensorFlow takes a count only before its first operation in the
        process: later, a different count is a ``GanspacesynthError``.
        """
        from .threads import configure_threads

        if threads is not None:
            threads = check_threads(threads)
        count = configure_threads(threads if threads is not None else self.threads)
        if threads is not None:
            self.threads = threads
        return count

    def _read_pca(self, model, path):
        from .pca import load_pca

        try:
            # Checked here so that a mismatch is reported when the file is
            # chosen, not at the first generate.
            pca = load_pca(str(path), model=model)
        except GanspacesynthError as error:
            raise _prefixed("pca", error) from None
        return pca

    def load_pca(self, path):
        model = self._need_model("pca")
        if not str(path):
            raise GanspacesynthError("pca: expected a PCA file")
        self.pca = self._read_pca(model, path)
        self._prepare()
        return self.info()

    def unload(self):
        """Forget model and PCA (the memory goes back); coefficients and Hallu steps stay."""
        self.model = self.pca = self.model_name = None
        self.z = self.pitch = None

    # --- what to synthesise ---------------------------------------------
    def _check_count(self, count, what):
        if count > self.n_components and self.pca is not None:
            raise GanspacesynthError(f"{what}: {count} coefficients given but the PCA has "
                                     f"{self.n_components} components")

    def set_coefficients(self, values):
        """Coefficients for components 0..k-1; the components after them are 0."""
        vector = _vector(values, "coeffs")
        if vector.size == 0:
            raise GanspacesynthError("coeffs: expected at least one coefficient")
        self._check_count(vector.size, "coeffs")
        self.coefficients = vector

    def set_coefficient(self, index, value):
        index = _whole(index, "coeff index")
        value = _finite(value, f"coeff {index}")
        if index < 0:
            raise GanspacesynthError(f"coeff: index {index} is negative")
        if self.pca is not None and index >= self.n_components:
            raise GanspacesynthError(f"coeff: index {index} is out of range: the PCA has "
                                     f"{self.n_components} components (0..{self.n_components - 1})")
        if index >= self.coefficients.size:
            self.coefficients = np.concatenate([self.coefficients, np.zeros(index + 1 - self.coefficients.size)])
        self.coefficients[index] = value

    def component_names(self):
        """The loaded PCA's component names, or [] (no PCA, or a PCA without names)."""
        if self.pca is None or self.pca.names is None:
            return []
        return list(self.pca.names)

    def set_knob(self, name, value):
        """Set the coefficient of the component called ``name`` (as ``set_coefficient``)."""
        name = str(name)
        value = _finite(value, f"knob {name}")
        if self.pca is None:
            raise GanspacesynthError(f"knob: no PCA loaded, so no component is called {name!r} "
                                     "(send 'pca FILE' with a file of named directions)")
        names = self.component_names()
        if not names:
            raise GanspacesynthError(f"knob: the PCA's components have no names (use 'coeff I V', "
                                     f"or a file made by 'ganspacesynth directions')")
        if name not in names:
            raise GanspacesynthError(f"knob: no component is called {name!r}; the names are "
                                     f"{' '.join(names)}")
        self.set_coefficient(names.index(name), value)

    def set_z(self, values):
        model = self._need_model("z")
        vector = _vector(values, "z")
        if vector.size != model.latent_size:
            raise GanspacesynthError(f"z: expected {model.latent_size} values (the model's latent size), "
                                     f"got {vector.size}")
        self.z = vector.astype(np.float32)

    def random_z(self, seed=None):
        model = self._need_model("z-random")
        if seed is not None:
            seed = _whole(seed, "z-random seed")
            if seed < 0:
                raise GanspacesynthError(f"z-random: seed {seed} is negative")
        self.z = model.random_z(1, seed=seed)[0]

    def set_pitch(self, pitch):
        model = self._need_model("pitch")
        value = _finite(pitch, "pitch")
        if value != int(value) or int(value) not in model.pitches:
            pitches = list(model.pitches)
            if pitches == list(range(pitches[0], pitches[-1] + 1)):
                valid = f"{pitches[0]}..{pitches[-1]}"
            else:
                valid = " ".join(map(str, pitches))
            raise GanspacesynthError(f"pitch: {value:g} is not a pitch this model was trained on "
                                     f"(valid: {valid})")
        self.pitch = int(value)

    def set_mode(self, mode):
        mode = str(mode)
        if mode not in MODES:
            raise GanspacesynthError(f"mode: unknown mode {mode!r}: choose one of {', '.join(MODES)}")
        changed = mode != self.mode
        self.mode = mode
        if changed and self.model is not None:
            self._prepare()

    def _prepare(self):
        """Compile, and run once, the graphs that ``generate`` uses in the current mode,
        so that the first clip after ``load``, ``pca`` or ``mode`` costs what every later
        one does.

        TensorFlow traces a graph at its first use: a second or two of CPU for
        the default model, which became the first preview's wait after a load.
        On a busy machine, with the host's worker running nicer than the rest,
        that was tens of seconds with nothing shown; the load, which says
        "loading", is where the wait belongs. The graphs are traced for any batch
        size, so ``hallucinate``'s batches of whole clips reuse them too."""
        model, pca = self.model, self.pca
        if self.mode == "layer" and pca is not None:
            model.compile(start=pca.layer)
        elif self.mode == "z" and pca is not None:
            model.compile(stop=pca.layer)
            model.compile(start=pca.layer)
        else:  # latent, or z without a PCA
            model.compile()
        try:
            # the first run of a traced graph optimises it (a few tenths of a second more);
            # the parts of generate_parts are graphs of their own, every one traced here:
            # which parts a clip needs depends on how long the last whole clip took, and
            # a part first needed while playing (the machine got busier) stalled the
            # stream for its tracing (0.2-0.7 s under JACK, where the whole clip took a
            # little longer than at load)
            self.check_layers = False
            self._clip(model)
            start = time.perf_counter()
            self._clip(model)
            self.whole_seconds = time.perf_counter() - start
            for frames in PART_FRAMES:
                self._clip(model, spectral.samples_for_frames(frames))
            # decided here, with the graphs it needs traced here, not while playing
            self.check_layers = self.whole_seconds >= CHECKED_WHOLE_SECONDS
            if self.check_layers:
                with model.checking_between_layers(lambda: None):
                    self._clip(model)
                    for frames in PART_FRAMES[UNCHECKED_PARTS:]:
                        self._clip(model, spectral.samples_for_frames(frames))
        except GanspacesynthError:
            pass  # coefficients that do not fit the new PCA: `generate` will say so

    # --- Hallu ------------------------------------------------------------
    def clear_steps(self):
        self.steps = []

    def add_step(self, values):
        vector = _vector(values, "step")
        if vector.size == 0:
            raise GanspacesynthError("step: expected at least one coefficient")
        self._check_count(vector.size, "step")
        self.steps.append(vector)

    def set_hallu(self, name, value):
        """One Hallu setting: ``interp`` (points between steps, 0..32) or a time in seconds
        (``spacing``, ``trim``, ``attack``, ``sustain``, ``release``)."""
        name = str(name)
        if name not in HALLU_SETTINGS:
            raise GanspacesynthError(f"unknown Hallu setting {name!r}: choose one of {', '.join(HALLU_SETTINGS)}")
        if name == "interp":
            value = _whole(value, "interp")
            if not 0 <= value <= MAX_INTERP_STEPS:
                raise GanspacesynthError(f"interp: {value} is outside 0..{MAX_INTERP_STEPS}")
        else:
            value = _finite(value, name)
            if value < 0 or (name == "spacing" and value == 0):
                raise GanspacesynthError(f"{name}: {value:g} s must be {'more than' if name == 'spacing' else 'at least'} 0")
        self.hallu[name] = value

    # --- synthesis ----------------------------------------------------------
    def _padded(self, vector, what):
        n = self.n_components
        self._check_count(vector.size, what)
        out = np.zeros(n, dtype=np.float32)
        out[:vector.size] = vector
        return out

    def _clip(self, model, length=None):
        """The current settings' clip at the model's rate (its first ``length`` samples only)."""
        if self.mode == "z" and self.pca is None:
            clip = model.generate(self.z[np.newaxis], self.pitch, length=length)[0]
        else:
            pca = self._need_pca("generate")
            coefficients = self._padded(self.coefficients, "generate")
            if self.mode == "layer":
                clip = model.synthesize(pca, coefficients, space="layer", length=length)
            else:
                clip = model.synthesize(pca, coefficients, z=self.z, pitch=self.pitch, space=self.mode,
                                        length=length)
        return np.asarray(clip, dtype=np.float32).reshape(-1)

    def generate(self, sample_rate=None):
        """One clip (1-D float32) for the current settings, at ``sample_rate`` (default: the model's)."""
        try:
            return self._generate(sample_rate)
        except GanspacesynthError as error:
            raise _prefixed("generate", error) from None

    def _generate(self, sample_rate):
        model = self._need_model("generate")
        _test_delay()
        start = time.perf_counter()
        clip = self._clip(model)
        self.whole_seconds = time.perf_counter() - start
        return resample(clip, model.sample_rate, sample_rate or model.sample_rate)

    def generate_parts(self, sample_rate=None, on_part=None, check=None):
        """``generate``'s clip, with its start announced while the rest is computed.

        ``on_part(samples)`` is called first with about the first 90 ms of the
        clip at ``sample_rate`` (computed in a fraction of the whole clip's
        time), then, when the whole clip takes longer to make than that part
        plays, with a longer start; every part is the start of the clip
        returned (the generator's layers are local in time, and only the
        samples the resampler will not change are given), to float rounding:
        on some CPUs TensorFlow sums in another order for a shorter input
        (differences near 1e-7, far below hearing). ``check()``, when the
        whole clip takes long (``CHECKED_WHOLE_SECONDS`` when the model was
        loaded), is called between the steps of a few layers that make the
        parts after the first two and the whole clip, every few tens of
        milliseconds: the way for a host to drop the clip as soon as a newer
        one is wanted. An exception ``on_part`` or ``check`` raises stops the
        work. Returns the whole clip.
        """
        try:
            return self._generate_parts(sample_rate, on_part, check)
        except GanspacesynthError as error:
            raise _prefixed("generate", error) from None

    def _generate_parts(self, sample_rate, on_part, check):
        model = self._need_model("generate")
        rate = sample_rate or model.sample_rate
        for number, frames in enumerate(PART_FRAMES):
            _test_delay()
            with self._checked(model, check if number >= UNCHECKED_PARTS else None):
                start = self._clip(model, spectral.samples_for_frames(frames))
            part = resample_start(start, model.sample_rate, rate)
            if part.size and on_part is not None:
                on_part(part)
            if self.whole_seconds * PART_MARGIN <= part.size / rate:
                break
        with self._checked(model, check):
            return self._generate(sample_rate)

    def _checked(self, model, check):
        """Where generate_parts computes its later parts and whole clip: in steps with
        ``check`` between when the model is slow (``check_layers``), else as ever."""
        check_delay = _test_seconds(TEST_CHECK_DELAY_ENV)
        if check is None or not (self.check_layers or check_delay):
            return contextlib.nullcontext()
        if check_delay:
            check = functools.partial(_slept_first, check_delay, check)
        return model.checking_between_layers(check)

    def hallucinate(self, sample_rate=None, progress=None):
        """The Hallu composition of the current steps (1-D float32) at ``sample_rate``.

        ``progress`` is called with a fraction 0..1 as points are synthesised;
        an exception it raises stops the composition.
        """
        try:
            return self._hallucinate(sample_rate, progress)
        except GanspacesynthError as error:
            raise _prefixed("hallucinate", error) from None

    def _hallucinate(self, sample_rate, progress):
        model = self._need_model("hallucinate")
        pca = self._need_pca("hallucinate")
        if not self.steps:
            raise GanspacesynthError("hallucinate: no steps (add some with 'step c0 c1 ...')")
        from .hallu import hallucinate

        steps = np.stack([self._padded(step, "hallucinate") for step in self.steps])
        kwargs = {HALLU_SETTINGS[name][0]: value for name, value in self.hallu.items()}
        _test_delay()
        if self.mode != "layer":
            kwargs["z"] = self.z
        audio, _points = hallucinate(model, pca, steps, mode=self.mode, pitch=self.pitch,
                                     progress=progress, **kwargs)
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        return resample(audio, model.sample_rate, sample_rate or model.sample_rate)

    # --- find this sound ----------------------------------------------------
    def find(self, path, steps=None, layer_steps=None, progress=None):
        """Search for the point whose clip sounds most like the audio file ``path`` (its first
        clip length; ``ganspacesynth.invert``) and make it the current one.

        ``steps`` Adam steps on z (default ``FIND_STEPS``), then ``layer_steps`` on the PCA's
        layer (default ``FIND_LAYER_STEPS``; 0 keeps what z gives). Afterwards z and pitch are
        the found ones and the coefficients those of the found point in the current mode:
        ``layer``, its least-squares coordinates in the PCA (what the PCA's span can play of
        it); ``z``, the refinement's edit to z's own activation (zeros without layer steps);
        ``latent``, zeros (z itself is the found point). Without a PCA only mode ``z`` can play
        it (z and pitch alone). ``progress`` is called with the fraction done; an exception it
        raises stops the search and changes nothing.

        Returns (distance, pitch, coefficients): the spectral distance between the file and
        what the instrument now plays (``invert.audio_distance``), and the coefficients set.
        On any error nothing changes.
        """
        try:
            return self._find(path, steps, layer_steps, progress)
        except GanspacesynthError as error:
            raise _prefixed("find", error) from None

    def _find(self, path, steps, layer_steps, progress):
        from .invert import audio_distance, invert, read_target

        model = self._need_model("find")
        path = str(path)
        if not path:
            raise GanspacesynthError("find: expected an audio file")
        steps = FIND_STEPS if steps is None else _whole(steps, "find steps")
        layer_steps = FIND_LAYER_STEPS if layer_steps is None else _whole(layer_steps, "find layer steps")
        for what, value in (("steps", steps), ("layer steps", layer_steps)):
            if not 0 <= value <= MAX_FIND_STEPS:
                raise GanspacesynthError(f"find: {value} {what} is outside 0..{MAX_FIND_STEPS}")
        pca = self.pca
        if pca is None and self.mode != "z":
            self._need_pca("find")
        if pca is not None:
            pca.check_model(model)
            if self.mode == "latent":
                pca.latent_offset(np.zeros(pca.n_components))  # no latent directions: say so now
        target = read_target(model, path)       # an unreadable or silent file stops here
        found = invert(model, target, starts=FIND_STARTS, keep=1, steps=steps, layer_steps=layer_steps,
                       layer=pca.layer if pca is not None else "conv0", progress=progress)
        coefficients = np.zeros(0)
        if pca is not None:
            if self.mode == "latent":
                coefficients = np.zeros(pca.n_components)
            else:
                coefficients = np.asarray(found.coefficients(pca)[self.mode], dtype=np.float64)
        before = (self.z, self.pitch, self.coefficients)
        self.z = np.asarray(found.z, dtype=np.float32)
        self.pitch = int(found.pitch)
        if pca is not None:
            self.coefficients = coefficients
        try:
            distance = audio_distance(self._clip(model), target)
        except BaseException:
            self.z, self.pitch, self.coefficients = before
            raise
        return float(distance), self.pitch, coefficients
