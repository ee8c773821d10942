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

import json
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


def _schedule(rate, steps):
    """Cosine decay from ``rate`` to a tenth of it over ``steps``."""
    import tensorflow as tf

    return tf.keras.optimizers.schedules.CosineDecay(float(rate), max(1, int(steps)), alpha=0.1)


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
    from .spectral import waves_to_specgrams
    from .spectral_tf import spectral_distance, specgrams_to_waves

    target_audio = tf.constant(target[np.newaxis])
    total_work = len(pitches) * int(starts) + int(steps) * int(keep) + int(layer_steps)
    done = [0]

    def report(n):
        done[0] += n
        if progress is not None:
            progress(min(1.0, done[0] / max(1, total_work)))

    # The generator's own compiled graphs, traced again inside the training steps (a compiled
    # graph called inside another cannot be rewritten for its gradient as well).
    specgrams = model._function(-1, None).python_function

    def distances(z, labels):
        return spectral_distance(specgrams_to_waves(specgrams(z, labels)), target_audio)

    # 1. every pitch label with a few random z, forward only.
    rng = np.random.default_rng(seed)
    candidates = []
    search = tf.function(distances, reduce_retracing=True)
    for p in pitches:
        z = rng.standard_normal((int(starts), model.latent_size)).astype(np.float32)
        labels = model.pitch_labels(p, len(z))
        found = search(tf.constant(z), tf.constant(labels)).numpy()
        candidates += [(float(d), p, zi) for d, zi in zip(found, z)]
        report(len(z))
    candidates.sort(key=lambda c: c[0])
    chosen = candidates[:int(keep)]

    # 2. Adam on z, the labels fixed.
    z_var = tf.Variable(np.stack([c[2] for c in chosen]))
    labels = tf.constant(model.pitch_labels([c[1] for c in chosen], len(chosen)))
    # Large steps first to cross the rugged landscape, small ones at the end to settle.
    optimizer = tf.keras.optimizers.Adam(_schedule(learning_rate, steps))
    # Adam's moments made now, not by the first step: a graph whose first call creates
    # variables is traced twice (once to make them, once to run), and these graphs, with a
    # gradient through the generator and the STFTs, take seconds each to trace.
    optimizer.build([z_var])
    best = np.array([c[0] for c in chosen])
    best_z = z_var.numpy().copy()
    history = [float(best.min())]

    @tf.function(reduce_retracing=True)
    def z_step():
        with tf.GradientTape() as tape:
            found = distances(z_var, labels)
            loss = tf.reduce_sum(found)
        optimizer.apply_gradients([(tape.gradient(loss, z_var), z_var)])
        return found

    for _ in range(int(steps)):
        before = z_var.numpy()
        found = z_step().numpy()  # the distances of `before`
        better = found < best
        best = np.where(better, found, best)
        best_z[better] = before[better]
        history.append(float(best.min()))
        report(len(chosen))
    if steps:
        final = distances(z_var, labels).numpy()
        better = final < best
        best = np.where(better, final, best)
        best_z[better] = z_var.numpy()[better]
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
        from_layer = model._function(index, None).python_function
        factors = tf.constant(np.array(LAYER_RATE_FACTORS, np.float32).reshape(-1, *([1] * values[0].ndim)))
        start = tf.constant(np.repeat(values, len(LAYER_RATE_FACTORS), axis=0))
        u_var = tf.Variable(tf.zeros_like(start))
        magnitude_steps = int(layer_steps * MAGNITUDE_SHARE)
        audio_steps = int(layer_steps) - magnitude_steps
        target_magnitudes = tf.constant(waves_to_specgrams(target)[np.newaxis, ..., 0])
        floor = float(target_magnitudes.numpy().max()) - MAGNITUDE_FLOOR
        magnitude_optimizer = tf.keras.optimizers.Adam(_schedule(layer_learning_rate, magnitude_steps))
        layer_optimizer = tf.keras.optimizers.Adam(_schedule(layer_learning_rate, audio_steps))
        magnitude_optimizer.build([u_var])  # as for z's: each step graph traced once
        layer_optimizer.build([u_var])

        @tf.function(reduce_retracing=True)
        def magnitude_step():
            with tf.GradientTape() as tape:
                magnitudes = from_layer(start + factors * u_var)[..., 0]
                error = tf.where(target_magnitudes > floor, tf.abs(magnitudes - target_magnitudes),
                                 tf.nn.relu(magnitudes - floor))
                loss = tf.reduce_sum(tf.reduce_mean(error, axis=[1, 2]))
            magnitude_optimizer.apply_gradients([(tape.gradient(loss, u_var), u_var)])

        def layer_distances():
            return spectral_distance(specgrams_to_waves(from_layer(start + factors * u_var)), target_audio)

        @tf.function(reduce_retracing=True)
        def layer_step():
            with tf.GradientTape() as tape:
                found = layer_distances()
                loss = tf.reduce_sum(found)
            layer_optimizer.apply_gradients([(tape.gradient(loss, u_var), u_var)])
            return found

        for _ in range(magnitude_steps):
            magnitude_step()
            history.append(distance)
            report(1)
        best_values = values[0]
        for step in range(audio_steps + 1):
            before = (start + factors * u_var).numpy()
            found = (layer_step() if step < audio_steps else layer_distances()).numpy()
            row = int(np.argmin(found))
            if found[row] < distance:
                distance, best_values = float(found[row]), before[row]
            history.append(distance)
            if step < audio_steps:
                report(1)
        values = best_values[np.newaxis]
    audio_found = model.generate_from_layer(layer, values)[0]
    result = Inversion(model, z, p, layer, values[0], distance_z, distance, history, audio_found)
    if progress is not None:
        progress(1.0)
    return result


def invert_file(model, path, **kwargs):
    """``invert`` on the first ``audio_length`` samples of an audio file (any rate, channels
    mixed); what Pd's ``find FILE`` calls, with ``progress`` taking the fraction done."""
    return invert(model, read_target(model, path), **kwargs)
