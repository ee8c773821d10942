"""The Pd folder as pip installs it: external, bridge, help patch and Hallu
abstractions inside the package, and a plain `pd` started elsewhere loads the
engine from there with no environment variables.

Against the installed package when there is one (CI installs it), otherwise
against a wheel built here from the source tree (scikit-build-core, no build
isolation) and unpacked into a temporary site-packages.
"""

import os
import subprocess
import sys
import zipfile

import pytest

from pd_helpers import EXTERNAL, REPO, Patch, printed, run_pd

pytestmark = [pytest.mark.pd, pytest.mark.slow]

FIXTURE = REPO / "tests" / "data" / "gansynth-reference"
BRIDGE = "libganspacesynth_bridge.dylib" if sys.platform == "darwin" else "libganspacesynth_bridge.so"


@pytest.fixture(scope="module")
def installed_pd_folder(tmp_path_factory):
    import ganspacesynth

    folder = ganspacesynth.pd_path()
    if (folder / EXTERNAL).is_file():
        return folder
    try:
        import scikit_build_core  # noqa: F401
    except ImportError:
        pytest.fail("ganspacesynth is not installed with its Pd folder, and scikit-build-core is missing "
                    "to build a wheel here: pip install scikit-build-core, or pip install .", pytrace=False)
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "--quiet", "-w", str(out), str(REPO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheel = next(out.glob("ganspacesynth-*.whl"))
    site = out / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site / "ganspacesynth" / "pd"


def test_the_package_holds_the_pd_folder(installed_pd_folder):
    folder = installed_pd_folder
    for name in (EXTERNAL, BRIDGE, "ganspacesynth~-help.pd", "ganspacesynth_pyext.py"):
        assert (folder / name).is_file(), f"{name} missing from {folder}"
    if (REPO / "hallu").is_dir():
        shipped = sorted(p.name for p in (REPO / "hallu").glob("*.pd"))
        assert sorted(p.name for p in (folder / "hallu").glob("*.pd")) == shipped
    # An installed bridge finds its package around itself: the source tree
    # it was built from must not be baked in.
    assert str(REPO / "engine").encode() not in (folder / BRIDGE).read_bytes()


def test_plain_pd_loads_the_installed_engine(installed_pd_folder, tmp_path):
    patch = Patch()
    load = patch.obj("loadbang")
    messages = patch.msg(f"load {FIXTURE}")
    gss = patch.obj("ganspacesynth~")
    show = patch.obj("print reply")
    route = patch.obj("route loaded error")
    quit_ = patch.msg("; pd quit")
    patch.chain(load, messages, gss)
    patch.connect(gss, 1, show)
    patch.connect(gss, 1, route)
    patch.connect(route, 0, quit_)
    patch.connect(route, 1, quit_)
    path = patch.write(tmp_path / "installed.pd")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("PYTHON", "GANSPACESYNTH_", "VIRTUAL_ENV"))}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    code, stderr = run_pd(path, installed_pd_folder, env=env, clean_env=True)
    assert code == 0, stderr[-3000:]
    assert "loaded 0 16000 64000" in printed(stderr, "reply"), stderr[-3000:]


def test_cli_pd_path():
    """`ganspacesynth pd-path` prints the package's Pd folder; it fails (status 1)
    when the package was installed without the external, so that scripts stop."""
    import ganspacesynth

    result = subprocess.run([sys.executable, "-m", "ganspacesynth", "pd-path"], capture_output=True,
                            text=True)
    assert result.stdout.strip() == str(ganspacesynth.pd_path())
    assert result.returncode == (0 if ganspacesynth.pd_path().is_dir() else 1), result.stderr
