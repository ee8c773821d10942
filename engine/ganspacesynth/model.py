"""The model a script or the Pd external talks to: load, generate, hook layers.

``load_model`` reads either checkpoint layout (see ``checkpoint.py``) or the
word ``default`` for the model shipped inside the package. A ``Model`` turns
latent vectors and MIDI pitches into spectrograms and audio, and exposes
every generator layer so that GANSpace can read activations
(``layer_output``) and replace them (``generate_from_layer``).
"""

import contextlib
import hashlib
import threading
from pathlib import Path

import numpy as np
import tensorflow as tf

from . import checkpoint
from .config import ModelConfig
from .errors import ModelError
from .generator import Generator
from .paths import models_dir
from .quiet import hide_retracing_warning
from .threads import configure_threads
from . import spectral

DEFAULT_MODEL = "default"
# checking_between_layers: the least share of a whole spectrogram's work between two checks
CHECKED_STEP_SHARE = 1 / 16
# The most bytes the largest layer's activations of the clips computed in one call may take:
# a batch is computed a few clips at a time. Each layer's bias, leaky ReLU and pixel norm are
# passes over memory, and once a call's activations outgrow the CPU's cache every pass goes to
# RAM: on the 2-core machine (32 MB of L3) a batch of 64 clips of the default model (4 MB a
# clip in its top layer) took twice as long per clip as batches of 2, and 8 full-size clips
# (16 MB each) 1.4 times as long as 1.
CHUNK_BYTES = 8 << 20


def resolve_model_path(path) -> Path:
    """``default`` names the packaged model; anything else is a folder path."""
    if str(path) == DEFAULT_MODEL:
        resolved = models_dir() / DEFAULT_MODEL
        if not resolved.is_dir():
            raise ModelError("the default model is not installed with this copy of ganspacesynth "
                             f"(looked in {resolved})")
        return resolved
    return Path(path).expanduser()


def load_model(path, threads=None) -> "Model":
    """Load a GANSynth model folder (Magenta's layout or ours) or ``"default"``.

    ``threads``: TensorFlow's compute threads (see ``threads.py``: by default
    ``GANSPACESYNTH_THREADS``, else every core when the process's main thread
    runs at real-time priority, one fewer otherwise); it takes effect
    only if TensorFlow has not started work in this process yet.
    """
    configure_threads(threads)
    folder = resolve_model_path(path)
    if not folder.exists():
        raise ModelError(f"{folder}: no such model folder")
    if not folder.is_dir():
        raise ModelError(f"{folder}: a model is a folder (with experiment.json or config.json), not a file")
    if checkpoint.is_project_model(folder):
        config = checkpoint.read_project_config(folder)
        generator = Generator(config)
        checkpoint.restore_project_weights(folder, generator)
    elif checkpoint.is_magenta_model(folder):
        config, weights = checkpoint.read_magenta_model(folder)
        generator = Generator(config)
        variables = generator.weights()
        for name, value in weights.items():
            variables[name].assign(value)
    else:
        raise ModelError(f"{folder}: not a model folder: expected experiment.json and stage_* "
                         "(Magenta) or config.json (ganspacesynth)")
    return Model(generator, source=folder)


def slerp(z0, z1, t):
    """Spherical interpolation between latent vectors, as GANSynth's examples interpolate.

    ``t`` may be a scalar or an array of positions; falls back to linear
    interpolation when the vectors are (anti)parallel.
    """
    z0 = np.asarray(z0, dtype=np.float64)
    z1 = np.asarray(z1, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)[..., np.newaxis] if np.ndim(t) else float(t)
    cos = np.sum(z0 * z1, axis=-1, keepdims=True) / (
        np.linalg.norm(z0, axis=-1, keepdims=True) * np.linalg.norm(z1, axis=-1, keepdims=True) + 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    sin = np.sin(omega)
    with np.errstate(invalid="ignore", divide="ignore"):
        spherical = (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / sin
    linear = (1 - t) * z0 + t * z1
    return np.where(sin > 1e-6, spherical, linear).astype(np.float32)


# Model settings added after identifiers were first handed out, with the value
# every earlier model has: left out of the fingerprint at that value, so a
# model's identifier (and the PCA files that name it) does not change when
# the settings grow.
_SETTINGS_ADDED_LATER = {"pitch_label_gain": 1.0}


class Model:
    """A loaded generator with the audio format around it.

    The generator's weights are frozen when the Model is made (``Generator.freeze``):
    inference reads them as they were then.
    """

    def __init__(self, generator: Generator, source=None):
        generator.freeze()
        self.generator = generator
        self.config: ModelConfig = generator.config
        self.source = source
        self._compiled = {}
        self._identifier = None
        # per thread: players sharing this model (shared_models.py) each check their own
        self._between_layers = threading.local()

    # --- what the model is ---------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def audio_length(self) -> int:
        return self.config.audio_length

    @property
    def latent_size(self) -> int:
        return self.config.latent_size

    @property
    def pitches(self):
        return list(self.config.pitches)

    @property
    def default_pitch(self) -> int:
        """A pitch that is always valid: the middle of the trained ones."""
        return self.config.pitches[len(self.config.pitches) // 2]

    @property
    def layer_names(self):
        return list(self.generator.layer_names)

    def layer_shape(self, name):
        return self.generator.layer_shape(name)

    @property
    def identifier(self) -> str:
        """A fingerprint of the architecture and weights: the same model gives the same
        identifier in either format, so a PCA can tell which model it belongs to."""
        if self._identifier is None:
            digest = hashlib.sha256()
            settings = {key: value for key, value in self.config.to_json().items()
                        if _SETTINGS_ADDED_LATER.get(key, object()) != value}
            digest.update(repr(sorted(settings.items())).encode())
            for name, variable in sorted(self.generator.weights().items()):
                digest.update(name.encode())
                digest.update(np.ascontiguousarray(variable.numpy(), dtype="<f4").tobytes())
            self._identifier = digest.hexdigest()[:16]
        return self._identifier

    def describe(self) -> str:
        c = self.config
        filters = [c.num_filters(b) for b in range(1, c.num_blocks + 1)]
        params = sum(int(np.prod(v.shape)) for v in self.generator.weights().values())
        pitches = c.pitches
        pitch_text = (f"{pitches[0]}..{pitches[-1]}" if pitches == list(range(pitches[0], pitches[-1] + 1))
                      else " ".join(map(str, pitches)))
        lines = [
            f"model       {self.source}",
            f"identifier  {self.identifier}",
            f"audio       {c.audio_length} samples at {c.sample_rate} Hz "
            f"({c.audio_length / c.sample_rate:g} s), spectrogram {c.output_shape}",
            f"latent      {c.latent_size}",
            f"pitches     {len(pitches)}: {pitch_text}",
            f"filters     {filters} (fmap_base {c.fmap_base}, fmap_max {c.fmap_max}), "
            f"{params / 1e6:.2f} M parameters",
            "layers      " + ", ".join(f"{n} {self.layer_shape(n)}" for n in self.layer_names),
        ]
        return "\n".join(lines)

    # --- inputs ------------------------------------------------------------
    def random_z(self, n=1, seed=None):
        """``n`` standard normal latent vectors; the same seed gives the same vectors."""
        return np.random.default_rng(seed).standard_normal((int(n), self.latent_size)).astype(np.float32)

    slerp = staticmethod(slerp)

    def pitch_labels(self, pitch, n):
        """MIDI pitch (or one per row) to one-hot labels; unknown pitches are a ValueError."""
        pitch = np.asarray(pitch)
        if pitch.ndim == 0:
            pitch = np.full(n, pitch)
        if pitch.shape != (n,):
            raise ValueError(f"expected one pitch or {n} pitches, got an array of shape {pitch.shape}")
        index = {p: i for i, p in enumerate(self.config.pitches)}
        labels = []
        for p in pitch.tolist():
            if p != int(p) or int(p) not in index:
                raise ValueError(f"pitch {p} is not one this model was trained on; valid pitches: "
                                 f"{_compact(self.config.pitches)}")
            labels.append(index[int(p)])
        return np.eye(self.config.num_pitches, dtype=np.float32)[labels]

    def latents(self, z):
        """z (one vector or one per row) as a checked (n, latent_size) float32 array."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim == 1:
            z = z[np.newaxis]
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"z must have shape ({self.latent_size},) or (n, {self.latent_size}), "
                             f"got {z.shape}")
        if not np.all(np.isfinite(z)):
            raise ValueError("z contains NaN or infinite values")
        return z

    # --- the network, compiled per entry and exit point --------------------
    def _function(self, start, stop, frames=None):
        """A compiled graph from layer ``start`` (-1: the z/pitch input) up to ``stop``
        (a layer index, or None for the denormalised spectrogram); ``frames``: only what
        the spectrogram's first ``frames`` frames need is computed (``rows_plan``)."""
        key = (start, stop, frames)
        if key not in self._compiled:
            generator = self.generator
            last = len(generator.layer_names)
            plan = generator.rows_plan(frames)

            def forward(x, one_hot=None):
                if start < 0:
                    x = generator.input_layer(x, one_hot)
                    first = 0
                else:
                    first = start + 1
                x = generator.run_layers(x, first, last if stop is None else stop + 1, plan)
                if stop is None:
                    x = generator.denormalize(generator.rgb(x, self.config.num_blocks))
                return x

            # setdefault: players sharing this model (shared_models.py) may ask
            # at once from different threads, and must all get the one graph.
            # autograph=False: the generator's loops and branches are over the
            # architecture and the row plan, plain Python values, so AutoGraph's
            # rewriting of them changes nothing in the graph and cost a third of
            # a load's tracing (the default model's load: 5.1-5.6 s -> 3.6-3.8 s).
            function = tf.function(forward, reduce_retracing=True, autograph=False)
            return self._compiled.setdefault(key, function)
        return self._compiled[key]

    @contextlib.contextmanager
    def checking_between_layers(self, check):
        """Within this block, on this thread, a whole spectrogram is computed a few layers at a
        time with ``check()`` called between: an exception ``check`` raises stops the
        computation there.

        One graph for the whole spectrogram cannot be stopped once it runs,
        and on the full-size architecture it runs for about 0.3 s: a host that
        must drop a clip as soon as a newer one is asked for (a knob turned
        while the last turn's clip is computed) would wait that long. In steps
        of at least a sixteenth of the work (``CHECKED_STEP_SHARE``: one layer
        each from the full size's fourth block on, the earlier ones together)
        it waits for one step; the values are the same, bit for bit (each
        step's graph does the same operations). The same for a spectrogram's
        first frames only (``frames``)."""
        previous = getattr(self._between_layers, "check", None)
        self._between_layers.check = check
        try:
            yield
        finally:
            self._between_layers.check = previous

    def checked_steps(self, start=-1):
        """The layers after which a checked whole spectrogram from layer ``start`` (-1: z and
        pitch) calls its check: each step at least ``CHECKED_STEP_SHARE`` of the multiply-adds
        (a graph per step costs 0.3-1 ms to call and a fraction of a second to trace)."""
        c = self.config
        last = len(self.generator.layer_names) - 1
        work = [c.multiply_adds(index // 2 + 1, ("conv0", "conv1")[index % 2])
                for index in range(start + 1, last + 1)]
        stops, done, least = [], 0, CHECKED_STEP_SHARE * sum(work)
        for index, cost in zip(range(start + 1, last), work):
            done += cost
            if done >= least:
                stops.append(index)
                done = 0
        return stops

    def _spectrogram_function(self, start, frames):
        """What computes the spectrogram from layer ``start`` (-1: z and pitch): one graph, or
        one per step with the thread's check between (``checking_between_layers``)."""
        check = getattr(self._between_layers, "check", None)
        if check is None:
            return self._function(start, None, frames)
        hide_retracing_warning()  # a graph per step, each traced once

        def in_steps(x, *one_hot):
            first = start
            for stop in self.checked_steps(start):
                x = self._function(first, stop, frames)(x, *one_hot)
                one_hot = ()
                first = stop
                check()
            return self._function(first, None, frames)(x)

        return in_steps

    def compile(self, start=None, stop=None):
        """Trace, now, the graph from layer ``start`` (None: the z/pitch input) up to layer
        ``stop`` (None: the whole spectrogram) for any number of clips at once, and return
        the number of times it has been traced.

        Tracing costs a second or more of CPU (much more on a busy machine), and
        TensorFlow does it at a graph's first use: a host that compiles what it
        will play right after loading pays it while it says "loading", not at
        the first note. A later call of ``generate``, ``specgrams_from_layer``,
        ``layer_output`` or ``synthesize`` with any batch size reuses the trace."""
        first = -1 if start is None else self.generator.layer_index(start)
        last = None if stop is None else self.generator.layer_index(stop)
        function = self._function(first, last)
        if first < 0:
            specs = (tf.TensorSpec((None, self.latent_size), tf.float32),
                     tf.TensorSpec((None, self.config.num_pitches), tf.float32))
        else:
            specs = (tf.TensorSpec((None, *self.layer_shape(start)), tf.float32),)
        function.get_concrete_function(*specs)
        return function.experimental_get_tracing_count()

    def _frames(self, frames):
        """None (all frames) or a checked frame count, None again when it is all of them."""
        if frames is None:
            return None
        total = self.config.output_shape[0]
        if int(frames) != frames or not spectral.MIN_FRAMES <= frames <= total:
            raise ValueError(f"frames must be a whole number from {spectral.MIN_FRAMES} to {total}, "
                             f"got {frames}")
        return None if frames == total else int(frames)

    def frames_for_length(self, length):
        """The leading spectrogram frames that determine the first ``length`` samples
        (None: the whole clip)."""
        if length is None:
            return None
        if int(length) != length or not 1 <= length <= self.audio_length:
            raise ValueError(f"length must be a whole number of samples from 1 to {self.audio_length}, "
                             f"got {length}")
        return self._frames(spectral.frames_for_samples(int(length)))

    def waves(self, specgrams, length=None):
        """Spectrograms (all frames, or the first ones) to audio, cut to ``length`` samples."""
        audio = spectral.specgrams_to_waves(specgrams)
        return audio if length is None else audio[..., :int(length)]

    def clips_per_call(self):
        """How many clips one graph call computes: as many as keep the largest layer's
        activations of whole clips within ``CHUNK_BYTES``, at least one. The same for a clip's
        first frames only: TensorFlow may sum in another order for another batch size, and a
        start should be the whole clip's as nearly as the batch allows."""
        largest = max(int(np.prod(self.layer_shape(name))) for name in self.layer_names)
        return max(1, CHUNK_BYTES // (4 * largest))

    def _in_chunks(self, function, *inputs):
        """``function`` over the clips of ``inputs`` (arrays with one row per clip), a few clips
        per call (``clips_per_call``), as one array."""
        step = self.clips_per_call()
        chunks = [function(*(tf.constant(a[i:i + step]) for a in inputs)).numpy()
                  for i in range(0, len(inputs[0]), step)]
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def generate_specgrams(self, z, pitch, frames=None):
        """Denormalised mel spectrograms (n, 128, 1024, 2): log magnitude, instantaneous frequency.

        ``frames``: compute only the first ``frames`` STFT frames (n, frames,
        1024, 2), the same values as those of the whole spectrogram, in
        roughly frames/128 of the time.
        """
        z = self.latents(z)
        labels = self.pitch_labels(pitch, len(z))
        return self._in_chunks(self._spectrogram_function(-1, self._frames(frames)), z, labels)

    def generate(self, z, pitch, length=None):
        """Audio (n, audio_length) float32 at ``sample_rate`` for latent vectors and pitch(es).

        ``length``: only the first ``length`` samples of each clip, computing
        only the spectrogram frames they depend on (a 1.5 s note of a 4 s
        clip takes about half the time).
        """
        return self.waves(self.generate_specgrams(z, pitch, self.frames_for_length(length)), length)

    def layer_output(self, name, z, pitch):
        """Activations after layer ``name`` (leaky ReLU and pixel norm included), (n, *layer_shape)."""
        index = self.generator.layer_index(name)
        z = self.latents(z)
        labels = self.pitch_labels(pitch, len(z))
        return self._function(-1, index)(tf.constant(z), tf.constant(labels)).numpy()

    def _layer_values(self, name, values):
        index = self.generator.layer_index(name)
        shape = tuple(self.layer_shape(name))
        values = np.asarray(values, dtype=np.float32)
        if values.shape == shape:
            values = values[np.newaxis]
        if values.shape[1:] != shape:
            raise ValueError(f"values for layer {name} must have shape (n, {', '.join(map(str, shape))}), "
                             f"got {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"values for layer {name} contain NaN or infinite values")
        return index, values

    def specgrams_from_layer(self, name, values, frames=None):
        """Spectrograms with layer ``name``'s output replaced by ``values`` (z and pitch no longer
        count); ``frames`` as in ``generate_specgrams``."""
        index, values = self._layer_values(name, values)
        return self._in_chunks(self._spectrogram_function(index, self._frames(frames)), values)

    def generate_from_layer(self, name, values, length=None):
        """Audio with layer ``name``'s output replaced by ``values``: the hook GANSpace edits through.
        ``length`` as in ``generate``."""
        return self.waves(self.specgrams_from_layer(name, values, self.frames_for_length(length)), length)

    def synthesize(self, pca, coefficients, z=None, pitch=None, space=None, batch_size=8, length=None):
        """Audio from GANSpace coefficients along ``pca``'s directions; the formula and the
        spaces (``layer``, ``z``, ``latent``) are documented once, in ``pca.py``."""
        from .pca import synthesize

        return synthesize(self, pca, coefficients, z=z, pitch=pitch, space=space, batch_size=batch_size,
                          length=length)

    # --- saving ------------------------------------------------------------
    def save(self, path, **extra):
        """Write the model in ganspacesynth's format (config.json + TF checkpoint)."""
        checkpoint.write_project_model(Path(path), self.generator,
                                       {"identifier": self.identifier, **extra})


def _compact(pitches):
    if len(pitches) > 3 and pitches == list(range(pitches[0], pitches[-1] + 1)):
        return f"{pitches[0]}..{pitches[-1]}"
    return ", ".join(map(str, pitches))
