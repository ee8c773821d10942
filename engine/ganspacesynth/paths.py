"""Where the installed package keeps its data: Pd files and shipped models."""

import sys
import sysconfig
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def pd_path() -> Path:
    """The folder to add to Pd's search path: the external, its help patch and the Hallu abstractions.

    It is ``ganspacesynth/pd`` inside the package. An editable install
    (``pip install -e .``) imports the package from the source tree while the
    built parts land in ``site-packages/ganspacesynth/pd``: that folder is
    found along the interpreter's site folders. When there is neither, the
    package's own (missing) folder is returned."""
    inside = PACKAGE_DIR / "pd"
    if inside.is_dir():
        return inside
    scheme = sysconfig.get_paths()
    for folder in dict.fromkeys([scheme.get("platlib"), scheme.get("purelib"), *sys.path]):
        if folder:
            candidate = Path(folder) / "ganspacesynth" / "pd"
            if candidate.is_dir():
                return candidate.resolve()
    return inside


def models_dir() -> Path:
    """The models shipped inside the package (``default`` among them)."""
    return PACKAGE_DIR / "models"
