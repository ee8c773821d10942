"""Every installed patch opened in Pd's real GUI (Tk, puredata-gui) on a virtual
1024x768 X display (Xvfb), with a picture saved of each window: the patch and,
for help patches, their [pd reference] and [pd META] windows. A layout
regression then shows as a picture, not only as a line of patch_geometry.

The pictures go to build/screenshots/ (or GANSPACESYNTH_SCREENSHOTS); the test
checks that each was made, is a window of at most 1024x768 and is not blank.
CI installs what it needs (.ci/run); elsewhere the test is skipped, naming
the Debian packages to install.
"""

import os
import subprocess
from pathlib import Path

import pytest

import pd_gui
from pd_helpers import REPO, locate_external

pytestmark = [pytest.mark.pd, pytest.mark.slow]

HELP = sorted(REPO.glob("hallu/*-help.pd")) + [REPO / "pd_external" / "ganspacesynth~-help.pd"]
ABSTRACTIONS = sorted(p for p in REPO.glob("hallu/*.pd") if not p.stem.endswith("-help"))


@pytest.fixture(scope="module")
def gui_setup():
    missing = pd_gui.missing_tools()
    if missing:
        pytest.skip(f"Pd's GUI on a virtual display needs the Debian packages {' '.join(sorted(set(missing)))}")
    out = Path(os.environ.get("GANSPACESYNTH_SCREENSHOTS", REPO / "build" / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return locate_external(REPO / "build" / "pd-tests"), out


def size(png):
    out = subprocess.run(["identify", "-format", "%w %h", str(png)], capture_output=True, text=True, check=True)
    return tuple(int(v) for v in out.stdout.split())


@pytest.mark.parametrize("path", HELP + ABSTRACTIONS, ids=lambda p: p.name)
def test_patch_window_screenshot(gui_setup, path):
    pd_dir, out = gui_setup
    subpatches = ["reference", "META"] if path.stem.endswith("-help") else []
    shots, console = pd_gui.screenshots(path, out, pd_dir=pd_dir, subpatches=subpatches,
                                        extra_path=[REPO / "hallu"])
    assert "couldn't create" not in console, console
    assert len(shots) == 1 + len(subpatches)
    for png in shots.values():
        assert png.is_file() and png.stat().st_size > 0
        width, height = size(png)
        assert width <= 1024 and height <= 768, (png, width, height)
        assert not pd_gui.is_blank(png), png
