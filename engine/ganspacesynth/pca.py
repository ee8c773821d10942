"""GANSpace on GANSynth: principal directions of one generator layer.

``compute_pca`` samples random latent vectors, runs the generator only up to
one layer (``conv0`` by default, as the paper), fits an estimator to the
activations and returns a ``PCA``: unit-norm ``components`` in the layer's
shape, the standard deviation of the activations along each (``stdev``), the
share of the layer's variance each explains and the ``mean`` activation.

One module per idea: the estimators are in ``estimators.py``, the ``PCA``
object and its file format in ``pca_format.py``, the synthesis formula (and
its three spaces) in ``synthesis.py``; this module samples the generator and
feeds them. Their public names are importable from here too.

Latent directions (GANSpace's BigGAN recipe; neither the paper nor
GANSpaceSynth has them): after the fit, fresh samples' activations are
projected onto the components (coordinates in stdev units), and z is
regressed on those coordinates by least squares. Row i of the solution is the
change of z that goes with one stdev along component i; ``u_i`` is it
normalised to unit length and ``s_i`` the standard deviation of the sampled
z along ``u_i`` (about 1 for standard normal z). Around a typical z, c_i = 1
then moves the activation about one stdev along component i (0.95 on the
reference model) and hardly along the others. Caveat: GANSynth pixel-
normalises [z, one-hot pitch] at its input, so near the zero centre, where
|z| is far below its usual 16, small steps are magnified (c_0 = 1 moved the
reference model's coordinate 0 by about 9 stdevs): give a z as the centre
for the calibrated behaviour.
"""

import math

import numpy as np

from .errors import PCAError
from .estimators import (COV_MAX_VALUES, ESTIMATORS, IN_MEMORY_MAX_BYTES, CovarianceEstimator,  # noqa: F401
                         Estimator, ICAEstimator, IPCAEstimator, PCAEstimator, _finish, _signs, sefa)
from .pca_format import (DEFAULT_PCA, DEFAULT_PCA_FILE, FORMAT_NAME, FORMAT_VERSION, PCA,  # noqa: F401
                         load_pca)
from .synthesis import SPACES, synthesize, synthesize_specgrams  # noqa: F401

# Every estimator compute_pca takes: the sampled ones and the closed-form SeFa.
CHOICES = (*ESTIMATORS, "sefa")
DEFAULT_SAMPLES = 65536
DEFAULT_COMPONENTS = 32
DEFAULT_LATENT_SAMPLES = 16384
# Activations per generator batch, when the caller does not choose.
_BATCH_BYTES = 64 << 20


class _Progress:
    """``progress``: False, True (a tqdm bar on stderr) or a callable(stage, done, total)."""

    def __init__(self, progress, stage, total):
        self.callback = progress if callable(progress) else None
        self.stage, self.total, self.done = stage, total, 0
        self.bar = None
        if progress is True:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=stage, unit="samples", unit_scale=True, leave=True)

    def update(self, n):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        if self.callback is not None:
            self.callback(self.stage, self.done, self.total)

    def note(self, text):
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _batch_sizes(n, batch_size):
    """Split n into nearly equal batches of at most ``batch_size`` (every one at least half of it)."""
    count = max(1, math.ceil(n / batch_size))
    base, extra = divmod(n, count)
    return [base + 1] * extra + [base] * (count - extra)


def _pitch_choices(model, pitch):
    if pitch is None:
        return np.asarray(model.pitches)
    choices = np.atleast_1d(np.asarray(pitch))
    if choices.ndim != 1 or choices.size == 0:
        raise ValueError("pitch must be None (all of the model's pitches), one MIDI pitch or a list of them")
    model.pitch_labels(choices, len(choices))  # ValueError naming the valid pitches
    return choices.astype(int)


def _samples(model, layer, sizes, z_rng, pitch_rng, choices):
    """(z, flattened activations) per batch; the same seed gives the same samples at any batch size."""
    for size in sizes:
        z = z_rng.standard_normal((size, model.latent_size)).astype(np.float32)
        pitches = choices[pitch_rng.integers(len(choices), size=size)]
        yield z, model.layer_output(layer, z, pitches).reshape(size, -1)


def compute_pca(model, layer="conv0", n_samples=DEFAULT_SAMPLES, n_components=DEFAULT_COMPONENTS,
                estimator="ipca", pitch=None, batch_size=None, seed=0, progress=False,
                latent_samples=None):
    """Find GANSpace directions at ``layer`` of ``model``; returns a ``PCA``.

    Samples ``n_samples`` standard normal z, each with a pitch drawn uniformly
    from ``pitch``: None (the default) draws from all of the model's pitches,
    an int uses that one pitch (the original GANSpaceSynth used 32), a list
    draws from those. The generator runs only up to ``layer``, ``batch_size``
    samples at a time (default: about 64 MiB of activations; never fewer
    than twice the components the estimator tracks), and ``estimator``
    (``ipca``, ``cov``, ``pca``, ``ica``; see ``estimators.py``) is fed
    batch by batch. Memory is
    bounded by one batch, except the covariance of ``cov`` and the full
    sample matrix of ``pca`` and ``ica``.

    Then ``latent_samples`` fresh samples (default: ``min(n_samples, 16384)``;
    0 to skip) give the latent directions ``latent`` space plays. ``seed``
    makes everything reproducible; ``progress``: True for a tqdm bar, or a
    callable(stage, done, total).

    ``estimator="sefa"`` samples nothing: see ``compute_sefa`` (only
    ``layer`` and ``n_components`` count).
    """
    if estimator == "sefa":
        return compute_sefa(model, layer, n_components)
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}: choose one of {', '.join(CHOICES)}")
    shape = tuple(model.layer_shape(layer))  # ValueError naming the layers
    d = int(np.prod(shape))
    n_samples, n_components = int(n_samples), int(n_components)
    if not 1 <= n_components <= d:
        raise ValueError(f"n_components must be between 1 and {d} (the size of {layer}), got {n_components}")
    if n_samples <= n_components:
        raise ValueError(f"n_samples ({n_samples}) must be more than n_components ({n_components})")
    if batch_size is None:
        batch_size = int(np.clip(2 ** int(math.log2(max(1, _BATCH_BYTES // (4 * d)))), 1, 4096))
    # _batch_sizes keeps every batch at least half this, and ipca needs as many rows as it tracks.
    tracked = (IPCAEstimator.tracked_components(n_components, d, n_samples) if estimator == "ipca"
               else n_components)
    batch_size = max(int(batch_size), 2 * tracked)
    if latent_samples is None:
        latent_samples = max(min(n_samples, DEFAULT_LATENT_SAMPLES), 2 * (n_components + 1))
    latent_samples = int(latent_samples)
    if 0 < latent_samples <= n_components:
        raise ValueError(f"latent_samples ({latent_samples}) must be 0 or more than n_components")
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    seed = None if seed is None else int(seed)
    kind = ESTIMATORS[estimator]
    kind.check(d, n_samples, layer)
    choices = _pitch_choices(model, pitch)
    z_seed, pitch_seed, latent_z_seed, latent_pitch_seed = np.random.SeedSequence(seed).spawn(4)

    fit = kind(n_components, d, n_samples, seed)
    bar = _Progress(progress, f"{layer} ({estimator})", n_samples)
    try:
        for _, x in _samples(model, layer, _batch_sizes(n_samples, batch_size),
                             np.random.default_rng(z_seed), np.random.default_rng(pitch_seed), choices):
            fit.partial_fit(x)
            bar.update(len(x))
        bar.note("fitting" if kind.keeps_all_samples else "finishing")
        components, stdev, ratio, mean = fit.result()
    finally:
        bar.close()
    del fit
    components, stdev, ratio = _finish(components, stdev, ratio)
    recorded_pitch = None if pitch is None else (int(choices[0]) if np.ndim(pitch) == 0
                                                 else [int(p) for p in choices])
    pca = PCA(layer, components.reshape(n_components, *shape), stdev, ratio,
              np.asarray(mean).reshape(shape), estimator=estimator, n_samples=n_samples,
              model_id=model.identifier, pitch=recorded_pitch, seed=seed)
    if latent_samples:
        bar = _Progress(progress, "latent directions", latent_samples)
        try:
            samples = _samples(model, layer, _batch_sizes(latent_samples, batch_size),
                               np.random.default_rng(latent_z_seed), np.random.default_rng(latent_pitch_seed),
                               choices)
            directions, latent_stdev = _latent_directions(pca, samples, bar)
        finally:
            bar.close()
        pca.latent_directions, pca.latent_stdev = directions, latent_stdev
        pca.latent_samples = latent_samples
    return pca


def _latent_directions(pca, samples, bar):
    """Least-squares regression of z on the activations' coordinates (GANSpace's BigGAN recipe).

    Solves ``z ~ [coords, 1] @ M`` from accumulated normal equations, so
    memory does not grow with the sample count. Row i of M is how z moves
    with one stdev along component i.
    """
    k = pca.n_components
    AtA = AtZ = None
    z_sum = z_gram = None
    count = 0
    for z, x in samples:
        coords = pca.coordinates(x.reshape(len(x), *pca.layer_shape))
        A = np.concatenate([coords, np.ones((len(x), 1))], axis=1)
        z = z.astype(np.float64)
        if AtA is None:
            AtA, AtZ = np.zeros((k + 1, k + 1)), np.zeros((k + 1, z.shape[1]))
            z_sum, z_gram = np.zeros(z.shape[1]), np.zeros((z.shape[1], z.shape[1]))
        AtA += A.T @ A
        AtZ += A.T @ z
        z_sum += z.sum(axis=0)
        z_gram += z.T @ z
        count += len(z)
        bar.update(len(z))
    M = np.linalg.lstsq(AtA, AtZ, rcond=None)[0][:k]
    norms = np.linalg.norm(M, axis=1, keepdims=True)
    directions = M / np.maximum(norms, 1e-12)
    z_mean = z_sum / count
    z_cov = (z_gram - count * np.outer(z_mean, z_mean)) / (count - 1)
    latent_stdev = np.sqrt(np.maximum(np.einsum("kl,lm,km->k", directions, z_cov, directions), 0.0))
    return directions.astype(np.float32), latent_stdev.astype(np.float32)



def compute_sefa(model, layer="conv0", n_components=DEFAULT_COMPONENTS):
    """SeFa directions (``estimators.sefa``) as a ``PCA``, from the weights alone.

    The directions are in z: ``latent_directions`` are SeFa's eigenvectors
    and ``latent_stdev`` is 1 (z is standard normal along any unit
    direction), so ``latent`` space plays them exactly. For the ``layer`` and
    ``z`` spaces each direction's image at conv0 is its derivative there,
    taken at the mean input (z's part zero, the pitch one-hot averaged over
    the model's pitches, scaled as the input's pixel norm scales a typical
    z): ``components`` are those images normalised, ``stdev`` their lengths
    (how far the layer moves for one unit of z) and ``mean`` the activation
    of that input. ``explained_variance_ratio`` is each eigenvalue's share of
    the normalised ``W^T W``'s trace. No sampling: one eigendecomposition of
    a latent-size matrix and one forward-mode derivative of one layer.
    """
    import tensorflow as tf

    first = model.layer_names[0]
    if layer != first:
        raise PCAError(f"sefa factorises the layer that reads z, {first}; it cannot be computed for "
                       f"layer {layer!r}")
    generator, config = model.generator, model.config
    latent, pitches = config.latent_size, config.num_pitches
    values, directions, total = sefa(generator.convs[0].kernel.numpy(), latent, n_components)
    k = len(values)
    scale = math.sqrt((latent + pitches) / (latent + 1.0))  # the input pixel norm, for |z|^2 = latent
    centre = np.concatenate([np.zeros(latent), np.full(pitches, 1.0 / pitches)]) * scale
    steps = np.concatenate([directions, np.zeros((k, pitches))], axis=1) * scale
    primal = tf.constant(np.repeat(centre[np.newaxis], k, axis=0), tf.float32)
    with tf.autodiff.ForwardAccumulator(primal, tf.constant(steps, tf.float32)) as accumulator:
        activation = generator.apply_layer(0, primal)
    images = accumulator.jvp(activation).numpy().reshape(k, -1).astype(np.float64)
    stdev = np.linalg.norm(images, axis=1)
    components = images / np.maximum(stdev, 1e-12)[:, np.newaxis]
    signs = _signs(components)
    shape = tuple(model.layer_shape(layer))
    return PCA(layer, (components * signs[:, np.newaxis]).reshape(k, *shape), stdev, values / total,
               activation.numpy()[0], estimator="sefa", model_id=model.identifier,
               latent_directions=directions * signs[:, np.newaxis], latent_stdev=np.ones(k))
