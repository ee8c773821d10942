"""Find this sound: the latent vector, pitch label and layer values whose clip sounds most like a
given recording.

The distance is ``spectral_tf.spectral_distance``: a multi-resolution STFT
distance between clips (spectral convergence plus log-magnitude L1 at FFT
sizes 2048, 1024, 512 and 256, as Parallel WaveGAN's and DDSP's losses),
computed on the audio, so that a candidate is judged by what it sounds like:
the generator's spectrogram goes through a differentiable copy of the
inversion to audio (``spectral_tf.specgrams_to_waves``). Comparing
spectrograms instead does not work: the generator's are not consistent STFTs,
and the spectrogram of a generated clip's audio differs from the one it was
made from by more than two different clips' spectrograms differ.

``invert`` searches in three stages:

1. every candidate pitch label (all of the model's, or the one given) with
   ``starts`` random z each, forward only: the ``keep`` best (z, pitch) pairs
   go on;
2. gradient descent (Adam) on those z through the TensorFlow generator, the
   pitch labels fixed, for ``steps`` steps; the best one wins;
3. optionally (``layer_steps`` > 0) gradient descent on the winner's
   activations at ``layer``, which reach sounds no z gives, at two rates at
   once (the best rate differs between models and sounds): the first half
   of the steps match the generator's log-mel magnitudes to the target's,
   the rest the audio distance.

Why the magnitudes first: where the target is loud and the candidate all
but silent, the audio distance has almost no gradient (the magnitude of an
STFT bin near zero has no useful direction, and the generator's log
magnitudes sit at their floor), so the search can stall on a plateau for
hundreds of steps. On the reference fixture, of four targets tried, the
audio distance alone stalled near 1.0 on two; with the magnitudes first all
four went below 0.6 in the same number of steps. The generator's magnitude
channel is a direct output, so its gradient never vanishes there.

The result (``Inversion``) holds z, pitch, the layer values and the
distances, and gives the coefficients of the found point along any PCA's or
named directions (``coefficients``), the audio, and a JSON record.
"""

import contextlib
import json
import threading
from pathlib import Path

import numpy as np

from .errors import GanspacesynthError



# Layer refinement runs at these multiples of its learning rate at once (see ``invert``).
LAYER_RATE_FACTORS = (0.2, 1.0)
# The share of the layer steps spent matching log-mel magnitudes before the audio distance.
MAGNITUDE_SHARE = 0.5
# Target log-mel powers this far below the loudest (60 dB) count as silence: there the
# candidate is only kept from rising above that floor, not pulled to the target's noise.
MAGNITUDE_FLOOR = float(np.log(1e6))


class InversionError(GanspacesynthError):
    """An input ``invert`` cannot use (unreadable, silent, wrong shape)."""


def audio_distance(a, b):
    """``spectral_tf.spectral_distance`` between clips, as numpy (one value per clip)."""
    from .spectral_tf import spectral_distance

    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    single = a.ndim == 1 and b.ndim == 1
    found = spectral_distance(np.atleast_2d(a), np.atleast_2d(b)).numpy()
    return float(found[0]) if single else found


def read_target(model, path):
    """The first ``audio_length`` samples of an audio file, mixed to mono, at the model's rate
    (zero-padded when shorter)."""
    import soundfile

    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, soundfile.LibsndfileError) as error:
        raise InversionError(f"{path}: cannot read this audio file ({error})") from None
    return prepare_target(model, audio.mean(axis=1), rate)


def prepare_target(model, audio, sample_rate=None):
    """A clip as the generator makes them: mono float32, the model's rate and length."""
    from .audio import resample

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise InversionError(f"the target must be one mono clip (samples,), got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise InversionError("the target contains NaN or infinite samples")
    if sample_rate is not None and sample_rate != model.sample_rate:
        audio = resample(audio, sample_rate, model.sample_rate)
    audio = audio[:model.audio_length]
    if audio.size < model.audio_length:
        audio = np.pad(audio, (0, model.audio_length - audio.size))
    if not np.any(np.abs(audio) > 1e-6):
        raise InversionError("the target is silent: there is no sound to find")
    return audio


class Inversion:
    """What ``invert`` found. ``z`` (latent size,), ``pitch`` (MIDI), ``layer`` and
    ``layer_values`` (the layer's shape: G_layer(z, pitch), refined when ``layer_steps`` > 0),
    ``distance_z`` (after the z search), ``distance`` (final), ``history`` (the best distance
    after each step), ``audio`` of the result."""

    def __init__(self, model, z, pitch, layer, layer_values, distance_z, distance, history, audio):
        self.model_id = model.identifier
        self.sample_rate = model.sample_rate
        self.z, self.pitch, self.layer = z, int(pitch), layer
        self.layer_values = layer_values
        self.distance_z, self.distance = float(distance_z), float(distance)
        self.history = list(history)
        self.audio = audio
        self._z_layer = model.layer_output(layer, z, pitch)[0]

    def coefficients(self, pca):
        """The found point's coefficients along ``pca``'s directions, per synthesis space:
        ``layer`` (mean + edit = the layer values, least squares), ``z`` (the edit to add to
        G_layer(z, pitch): zero unless the layer was refined) and ``latent`` (z as the zero
        centre plus the latent directions, least squares; None without latent directions).
        Directions fitted per pitch count at the found pitch in ``z`` and ``latent``."""
        if pca.layer != self.layer:
            raise GanspacesynthError(f"the inversion refined layer {self.layer}, but the PCA is of {pca.layer}")
        latent = None
        if pca.latent_directions is not None:
            played = pca.at_pitch(self.pitch)
            played = played if played.latent_directions is not None else pca
            basis = played.latent_directions.astype(np.float64) * played.latent_stdev.astype(np.float64)[:, None]
            latent = np.linalg.lstsq(basis.T, self.z.astype(np.float64), rcond=None)[0]
        return {"layer": pca.coordinates(self.layer_values),
                "z": (pca.coordinates(self.layer_values, self.pitch)
                      - pca.coordinates(self._z_layer, self.pitch)),
                "latent": latent}

    def to_json(self, pca=None):
        record = {
            "format": "ganspacesynth-inversion", "version": 1, "model_id": self.model_id,
            "pitch": self.pitch, "z": [float(v) for v in self.z],
            "distance": self.distance, "distance_z": self.distance_z,
            "distance_measure": "multi-resolution STFT (ganspacesynth.spectral_tf.spectral_distance)",
            "layer": self.layer, "layer_shape": list(self.layer_values.shape),
            "layer_values": [float(v) for v in self.layer_values.reshape(-1)],
        }
        if pca is not None:
            found = self.coefficients(pca)
            record["pca"] = {"source": None if pca.source is None else str(pca.source),
                             "estimator": pca.estimator, "names": pca.names,
                             **{space: None if c is None else [float(v) for v in c]
                                for space, c in found.items()}}
        return record

    def save(self, path, pca=None, wav=None):
        """Write the JSON record to ``path`` and the clip to ``wav`` (default: beside it, .wav);
        returns (json path, wav path)."""
        from .audio import write_wav

        path = Path(path)
        wav = path.with_suffix(".wav") if wav is None else Path(wav)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(pca), indent=1) + "\n", encoding="utf-8")
        write_wav(wav, self.audio, self.sample_rate)
        return path, wav


class _DecayingAdam:
    """Adam on ``variable`` with a cosine decay from a rate to a tenth of it over a number of
    steps, both set by ``restart`` so that one traced step serves every search."""

    def __init__(self, variable):
        import tensorflow as tf

        self.variable = variable
        self.schedule = tf.keras.optimizers.schedules.CosineDecay(1.0, 1, alpha=0.1)
        self.schedule.initial_learning_rate = tf.Variable(1.0, trainable=False)
        self.schedule.decay_steps = tf.Variable(1.0, trainable=False)
        self.optimizer = tf.keras.optimizers.Adam(self.schedule)
        # Adam's moments made now, not by the first step: a graph whose first call creates
        # variables is traced twice (once to make them, once to run).
        self.optimizer.build([variable])

    def restart(self, rate, steps):
        """As if new (no moments, step 0), decaying from ``rate`` over ``steps`` steps."""
        import tensorflow as tf

        self.schedule.initial_learning_rate.assign(float(rate))
        self.schedule.decay_steps.assign(float(max(1, int(steps))))
        for state in self.optimizer.variables:
            state.assign(tf.zeros_like(state))

    def step(self, gradient):
        self.optimizer.apply_gradients([(gradient, self.variable)])


class _Graphs:
    """The inversion's traced graphs for one model, layer and number of candidates, kept
    with the model (``graphs_for``) and used again by every later search of the same kind.

    Each search used to trace graphs of its own (they closed over its target, variables and
    optimisers): 13 of a 32-s ``find`` on the default model were tracing. Here the target
    and the starting points are variables the graphs read, each search sets them, and the
    optimisers restart: a search finds, bit for bit, what the same search finds with new
    graphs (and what it found before they were kept, to float rounding: the target's
    spectra are no longer folded into the graph as constants)."""

    def __init__(self, model, index, rows):
        import tensorflow as tf

        from .spectral_tf import spectral_distance, specgrams_to_waves

        self.lock = threading.Lock()  # one search at a time (graphs_for)
        shape = tuple(model.layer_shape(model.generator.layer_names[index]))
        self.target_audio = tf.Variable(tf.zeros((1, model.audio_length)), trainable=False)
        self.z = tf.Variable(tf.zeros((rows, model.latent_size)))
        self.labels = tf.Variable(tf.zeros((rows, model.config.num_pitches)), trainable=False)
        self.z_adam = _DecayingAdam(self.z)
        factors = np.array(LAYER_RATE_FACTORS, np.float32).reshape(-1, *([1] * len(shape)))
        self.start = tf.Variable(tf.zeros((len(factors), *shape)), trainable=False)
        self.u = tf.Variable(tf.zeros((len(factors), *shape)))
        self.target_magnitudes = tf.Variable(tf.zeros((1, *model.config.output_shape[:2])),
                                             trainable=False)
        self.floor = tf.Variable(0.0, trainable=False)
        self.magnitude_adam, self.layer_adam = _DecayingAdam(self.u), _DecayingAdam(self.u)

        # The generator's own compiled graphs, traced again inside these (a compiled graph
        # called inside another cannot be rewritten for its gradient as well).
        specgrams = model._function(-1, None).python_function
        from_layer = model._function(index, None).python_function

        def layer_values():
            return self.start + factors * self.u

        def distances(z, labels):
            return spectral_distance(specgrams_to_waves(specgrams(z, labels)), self.target_audio)

        def layer_distances():
            return spectral_distance(specgrams_to_waves(from_layer(layer_values())), self.target_audio)

        def z_step():
            with tf.GradientTape() as tape:
                found = distances(self.z, self.labels)
                loss = tf.reduce_sum(found)
            self.z_adam.step(tape.gradient(loss, self.z))
            return found

        def magnitude_step():
            with tf.GradientTape() as tape:
                magnitudes = from_layer(layer_values())[..., 0]
                error = tf.where(self.target_magnitudes > self.floor,
                                 tf.abs(magnitudes - self.target_magnitudes),
                                 tf.nn.relu(magnitudes - self.floor))
                loss = tf.reduce_sum(tf.reduce_mean(error, axis=[1, 2]))
            self.magnitude_adam.step(tape.gradient(loss, self.u))

        def layer_step():
            with tf.GradientTape() as tape:
                found = layer_distances()
                loss = tf.reduce_sum(found)
            self.layer_adam.step(tape.gradient(loss, self.u))
            return found

        self.layer_values = layer_values
        # any number of clips: the search's batches of `starts` and Adam's `rows` share one trace
        self.distances = tf.function(distances, input_signature=(
            tf.TensorSpec((None, model.latent_size), tf.float32),
            tf.TensorSpec((None, model.config.num_pitches), tf.float32)))
        self.z_step = tf.function(z_step)
        self.magnitude_step = tf.function(magnitude_step)
        self.layer_step = tf.function(layer_step)
        self.layer_distances = layer_distances  # once per search: not worth a trace


_GRAPHS_LOCK = threading.Lock()


@contextlib.contextmanager
def graphs_for(model, index, rows):
    """Within this block, a ``_Graphs`` of ``model`` for layer ``index`` and ``rows``
    candidates that no other search uses: one kept with the model, or a new one, kept for
    later. Voices that share a model and search at once each get their own; the model
    holds its graphs, and they go with it."""
    with _GRAPHS_LOCK:
        kept = model.__dict__.setdefault("_inversion_graphs", {}).setdefault((index, rows), [])
        graphs = next((g for g in kept if g.lock.acquire(blocking=False)), None)
    if graphs is None:
        graphs = _Graphs(model, index, rows)
        graphs.lock.acquire()
        with _GRAPHS_LOCK:
            kept.append(graphs)
    try:
        yield graphs
    finally:
        graphs.lock.release()


def invert(model, audio, sample_rate=None, pitch=None, starts=4, keep=4, steps=200, layer_steps=0,
           layer="conv0", learning_rate=0.05, layer_learning_rate=0.1, seed=0, progress=None):
    """Search for the point of ``model`` whose clip is closest to ``audio`` (see the module
    docstring); returns an ``Inversion``.

    ``audio``: one clip (mono samples at ``sample_rate``, default the
    model's; only its first ``audio_length`` samples count). ``pitch``: the
    label to use (default: try every one). ``progress``: a callable taking
    the fraction done (0..1).
    """
    import tensorflow as tf

    from .spectral import waves_to_specgrams

    target = prepare_target(model, audio, sample_rate)
    for name, value in (("starts", starts), ("keep", keep)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    for name, value in (("steps", steps), ("layer_steps", layer_steps)):
        if int(value) < 0:
            raise ValueError(f"{name} must be 0 or more, got {value}")
    pitches = list(model.pitches) if pitch is None else [int(pitch)]
    model.pitch_labels(pitches, len(pitches))  # ValueError naming the valid pitches
    index = model.generator.layer_index(layer)  # ValueError naming the layers
    starts, keep, steps, layer_steps = int(starts), int(keep), int(steps), int(layer_steps)
    total_work = len(pitches) * starts + steps * keep + layer_steps
    done = [0]

    def report(n):
        done[0] += n
        if progress is not None:
            progress(min(1.0, done[0] / max(1, total_work)))

    # rows: the candidates that go on to Adam, keep of them or all there are
    with graphs_for(model, index, min(keep, len(pitches) * starts)) as graphs:
        graphs.target_audio.assign(target[np.newaxis])
        # 1. every pitch label with a few random z, forward only.
        rng = np.random.default_rng(seed)
        candidates = []
        for p in pitches:
            z = rng.standard_normal((starts, model.latent_size)).astype(np.float32)
            labels = model.pitch_labels(p, len(z))
            found = graphs.distances(tf.constant(z), tf.constant(labels)).numpy()
            candidates += [(float(d), p, zi) for d, zi in zip(found, z)]
            report(len(z))
        candidates.sort(key=lambda c: c[0])
        chosen = candidates[:keep]

        # 2. Adam on z, the labels fixed.
        # Large steps first to cross the rugged landscape, small ones at the end to settle.
        graphs.z.assign(np.stack([c[2] for c in chosen]))
        graphs.labels.assign(model.pitch_labels([c[1] for c in chosen], len(chosen)))
        graphs.z_adam.restart(learning_rate, steps)
        best = np.array([c[0] for c in chosen])
        best_z = graphs.z.numpy().copy()
        history = [float(best.min())]
        for _ in range(steps):
            before = graphs.z.numpy()
            found = graphs.z_step().numpy()  # the distances of `before`
            better = found < best
            best = np.where(better, found, best)
            best_z[better] = before[better]
            history.append(float(best.min()))
            report(len(chosen))
        if steps:
            final = graphs.distances(graphs.z.value(), graphs.labels.value()).numpy()
            better = final < best
            best = np.where(better, final, best)
            best_z[better] = graphs.z.numpy()[better]
            history.append(float(best.min()))
        winner = int(np.argmin(best))
        z, p, distance_z = best_z[winner], chosen[winner][1], float(best[winner])

        # 3. optionally, the layer itself.
        values = model.layer_output(layer, z, p)
        distance = distance_z
        if layer_steps:
            # One run per rate in LAYER_RATE_FACTORS, batched: the layer is v0 + factor * u, and Adam
            # moves every entry of u by about the same amount per step, whatever the gradient's scale,
            # so each row moves at its own rate. Which rate crosses the landscape differs from model
            # to model (and from sound to sound); the best row wins.
            graphs.start.assign(np.repeat(values, len(LAYER_RATE_FACTORS), axis=0))
            graphs.u.assign(tf.zeros_like(graphs.u))
            magnitude_steps = int(layer_steps * MAGNITUDE_SHARE)
            audio_steps = layer_steps - magnitude_steps
            magnitudes = waves_to_specgrams(target)[np.newaxis, ..., 0]
            graphs.target_magnitudes.assign(magnitudes)
            graphs.floor.assign(float(magnitudes.max()) - MAGNITUDE_FLOOR)
            graphs.magnitude_adam.restart(layer_learning_rate, magnitude_steps)
            graphs.layer_adam.restart(layer_learning_rate, audio_steps)
            for _ in range(magnitude_steps):
                graphs.magnitude_step()
                history.append(distance)
                report(1)
            best_values = values[0]
            for step in range(audio_steps + 1):
                before = graphs.layer_values().numpy()
                found = (graphs.layer_step() if step < audio_steps else graphs.layer_distances()).numpy()
                row = int(np.argmin(found))
                if found[row] < distance:
                    distance, best_values = float(found[row]), before[row]
                history.append(distance)
                if step < audio_steps:
                    report(1)
            values = best_values[np.newaxis]
    # the graphs are free again: the rest is the model's own
    audio_found = model.generate_from_layer(layer, values)[0]
    result = Inversion(model, z, p, layer, values[0], distance_z, distance, history, audio_found)
    if progress is not None:
        progress(1.0)
    return result


def invert_file(model, path, **kwargs):
    """``invert`` on the first ``audio_length`` samples of an audio file (any rate, channels
    mixed); what Pd's ``find FILE`` calls, with ``progress`` taking the fraction done."""
    return invert(model, read_target(model, path), **kwargs)
