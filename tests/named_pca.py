"""A PCA file with component names for the tests of `knob` and `names`: a PCA (the reference
fixture's conv0 PCA, or ``"default"``, the default model's) cut to its first four components,
named as ``ganspacesynth directions`` names its descriptors (computing real named directions
takes minutes; these tests only need names), optionally with sets of its own at some pitches."""

from pathlib import Path

REFERENCE_PCA = Path(__file__).parent / "data" / "gansynth-reference" / "pca_conv0.pickle"
NAMES = ["brightness", "loudness", "noisiness", "pitch-salience"]


def write_named_pca(path, source=REFERENCE_PCA, pitches=()):
    """Write the named PCA made from ``source`` to ``path`` (.npz); returns the path. With
    ``pitches``, the i-th of them gets a set of its own: the next four components after the
    previous set's, as ``ganspacesynth directions --per-pitch`` writes sets per pitch."""
    from ganspacesynth.pca import PCA, load_pca

    pca = load_pca(source)
    n = len(NAMES)

    def four(first, pitch=None):
        cut = slice(first, first + n)
        latent = {} if pca.latent_directions is None else {"latent_directions": pca.latent_directions[cut],
                                                           "latent_stdev": pca.latent_stdev[cut]}
        return PCA(pca.layer, pca.components[cut], pca.stdev[cut], pca.explained_variance_ratio[cut], pca.mean,
                   estimator=pca.estimator, n_samples=pca.n_samples, model_id=pca.model_id, names=NAMES,
                   pitch=pitch, **latent)

    named = four(0)
    if pitches:
        named = named.with_pitch_sets({p: four(n * (i + 1), p) for i, p in enumerate(pitches)})
    return named.save(Path(path))
