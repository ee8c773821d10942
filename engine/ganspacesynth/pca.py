"""GANSpace on GANSynth: principal directions of one generator layer, and synthesis along them.

``compute_pca`` samples random latent vectors, runs the generator only up to
one layer (``conv0`` by default, as the paper), fits an estimator to the
activations and returns a ``PCA``: unit-norm ``components`` in the layer's
shape, the standard deviation of the activations along each (``stdev``), the
share of the layer's variance each explains and the ``mean`` activation.

The synthesis formula
---------------------
Every synthesis is *base + sum_i c_i * scale_i * direction_i*, with the
coefficients ``c`` counted in standard deviations along each direction::

    space "layer":  layer  = mean          + sum_i c_i * stdev_i * component_i
    space "z":      layer  = G_layer(z, p) + sum_i c_i * stdev_i * component_i
    space "latent": z'     = z_center      + sum_i c_i * s_i     * u_i

and the generator continues from the layer (``layer``, ``z``) or runs from
``z'`` at pitch ``p`` (``latent``). In ``layer`` space z and pitch have no
effect: the formula replaces the activation that they would have produced
(the paper's and GANSpaceSynth's mode). ``z`` adds the same offset to the
activation of a given latent vector, so the pitch label keeps its part.
``latent`` moves z itself along *latent directions* ``u_i`` found by linear
regression (below), so the pitch label steers the pitch as in plain
generation; ``z_center`` is the given z, or the zero vector. Fewer
coefficients than components leave the rest at zero.

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

Estimators (one interface, as GANSpace's ``estimators.py``)
-----------------------------------------------------------
``ipca``  sklearn IncrementalPCA with ``partial_fit`` per batch (the paper's),
          tracking more directions than it keeps (see ``IPCAEstimator``).
          Memory: one batch.
``cov``   exact and fast: the sum and X^T X accumulated over batches, one
          eigendecomposition at the end. Same components as ``pca`` up to
          sign. Memory: the d x d covariance, so layers above
          ``COV_MAX_VALUES`` values are refused (use ``ipca``).
``pca``   sklearn PCA (full SVD) on all samples: keeps every sample in memory,
          fine for small counts.
``ica``   sklearn FastICA (the paper's suggested future work), on all samples.
          A component is a normalised column of the mixing matrix: the way
          the activation moves when one independent source moves.
          ``stdev_i`` is that column's length, i.e. the activation's movement
          for one standard deviation of the source (sources have unit
          variance), so the formula above keeps its meaning. ICA components
          are not orthogonal; their variance ratios need not add up as PCA's.

Components are sorted by stdev, largest first, and each is signed so that
its largest-magnitude entry is positive, for every estimator, so that the
same data give the same file.

File format
-----------
A ``.npz`` archive read with ``allow_pickle=False``: float32 arrays
``components`` (n, *layer shape), ``stdev`` (n,), ``explained_variance_ratio``
(n,), ``mean`` (layer shape), optionally ``latent_directions`` (n, latent
size) and ``latent_stdev`` (n,), and ``metadata``: a 0-d string array holding
JSON with ``format`` ("ganspacesynth-pca"), ``version``, ``layer``,
``layer_shape``, ``estimator``, ``n_samples``, ``model_id``, ``pitch``,
``seed``, ``latent_size`` and ``latent_samples``. ``load_pca`` also reads the
original GANSpaceSynth pickles, through an unpickler that can build nothing
but plain float arrays (see ``_SafeUnpickler``).
"""

import io
import json
import math
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np

from .errors import PCAError

FORMAT_NAME = "ganspacesynth-pca"
FORMAT_VERSION = 1
SPACES = ("layer", "z", "latent")
DEFAULT_SAMPLES = 65536
DEFAULT_COMPONENTS = 32
DEFAULT_LATENT_SAMPLES = 16384
# A float64 covariance of this many values is 2 GiB; its eigendecomposition
# needs as much again.
COV_MAX_VALUES = 16384
# pca and ica hold every sample (float32) at once.
IN_MEMORY_MAX_BYTES = 4 << 30
# Activations per generator batch, when the caller does not choose.
_BATCH_BYTES = 64 << 20


# --- the result ---------------------------------------------------------------

class PCA:
    """Directions in one generator layer, and the statistics the synthesis formula needs.

    Attributes: ``layer``, ``layer_shape``, ``components`` (n, *layer_shape),
    ``stdev`` (n,), ``explained_variance_ratio`` (n,), ``mean`` (layer_shape),
    ``n_components``, ``estimator``, ``n_samples``, ``model_id`` (the
    identifier of the model it was computed on; None for original
    GANSpaceSynth files), ``latent_directions`` (n, latent size) and
    ``latent_stdev`` (n,) or None, ``pitch`` (the sampling pitch(es), None for
    all of the model's), ``seed``, ``latent_samples``, ``source`` (the file).
    """

    def __init__(self, layer, components, stdev, explained_variance_ratio, mean, *, estimator,
                 n_samples=None, model_id=None, latent_directions=None, latent_stdev=None,
                 pitch=None, seed=None, latent_samples=None, source=None):
        self.layer = str(layer)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.layer_shape = tuple(int(s) for s in self.mean.shape)
        self.components = np.asarray(components, dtype=np.float32)
        self.stdev = np.asarray(stdev, dtype=np.float32)
        self.explained_variance_ratio = np.asarray(explained_variance_ratio, dtype=np.float32)
        n = self.components.shape[0] if self.components.ndim else 0
        if self.components.shape != (n, *self.layer_shape) or n == 0:
            raise PCAError(f"components of shape {self.components.shape} do not fit a mean of shape "
                           f"{self.layer_shape}")
        for name in ("stdev", "explained_variance_ratio"):
            if getattr(self, name).shape != (n,):
                raise PCAError(f"{name} has shape {getattr(self, name).shape}, expected ({n},)")
        self.latent_directions = latent_directions
        self.latent_stdev = latent_stdev
        if (latent_directions is None) != (latent_stdev is None):
            raise PCAError("latent_directions and latent_stdev go together")
        if latent_directions is not None:
            self.latent_directions = np.asarray(latent_directions, dtype=np.float32)
            self.latent_stdev = np.asarray(latent_stdev, dtype=np.float32)
            if self.latent_directions.ndim != 2 or self.latent_directions.shape[0] != n:
                raise PCAError(f"latent_directions has shape {self.latent_directions.shape}, "
                               f"expected ({n}, latent size)")
            if self.latent_stdev.shape != (n,):
                raise PCAError(f"latent_stdev has shape {self.latent_stdev.shape}, expected ({n},)")
        for name in ("components", "stdev", "explained_variance_ratio", "mean", "latent_directions",
                     "latent_stdev"):
            value = getattr(self, name)
            if value is not None and not np.all(np.isfinite(value)):
                raise PCAError(f"{name} contains NaN or infinite values")
        self.estimator = str(estimator)
        self.n_samples = None if n_samples is None else int(n_samples)
        self.model_id = None if model_id is None else str(model_id)
        self.pitch = pitch
        self.seed = seed
        self.latent_samples = latent_samples
        self.source = source
        self._basis_pinv = None

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    @property
    def latent_size(self):
        return None if self.latent_directions is None else int(self.latent_directions.shape[1])

    def __repr__(self):
        origin = f" from {self.n_samples} samples" if self.n_samples else ""
        return (f"<PCA {self.n_components} components of {self.layer} {self.layer_shape}, "
                f"{self.estimator}{origin}, model {self.model_id or 'unknown'}>")

    def summary(self) -> str:
        """A few lines a person can read: what this is and how much each component explains."""
        ratio = self.explained_variance_ratio.astype(np.float64)
        lines = [
            f"layer       {self.layer} {self.layer_shape}",
            f"estimator   {self.estimator}" + (f", {self.n_samples} samples" if self.n_samples else ""),
            f"model       {self.model_id or 'unknown (original GANSpaceSynth file)'}",
            f"pitch       {self._pitch_text()}",
            f"components  {self.n_components}, {100 * ratio.sum():.1f}% of the variance",
            "first       " + ", ".join(f"{i}: {100 * r:.1f}%" for i, r in enumerate(ratio[:8])),
            "latent      " + (f"directions from {self.latent_samples} samples" if self.latent_directions
                              is not None else "no latent directions"),
        ]
        return "\n".join(lines)

    def _pitch_text(self):
        if self.n_samples is None:
            return "unknown"
        return "all of the model's" if self.pitch is None else str(self.pitch)

    # --- the formula ------------------------------------------------------
    def _coefficients(self, coefficients):
        return _coefficient_rows(coefficients, self.n_components)

    def edit(self, coefficients):
        """``sum_i c_i * stdev_i * component_i`` in the layer's shape: (*shape) for a vector of
        coefficients, (n, *shape) for an (n, k) array."""
        rows, single = self._coefficients(coefficients)
        basis = self.components.reshape(self.n_components, -1).astype(np.float64)
        offset = (rows * self.stdev.astype(np.float64)) @ basis
        offset = offset.reshape(len(rows), *self.layer_shape).astype(np.float32)
        return offset[0] if single else offset

    def layer_values(self, coefficients):
        """``mean + edit(coefficients)``: the activation that ``layer`` space synthesises from."""
        return self.mean + self.edit(coefficients)

    def latent_offset(self, coefficients):
        """``sum_i c_i * s_i * u_i`` in z: (latent size,) or (n, latent size)."""
        if self.latent_directions is None:
            raise PCAError(f"{self._name()} has no latent directions (an original GANSpaceSynth file, "
                           "or computed without them): compute one with `ganspacesynth pca`")
        rows, single = self._coefficients(coefficients)
        offset = (rows * self.latent_stdev.astype(np.float64)) @ self.latent_directions.astype(np.float64)
        offset = offset.astype(np.float32)
        return offset[0] if single else offset

    def coordinates(self, values):
        """The coefficients whose ``layer_values`` come closest to ``values`` (least squares).

        The inverse of the formula: for PCA components (orthonormal) it is the
        projection onto each component divided by its stdev.
        """
        values = np.asarray(values, dtype=np.float64)
        single = values.shape == self.layer_shape
        flat = values.reshape(-1, self.mean.size) - self.mean.reshape(1, -1)
        if self._basis_pinv is None:
            basis = self.components.reshape(self.n_components, -1).astype(np.float64)
            basis *= self.stdev.astype(np.float64)[:, np.newaxis]
            self._basis_pinv = np.linalg.pinv(basis)
        coords = flat @ self._basis_pinv
        return coords[0] if single else coords

    # --- fitting a model ---------------------------------------------------
    def _name(self):
        return str(self.source) if self.source else "this PCA"

    def check_model(self, model):
        """Refuse (PCAError) a model this PCA was not computed on, or whose layer differs."""
        if self.model_id is not None and self.model_id != model.identifier:
            raise PCAError(f"{self._name()} was computed on model {self.model_id}, not on this model "
                           f"({model.identifier}); compute one for it with `ganspacesynth pca`")
        if self.layer not in model.layer_names:
            raise PCAError(f"{self._name()} is for layer {self.layer!r}, which this model does not have "
                           f"(layers: {', '.join(model.layer_names)})")
        shape = tuple(model.layer_shape(self.layer))
        if shape != self.layer_shape:
            raise PCAError(f"{self._name()} is for layer {self.layer} of shape {self.layer_shape}, but this "
                           f"model's {self.layer} has shape {shape}")
        if self.latent_directions is not None and self.latent_size != model.latent_size:
            raise PCAError(f"{self._name()} has latent directions of size {self.latent_size}, but this "
                           f"model's z has {model.latent_size} values")

    # --- files -------------------------------------------------------------
    def metadata(self) -> dict:
        return {
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "layer": self.layer,
            "layer_shape": list(self.layer_shape), "estimator": self.estimator,
            "n_samples": self.n_samples, "n_components": self.n_components, "model_id": self.model_id,
            "pitch": self.pitch, "seed": self.seed, "latent_size": self.latent_size,
            "latent_samples": self.latent_samples,
        }

    def save(self, path):
        """Write the ``.npz`` format (loadable without pickle); returns the path.

        Written to a temporary file first, so an interrupted save never leaves
        half a file under ``path``.
        """
        path = Path(path)
        arrays = {"components": self.components, "stdev": self.stdev,
                  "explained_variance_ratio": self.explained_variance_ratio, "mean": self.mean,
                  "metadata": np.array(json.dumps(self.metadata()))}
        if self.latent_directions is not None:
            arrays["latent_directions"] = self.latent_directions
            arrays["latent_stdev"] = self.latent_stdev
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".part")
        with open(temporary, "wb") as f:
            np.savez(f, **arrays)
        os.replace(temporary, path)
        return path


def _coefficient_rows(coefficients, k):
    """(rows (n, k) float64 padded with zeros, whether the input was one vector)."""
    try:
        c = np.asarray(coefficients, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("coefficients must be numbers: one vector, or an (n, k) array") from None
    if c.ndim not in (1, 2):
        raise ValueError(f"coefficients must be one vector or an (n, k) array, got shape {c.shape}")
    single = c.ndim == 1
    rows = c[np.newaxis] if single else c
    if rows.shape[1] > k:
        raise ValueError(f"{rows.shape[1]} coefficients given, but the PCA has only {k} components")
    if not np.all(np.isfinite(rows)):
        raise ValueError("coefficients contain NaN or infinite values")
    if rows.shape[1] < k:
        rows = np.concatenate([rows, np.zeros((len(rows), k - rows.shape[1]))], axis=1)
    return rows, single


# --- synthesis ------------------------------------------------------------------

def _synthesis_plan(model, pca, coefficients, z, pitch, space):
    """Resolve space and broadcasting; returns (kind, inputs, n, single)."""
    pca.check_model(model)
    if space is None:
        space = "layer" if z is None else "z"
    if space not in SPACES:
        raise ValueError(f"unknown space {space!r}: choose one of {', '.join(SPACES)}")
    rows, single = _coefficient_rows(coefficients, pca.n_components)
    if space == "layer":
        if z is not None or pitch is not None:
            raise ValueError("space 'layer' replaces the activation, so z and pitch have no effect there; "
                             "use space 'z' or 'latent' to play them")
        return "layer", pca.mean + pca.edit(rows), len(rows), single

    if z is None:
        if space == "z":
            raise ValueError("space 'z' adds the edit to the activation of a latent vector: give z")
        z = np.zeros(model.latent_size, dtype=np.float32)
    single = single and np.ndim(z) == 1
    zs = model.latents(z)
    pitch = model.default_pitch if pitch is None else pitch
    pitches = np.asarray(pitch)
    if pitches.ndim > 1:
        raise ValueError(f"pitch must be one MIDI pitch or one per clip, got shape {pitches.shape}")
    single = single and pitches.ndim == 0
    counts = {len(rows), len(zs), 1 if pitches.ndim == 0 else len(pitches)}
    n = max(counts)
    if counts - {1, n}:
        raise ValueError(f"coefficients ({len(rows)} rows), z ({len(zs)}) and pitch do not broadcast "
                         "to one number of clips")
    rows = np.broadcast_to(rows, (n, rows.shape[1]))
    zs = np.broadcast_to(zs, (n, model.latent_size))
    pitches = np.broadcast_to(pitches, (n,))
    if space == "z":
        return "z", (zs, pitches, pca.edit(rows)), n, single
    return "latent", (zs + pca.latent_offset(rows), pitches), n, single


def _specgram_batches(model, pca, coefficients, z, pitch, space, batch_size, frames=None):
    """(single, iterator of spectrogram batches) for the synthesis formula."""
    kind, inputs, n, single = _synthesis_plan(model, pca, coefficients, z, pitch, space)
    batch_size = max(1, int(batch_size))

    def batches():
        for start in range(0, n, batch_size):
            part = slice(start, min(n, start + batch_size))
            if kind == "layer":
                yield model.specgrams_from_layer(pca.layer, inputs[part], frames)
            elif kind == "z":
                zs, pitches, offset = inputs
                values = model.layer_output(pca.layer, zs[part], pitches[part]) + offset[part]
                yield model.specgrams_from_layer(pca.layer, values, frames)
            else:
                zs, pitches = inputs
                yield model.generate_specgrams(zs[part], pitches[part], frames)

    return single, batches()


def synthesize_specgrams(model, pca, coefficients, z=None, pitch=None, space=None, batch_size=8,
                         frames=None):
    """The spectrograms ``synthesize`` turns into audio (same arguments, same formula);
    ``frames``: only the first ones, as ``Model.generate_specgrams``."""
    single, batches = _specgram_batches(model, pca, coefficients, z, pitch, space, batch_size, frames)
    specgrams = np.concatenate(list(batches))
    return specgrams[0] if single else specgrams


def synthesize(model, pca, coefficients, z=None, pitch=None, space=None, batch_size=8, length=None):
    """Audio from GANSpace coefficients: the module docstring's one formula.

    ``coefficients``: a vector (at most ``pca.n_components`` values; missing
    ones are zero) gives one clip (audio_length,); an (n, k) array gives
    (n, audio_length). ``space``: ``"layer"`` (the default without z),
    ``"z"`` (the default with z) or ``"latent"``. ``z`` (one vector or one per
    clip) and ``pitch`` (one MIDI pitch or one per clip; default the model's
    middle pitch) count in ``z`` and ``latent`` space only; in ``latent``
    space z is the centre (default zero). ``length``: only the first
    ``length`` samples of each clip, computing only what they depend on.
    Raises PCAError for a PCA of another model or layer shape, ValueError for
    bad coefficients, z, pitch or length. Generates ``batch_size`` clips at a
    time to bound memory.
    """
    frames = model.frames_for_length(length)
    single, batches = _specgram_batches(model, pca, coefficients, z, pitch, space, batch_size, frames)
    audio = np.concatenate([model.waves(s, length) for s in batches])
    return audio[0] if single else audio


# --- estimators -------------------------------------------------------------------

class Estimator:
    """One way of finding directions, fed batch by batch.

    ``partial_fit(X)`` takes each batch (rows: flattened float32
    activations); ``result()`` returns ``(components (k, d), stdev (k,),
    explained_variance_ratio (k,), mean (d,))``, in any order and sign
    (``_finish`` sorts and signs them).
    """

    name = ""
    keeps_all_samples = False

    def __init__(self, n_components, n_features, n_samples, seed):
        self.n_components = n_components
        self.n_features = n_features
        self.n_samples = n_samples
        self.seed = seed

    @classmethod
    def check(cls, n_features, n_samples, layer):
        """Refuse (PCAError) sizes this estimator cannot handle in memory."""
        if cls.keeps_all_samples and n_samples * n_features * 4 > IN_MEMORY_MAX_BYTES:
            raise PCAError(f"estimator {cls.name} keeps every sample in memory: {n_samples} samples of "
                           f"{layer} ({n_features} values) need "
                           f"{n_samples * n_features * 4 / 2**30:.1f} GiB, "
                           f"more than {IN_MEMORY_MAX_BYTES / 2**30:.0f}; use fewer samples, 'cov' or 'ipca'")

    def partial_fit(self, X):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError


class IPCAEstimator(Estimator):
    """sklearn's IncrementalPCA, one ``partial_fit`` per batch, as the paper.

    It tracks ``tracked_components(k)`` directions and keeps the first k:
    the incremental SVD truncates at every batch, and with the flat spectra of
    GANSynth's early layers (the reference model's top conv0 components
    explain 0.81%, 0.80%, 0.78%...) tracking only k loses the top directions
    (|cosine| with the exact ones 0.55..0.97 for k = 16, 20000 samples, batches
    of 4096), while tracking 4k keeps them above 0.98 and k + 128 above
    0.999. Batches are much larger than that, so it costs a few per cent.
    """

    name = "ipca"

    @staticmethod
    def tracked_components(n_components, n_features, n_samples):
        return min(n_features, n_samples, max(4 * n_components, n_components + 128))

    def __init__(self, n_components, n_features, n_samples, seed):
        super().__init__(n_components, n_features, n_samples, seed)
        from sklearn.decomposition import IncrementalPCA

        self.transformer = IncrementalPCA(n_components=self.tracked_components(n_components, n_features,
                                                                                    n_samples))

    def partial_fit(self, X):
        self.transformer.partial_fit(X)

    def result(self):
        t, k = self.transformer, self.n_components
        return (t.components_[:k], np.sqrt(t.explained_variance_[:k]), t.explained_variance_ratio_[:k],
                t.mean_)


class CovarianceEstimator(Estimator):
    """Exact PCA from the accumulated covariance: one pass, one eigendecomposition.

    Products run in float32 BLAS (syrk: one triangle) within a block of at
    most ``block_rows`` rows and are summed in float64 across blocks, after
    subtracting the first batch's mean so that no large mean cancels later.
    """

    name = "cov"
    block_rows = 16384

    def __init__(self, n_components, n_features, n_samples, seed):
        super().__init__(n_components, n_features, n_samples, seed)
        self.shift = None
        self.count = 0
        self.sum = np.zeros(n_features)
        self.gram = np.zeros((n_features, n_features))
        self._block = None
        self._block_count = 0

    @classmethod
    def check(cls, n_features, n_samples, layer):
        if n_features > COV_MAX_VALUES:
            raise PCAError(f"estimator cov needs a {n_features} x {n_features} covariance for layer {layer} "
                           f"({8 * n_features ** 2 / 2**30:.0f} GiB); it takes layers of up to "
                           f"{COV_MAX_VALUES} values: use 'ipca' for this one")

    def partial_fit(self, X):
        from scipy.linalg.blas import ssyrk

        X = np.asarray(X, dtype=np.float32)
        if self.shift is None:
            self.shift = X.mean(axis=0)
        centred = X - self.shift
        self.sum += centred.sum(axis=0, dtype=np.float64)
        self.count += len(X)
        if self._block is None:
            self._block = np.zeros((self.n_features, self.n_features), dtype=np.float32, order="F")
        # Upper triangle only, accumulated in place; centred.T is already Fortran order (no copy).
        self._block = ssyrk(1.0, centred.T, beta=1.0, c=self._block, trans=0, lower=0, overwrite_c=1)
        self._block_count += len(X)
        if self._block_count >= self.block_rows:
            self._flush()

    def _flush(self):
        if self._block_count:
            self.gram += self._block
            self._block[...] = 0
            self._block_count = 0

    def result(self):
        self._flush()
        self._block = None
        n, d, k = self.count, self.n_features, self.n_components
        centre = self.sum / n
        cov = self.gram
        self.gram = None
        cov += np.triu(cov, 1).T  # the blocks filled the upper triangle only
        cov -= n * np.outer(centre, centre)
        cov /= n - 1
        total = float(np.trace(cov))
        if d > 1024 and k <= d // 8:
            # Lanczos (ARPACK) for a few of many: 27 s instead of 125 s for 32 of 8192 on 2
            # busy cores, equal to LAPACK's to 1e-14; a fixed start vector keeps it reproducible.
            from scipy.sparse.linalg import eigsh

            values, vectors = eigsh(cov, k=k, which="LA", tol=0,
                                    v0=np.random.default_rng(0).standard_normal(d))
        else:
            from scipy.linalg import eigh

            values, vectors = eigh(cov, subset_by_index=[d - k, d - 1], overwrite_a=True, check_finite=False)
        order = np.argsort(values)[::-1]
        values = np.maximum(values[order], 0.0)
        return vectors[:, order].T, np.sqrt(values), values / total, self.shift + centre


class _AllSamples(Estimator):
    keeps_all_samples = True

    def __init__(self, n_components, n_features, n_samples, seed):
        super().__init__(n_components, n_features, n_samples, seed)
        self.samples = np.empty((n_samples, n_features), dtype=np.float32)
        self.count = 0

    def partial_fit(self, X):
        self.samples[self.count:self.count + len(X)] = X
        self.count += len(X)


class PCAEstimator(_AllSamples):
    """sklearn's PCA with a full SVD, on every sample at once."""

    name = "pca"

    def result(self):
        from sklearn.decomposition import PCA as SklearnPCA

        t = SklearnPCA(n_components=self.n_components, svd_solver="full")
        t.fit(self.samples[:self.count])
        self.samples = None
        return t.components_, np.sqrt(t.explained_variance_), t.explained_variance_ratio_, t.mean_


class ICAEstimator(_AllSamples):
    """sklearn's FastICA; directions are mixing-matrix columns (see the module docstring)."""

    name = "ica"
    max_iter = 2000

    def result(self):
        import warnings

        from sklearn.decomposition import FastICA
        from sklearn.exceptions import ConvergenceWarning

        X = self.samples[:self.count]
        mean = X.mean(axis=0, dtype=np.float64)
        total = float(X.var(axis=0, ddof=1, dtype=np.float64).sum())
        t = FastICA(n_components=self.n_components, whiten="unit-variance", max_iter=self.max_iter,
                    random_state=self.seed if isinstance(self.seed, int) else 0,
                    whiten_solver="eigh" if len(X) > X.shape[1] else "svd")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            t.fit(X)
        self.samples = None
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            warnings.warn(f"FastICA did not converge in {self.max_iter} iterations; the components may "
                          "change with the seed (more samples or fewer components help)", stacklevel=3)
        mixing = t.mixing_.T.astype(np.float64)  # (k, d)
        stdev = np.linalg.norm(mixing, axis=1)
        return mixing / stdev[:, np.newaxis], stdev, stdev ** 2 / total, mean


ESTIMATORS = {e.name: e for e in (IPCAEstimator, PCAEstimator, CovarianceEstimator, ICAEstimator)}


def _finish(components, stdev, ratio):
    """Sort by stdev (largest first) and sign each component so its largest-magnitude entry is positive."""
    components = np.asarray(components, dtype=np.float64)
    components = components / np.linalg.norm(components, axis=1, keepdims=True)
    stdev = np.asarray(stdev, dtype=np.float64)
    order = np.argsort(-stdev, kind="stable")
    components, stdev, ratio = components[order], stdev[order], np.asarray(ratio, np.float64)[order]
    peak = components[np.arange(len(components)), np.argmax(np.abs(components), axis=1)]
    components *= np.where(peak < 0, -1.0, 1.0)[:, np.newaxis]
    return components, stdev, ratio


# --- computing ------------------------------------------------------------------

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
    (``ipca``, ``cov``, ``pca``, ``ica``; see the module docstring) is fed
    batch by batch. Memory is
    bounded by one batch, except the covariance of ``cov`` and the full
    sample matrix of ``pca`` and ``ica``.

    Then ``latent_samples`` fresh samples (default: ``min(n_samples, 16384)``;
    0 to skip) give the latent directions ``latent`` space plays. ``seed``
    makes everything reproducible; ``progress``: True for a tqdm bar, or a
    callable(stage, done, total).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}: choose one of {', '.join(ESTIMATORS)}")
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


# --- reading files ------------------------------------------------------------------

DEFAULT_PCA = "default"
DEFAULT_PCA_FILE = "pca.npz"
_ORIGINAL_KEYS = {"layer", "estimator", "comp", "stdev", "var_ratio", "global_mean"}
_ARRAYS = ("components", "stdev", "explained_variance_ratio", "mean")
_LATENT_ARRAYS = ("latent_directions", "latent_stdev")


def load_pca(path, model=None):
    """Read a PCA: our ``.npz`` format, or an original GANSpaceSynth pickle (read safely).

    ``"default"`` names the PCA shipped beside the default model
    (``models/default/pca.npz`` in the package).

    With ``model``, also refuse (PCAError) a PCA computed on another model
    or for a layer of another shape; ``synthesize`` checks that anyway.
    Original pickles carry no model identifier: they are accepted for any
    model whose layer has their shape.
    """
    if str(path) == DEFAULT_PCA:
        from .paths import models_dir

        path = models_dir() / "default" / DEFAULT_PCA_FILE
        if not path.is_file():
            raise PCAError("the default PCA is not installed with this copy of ganspacesynth "
                           f"(looked for {path})")
    path = Path(path).expanduser()
    if not path.is_file():
        raise PCAError(f"{path}: no such PCA file")
    if zipfile.is_zipfile(path):
        pca = _load_npz(path)
    else:
        pca = _load_original_pickle(path)
    if model is not None:
        pca.check_model(model)
    return pca


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            files = set(data.files)
            unknown = files - {"metadata", *_ARRAYS, *_LATENT_ARRAYS}
            missing = {"metadata", *_ARRAYS} - files
            if unknown or missing:
                raise PCAError(f"{path}: not a ganspacesynth PCA file (" + "; ".join(
                    part for part in (f"missing {', '.join(sorted(missing))}" if missing else "",
                                      f"unexpected {', '.join(sorted(unknown))}" if unknown else "") if part)
                    + ")")
            meta = data["metadata"]
            arrays = {name: data[name] for name in files - {"metadata"}}
    except PCAError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise PCAError(f"{path}: cannot read this PCA file ({error})") from None
    if meta.dtype.kind != "U" or meta.ndim != 0:
        raise PCAError(f"{path}: the metadata is not a JSON string")
    try:
        meta = json.loads(str(meta))
    except json.JSONDecodeError as error:
        raise PCAError(f"{path}: the metadata is not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise PCAError(f"{path}: not a ganspacesynth PCA file (format {meta.get('format')!r})"
                       if isinstance(meta, dict) else f"{path}: the metadata is not a JSON object")
    version = meta.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PCAError(f"{path}: PCA format version {version!r}; this ganspacesynth reads up to "
                       f"{FORMAT_VERSION} (upgrade ganspacesynth)")
    for name, value in arrays.items():
        if value.dtype.kind != "f":
            raise PCAError(f"{path}: {name} must be a float array, found {value.dtype}")
    try:
        pca = PCA(meta["layer"], arrays["components"], arrays["stdev"], arrays["explained_variance_ratio"],
                  arrays["mean"], estimator=meta["estimator"], n_samples=meta.get("n_samples"),
                  model_id=meta.get("model_id"), latent_directions=arrays.get("latent_directions"),
                  latent_stdev=arrays.get("latent_stdev"), pitch=meta.get("pitch"), seed=meta.get("seed"),
                  latent_samples=meta.get("latent_samples"), source=path)
    except KeyError as error:
        raise PCAError(f"{path}: the metadata has no {error.args[0]!r}") from None
    except PCAError as error:
        raise PCAError(f"{path}: {error}") from None
    if list(pca.layer_shape) != list(meta.get("layer_shape", pca.layer_shape)):
        raise PCAError(f"{path}: the metadata says layer shape {meta['layer_shape']}, the arrays "
                       f"{list(pca.layer_shape)}")
    return pca


# What an original pickle may contain: a dict of strings and plain float
# arrays. The unpickler below maps the few globals numpy's array pickles name
# to stand-ins of our own, which check their arguments and build arrays with
# np.frombuffer; no other global can be named, so no code from the file runs
# and no numpy constructor ever sees state from the file.
_FLOAT_DTYPES = {"f2", "f4", "f8"}
_MAX_PICKLE_BYTES = 1 << 31


class _DtypeStandIn:
    """Takes the place of ``numpy.dtype('f4', align, copy)`` and its pickled state."""

    def __init__(self, spec, align=False, copy=False):
        if not isinstance(spec, str) or spec not in _FLOAT_DTYPES:
            raise pickle.UnpicklingError(f"arrays of dtype {spec!r} (only float arrays are accepted)")
        self.spec, self.byteorder = spec, "="

    def __setstate__(self, state):
        # numpy's dtype state: (version, byteorder, subarray, names, fields, elsize, alignment, flags[, meta])
        if (not isinstance(state, tuple) or len(state) not in (8, 9) or state[1] not in ("<", ">", "=", "|")
                or state[2:5] != (None, None, None)):
            raise pickle.UnpicklingError("a dtype other than a plain float")
        self.byteorder = "=" if state[1] == "|" else state[1]

    def dtype(self):
        return np.dtype(self.byteorder + self.spec)


_NDARRAY = object()  # what "numpy.ndarray" resolves to: only a marker for _reconstruct


class _ArrayStandIn:
    """Takes the place of ``numpy._core.multiarray._reconstruct(ndarray, (0,), b'b')`` and its state."""

    def __init__(self, subtype, shape, typecode):
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError("an array subclass")
        self.array = None

    def __setstate__(self, state):
        # numpy's ndarray state: ([version,] shape, dtype, is_fortran, raw bytes)
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise pickle.UnpicklingError("an array state numpy does not write")
        shape, dtype, fortran, raw = state
        self.array = _array_from_bytes(raw, dtype, shape, "F" if fortran is True else "C")


def _array_from_bytes(raw, dtype, shape, order):
    if not isinstance(dtype, _DtypeStandIn):
        raise pickle.UnpicklingError("an array without a float dtype")
    if isinstance(raw, pickle.PickleBuffer):
        raw = bytes(raw.raw())
    if not isinstance(raw, (bytes, bytearray)):
        raise pickle.UnpicklingError("array data that is not raw bytes (an object array?)")
    if (not isinstance(shape, tuple) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                for s in shape) or order not in ("C", "F")):
        raise pickle.UnpicklingError("an invalid array shape")
    dt = dtype.dtype()
    if len(raw) != math.prod(shape) * dt.itemsize:
        raise pickle.UnpicklingError("array data of the wrong length")
    return np.frombuffer(raw, dtype=dt).reshape(shape, order=order).astype(dt.newbyteorder("="))


def _frombuffer(buffer, dtype, shape, order):
    """Stands in for ``numpy._core.numeric._frombuffer`` (arrays pickled with protocol 5)."""
    return _array_from_bytes(buffer, dtype, shape, order)


def _latin1_encode(text, encoding="latin1"):
    """Stands in for ``_codecs.encode``, which protocol-2 pickles use for bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode used for something other than bytes")
    return text.encode("latin1")


_ALLOWED_GLOBALS = {
    ("numpy._core.multiarray", "_reconstruct"): _ArrayStandIn,
    ("numpy.core.multiarray", "_reconstruct"): _ArrayStandIn,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeStandIn,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _latin1_encode,
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a PCA file has no use for"
                                         ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("it refers to persistent objects")


def _load_original_pickle(path):
    if path.stat().st_size > _MAX_PICKLE_BYTES:
        raise PCAError(f"{path}: too large for a PCA file")
    data = path.read_bytes()
    try:
        obj = _SafeUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as error:
        raise PCAError(f"{path}: refused: not a plain GANSpaceSynth PCA pickle: {error}") from None
    except Exception as error:  # a malformed pickle fails in many ways; none of them runs code
        raise PCAError(f"{path}: not a ganspacesynth PCA (.npz) or GANSpaceSynth pickle "
                       f"({type(error).__name__}: {error})") from None
    return _from_original(path, obj)


def _from_original(path, obj):
    def refuse(why):
        return PCAError(f"{path}: refused: not a plain GANSpaceSynth PCA pickle: {why}")

    if not isinstance(obj, dict):
        raise refuse(f"it holds a {type(obj).__name__}, not a dict")
    if not all(isinstance(key, str) for key in obj):
        raise refuse("it has keys that are not strings")
    if set(obj) != _ORIGINAL_KEYS:
        extra, missing = sorted(set(obj) - _ORIGINAL_KEYS), sorted(_ORIGINAL_KEYS - set(obj))
        raise refuse("; ".join(part for part in (f"unexpected keys {', '.join(extra)}" if extra else "",
                                                 f"missing keys {', '.join(missing)}" if missing else "")
                               if part))
    values = {}
    for key, value in obj.items():
        if key in ("layer", "estimator"):
            if not isinstance(value, str):
                raise refuse(f"{key} is a {type(value).__name__}, not a string")
        else:
            if isinstance(value, _ArrayStandIn):
                value = value.array
            if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
                raise refuse(f"{key} is not a float array")
        values[key] = value
    comp, mean = values["comp"], values["global_mean"]
    # GANSpace kept the batch axis of its one-sample probe in some versions.
    if mean.ndim >= 2 and mean.shape[0] == 1 and comp.ndim == mean.ndim + 1 and comp.shape[1] == 1:
        mean, comp = mean[0], comp[:, 0]
    try:
        return PCA(values["layer"], comp, values["stdev"].reshape(-1), values["var_ratio"].reshape(-1), mean,
                   estimator=values["estimator"], source=path)
    except PCAError as error:
        raise PCAError(f"{path}: {error}") from None
