"""The deken package of the Pd side, made by deken's own `deken package`
through scripts/build_deken.py: named and laid out as deken makes it, verified
by `deken verify`, and unpacked into ~/Documents/Pd/externals (as deken's
installer does) a folder that a plain `pd`, with that folder on its search
path, loads: [ganspacesynth~] plays the default model and [hallu] is created.

deken needs Python 3.12+: the test uses `deken` from PATH, or installs it
from PyPI into a virtual environment of a Python 3.12+ found on the machine,
and skips (saying why) when it can do neither.
"""

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pd_helpers import EXTERNAL, REPO, printed
from test_pd_install import _both_objects_patch, _plain_pd

pytestmark = [pytest.mark.pd, pytest.mark.slow]


def _pythons_312():
    names = [shutil.which(n) for n in ("python3.14", "python3.13", "python3.12")]
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    names += sorted(glob.glob(os.path.join(pyenv, "versions", "3.1[2-9]*", "bin", "python3")), reverse=True)
    for name in filter(None, names):
        check = subprocess.run([name, "-c", "import sys, venv; sys.exit(sys.version_info < (3, 12))"],
                               capture_output=True)
        if check.returncode == 0:
            yield name


@pytest.fixture(scope="session")
def deken(tmp_path_factory):
    found = shutil.which("deken")
    if found:
        return found
    python = next(_pythons_312(), None)
    if python is None:
        pytest.skip("deken needs Python 3.12+, and there is neither a deken command nor such a Python here")
    venv = tmp_path_factory.mktemp("deken-venv")
    subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
    install = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                              "deken"], capture_output=True, text=True)
    if install.returncode != 0:
        pytest.skip(f"could not install deken from PyPI: {install.stderr.strip()[-500:]}")
    return str(venv / "bin" / "deken")


@pytest.fixture(scope="module")
def package(deken, tmp_path_factory):
    import ganspacesynth

    if not (ganspacesynth.pd_path() / EXTERNAL).is_file():
        pytest.skip(f"the installed package has no {EXTERNAL} to package (installed without Pd's headers)")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "build_deken.py"), "--output-dir", str(out),
                             "--deken", deken], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result.stdout.split()


def test_named_and_laid_out_as_deken_makes_it(package, deken):
    import ganspacesynth

    out, printed_paths = package
    platform = subprocess.run([deken, "--platform"], capture_output=True, text=True).stdout.split()[0]
    dek = out / f"ganspacesynth[v{ganspacesynth.__version__}]({platform}).dek"
    assert sorted(p.name for p in out.iterdir()) == [dek.name, dek.name + ".sha256", dek.name + ".txt"]
    assert printed_paths == [str(dek), str(dek) + ".txt", str(dek) + ".sha256"]
    assert re.fullmatch(r"(Linux|Darwin)-[a-z0-9_]+-32", platform)

    assert (out / (dek.name + ".sha256")).read_text().split()[0] == hashlib.sha256(dek.read_bytes()).hexdigest()
    objects = dict(line.split("\t") for line in (out / (dek.name + ".txt")).read_text().splitlines())
    assert set(objects) == {"ganspacesynth~", "hallu"}
    verify = subprocess.run([deken, "verify", "--ignore-missing-gpg", str(dek)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    with zipfile.ZipFile(dek) as archive:
        names = archive.namelist()
        readme = archive.read("ganspacesynth/README.txt").decode()
    assert all(name.startswith("ganspacesynth/") for name in names), names
    for name in (EXTERNAL, "ganspacesynth~-help.pd", "ganspacesynth_pyext.py", "README.txt", "hallu/hallu.pd",
                 "hallu/hallu-help.pd"):
        assert f"ganspacesynth/{name}" in names, name
    assert any(re.fullmatch(r"ganspacesynth/libganspacesynth_bridge\.(so|dylib)", n) for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert "GANSPACESYNTH_PYTHONPATH" in readme and "pd-install" in readme


def test_unpacked_it_is_a_folder_plain_pd_loads(package, tmp_path):
    """Unpacked where deken installs, that folder on Pd's search path (deken's offer),
    and the engine found as its README says (GANSPACESYNTH_PYTHONPATH)."""
    import ganspacesynth

    out, _ = package
    home = tmp_path / "home"
    externals = home / "Documents" / "Pd" / "externals"
    externals.mkdir(parents=True)
    with zipfile.ZipFile(next(out.glob("*.dek"))) as archive:
        archive.extractall(externals)
    folder = externals / "ganspacesynth"
    for binary in folder.iterdir():  # zip keeps no permission bits from deken's archive
        if binary.suffix in (".so", ".dylib", ".pd_linux", ".pd_darwin"):
            binary.chmod(0o755)
    (home / ".pdsettings").write_text(f"npath: 1\npath1: {folder}\n")
    (tmp_path / "patch").mkdir()
    patch = _both_objects_patch(tmp_path / "patch" / "both.pd")

    engine = Path(ganspacesynth.__file__).resolve().parent.parent
    code, stderr = _plain_pd(patch, home, env={"GANSPACESYNTH_PYTHONPATH": str(engine)})
    assert code == 0, stderr[-3000:]
    assert "couldn't create" not in stderr, stderr[-3000:]
    assert printed(stderr, "reply")[-1] == "loaded 16 16000 64000", stderr[-3000:]
