"""A PCA file with component names for the tests of `knob` and `names`: a PCA (the reference
fixture's conv0 PCA, or ``"default"``, the default model's) cut to its first four components,
named as ``ganspacesynth directions`` names its descriptors (computing real named directions
takes minutes; these tests only need names)."""

from pathlib import Path

REFERENCE_PCA = Path(__file__).parent / "data" / "gansynth-reference" / "pca_conv0.pickle"
NAMES = ["brightness", "loudness", "noisiness", "pitch-salience"]


def write_named_pca(path, source=REFERENCE_PCA):
    """Write the named PCA made from ``source`` to ``path`` (.npz); returns the path."""
    from ganspacesynth.pca import PCA, load_pca

    pca = load_pca(source)
    n = len(NAMES)
    latent = {} if pca.latent_directions is None else {"latent_directions": pca.latent_directions[:n],
                                                       "latent_stdev": pca.latent_stdev[:n]}
    named = PCA(pca.layer, pca.components[:n], pca.stdev[:n], pca.explained_variance_ratio[:n], pca.mean,
                estimator=pca.estimator, n_samples=pca.n_samples, model_id=pca.model_id, names=NAMES,
                **latent)
    return named.save(Path(path))
