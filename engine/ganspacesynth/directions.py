"""Named directions: one per audio descriptor, each fitted to move its descriptor and conditioned
to hold the others still.

``compute_directions`` measures what moves do, the way a knob is used:
from random starting points (the activations of random z at random pitches)
it makes random moves in a ``PCA`` basis of the layer (a random unit
direction in its coordinates, which count in stdev units, times a
coefficient in -2..2, as a sweep makes them), generates the audio of each
start and each move, and records the change of every descriptor (see
``describe.py``: brightness, loudness, noisiness, pitch-salience, pitch; the
ratio-like ones on a log scale). Then, for each descriptor:

1. a linear model of its change on the move (least squares, no intercept):
   its unit weight vector ``w_d`` is the direction in the basis's
   coordinates along which the descriptor rises fastest on average. Pairing
   each move with its start takes the large differences between starts out
   of the fit;
2. conditioning (InterFaceGAN's recipe, Shen et al., for any number of
   attributes): ``w_d`` minus its projection on the span of the other
   descriptors' vectors, so that moving along it leaves the others' linear
   predictions unchanged;
3. back to the layer: ``v_d = sum_j w_d[j] * stdev_j * component_j`` for unit
   ``w_d``. The named component is ``v_d / |v_d|`` and its ``stdev`` is
   ``|v_d|``, one standard deviation of the sampled activations along it
   (for a PCA basis), so a coefficient counts in standard deviations as for
   PCA components.

The result is a ``PCA`` with ``names`` (the descriptors) and estimator
``named``: ``synthesize``, Hallu, ``describe`` and the Pd external take it as
any other. Its latent directions (for ``latent`` space) are fitted as a PCA's
are (``pca._latent_directions``: z regressed on the named coordinates), on
fresh samples. Coordinates of a layer value along named directions, which
need not be orthogonal, are the least-squares ones (``PCA.coordinates``).
"""

import math

import numpy as np

from . import describe
from .errors import PCAError
from .pca import (DEFAULT_LATENT_SAMPLES, _batch_sizes, _latent_directions, _pitch_choices, _Progress,
                  _samples, compute_pca)
from .pca_format import PCA

DEFAULT_DESCRIPTORS = ("brightness", "loudness", "noisiness", "pitch-salience")
DEFAULT_SAMPLES = 2048
DEFAULT_BASIS_COMPONENTS = 32
DEFAULT_MOVES = 15
MOVE_LIMIT = 2.0
# Below this share of its own length left after conditioning, a direction is (nearly) a
# combination of the others': its descriptor cannot be moved alone.
MIN_CONDITIONED = 0.05


def compute_directions(model, descriptors=DEFAULT_DESCRIPTORS, layer="conv0", n_samples=DEFAULT_SAMPLES,
                       basis=None, basis_components=DEFAULT_BASIS_COMPONENTS, basis_samples=None, pitch=None,
                       seed=0, length=None, batch_size=64, latent_samples=None, progress=False,
                       moves=DEFAULT_MOVES):
    """Fit one named direction per descriptor at ``layer``; returns a ``PCA`` with ``names``.

    ``descriptors``: names from ``describe.DESCRIPTORS``. ``basis``: the
    ``PCA`` of ``layer`` whose coordinates the descriptors are regressed on
    (default: an exact ``cov`` PCA of ``basis_components`` components from
    ``basis_samples`` samples, default ``max(n_samples, 8192)``).
    ``n_samples`` clips are generated in all (``length`` samples of each,
    default all; descriptors of a shorter start are faster): starts, each
    followed by ``moves`` moves from it, at pitches drawn from ``pitch``
    (None: all of the model's). ``latent_samples`` fresh samples (default
    ``min(n_samples, 16384)``; 0 to skip) fit the latent directions.
    ``progress``: True for bars on stderr, or a callable(stage, done, total).
    The fit's quality is in the returned object's ``fit`` attribute: per
    descriptor the R^2 of the linear model, the moves used and the cosine
    between the conditioned and the raw direction.
    """
    names = describe.check_descriptors(descriptors)
    n_samples = int(n_samples)
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    seed = None if seed is None else int(seed)
    shape = tuple(model.layer_shape(layer))  # ValueError naming the layers
    if basis is None:
        basis = compute_pca(model, layer=layer, n_samples=max(n_samples, 8192) if basis_samples is None
                            else int(basis_samples), n_components=basis_components,
                            estimator="cov" if math.prod(shape) <= 16384 else "ipca", pitch=pitch,
                            seed=None if seed is None else seed + 1, progress=progress, latent_samples=0)
    else:
        basis.check_model(model)
        if basis.layer != layer:
            raise PCAError(f"the basis is a PCA of {basis.layer}, not of {layer}")
    k = basis.n_components
    moves = int(moves)
    if moves < 1:
        raise ValueError(f"moves must be at least 1, got {moves}")
    if n_samples // (moves + 1) * moves < 4 * k:
        raise ValueError(f"n_samples ({n_samples}) must give at least 4 x the basis components ({k}) moves "
                         f"for the linear fits (each start takes {moves + 1} clips)")
    choices = _pitch_choices(model, pitch)
    z_seed, pitch_seed, latent_z_seed, latent_pitch_seed, move_seed = np.random.SeedSequence(seed).spawn(5)

    basis_rows = basis.components.reshape(k, -1).astype(np.float64) * basis.stdev.astype(np.float64)[:, None]
    n_starts = max(1, n_samples // (moves + 1))
    steps, changes = [], {name: [] for name in names}
    rng = np.random.default_rng(move_seed)
    bar = _Progress(progress, "descriptors", n_starts * (moves + 1))
    try:
        per_batch = max(1, batch_size // (moves + 1))
        for z, x in _samples(model, layer, _batch_sizes(n_starts, per_batch), np.random.default_rng(z_seed),
                             np.random.default_rng(pitch_seed), choices):
            # Each start, then `moves` moves from it: a random unit direction in the basis's
            # coordinates times a coefficient in -MOVE_LIMIT..MOVE_LIMIT, as a sweep makes them.
            directions = rng.standard_normal((len(x), moves, k))
            directions /= np.linalg.norm(directions, axis=2, keepdims=True)
            step = directions * rng.uniform(-MOVE_LIMIT, MOVE_LIMIT, (len(x), moves, 1))
            moved = x[:, None, :] + step @ basis_rows
            values = np.concatenate([x[:, None, :], moved], axis=1).reshape(-1, *shape).astype(np.float32)
            audio = model.generate_from_layer(layer, values, length=length)
            for name, found in describe.descriptors(audio, model.sample_rate, names).items():
                found = _regression_scale(name, found).reshape(len(x), moves + 1)
                changes[name].append((found[:, 1:] - found[:, :1]).reshape(-1))
            steps.append(step.reshape(-1, k))
            bar.update(len(values))
    finally:
        bar.close()
    steps = np.concatenate(steps)

    raw, fit = [], {}
    for name in names:
        weights, r2, used = _fit(steps, np.concatenate(changes[name]), name)
        raw.append(weights)
        fit[name] = {"r2": r2, "samples": used}
    raw = np.array(raw)
    conditioned = condition(raw)
    for name, w, c in zip(names, raw, conditioned):
        fit[name]["cosine_to_raw"] = float(w @ c / (np.linalg.norm(w) * np.linalg.norm(c)))

    layer_directions = conditioned @ basis_rows  # (m, d): one stdev of the samples along each
    stdev = np.linalg.norm(layer_directions, axis=1)
    total = _total_variance(basis)
    named = PCA(layer, (layer_directions / stdev[:, None]).reshape(len(names), *shape), stdev,
                stdev ** 2 / total, basis.mean, estimator="named", n_samples=n_samples,
                model_id=model.identifier, pitch=basis.pitch, seed=seed, names=names)
    if latent_samples is None:
        latent_samples = max(min(n_samples, DEFAULT_LATENT_SAMPLES), 2 * (len(names) + 1))
    if latent_samples:
        bar = _Progress(progress, "latent directions", latent_samples)
        try:
            samples = _samples(model, layer, _batch_sizes(int(latent_samples), max(batch_size, 256)),
                               np.random.default_rng(latent_z_seed), np.random.default_rng(latent_pitch_seed),
                               choices)
            named.latent_directions, named.latent_stdev = _latent_directions(named, samples, bar)
        finally:
            bar.close()
        named.latent_samples = int(latent_samples)
    named.fit = fit
    return named


# Descriptors that vary by ratios are fitted on a log scale, where a linear model holds better
# (flatness spans orders of magnitude between a tone and a noise).
LOG_SCALE = ("brightness", "noisiness", "pitch")


def _regression_scale(name, values):
    values = np.asarray(values, dtype=np.float64)
    if name not in LOG_SCALE:
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)


def _fit(steps, changes, name):
    """Least-squares weights of the descriptor's change on the steps that caused it (no
    intercept: no step, no change), normalised to unit length; (weights, R^2, moves used)."""
    finite = np.isfinite(changes)
    used = int(finite.sum())
    if used < 2 * steps.shape[1] or np.ptp(changes[finite]) == 0:
        raise PCAError(f"{name} could be measured on only {used} of {len(changes)} moves, or never changed: "
                       "no direction can be fitted to it (choose other descriptors, or more samples)")
    y, A = changes[finite], steps[finite]
    weights = np.linalg.lstsq(A, y, rcond=None)[0]
    residual = y - A @ weights
    r2 = 1.0 - float(residual @ residual) / float(y @ y)
    norm = np.linalg.norm(weights)
    if norm == 0:
        raise PCAError(f"{name} does not change linearly with the coordinates at all")
    return weights / norm, r2, used


def condition(directions):
    """Remove from each row its projection on the span of the other rows (InterFaceGAN's
    conditional manipulation, for any number of attributes); rows come back unit length.

    Moving along the result changes the linear prediction of its own
    attribute and none of the others': it is orthogonal to the others' rows.
    """
    directions = np.asarray(directions, dtype=np.float64)
    m = len(directions)
    out = np.empty_like(directions)
    for i in range(m):
        others = np.delete(directions, i, axis=0)
        own = directions[i]
        if len(others):
            projection = others.T @ np.linalg.lstsq(others.T, own, rcond=None)[0]
            own = own - projection
        norm = np.linalg.norm(own)
        if norm < MIN_CONDITIONED * np.linalg.norm(directions[i]):
            raise PCAError(f"direction {i} is (nearly) a combination of the others: its descriptor cannot "
                           "be moved while holding them still")
        out[i] = own / norm
    return out


def _total_variance(basis):
    """The layer's total variance, from a PCA that knows its explained-variance shares."""
    ratio = basis.explained_variance_ratio.astype(np.float64)
    stdev = basis.stdev.astype(np.float64)
    good = ratio > 0
    if not good.any():
        return float(np.sum(stdev ** 2))
    return float(np.median(stdev[good] ** 2 / ratio[good]))
