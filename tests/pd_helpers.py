"""Running real Pd in batch mode from tests: finding or building [ganspacesynth~],
writing patches, running them and reading what they printed.

Batch mode (``pd -batch``) runs the scheduler as fast as the CPU allows, so
logical time races ahead of the clock on the wall: patches never wait with
[delay] for the engine, they chain on its replies (``loaded``, ``ready``...)
and end themselves with ``; pd quit``.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXTERNAL = "ganspacesynth~.pd_darwin" if os.uname().sysname == "Darwin" else "ganspacesynth~.pd_linux"
INSTALL_HINT = ("Pd is not installed: install puredata-core and puredata-dev "
                "(Debian/Ubuntu: apt-get install puredata-core puredata-dev); CI installs them")


def pd_binary():
    pd = shutil.which("pd")
    if not pd:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return pd


def cmake_build(build_dir, *options):
    """Configure and build the native parts into build_dir; return its pd folder."""
    cmake = shutil.which("cmake")
    if not cmake:
        pytest.fail("cmake is needed to build the Pd external for the tests", pytrace=False)
    build_dir = Path(build_dir)
    for command in ([cmake, "-S", str(REPO), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=RelWithDebInfo", *options],
                    [cmake, "--build", str(build_dir), "--parallel", "2"]):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            pytest.fail(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
                        pytrace=False)
    folder = build_dir / "pd"
    if not (folder / EXTERNAL).is_file():
        pytest.fail(f"the build made no {EXTERNAL} in {folder}: were Pd's headers found? "
                    f"({INSTALL_HINT})", pytrace=False)
    return folder


def locate_external(build_dir):
    """GANSPACESYNTH_PD_PATH, else the installed package's pd folder, else a CMake build."""
    configured = os.environ.get("GANSPACESYNTH_PD_PATH")
    if configured:
        folder = Path(configured)
        if not (folder / EXTERNAL).is_file():
            pytest.fail(f"GANSPACESYNTH_PD_PATH={configured} holds no {EXTERNAL}", pytrace=False)
        return folder
    import ganspacesynth

    installed = ganspacesynth.pd_path()
    if (installed / EXTERNAL).is_file():
        return installed
    return cmake_build(build_dir)


def _escape(text):
    return text.replace("\\", "\\\\").replace("$", "\\$").replace(",", " \\,").replace(";", " \\;")


class Patch:
    """A patch written object by object; obj/msg return the index connect() wants."""

    def __init__(self):
        self.lines = []
        self.connections = []

    def _add(self, kind, text):
        n = len(self.lines)
        self.lines.append(f"#X {kind} {10 + 200 * (n % 4)} {10 + 30 * (n // 4)} {_escape(text)};")
        return n

    def obj(self, text):
        return self._add("obj", text)

    def subpatch(self, name):
        """An empty [pd name], to fill by dynamic patching through `pd-name`."""
        n = len(self.lines)
        self.lines.append(f"#N canvas 0 50 450 300 {name} 0;\n#X restore {10 + 200 * (n % 4)} "
                          f"{10 + 30 * (n // 4)} pd {name};")
        return n

    def msg(self, text):
        return self._add("msg", text)

    def connect(self, source, outlet, sink, inlet=0):
        self.connections.append(f"#X connect {source} {outlet} {sink} {inlet};")

    def chain(self, *indices):
        """Connect outlet 0 of each to inlet 0 of the next."""
        for a, b in zip(indices, indices[1:]):
            self.connect(a, 0, b, 0)

    def write(self, path):
        path = Path(path)
        path.write_text("#N canvas 0 50 900 700 12;\n" + "\n".join(self.lines + self.connections) + "\n")
        return path


def run_pd(patch, pd_dir, env=None, timeout=240, extra=(), clean_env=False):
    """Run a patch in batch mode; return (returncode, stderr text).

    env adds to the test's environment, or replaces it with clean_env."""
    environment = {} if clean_env else dict(os.environ)
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    environment.update(env or {})
    # -nrt: no real-time priority and no watchdog process (which signals a
    # batch-mode Pd that does not ping it); -noprefs: the user's settings
    # (paths, startup libraries) stay out of the test; -noaudio: batch mode
    # computes DSP without a sound card.
    command = [pd_binary(), "-nrt", "-noprefs", "-noaudio", "-nomidi", "-nogui", "-batch", "-stderr",
               "-path", str(pd_dir),
               *extra, str(patch)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env=environment, cwd=str(Path(patch).parent))
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"Pd did not quit within {timeout} s; it printed:\n"
                    f"{(expired.stderr or b'')[-4000:]!r}", pytrace=False)
    return result.returncode, result.stderr


def printed(stderr, prefix):
    """The lines a [print PREFIX] printed, without the prefix and with Pd's escapes removed."""
    out = []
    for line in stderr.splitlines():
        if line.startswith(prefix + ":"):
            out.append(re.sub(r"\\(.)", r"\1", line[len(prefix) + 1:].strip()))
    return out
