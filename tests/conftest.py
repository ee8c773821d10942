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


# The longest test files, longest first (minutes each on a 2-core CI machine). The suite
# runs with `--dist loadfile`, one file per worker at a time, handed out in collection
# order; collected alphabetically, the longest (test_train.py, ~8 minutes) came last and
# ran alone while the other worker idled. Started first, the short files fill the gaps.
LONGEST_FILES = ("test_train.py", "test_pyext_real.py", "test_invert.py", "test_pd_abuse.py",
                 "test_realtime.py", "test_readme_install.py", "test_pd_external.py", "test_instrument.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES)

    items.sort(key=rank)  # stable: the order within a file and among the others is kept
