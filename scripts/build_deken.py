"""Build the deken package of ganspacesynth's Pd side.

    python scripts/build_deken.py [--pd-folder DIR] [--output-dir dist] [--deken CMD]

writes ``ganspacesynth[vVERSION](OS-CPU-FLOATSIZE).dek`` with its
``.dek.txt`` (the objects) and ``.dek.sha256``, made by deken's own
``deken package`` from a folder ``ganspacesynth/`` that holds the installed
package's Pd folder (``ganspacesynth pd-path``: the external, the engine
bridge, the help patch, the Hallu abstractions and the pyext module) and a
README.txt saying how the external finds the Python engine.

deken is the ``deken`` package on PyPI (it needs Python 3.12 or newer):
``python3.12 -m venv ~/.venvs/deken && ~/.venvs/deken/bin/pip install deken``,
then ``--deken ~/.venvs/deken/bin/deken`` or put it on PATH.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LIBRARY = "ganspacesynth"

OBJECTS = [
    ("ganspacesynth~", "play the latent space of a GANSynth model: GANSpace coefficients in, audio out"),
    ("hallu", "Hallu: compose a sequence of GANSpace edits and render it (abstraction)"),
]

README = """\
ganspacesynth {version} for Pd: [ganspacesynth~], Hallu and the pyext module
==========================================================================

[ganspacesynth~] plays the latent space of a GANSynth model: GANSpace
coefficients in, audio out. Its help patch is ganspacesynth~-help.pd; the
Hallu composition tool is hallu/hallu.pd ([hallu]).

This folder is Pd's side only. The engine is Python (TensorFlow), in the
ganspacesynth Python package, which this package does not contain.

How the external finds the Python engine
----------------------------------------
[ganspacesynth~] loads libganspacesynth_bridge{bridge_suffix} from this folder. The
bridge starts an embedded Python: the one it was built with,
{python}
(GANSPACESYNTH_LIBPYTHON names another libpython of the same version).
That Python then imports the ganspacesynth package from, in order:

1. the folders in the environment variable GANSPACESYNTH_PYTHONPATH
   (separated by ':'), e.g. the site-packages of a virtual environment;
2. the site-packages folder around the bridge, when this folder is the
   package's own (not the case for a deken install);
3. that Python's own site-packages.

So, after installing this package with deken:

* install the Python package for that Python version, e.g. in a virtual
  environment:
      python3 -m venv ~/.venvs/ganspacesynth
      ~/.venvs/ganspacesynth/bin/pip install .
  (in a checkout of ganspacesynth's source: it builds this folder too)
* and start Pd with that environment's site-packages, e.g.
      GANSPACESYNTH_PYTHONPATH=~/.venvs/ganspacesynth/lib/python{python_version}/site-packages pd

With the Python package installed, `ganspacesynth pd-install` installs the
same Pd folder from the package itself (a link in ~/Documents/Pd/externals,
added to Pd's search path), where no variable is needed: prefer it.

Finding the objects
-------------------
[ganspacesynth~] and [hallu] are found when this folder is on Pd's search
path: accept deken's offer to add it, or add it in Preferences > Path, or
put [declare -path ganspacesynth] in your patch. The parts of Hallu
are in hallu/: [hallu/hallu-steps], [hallu/hallu-player]...

Without the native external, [pyext ganspacesynth_pyext ganspacesynth]
(pyext) takes the same messages.
"""


def find_deken(given=None):
    if given:
        return [given]
    found = shutil.which("deken")
    if found:
        return [found]
    raise SystemExit("build_deken.py: the deken tool is not on PATH: install it (it needs Python 3.12+): "
                     "python3.12 -m venv ~/.venvs/deken && ~/.venvs/deken/bin/pip install deken, then "
                     "pass --deken ~/.venvs/deken/bin/deken")


def libpython_of(folder):
    """The libpython path baked into the external (or None)."""
    for external in sorted(folder.glob("ganspacesynth~.*")):
        match = re.search(rb"(/[^\0\n]*libpython(\d+\.\d+)[^\0\n/]*)\0", external.read_bytes())
        if match:
            return match.group(1).decode(), match.group(2).decode()
    return None


def stage(pd_folder, into, version):
    """Copy the Pd folder (links followed, no caches) to into/ganspacesynth with the README."""
    target = into / LIBRARY
    shutil.copytree(pd_folder, target, symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    found = libpython_of(target)
    python = (f"{found[0]} (Python {found[1]})" if found
              else "(this build has no native external: only the pyext module)")
    bridge = sorted(target.glob("libganspacesynth_bridge.*"))
    (target / "README.txt").write_text(README.format(
        version=version, python=python, python_version=found[1] if found else "3.X",
        bridge_suffix=bridge[0].suffix if bridge else ".so"))
    objects = into / "objects.tsv"
    objects.write_text("".join(f"{name}\t{text}\n" for name, text in OBJECTS))
    return target, objects


def build(pd_folder, output_dir, version, deken):
    pd_folder = Path(pd_folder)
    if not pd_folder.is_dir():
        raise SystemExit(f"build_deken.py: {pd_folder} does not exist (is ganspacesynth installed with its "
                         "Pd folder? see `ganspacesynth pd-path`)")
    if not any(pd_folder.glob("ganspacesynth~.*")):
        raise SystemExit(f"build_deken.py: {pd_folder} has no [ganspacesynth~] external to package")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        source, objects = stage(pd_folder, Path(scratch), version)
        # The bridge is no Pd external, so deken cannot tell its float size:
        # it goes with the external's (Pd vanilla's 32-bit floats).
        command = [*deken, "package", "--name", LIBRARY, "--version", version, "--objects", str(objects),
                   "--default-floatsize", "32", "--no-sign-gpg", "--output-dir", str(output_dir.resolve()),
                   str(source)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"build_deken.py: deken package failed:\n{result.stdout}{result.stderr}")
    made = sorted(output_dir.glob(f"{LIBRARY}[[]v{version}[]](*).dek"))
    if not made:
        raise SystemExit(f"build_deken.py: deken made no .dek in {output_dir}:\n{result.stdout}{result.stderr}")
    return made


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pd-folder", help="the Pd folder to package (default: the installed package's, "
                                            "as `ganspacesynth pd-path` prints it)")
    parser.add_argument("--output-dir", default="dist", help="where the .dek files go (default dist)")
    parser.add_argument("--version", help="package version (default: the installed package's)")
    parser.add_argument("--deken", help="the deken command (default: deken on PATH)")
    args = parser.parse_args(argv)
    deken = find_deken(args.deken)
    import ganspacesynth

    folder = args.pd_folder or ganspacesynth.pd_path()
    for dek in build(folder, args.output_dir, args.version or ganspacesynth.__version__, deken):
        for path in (dek, dek.with_name(dek.name + ".txt"), dek.with_name(dek.name + ".sha256")):
            print(path)


if __name__ == "__main__":
    sys.exit(main())
