"""Pd patches written from Python, and the native folder they need: shared by the
tests (through ``pd_helpers``) and the benchmarks, so it does not import pytest.

``locate_external`` finds the folder with [ganspacesynth~] and the C bridge:
GANSPACESYNTH_PD_PATH, else the installed package's pd folder, else a CMake
build of this checkout. Problems are a ``SetupError`` saying what to install.
"""

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXTERNAL = "ganspacesynth~.pd_darwin" if os.uname().sysname == "Darwin" else "ganspacesynth~.pd_linux"
INSTALL_HINT = ("Pd is not installed: install puredata-core and puredata-dev "
                "(Debian/Ubuntu: apt-get install puredata-core puredata-dev); CI installs them")


class SetupError(RuntimeError):
    """Pd, cmake or the native build is missing or failed."""


def cmake_build(build_dir, *options, build_type="RelWithDebInfo"):
    """Configure and build the native parts into build_dir; return its pd folder."""
    cmake = shutil.which("cmake")
    if not cmake:
        raise SetupError("cmake is needed to build the Pd external")
    build_dir = Path(build_dir)
    for command in ([cmake, "-S", str(REPO), "-B", str(build_dir), f"-DCMAKE_BUILD_TYPE={build_type}", *options],
                    [cmake, "--build", str(build_dir), "--parallel", "2"]):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            raise SetupError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    folder = build_dir / "pd"
    if not (folder / EXTERNAL).is_file():
        raise SetupError(f"the build made no {EXTERNAL} in {folder}: were Pd's headers found? ({INSTALL_HINT})")
    return folder


def locate_external(build_dir, build_type="RelWithDebInfo"):
    """GANSPACESYNTH_PD_PATH, else the installed package's pd folder, else a CMake build."""
    configured = os.environ.get("GANSPACESYNTH_PD_PATH")
    if configured:
        folder = Path(configured)
        if not (folder / EXTERNAL).is_file():
            raise SetupError(f"GANSPACESYNTH_PD_PATH={configured} holds no {EXTERNAL}")
        return folder
    import ganspacesynth

    installed = ganspacesynth.pd_path()
    if (installed / EXTERNAL).is_file():
        return installed
    return cmake_build(build_dir, build_type=build_type)


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

    def wall_clock_ticks(self, interval_ms):
        """A [metro 1] that, while on, bangs the returned trigger's left outlet every
        ``interval_ms`` of wall-clock time; returns (metro, trigger).

        Batch-mode Pd runs logical time far ahead of the clock on the wall, so
        a plain [metro interval_ms] would fire far too often: [realtime] is
        polled every logical millisecond instead, and restarted at each tick.
        """
        clock = self.obj("metro 1")
        poll = self.obj("t b")
        elapsed = self.obj("realtime")
        due = self.obj(f"moses {interval_ms}")
        tick = self.obj("t b b")
        self.chain(clock, poll)
        self.connect(poll, 0, elapsed, 1)
        self.connect(elapsed, 0, due)
        self.connect(due, 1, tick)
        self.connect(tick, 1, elapsed)
        return clock, tick

    def write(self, path):
        path = Path(path)
        path.write_text("#N canvas 0 50 900 700 12;\n" + "\n".join(self.lines + self.connections) + "\n")
        return path


PD_RATE = 44100  # Pd's sample rate with no audio device (batch mode, -noaudio without -r)


def read_wav(path, rate=PD_RATE):
    """Samples of a WAV file Pd wrote (float32), checking that Pd ran at ``rate``."""
    import soundfile

    audio, file_rate = soundfile.read(str(path), dtype="float32")
    assert file_rate == rate, f"{path}: {file_rate} Hz, expected {rate}"
    return audio


def relative_error(out, ref):
    """max|out - ref| / max|ref| between what Pd wrote and what the engine made."""
    import numpy as np

    assert out.shape == ref.shape, f"{out.shape} samples, the engine made {ref.shape}"
    return float(np.abs(out - ref).max() / np.abs(ref).max())


# the numbers of [ganspacesynth~]'s `stats` reply, in its order (the README's)
STATS_FIELDS = ("max_us", "mean_us", "silent_blocks", "swaps", "cpu_max_us", "cpu_mean_us",
                "starved_blocks", "blocks", "slow_blocks")


def parse_stats(reply):
    """A `stats ...` reply (without Pd's print prefix) as {field: number}."""
    words = reply.split()
    assert words[0] == "stats" and len(words) == 1 + len(STATS_FIELDS), reply
    return dict(zip(STATS_FIELDS, map(float, words[1:])))


THREAD_POLICIES = {0: "other", 1: "fifo", 2: "rr", 3: "batch", 5: "idle"}


@functools.lru_cache(maxsize=None)
def realtime_allowed():
    """Whether a process of this user may run at real-time priority, as `pd -rt` asks (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    probe = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def thread_table(pid):
    """{thread id: (name, nice, policy, real-time priority)} of a running process's threads, in
    the order of their ids, from Linux's /proc/PID/task/*/stat (empty once it has ended)."""
    table = {}
    try:
        tids = sorted(os.listdir(f"/proc/{pid}/task"), key=int)
    except FileNotFoundError:
        return table
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()  # fields[k] is stat's field k + 3
        policy = int(fields[38])
        table[int(tid)] = (name, int(fields[16]), THREAD_POLICIES.get(policy, str(policy)), int(fields[37]))
    return table
