"""Running real Pd without GUI from tests: finding or building [ganspacesynth~]
and writing patches (``pd_patch``, with its errors as test failures), running
them and reading what they printed.

Batch mode (``pd -batch``) runs the scheduler as fast as the CPU allows, so
logical time races ahead of the clock on the wall: patches never wait with
[delay] for the engine, they chain on its replies (``loaded``, ``ready``...)
and end themselves with ``; pd quit``.

Batch mode's thread never sleeps, and the engine's worker runs 10 nicer than
Pd (as it should beside a real-time Pd): on a machine busy with other work
(the other test worker, say) the worker then gets a tenth of a core, and a
model load or a search takes many times its CPU time (the nonblocking test:
17 s alone, 133 s beside one busy process). So batch runs set
``GANSPACESYNTH_WORKER_NICE=0``, as a user rendering with ``pd -batch`` would,
unless the test sets it. Tests that need the racing scheduler (logical time
ahead of the wall clock, the perform routine called without pause) use batch
mode; the others pass ``batch=False`` and run Pd's real-time scheduler without
an audio device, which sleeps between ticks. The patches are the same: they
chain on replies either way.
"""

import contextlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import pd_patch
from pd_patch import EXTERNAL, INSTALL_HINT, REPO, Patch  # noqa: F401  (the tests' imports)


def pd_binary():
    pd = shutil.which("pd")
    if not pd:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return pd


@contextlib.contextmanager
def _setup_errors_fail_the_test():
    try:
        yield
    except pd_patch.SetupError as error:
        pytest.fail(str(error), pytrace=False)


def cmake_build(build_dir, *options):
    with _setup_errors_fail_the_test():
        return pd_patch.cmake_build(build_dir, *options)


def locate_external(build_dir):
    with _setup_errors_fail_the_test():
        return pd_patch.locate_external(build_dir)


def run_pd(patch, pd_dir, env=None, timeout=240, extra=(), clean_env=False, batch=True):
    """Run a patch in batch mode, or with the real-time scheduler (batch=False);
    return (returncode, stderr text).

    env adds to the test's environment, or replaces it with clean_env."""
    environment = {} if clean_env else dict(os.environ)
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if batch:
        environment.setdefault("GANSPACESYNTH_WORKER_NICE", "0")
    environment.update(env or {})
    # -nrt: no real-time priority and no watchdog process (which signals a
    # batch-mode Pd that does not ping it); -noprefs: the user's settings
    # (paths, startup libraries) stay out of the test; -noaudio: DSP without
    # a sound card (in batch mode as fast as it goes, else on the wall clock).
    command = [pd_binary(), "-nrt", "-noprefs", "-noaudio", "-nomidi", "-nogui", *(["-batch"] if batch else []),
               "-stderr", "-path", str(pd_dir),
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
