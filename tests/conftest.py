"""Shared fixtures: the reference checkpoint Magenta made, loaded once per session."""

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = Path(__file__).parent / "data"
REFERENCE_DIR = DATA / "gansynth-reference"


def relative_error(out, ref):
    """max|out - ref| / max|ref|, the measure the reference fixture is judged by."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    assert out.shape == ref.shape, f"shape {out.shape} != reference {ref.shape}"
    return float(np.abs(out - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="session")
def reference_dir():
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def reference():
    with np.load(REFERENCE_DIR / "reference.npz") as data:
        ref = {key: data[key] for key in data.files}
    ref["midi"] = ref["pitches"][ref["pitch_labels"]]
    return ref


@pytest.fixture(scope="session")
def reference_model():
    import ganspacesynth

    return ganspacesynth.load_model(REFERENCE_DIR)


# The files that take longest (measured on the 2-core machine: 75-525 s each), longest
# first. `.ci/run` hands whole files to its workers in collection order
# (--dist loadfile --no-loadscope-reorder), so these start first and the short files fill
# in at the end; xdist's own order (most tests first) left a 150-s file of wall-clock waits
# (the JACK minute) and a 76-s one (a pip install) for the last minutes, one per worker.
LONGEST_FILES = ("test_train.py", "test_pyext_real.py", "test_pd_external.py", "test_realtime.py",
                 "test_invert.py", "test_threads.py", "test_pd_abuse.py", "test_model.py",
                 "test_hallu_plays.py", "test_hallu_pd.py", "test_readme_install.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: index for index, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
