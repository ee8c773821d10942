"""Named directions: one per audio descriptor, each fitted to move its descriptor and to hold the
others still.

``compute_directions`` measures what a small move does, start by start:
from random starting points (the activations of random z at random pitches)
it probes each axis of a ``PCA`` basis of the layer (the coordinates count
in stdev units) a ``step`` up and down, generates the audio of every probe
and measures the descriptors (``describe.py``: brightness, loudness,
noisiness, pitch-salience, pitch; the ratio-like ones on a log scale). The
central differences are each start's *slopes*: how every descriptor changes
per unit coefficient along every axis, a (starts, descriptors, axes) array.

A direction ``w`` (a unit vector of basis coordinates) then moves
descriptor ``d`` at start ``s`` by ``slopes[s, d] @ w`` per unit. For each
descriptor the fit asks for the direction that

1. holds the others still across starts: the mean of every other
   descriptor's slope along it, each start's slope scaled to unit length
   first, is exactly 0 (InterFaceGAN's conditioning, Shen et al., asks the
   same of the others' plain mean gradients). Counting every start once is
   what a musician hears: the others go up at about as many starts as they go
   down. With plain means a few starts where a descriptor is very sensitive
   outweighed the rest, and along the fitted brightness the pitch salience
   fell at two starts in three (rho -0.3); and, among those,
2. moves its own descriptor the same way at every start: the largest
   ratio of the mean own slope to its spread over the starts (a
   minimum-variance, Capon-style, solution: ``w ~ P (P S P)^+ P g`` with
   ``g`` the mean own slope, ``S`` the covariance of the own slopes over the
   starts plus ``ridge`` times their mean variance on the diagonal, ``P`` the
   projector onto directions orthogonal to the others' mean unit slopes). With a
   large ``ridge`` ``S`` is all but a multiple of the identity and ``w`` is
   InterFaceGAN's conditioned direction ``P g``; with 0 it trusts the
   sampled spread entirely.

A plain regression of each descriptor on random moves, tried first, fitted
the average slope only (R^2 0.1-0.5 on the default model: every start
answers differently) and its conditioned directions went on moving the
others, consistently, at every start.

Back in the layer: ``v_d = sum_j w_d[j] * stdev_j * component_j``. The named
component is ``v_d / |v_d|`` and its ``stdev`` is ``|v_d|``, so a coefficient
of 1 moves the layer along ``w_d`` by one unit of the basis's stdev-scaled
coordinates, as 1 moves one stdev along a principal component.

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
from .pca import _batch_sizes, _latent_directions, _pitch_choices, _Progress, _samples, compute_pca
from .pca_format import PCA

DEFAULT_DESCRIPTORS = ("brightness", "loudness", "noisiness", "pitch-salience")
DEFAULT_STARTS = 96
DEFAULT_BASIS_COMPONENTS = 32
DEFAULT_STEP = 1.0
DEFAULT_RIDGE = 0.03
DEFAULT_LATENT_SAMPLES = 8192
DEFAULT_PITCH_STARTS = 32


def compute_directions(model, descriptors=DEFAULT_DESCRIPTORS, layer="conv0", starts=DEFAULT_STARTS,
                       basis=None, basis_components=DEFAULT_BASIS_COMPONENTS, basis_samples=8192, pitch=None,
                       seed=0, length=None, step=DEFAULT_STEP, ridge=DEFAULT_RIDGE, batch_size=64,
                       latent_samples=DEFAULT_LATENT_SAMPLES, per_pitch=False, pitch_starts=DEFAULT_PITCH_STARTS,
                       progress=False):
    """Fit one named direction per descriptor at ``layer``; returns a ``PCA`` with ``names``.

    ``descriptors``: names from ``describe.DESCRIPTORS``. ``basis``: the
    ``PCA`` of ``layer`` whose axes are probed (default: ``default_basis``,
    an exact PCA of ``basis_components`` components from ``basis_samples``
    samples). ``starts`` random starting points at pitches drawn from
    ``pitch`` (None: all of the model's), each probed ``step`` up and down
    every axis: 2 x starts x components clips (``length`` samples of each,
    default all; descriptors of a shorter start are faster). ``ridge``: see
    the module docstring. ``latent_samples`` fresh samples (0 to skip) fit the
    latent directions. ``progress``: True for bars on stderr, or a
    callable(stage, done, total). The fit is reported in the returned
    object's ``fit`` attribute, per descriptor: ``slope`` (mean change of the
    descriptor per unit coefficient, on the fit's scale: log for brightness,
    noisiness and pitch, dB for loudness), ``consistency`` (share of starts
    where it moves the descriptor up), ``starts`` used (those where every
    descriptor could be measured) and ``cosine_to_raw`` (between the fitted
    direction and the descriptor's mean slope, the direction that moves it
    fastest on average).

    ``per_pitch``: also fit one set per pitch (of ``pitch``'s choices), from
    ``pitch_starts`` starts at that pitch each, on the same basis and seed
    (each set is what ``compute_directions(pitch=p, basis=basis, seed=seed)``
    fits), with ``latent_samples`` shared among the pitches. They become the
    result's ``pitch_sets``: ``z`` and ``latent`` space play each pitch's
    own, ``layer`` space the pooled set (the directions a pooled fit holds
    the others still on average over the pitches, not at each: see
    ``benchmarks/pitch_directions.py``). Costs ``pitch_starts`` x pitches
    starts more.
    """
    names = describe.check_descriptors(descriptors)
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    seed = None if seed is None else int(seed)
    starts, pitch_starts, step, ridge = int(starts), int(pitch_starts), float(step), float(ridge)
    if not step > 0 or not ridge >= 0:
        raise ValueError(f"step must be positive and ridge at least 0, got {step} and {ridge}")
    model.layer_shape(layer)  # ValueError naming the layers
    for count, what in ((starts, "starts"), *([(pitch_starts, "pitch_starts")] if per_pitch else [])):
        if count < 2 * len(names):
            raise ValueError(f"{what} ({count}) must be at least twice the descriptors ({len(names)}): the fit "
                             "compares each descriptor's slopes over the starts")
    choices = _pitch_choices(model, pitch)
    if basis is None:
        basis = default_basis(model, layer, basis_components, basis_samples, pitch, seed, progress)
    else:
        basis.check_model(model)
        if basis.layer != layer:
            raise PCAError(f"the basis is a PCA of {basis.layer}, not of {layer}")
    latent_samples = int(latent_samples)
    fit = dict(names=names, basis=basis, seed=seed, length=length, step=step, ridge=ridge, batch_size=batch_size,
               progress=progress)
    named = _fit_named(model, starts=starts, choices=choices, latent_samples=latent_samples, stage="probes",
                       **fit)
    if per_pitch:
        share = latent_samples and max(latent_samples // len(choices), 2 * (len(names) + 1))
        named = named.with_pitch_sets({
            int(p): _fit_named(model, starts=pitch_starts, choices=np.array([p]), latent_samples=share,
                               stage=f"probes at pitch {p}", **fit) for p in choices})
    return named


def _fit_named(model, names, basis, starts, choices, seed, length, step, ridge, batch_size, latent_samples,
               progress, stage):
    """compute_directions' fit from ``starts`` starts at pitches drawn from ``choices``."""
    layer, shape, k = basis.layer, basis.layer_shape, basis.n_components
    z_seed, pitch_seed, latent_z_seed, latent_pitch_seed = np.random.SeedSequence(seed).spawn(4)

    axes = basis.components.reshape(k, -1).astype(np.float64) * basis.stdev.astype(np.float64)[:, None]
    probes = np.concatenate([axes, -axes]) * step  # up then down every axis
    slopes = []
    bar = _Progress(progress, stage, starts * 2 * k)
    try:
        per_batch = max(1, batch_size // (2 * k))
        for _, x in _samples(model, layer, _batch_sizes(starts, per_batch), np.random.default_rng(z_seed),
                             np.random.default_rng(pitch_seed), choices):
            values = (x[:, None, :] + probes).reshape(-1, *shape).astype(np.float32)
            audio = model.generate_from_layer(layer, values, length=length)
            found = describe.descriptors(audio, model.sample_rate, names)
            measured = np.stack([_fit_scale(name, found[name]).reshape(len(x), 2, k) for name in names], axis=1)
            slopes.append((measured[:, :, 0] - measured[:, :, 1]) / (2 * step))  # (starts, names, k)
            bar.update(len(values))
    finally:
        bar.close()
    slopes = np.concatenate(slopes)
    usable = np.all(np.isfinite(slopes), axis=(1, 2))
    where = f" at pitch {choices[0]}" if len(choices) == 1 else ""
    if usable.sum() < 2 * len(names):
        raise PCAError(f"every descriptor could be measured at only {int(usable.sum())} of {starts} "
                       f"starts{where}: too few to fit (choose other descriptors, or more starts)")
    slopes = slopes[usable]

    weights, fit = fit_directions(slopes, ridge)
    fit = {name: dict(f, starts=int(usable.sum())) for name, f in zip(names, fit)}
    layer_directions = weights @ axes  # (m, d): a unit coefficient moves w_d in the basis's coordinates
    stdev = np.linalg.norm(layer_directions, axis=1)
    named = PCA(layer, (layer_directions / stdev[:, None]).reshape(len(names), *shape), stdev,
                stdev ** 2 / _total_variance(basis), basis.mean, estimator="named",
                n_samples=int(usable.sum()) * 2 * k, model_id=model.identifier,
                pitch=int(choices[0]) if len(choices) == 1 else basis.pitch, seed=seed, names=names)
    if latent_samples:
        latent_samples = max(int(latent_samples), 2 * (len(names) + 1))
        bar = _Progress(progress, "latent directions" + where, latent_samples)
        try:
            samples = _samples(model, layer, _batch_sizes(latent_samples, max(batch_size, 256)),
                               np.random.default_rng(latent_z_seed), np.random.default_rng(latent_pitch_seed),
                               choices)
            named.latent_directions, named.latent_stdev = _latent_directions(named, samples, bar)
        finally:
            bar.close()
        named.latent_samples = latent_samples
    named.fit = fit
    return named


def default_basis(model, layer="conv0", components=DEFAULT_BASIS_COMPONENTS, samples=8192, pitch=None, seed=0,
                  progress=False):
    """The PCA of ``layer`` whose axes ``compute_directions`` probes when given no ``basis``:
    ``components`` exact components from ``samples`` samples at ``pitch`` (None: all of the
    model's), seeded ``seed + 1``. Made once, it can be shared by several fits (one per pitch,
    say)."""
    shape = tuple(model.layer_shape(layer))
    return compute_pca(model, layer=layer, n_samples=int(samples), n_components=components,
                       estimator="cov" if math.prod(shape) <= 16384 else "ipca", pitch=pitch,
                       seed=None if seed is None else seed + 1, progress=progress, latent_samples=0)


# Descriptors that vary by ratios are fitted on a log scale, where their changes add up
# (flatness spans orders of magnitude between a tone and a noise).
LOG_SCALE = ("brightness", "noisiness", "pitch")


def _fit_scale(name, values):
    values = np.asarray(values, dtype=np.float64)
    if name not in LOG_SCALE:
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log(np.where(values > 0, values, 1.0)), np.nan)


def fit_directions(slopes, ridge=DEFAULT_RIDGE):
    """The module docstring's fit: ``slopes`` (starts, descriptors, axes) -> (unit directions
    (descriptors, axes), one dict per descriptor with ``slope``, ``consistency`` and
    ``cosine_to_raw``).

    Along each direction the mean over starts of every other descriptor's unit-length slope
    is 0 (to rounding); among such directions it has the largest mean own slope for its
    spread.
    Raises PCAError when a descriptor's mean slope lies in the span of the
    others' mean unit slopes (it cannot be moved alone).
    """
    slopes = np.asarray(slopes, dtype=np.float64)
    n, m, k = slopes.shape
    if n < 2:
        raise ValueError("the fit needs the slopes at two starts at least")
    means = slopes.mean(axis=0)  # (m, k)
    # every start counts once in what the others must not do (a start where nothing moves counts 0)
    lengths = np.linalg.norm(slopes, axis=2, keepdims=True)
    balance = np.divide(slopes, lengths, out=np.zeros_like(slopes), where=lengths > 0).mean(axis=0)
    directions, report = np.zeros((m, k)), []
    for d in range(m):
        others = np.delete(balance, d, axis=0)
        projector = np.eye(k) - others.T @ np.linalg.pinv(others.T) if len(others) else np.eye(k)
        own = projector @ means[d]
        if np.linalg.norm(own) <= MIN_CONDITIONED * np.linalg.norm(means[d]):
            raise PCAError(f"descriptor {d}'s mean slope is (nearly) a combination of the others': it cannot "
                           "be moved while holding them still")
        spread = np.atleast_2d(np.cov(slopes[:, d].T))
        spread = spread + ridge * np.trace(spread) / k * np.eye(k)
        w = projector @ np.linalg.lstsq(projector @ spread @ projector, own, rcond=None)[0]
        w /= np.linalg.norm(w)
        if w @ means[d] < 0:
            w = -w
        along = slopes[:, d] @ w
        report.append({"slope": float(along.mean()), "consistency": float(np.mean(along > 0)),
                       "cosine_to_raw": float(w @ means[d] / np.linalg.norm(means[d]))})
        directions[d] = w
    return directions, report


# Below this share of its length left once the others' mean unit slopes are projected out, a
# descriptor's mean slope is (nearly) a combination of theirs: it cannot be moved alone.
MIN_CONDITIONED = 0.05


def _total_variance(basis):
    """The layer's total variance, from a PCA that knows its explained-variance shares."""
    ratio = basis.explained_variance_ratio.astype(np.float64)
    stdev = basis.stdev.astype(np.float64)
    good = ratio > 0
    if not good.any():
        return float(np.sum(stdev ** 2))
    return float(np.median(stdev[good] ** 2 / ratio[good]))
