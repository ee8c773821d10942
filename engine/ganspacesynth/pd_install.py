"""Put the package's Pd folder where Pd finds it by itself, and take it away again.

Where Pd 0.53 looks (src/s_path.c, s_loader.c and the manual's chapter 4):

* An object ``[foo]`` is searched in the patch's folder, the folders of the
  user's search path (Preferences > Path, saved in Pd's preferences file),
  the ``-path`` folders and, last, the standard folders compiled into Pd
  (Linux: ``~/.local/lib/pd/extra``, ``~/pd-externals``,
  ``/usr/local/lib/pd-externals``, Pd's ``extra``; macOS: ``~/Library/Pd``,
  ``/Library/Pd``). In each folder Pd tries ``foo.<ext>`` and
  ``foo/foo.<ext>`` (``foo/foo.pd`` for abstractions), nothing deeper.
* ``~/Documents/Pd/externals`` is where deken installs libraries. Pd's core
  does not search it: Pd's GUI adds it to the user's search path the first
  time it runs, and deken adds each library folder it installs there (its
  "add newly installed libraries to Pd's search path" preference).

So a library folder holding several objects, like this one
(``ganspacesynth~`` and ``hallu/hallu.pd``), is found by a plain ``pd`` only
when the folder itself is on the user's search path. ``install`` does what a
deken install does: it links ``~/Documents/Pd/externals/ganspacesynth`` to
the package's Pd folder (a symbolic link, so that upgrading the package
upgrades what Pd loads, and the engine bridge behind it still finds the
package it belongs to) and adds that folder to the search path in Pd's
preferences file (``~/.pdsettings`` on Linux and the BSDs,
``~/Library/Preferences/org.puredata.pd.plist`` on macOS), as Pd's own
Preferences > Path dialog would. Pd reads that file when it starts: quit Pd
before installing, and start it again after. ``uninstall`` removes the link
and that one search-path entry, and nothing else.
"""

import os
import plistlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import GanspacesynthError
from .paths import pd_path

LIBRARY = "ganspacesynth"
EXTERNAL_SUFFIXES = (".pd_linux", ".pd_darwin", ".dll", ".d_fat", ".d_amd64", ".l_amd64")


class PdInstallError(GanspacesynthError):
    """pd-install or pd-uninstall cannot do what was asked; nothing was changed."""


@dataclass
class Report:
    """What install or uninstall did, one line a step, for the CLI to print."""

    folder: Path
    lines: list = field(default_factory=list)

    def __str__(self):
        return "\n".join(self.lines)


def _home(home):
    return Path(home) if home is not None else Path.home()


def default_prefix(home=None, platform=None):
    """Pd's user folder for externals, as deken and Pd's GUI use it: ``~/Documents/Pd/externals``
    (Linux, macOS and Windows alike)."""
    return _home(home) / "Documents" / "Pd" / "externals"


def preferences_file(home=None, platform=None):
    """The file Pd reads its preferences (the search path among them) from, or None where
    Pd keeps them elsewhere (Windows: the registry)."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        return None
    if platform == "darwin":
        return _home(home) / "Library" / "Preferences" / "org.puredata.pd.plist"
    return _home(home) / ".pdsettings"


# ------------------------------------------------------------------ Pd's preferences


def _read_text_preferences(path):
    """(lines, entries): the file's lines, and key -> value as Pd reads them (first one wins)."""
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines() if path.exists() else []
    entries = {}
    for line in lines:
        key, colon, value = line.partition(":")
        if colon and key and " " not in key:
            entries.setdefault(key, value.strip(" \t"))
    return lines, entries


def _paths_from(entries):
    """The search path as Pd reads it: path1, path2, ... up to npath or the first gap."""
    try:
        count = int(entries.get("npath", "1000000"))
    except ValueError:
        count = 1000000
    paths = []
    for i in range(1, count + 1):
        value = entries.get(f"path{i}")
        if value is None:
            break
        paths.append(value)
    return paths


def _is_path_key(key):
    return key == "npath" or (key.startswith("path") and key[4:].isdigit())


def read_search_path(prefs):
    """The user's search path in Pd's preferences file ``prefs`` (text or macOS plist)."""
    prefs = Path(prefs)
    if prefs.suffix == ".plist":
        return _paths_from(_read_plist(prefs)[0])
    return _paths_from(_read_text_preferences(prefs)[1])


def _read_plist(prefs):
    if not prefs.exists():
        return {}, plistlib.FMT_BINARY
    data = prefs.read_bytes()
    fmt = plistlib.FMT_BINARY if data.startswith(b"bplist") else plistlib.FMT_XML
    try:
        return dict(plistlib.loads(data)), fmt
    except Exception as error:  # plistlib raises several kinds
        raise PdInstallError(f"{prefs}: cannot read Pd's preferences ({error})") from None


def _write_search_path(prefs, paths):
    prefs = Path(prefs)
    if prefs.is_symlink():
        prefs = prefs.resolve()  # a dotfiles link stays a link: its target is rewritten
    prefs.parent.mkdir(parents=True, exist_ok=True)
    if prefs.suffix == ".plist":
        entries, fmt = _read_plist(prefs)
        entries = {k: v for k, v in entries.items() if not _is_path_key(k)}
        entries["npath"] = str(len(paths))
        entries.update({f"path{i}": p for i, p in enumerate(paths, 1)})
        data = plistlib.dumps(entries, fmt=fmt)
    else:
        lines, _ = _read_text_preferences(prefs)
        new = [f"npath: {len(paths)}"] + [f"path{i}: {p}" for i, p in enumerate(paths, 1)]
        kept, at = [], None
        for line in lines:
            if _is_path_key(line.partition(":")[0]) and ":" in line:
                at = len(kept) if at is None else at
                continue
            kept.append(line)
        at = len(kept) if at is None else at
        data = ("\n".join(kept[:at] + new + kept[at:]) + "\n").encode("utf-8", "surrogateescape")
    # whole or not at all: Pd must never read half a file
    temporary = prefs.with_name(prefs.name + ".ganspacesynth-new")
    temporary.write_bytes(data)
    if prefs.exists():
        os.chmod(temporary, prefs.stat().st_mode & 0o7777)
    os.replace(temporary, prefs)


def _same(a, b):
    return os.path.normpath(os.path.expanduser(a)) == os.path.normpath(os.path.expanduser(b))


# ------------------------------------------------------------------ the link


def _ours(link):
    """Whether ``link`` is a symbolic link that pd-install made: to a package's Pd folder
    (``.../ganspacesynth/pd``), whether it still exists or not."""
    if not link.is_symlink():
        return False
    target = Path(os.readlink(link))
    return target.name == "pd" and target.parent.name == LIBRARY


def install(prefix=None, search_path=True, source=None, home=None, platform=None):
    """Link ``PREFIX/ganspacesynth`` to the package's Pd folder and add it to Pd's search path.

    ``prefix`` defaults to ``~/Documents/Pd/externals``; ``source`` to the
    installed package's Pd folder. Returns a Report; raises PdInstallError,
    having changed nothing, when it cannot."""
    platform = platform or sys.platform
    source = Path(source) if source is not None else pd_path()
    if not source.is_dir():
        raise PdInstallError(f"{source} does not exist: this copy of ganspacesynth was installed without "
                             "its Pd folder (were Pd's headers or CMake missing when it was built?)")
    source = source.resolve()
    prefix = Path(prefix).expanduser() if prefix is not None else default_prefix(home, platform)
    folder = prefix.absolute() / LIBRARY
    report = Report(folder)
    if ":" in str(folder) and not platform.startswith("win"):
        raise PdInstallError(f"{folder}: Pd's search path cannot hold a folder whose name has a ':'")
    if folder.is_symlink():
        if not _ours(folder):
            raise PdInstallError(f"{folder} is a link to {os.readlink(folder)}, which pd-install did not "
                                 "make: remove it first, or choose another --prefix")
    elif folder.exists():
        raise PdInstallError(f"{folder} exists and pd-install did not put it there (a deken install, or a "
                             "copy?): remove it first, or choose another --prefix")
    prefs = preferences_file(home, platform) if search_path else None
    paths = read_search_path(prefs) if prefs is not None else []  # fails before any change

    prefix.mkdir(parents=True, exist_ok=True)
    if folder.is_symlink():
        if folder.resolve() == source:
            report.lines.append(f"{folder} already links to {source}")
        else:
            folder.unlink()
    if not folder.is_symlink():
        try:
            folder.symlink_to(source, target_is_directory=True)
        except OSError as error:
            raise PdInstallError(f"cannot make the link {folder} -> {source}: {error.strerror}") from None
        report.lines.append(f"linked {folder} -> {source}")
    if not any(source.glob("ganspacesynth~.*")):
        report.lines.append("note: this install has no [ganspacesynth~] external (Pd's headers were "
                            "missing when it was built); Hallu and the pyext module are there")

    if not search_path:
        report.lines.append(f"Pd's search path left alone: add {folder} to it (Preferences > Path) "
                            f"or use [declare -path {folder}]")
    elif prefs is None:
        report.lines.append(f"add {folder} to Pd's search path in Preferences > Path "
                            "(pd-install does not edit Pd's preferences on this system)")
    elif any(_same(p, folder) for p in paths):
        report.lines.append(f"{folder} is already on Pd's search path ({prefs})")
    else:
        _write_search_path(prefs, paths + [str(folder)])
        report.lines.append(f"added {folder} to Pd's search path ({prefs}); "
                            "start Pd again to use it")
    return report


def uninstall(prefix=None, home=None, platform=None):
    """Remove what install made: the link (only if it is one pd-install makes) and its
    search-path entry."""
    platform = platform or sys.platform
    prefix = Path(prefix).expanduser() if prefix is not None else default_prefix(home, platform)
    folder = prefix.absolute() / LIBRARY
    report = Report(folder)
    if folder.is_symlink() and not _ours(folder):
        raise PdInstallError(f"{folder} links to {os.readlink(folder)}, which pd-install did not make: "
                             "left alone")
    if not folder.is_symlink() and folder.exists():
        raise PdInstallError(f"{folder} is not a link that pd-install made (a deken install, or a copy?): "
                             "left alone")
    prefs = preferences_file(home, platform)
    paths = read_search_path(prefs) if prefs is not None else []
    if folder.is_symlink():
        folder.unlink()
        report.lines.append(f"removed {folder}")
    else:
        report.lines.append(f"{folder} was not installed")
    kept = [p for p in paths if not _same(p, folder)]
    if len(kept) != len(paths):
        _write_search_path(prefs, kept)
        report.lines.append(f"removed {folder} from Pd's search path ({prefs})")
        if (prefs.suffix != ".plist" and not prefs.is_symlink()
                and prefs.read_text().split() == ["npath:", "0"]):
            prefs.unlink()  # the file install created, holding nothing else: Pd writes many keys
    return report
