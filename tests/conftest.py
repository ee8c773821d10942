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

