"""Build the real pyext (SopiMlab's fork of grrrr/py) once, for the tests that run
the pyext fallback inside real Pd.

Nothing of pyext is in this repository. Its source, and the two small fixes it
needs for Python 3.11 and numpy 2, are looked for in ``../shared/vendor/pyext``
next to the checkout (``GANSPACESYNTH_PYEXT_VENDOR`` overrides the folder):
``SopiMlab-py.tar.gz`` and ``py-fixes.diff``. It is built against Debian's flext
(``pd-flext-dev``, ``libflext-pd0``) with flext's own makefile, for the Python
running the tests, into ``build/pyext-<key>/`` (``GANSPACESYNTH_PYEXT_CACHE``
overrides the folder), where ``<key>`` covers the tarball, the fixes and the
Python: later runs find the binary there and build nothing.

``locate()`` returns the folder holding ``py.pd_linux`` (load it with
``pd -lib FOLDER/py``) or raises ``Unavailable`` with the reason, which the
tests turn into a skip. Run as a script it builds and prints the folder.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLEXT_MAKEFILE = Path("/usr/share/pd-flext/dev/Makefile.flext")
BINARY = "py.pd_linux"


class Unavailable(RuntimeError):
    """Real pyext cannot be had here; the text says why."""


def vendor_dir():
    configured = os.environ.get("GANSPACESYNTH_PYEXT_VENDOR")
    return Path(configured) if configured else REPO.parent / "shared" / "vendor" / "pyext"


def _python_prefix():
    """A prefix with a shared libpython for the running Python."""
    libdir = Path(sysconfig.get_config_var("LIBDIR") or "")
    ldlibrary = sysconfig.get_config_var("LDLIBRARY") or ""
    if not ldlibrary.endswith(".so") and ".so." not in ldlibrary:
        raise Unavailable(f"the Python running the tests ({sys.executable}) has no shared libpython "
                          f"({ldlibrary or 'none'}); pyext must link one")
    if not (libdir / ldlibrary).exists():
        raise Unavailable(f"{libdir / ldlibrary} is missing")
    # A virtual environment has no include/ folder: the headers are its base's.
    return Path(sys.base_prefix), libdir


def _key(vendor):
    digest = hashlib.sha256()
    for name in ("SopiMlab-py.tar.gz", "py-fixes.diff"):
        digest.update((vendor / name).read_bytes())
    digest.update(sys.executable.encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()[:12]


def cache_dir(vendor):
    configured = os.environ.get("GANSPACESYNTH_PYEXT_CACHE")
    base = Path(configured) if configured else REPO / "build"
    return base / f"pyext-{_key(vendor)}"


def locate():
    """The folder holding a built py.pd_linux, building it the first time."""
    if sys.platform != "linux":
        raise Unavailable("the real-pyext tests build against Debian's flext: Linux only")
    vendor = vendor_dir()
    missing = [n for n in ("SopiMlab-py.tar.gz", "py-fixes.diff") if not (vendor / n).is_file()]
    if missing:
        raise Unavailable(f"no pyext source at {vendor} (missing {', '.join(missing)}); set "
                          "GANSPACESYNTH_PYEXT_VENDOR to a folder holding SopiMlab-py.tar.gz and "
                          "py-fixes.diff to run these tests")
    out = cache_dir(vendor)
    if (out / BINARY).is_file():
        return out
    failed = out / "FAILED.txt"
    if failed.is_file():
        raise Unavailable(f"building pyext failed before (delete {out} to retry):\n"
                          f"{failed.read_text()[-3000:]}")
    if not FLEXT_MAKEFILE.is_file():
        raise Unavailable("flext is not installed (Debian: apt-get install pd-flext-dev "
                          "libflext-pd0; .ci/run installs them)")
    if not Path("/usr/include/pd/m_pd.h").is_file():
        raise Unavailable("Pd's headers are not installed (apt-get install puredata-dev)")
    for tool in ("make", "patch", "c++"):
        if not shutil.which(tool):
            raise Unavailable(f"'{tool}' is needed to build pyext")
    prefix, libdir = _python_prefix()
    import numpy

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".pyext-build-") as work:
        work = Path(work)
        with tarfile.open(vendor / "SopiMlab-py.tar.gz") as tar:
            tar.extractall(work, filter="data")
        source = work / "py"
        steps = [
            ["patch", "-p1", "-i", str(vendor / "py-fixes.diff")],
            ["make", "-f", str(FLEXT_MAKEFILE), "PDLIBBUILDER_DIR=./pd-lib-builder/",
             f"PY_CONDA_ROOT={prefix}",
             f"PY_MINOR_VERSION={sys.version_info.minor}",
             "PY_USE_PYMALLOC=",
             f"DEFS=-DPY_EXPORTS -DPY_NUMPY -DPY_USE_GIL -DPY_INTERPRETER={sys.executable}",
             f"UFLAGS=-I{numpy.get_include()}",
             f"LIBPATH=-L{libdir} -Wl,-rpath,{libdir}"],
        ]
        log = []
        for step in steps:
            result = subprocess.run(step, cwd=source, capture_output=True, text=True)
            log.append(f"$ {' '.join(step)}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
            if result.returncode:
                out.mkdir(exist_ok=True)
                failed.write_text("\n".join(log))
                raise Unavailable(f"building pyext failed:\n{log[-1][-3000:]}")
        built = sorted(source.rglob(BINARY))
        if not built:
            out.mkdir(exist_ok=True)
            failed.write_text("\n".join(log))
            raise Unavailable(f"the pyext build made no {BINARY}")
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=".pyext-out-"))
        shutil.copy2(built[0], staging / BINARY)
        (staging / "BUILD.txt").write_text("\n".join(log))
        try:
            staging.rename(out)
        except OSError:  # another run finished first
            shutil.rmtree(staging, ignore_errors=True)
    return out


if __name__ == "__main__":
    try:
        print(locate())
    except Unavailable as reason:
        print(f"pyext unavailable: {reason}", file=sys.stderr)
        sys.exit(1)
