"""GANSpaceSynth: play the latent space of a GANSynth model.

The public API, in the order a script meets it::

    import ganspacesynth as gss
    model = gss.load_model("default")          # or a Magenta / ganspacesynth model folder
    z = model.random_z(4, seed=0)
    audio = model.generate(z, pitch=60)        # (4, model.audio_length) float32 at model.sample_rate
    pca = gss.compute_pca(model, layer="conv0")
    clip = model.synthesize(pca, [1.0, -0.5])  # GANSpace edit: one formula, see pca.py
    mix, points = gss.hallucinate(model, pca, [[1, 0], [-1, 1]], interp_steps=8)
    named = gss.compute_directions(model, ["brightness", "loudness"])   # a PCA with names
    found = gss.invert_file(model, "note.wav")  # the point that sounds most like a recording

Names are resolved lazily so that ``ganspacesynth --help`` and light tools do
not pay for importing TensorFlow.
"""

import os
from importlib import import_module

__version__ = "0.1.0"

# TensorFlow's C++ start-up lines (oneDNN, CPU features) are noise on the
# command line and in Pd's console: hide its INFO and WARNING lines unless the
# user chose a level. Here because every entry point (the CLI, the Pd bridge,
# a script) imports the package before TensorFlow; quiet.py filters the lines
# that this variable cannot reach.
_TF_LOG_LEVEL_FROM_USER = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import_module(".quiet", __name__).install()

_EXPORTS = {
    "load_model": "model",
    "Model": "model",
    "ModelConfig": "config",
    "slerp": "model",
    "specgrams_to_waves": "spectral",
    "waves_to_specgrams": "spectral",
    "compute_pca": "pca",
    "load_pca": "pca",
    "PCA": "pca",
    "compute_directions": "directions",
    "invert_file": "invert",
    "hallucinate": "hallu",
    "HalluSession": "hallu",
    "GanspacesynthError": "errors",
    "ModelError": "errors",
    "PCAError": "errors",
    "pd_path": "paths",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ganspacesynth' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
