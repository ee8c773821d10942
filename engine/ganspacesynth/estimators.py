"""Ways of finding directions in a generator layer.

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
``sefa``  closed form, no sampling (``sefa``; ``pca.compute_sefa`` makes the PCA):
          the eigenvectors of W^T W for the weight W of the layer that
          reads z, block 1's conv0. Its directions live in z (the ``latent``
          space plays them exactly); the layer-space components are their
          images at conv0, linearised at the mean input.
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
"""

import numpy as np

from .errors import PCAError

# A float64 covariance of this many values is 2 GiB; its eigendecomposition
# needs as much again.
COV_MAX_VALUES = 16384
# pca and ica hold every sample (float32) at once.
IN_MEMORY_MAX_BYTES = 4 << 30


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
    return components * _signs(components)[:, np.newaxis], stdev, ratio


def _signs(components):
    """+1 or -1 per row: the sign that makes each row's largest-magnitude entry positive."""
    peak = components[np.arange(len(components)), np.argmax(np.abs(components), axis=1)]
    return np.where(peak < 0, -1.0, 1.0)


def first_layer_z_map(kernel, latent_size):
    """Block 1's conv0 as a matrix from z to its output: (latent_size, height * width * filters).

    The generator pads the 1 x 1 input [z, one-hot pitch] by (height - 1,
    width - 1) on each side and runs a VALID height x width conv, so output
    position (i, j) sees the input through kernel tap (height-1-i, width-1-j)
    alone: the layer is one dense map, the kernel flipped in both spatial
    axes, input channels first (genforce/sefa's ``weight.flip(2, 3).permute(1,
    0, 2, 3)`` for PGGAN's first layer). Only the z rows are kept: the pitch
    rows are not directions in z space.
    """
    kernel = np.asarray(kernel)
    flipped = kernel[::-1, ::-1]  # (height, width, inputs, filters)
    return flipped.transpose(2, 0, 1, 3).reshape(kernel.shape[2], -1)[:int(latent_size)]


def sefa(kernel, latent_size, n_components):
    """SeFa (Shen & Zhou, CVPR 2021): closed-form directions in z from the layer that reads z.

    ``A`` = ``first_layer_z_map`` with each output column normalised to unit
    length (as genforce/sefa); the directions are the eigenvectors of
    ``A A^T`` (``W^T W`` in the paper's notation, W = A^T), the z directions
    the layer's output moves most along. Returns (eigenvalues (k,) largest
    first, directions (k, latent_size) unit rows, eigenvalue total).
    """
    from scipy.linalg import eigh
    from threadpoolctl import threadpool_limits

    d = int(latent_size)
    k = int(n_components)
    if not 1 <= k <= d:
        raise ValueError(f"n_components must be between 1 and {d} (the size of z) for sefa, got {k}")
    # Small products: one BLAS thread is faster than several fighting the generator's for cores.
    with threadpool_limits(1):
        A = np.asarray(first_layer_z_map(kernel, latent_size), dtype=np.float64)
        A /= np.maximum(np.linalg.norm(A, axis=0, keepdims=True), 1e-12)
        gram = A @ A.T  # latent x latent, about 1 GFLOP at full size
        values, vectors = eigh(gram, subset_by_index=[d - k, d - 1])
    order = np.argsort(values)[::-1]
    return np.maximum(values[order], 0.0), vectors[:, order].T, float(np.trace(gram))

