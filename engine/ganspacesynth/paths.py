"""Where the installed package keeps its data: Pd files and shipped models."""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def pd_path() -> Path:
    """The folder to add to Pd's search path: the external, its help patch and the Hallu abstractions."""
    return PACKAGE_DIR / "pd"


def models_dir() -> Path:
    """The models shipped inside the package (``default`` among them)."""
    return PACKAGE_DIR / "models"
