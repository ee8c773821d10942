"""The pyext fallback inside real Pd with real pyext.

pyext (SopiMlab's fork of grrrr/py, the one GANSpaceSynth's users built) is not
part of this project: ``pyext_build.py`` builds it once from
``../shared/vendor/pyext`` (``GANSPACESYNTH_PYEXT_VENDOR`` overrides the folder)
against Debian's flext, and these tests skip, saying why, where that folder or
flext is missing (a fresh clone has no ``../shared``).

Pd runs with its real-time scheduler and no audio device (``-noaudio``, no
``-batch``), so that DSP runs on the clock on the wall while the engine works;
the test drives the patch over a TCP [netreceive] (FUDI, one message at a
time) and reads what Pd prints. After ``-lib py``, ``; pd quit`` does not
always end Pd (flext's exit handlers can hang), so Pd gets a grace period and
is then ended by its process id; a run is judged by what it printed.
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import pyext_build
from pd_patch import REPO, Patch, read_wav, realtime_allowed, relative_error, thread_table

pytestmark = [pytest.mark.pd, pytest.mark.slow]

PD_RATE = 44100           # -noaudio: Pd's default rate
TIMEOUT = 180.0
CRASH = re.compile(r"segmentation|signal 11|core dumped|Fatal Python|Traceback|"
                   r"Could not convert|no matching method|still referenced|not Pd's", re.I)


@pytest.fixture(scope="module")
def pyext_lib():
    try:
        return pyext_build.locate()
    except pyext_build.Unavailable as reason:
        pytest.skip(f"real pyext unavailable: {reason}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RealPd:
    """One Pd process running a patch with [pyext ganspacesynth_pyext CLASS ...]
    whose inlet 1 is fed from a TCP [netreceive]: ``send("obj load default")``
    reaches the object, ``send("dsp 1")`` and the patch's other channels the
    patch. Lines Pd prints are collected; ``wait`` finds one."""

    def __init__(self, pyext_dir, folder, patch, extra_paths=(), priority="-nrt", env_extra=None):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("GANSPACESYNTH_TEST_DELAY", None)
        env.pop("GANSPACESYNTH_WORKER_NICE", None)
        env.update(env_extra or {})
        command = ["pd", priority, "-noprefs", "-noaudio", "-nomidi", "-nogui", "-stderr",
                   "-lib", str(Path(pyext_dir) / "py"),
                   "-path", str(REPO / "pd_external"),
                   *[a for p in extra_paths for a in ("-path", str(p))],
                   str(patch)]
        self.lines = []
        self._cond = threading.Condition()
        self.process = subprocess.Popen(command, cwd=str(folder), env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True, errors="replace")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.socket = None

    def _read(self):
        for line in self.process.stderr:
            with self._cond:
                # without Pd's escapes ('number\\,' is the symbol 'number,')
                self.lines.append(re.sub(r"\\(.)", r"\1", line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def connect(self, port, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.socket = socket.create_connection(("127.0.0.1", port), timeout=5)
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise AssertionError("Pd's [netreceive] never listened:\n" + self.text()[-3000:])
                time.sleep(0.2)

    def send(self, text):
        self.socket.sendall((text + ";\n").encode())

    def text(self):
        with self._cond:
            return "\n".join(self.lines)

    def count(self, pattern):
        regex = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self.lines if regex.search(line))

    def wait(self, pattern, count=1, timeout=TIMEOUT):
        """The count-th line matching pattern (a regex), waiting for it; an error
        reply the pattern does not expect ends the wait at once."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            errors = sum(1 for line in self.lines if line.startswith("reply: error"))
            while True:
                found = [line for line in self.lines if regex.search(line)]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                unexpected = "error" not in pattern and errors < sum(
                    1 for line in self.lines if line.startswith("reply: error"))
                if left <= 0 or unexpected or self.process.poll() is not None:
                    raise AssertionError(f"no {count} x /{pattern}/ "
                                         f"({'Pd ended' if self.process.poll() is not None else 'timeout'}); "
                                         f"Pd printed:\n" + "\n".join(self.lines[-60:]))
                self._cond.wait(min(left, 0.5))

    def stop(self, grace=10.0):
        """Ask Pd to quit; end it by its pid when it has not after the grace period.
        Returns Pd's exit status, or None when it had to be ended."""
        if self.process.poll() is None and self.socket is not None:
            try:
                self.send("quit")
            except OSError:
                pass
        try:
            return self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            return None
        finally:
            if self.socket is not None:
                self.socket.close()
            self._reader.join(timeout=5)


def driver_patch(port, obj, arrays=(), extra=None):
    """A patch: [netreceive PORT] -> channels 'obj ...' (to the pyext object's
    inlet 1), 'dsp 0|1', 'quit', 'save ARRAY FILE' (32-bit WAV, prints 'saved'),
    'nan SELECTOR ARGS...' (the message with a float NaN appended); the object's
    replies print as 'reply: ...'."""
    patch = Patch()
    net = patch.obj(f"netreceive {port}")
    route = patch.obj("route obj dsp quit save nan sub canvas")
    trim = patch.obj("list trim")
    box = patch.obj(f"pyext ganspacesynth_pyext {obj}")
    show = patch.obj("print reply")
    dsp = patch.msg("; pd dsp $1")
    quit_ = patch.msg("; pd quit")
    as_list = patch.obj("list")
    save = patch.msg("write -wave -bytes 4 $2 $1")
    soundfiler = patch.obj("soundfiler")
    saved = patch.obj("print saved")
    nan = patch.obj("t a b")
    expr = patch.obj("expr sqrt(-1)")
    append = patch.obj("list append")
    nan_trim = patch.obj("list trim")
    patch.chain(net, route)
    patch.connect(route, 0, trim)
    patch.connect(trim, 0, box, 1)
    patch.connect(box, 0, show)
    patch.connect(route, 1, dsp)
    patch.connect(route, 2, quit_)
    patch.connect(route, 3, as_list)    # 'clip PATH' is a message 'clip': make it a list
    patch.connect(as_list, 0, save)
    patch.chain(save, soundfiler, saved)
    patch.connect(route, 4, nan)
    patch.connect(nan, 1, expr)
    patch.connect(expr, 0, append, 1)
    patch.connect(nan, 0, append)
    patch.connect(append, 0, nan_trim)
    patch.connect(nan_trim, 0, box, 1)
    # 'sub MSG' goes to [r sub-in], 'canvas MSG' to the subpatch [pd sub]
    to_sub = patch.obj("s sub-in")
    to_canvas = patch.obj("s pd-sub")
    patch.subpatch("sub")
    patch.connect(route, 5, to_sub)
    patch.connect(route, 6, to_canvas)
    for name, size in arrays:
        patch.obj(f"table {name} {size}")
    if extra:
        extra(patch)
    return patch


def run_pd(pyext_lib, tmp_path, obj, arrays=(), extra=None, extra_paths=(), priority="-nrt", env_extra=None):
    port = free_port()
    path = driver_patch(port, obj, arrays, extra).write(tmp_path / "driver.pd")
    pd = RealPd(pyext_lib, tmp_path, path, extra_paths, priority, env_extra)
    pd.connect(port)
    return pd


def finish(pd, with_status=False):
    """Pd must still run when the test ends, and have printed no crash; then it
    is asked to quit. How it ends after that is pyext's business: after -lib py,
    '; pd quit' may hang or crash in flext's exit handlers with any module (seen
    with a trivial one too), so the exit status is returned, not judged."""
    running = pd.process.poll() is None
    status = pd.stop()
    text = pd.text()
    print(f"Pd after '; pd quit': "
          f"{ {0: 'exited 0', None: 'ended by pid after the grace period'}.get(status, status) }")
    assert running, f"Pd ended during the test with status {status}:\n{text[-3000:]}"
    assert not CRASH.search(text), text[-4000:]
    return (text, status) if with_status else text


# --- tests ---------------------------------------------------------------------

def test_native_messages_and_own_pca(pyext_lib, tmp_path):
    """[ganspacesynth~]'s messages: 'load default' brings the model's own PCA and
    'generate' plays; clips equal the engine's; replies arrive on Pd's thread."""
    import ganspacesynth
    from ganspacesynth.instrument import resample

    model = ganspacesynth.load_model("default")
    own = ganspacesynth.load_pca("default")
    pd = run_pd(pyext_lib, tmp_path, "ganspacesynth", [("clip", 10), ("mix", 10)])
    try:
        pd.send("obj load default")
        pd.wait(rf"reply: loaded {own.n_components} 16000 64000")
        pd.send("obj generate")                               # layer mode, no other message
        pd.wait(r"reply: ready")
        pd.send("obj write clip")
        pd.wait(rf"reply: written clip {4 * PD_RATE}")
        pd.send(f"save clip {tmp_path / 'layer.wav'}")
        pd.wait(r"saved: ")
        pd.send("obj mode z")
        pd.send("obj z-random 3")
        pd.send("obj pitch 60")
        pd.send("obj array clip")
        pd.send("obj generate")
        pd.wait(r"reply: ready", 2)
        pd.send(f"save clip {tmp_path / 'z.wav'}")
        pd.wait(r"saved: ", 2)
        for text in ("steps-clear", "step 1 0", "step -1 1", "interp 1", "spacing 0.2",
                     "hallucinate mix"):
            pd.send(f"obj {text}")
        written = pd.wait(r"reply: written mix ")
        pd.send("obj load default none")
        pd.wait(r"reply: loaded 0 16000 64000")
        pd.send("obj stats")
        pd.wait(r"reply: stats 0 0 0 2")
    finally:
        text = finish(pd)
    assert "error" not in " ".join(line for line in text.splitlines() if line.startswith("reply:"))
    expected = resample(np.reshape(model.synthesize(own, [0.0]), -1), 16000, PD_RATE)
    assert relative_error(read_wav(tmp_path / "layer.wav"), expected) < 1e-4
    expected = resample(model.generate(model.random_z(1, seed=3), 60)[0], 16000, PD_RATE)
    assert relative_error(read_wav(tmp_path / "z.wav"), expected) < 1e-4
    assert int(written.split()[-1]) > PD_RATE


def test_bad_input_and_search_path(pyext_lib, tmp_path):
    """Errors are words naming their message, also printed to Pd's window; NaN is
    refused; names are found along Pd's -path; nothing crashes."""
    import shutil

    from ganspacesynth.model import resolve_model_path

    elsewhere = tmp_path / "models"
    shutil.copytree(resolve_model_path("default"), elsewhere / "mine")
    pd = run_pd(pyext_lib, tmp_path, "ganspacesynth", [("clip", 10)], extra_paths=[elsewhere])
    try:
        pd.send("obj generate")
        pd.wait(r"reply: error generate: no model loaded")
        assert pd.wait(r"ganspacesynth_pyext: error: generate: no model loaded")
        pd.send("obj load nowhere")
        pd.wait(r"reply: error load: .*nowhere")
        pd.send("obj frobnicate 1")
        pd.wait(r"reply: error unknown message 'frobnicate'")
        pd.send("obj coeffs 1 foo")
        pd.wait(r"reply: error coeffs: expected a number, got 'foo'")
        pd.send("nan coeffs 1")
        pd.wait(r"reply: error coeffs: got NaN or infinity \(pyext passes NaN as -2147483648\)")
        pd.send("nan pitch")
        pd.wait(r"reply: error pitch: got NaN")
        pd.send("obj write clip")
        pd.wait(r"reply: error write: no clip yet")
        pd.send("obj load mine")                           # only along Pd's -path
        pd.wait(r"reply: loaded \d+ 16000 64000")
        pd.send("obj coeffs 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 "
                "26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 "
                "52 53 54 55 56 57 58 59 60 61 62 63 64 65")
        pd.wait(r"reply: error coeffs: 65 coefficients given")
        pd.send("obj pitch 2000")
        pd.wait(r"reply: error pitch: 2000 is not a pitch")
        pd.send("obj hallucinate nowhere")
        pd.wait(r"reply: error hallucinate: no array named 'nowhere'")
    finally:
        finish(pd)


def default_pitch():
    import ganspacesynth

    return ganspacesynth.load_model("default").default_pitch


def test_original_gansynth_sequence(pyext_lib, tmp_path):
    """ganspacesynth.pd's sequence with [pyext ganspacesynth_pyext gansynth] (the
    original patches used pitch 32; the default model has other pitches)."""
    pitch = default_pitch()
    pd = run_pd(pyext_lib, tmp_path, "gansynth",
                [("amps", 8192), ("z", 256), ("z1", 256), ("zmid", 256), ("sound", 64000),
                 ("hallu", 1)])
    try:
        pd.send("obj synthesize z sound 32")
        pd.wait(r"reply: error synthesize: no model loaded \(send 'load CHECKPOINT' first\)")
        pd.send("obj load default")
        pd.wait(r"reply: list loaded 64000 16000|reply: loaded 64000 16000")
        pd.send("obj load_ganspace_components default amps")
        pd.wait(r"reply: loaded_pca")
        pd.send("obj randomize_z z z1")
        pd.wait(r"reply: randomized")
        pd.send(f"obj synthesize z sound {pitch}")
        pd.wait(r"reply: synthesized")
        pd.send(f"obj synthesize_noz sound {pitch} amps")
        pd.wait(r"reply: synthesized", 2)
        pd.send("obj slerp_z z z1 zmid 0.25")
        pd.wait(r"reply: slerped")
        pd.send("obj hallucinate hallu 2 2")
        pd.wait(r"reply: hallucinated 30400")
        pd.send(f"save amps {tmp_path / 'amps.wav'}")
        pd.wait(r"saved: ")
        pd.send("obj unload")
        pd.wait(r"reply: unloaded")
    finally:
        finish(pd)
    import ganspacesynth

    assert len(read_wav(tmp_path / "amps.wav")) == ganspacesynth.load_pca("default").n_components


def test_original_halluseq_sequence(pyext_lib, tmp_path):
    """hallu.pd's sequence with [pyext ganspacesynth_pyext halluseq edits]: the
    edits array is resized to the PCA's component count, as the original did."""
    import ganspacesynth

    count = ganspacesynth.load_pca("default").n_components
    pd = run_pd(pyext_lib, tmp_path, "halluseq edits",
                [("edits", 8192), ("out", 10), ("preview", 10)])
    try:
        pd.send("obj hallucinate_noz out")
        pd.wait(r"reply: error hallucinate_noz: no model loaded")
        pd.send("obj load default")
        pd.wait(r"reply: worker on 64000 16000")
        pd.send("obj load_ganspace_components default")
        pd.wait(r"reply: updated")
        pd.send(f"save edits {tmp_path / 'edits.wav'}")
        pd.wait(r"saved: ")
        for text in ("add_step", "add_step", "prev_step", "interp_steps 3", "sample_spacing 0.3",
                     "attack 0.1", "sustain 0.2", "release 0.6", "send_state"):
            pd.send(f"obj {text}")
        pd.wait(r"reply: settings release 0.6")
        pd.send("obj synthesize_noz preview 32 edits")
        pd.wait(r"reply: synthesized")
        pd.send("obj hallucinate_noz out")
        pd.wait(r"reply: hallucinated \d+")
        pd.send("obj unload")
        pd.wait(r"reply: worker off")
    finally:
        finish(pd)
    assert len(read_wav(tmp_path / "edits.wav")) == count


READERS = 20    # per array: Pd's thread spends more of its time inside DSP


def stress_readers(patch):
    """DSP that reads 'mix' and 'clip' all the time: READERS [tabread4~] per
    array, each swept by its own [phasor~] over the array's size (looked up
    every 7 ms), and a [tabplay~] retriggered every 50 ms; each array's level
    printed every second as 'level-NAME: DB', and a second count as 'alive: N'.
    With this load, the first pyext fallback (which wrote arrays from its own
    thread) crashed Pd with a segmentation fault after 23 s."""
    start = patch.obj("loadbang")
    for name, rate in (("mix", 0.7), ("clip", 1.3)):
        size_clock = patch.obj("metro 7")
        size = patch.obj(f"array size {name}")
        patch.connect(start, 0, size_clock)
        patch.chain(size_clock, size)
        out = patch.obj("dac~")
        for k in range(READERS):
            phasor = patch.obj(f"phasor~ {rate * (1 + k / 7):g}")
            scale = patch.obj("*~ 1")
            read = patch.obj(f"tabread4~ {name}")
            patch.chain(phasor, scale, read)
            patch.connect(size, 0, scale, 1)
            patch.connect(read, 0, out)
        env = patch.obj("env~")
        patch.connect(read, 0, env)
        level = patch.obj("f")
        level_clock = patch.obj("metro 1000")
        level_show = patch.obj(f"print level-{name}")
        patch.connect(env, 0, level, 1)
        patch.connect(start, 0, level_clock)
        patch.chain(level_clock, level, level_show)
        play_clock = patch.obj("metro 50")
        play = patch.obj(f"tabplay~ {name}")
        patch.connect(start, 0, play_clock)
        patch.chain(play_clock, play)
        patch.connect(play, 0, out, 1)
    alive = patch.obj("metro 1000")
    count = patch.obj("f")
    plus = patch.obj("+ 1")
    show = patch.obj("print alive")
    patch.connect(start, 0, alive)
    patch.chain(alive, count, plus, show)
    patch.connect(plus, 0, count, 1)


# Wall-clock seconds per stress run. The first fallback crashed in 2 of 3
# runs of 60 s; two runs of 30 s each keep the whole suite inside its 20
# minutes.
STRESS_SECONDS = 30.0


@pytest.mark.parametrize("run", [1, 2])
def test_stress_dsp_reads_while_compositions_are_rewritten(pyext_lib, tmp_path, run):
    """For STRESS_SECONDS of wall-clock time, DSP reads 'mix' and 'clip' while the module
    keeps rewriting them: Hallu compositions of alternating lengths into 'mix',
    generated clips into 'clip'. Pd must not crash (the first fallback did, in 2
    runs of 3, writing arrays from its own thread)."""
    pd = run_pd(pyext_lib, tmp_path, "ganspacesynth", [("mix", 10), ("clip", 10)],
                extra=stress_readers)
    compositions = 0
    try:
        pd.send("dsp 1")
        pd.send("obj load default")
        pd.wait(r"reply: loaded \d+ 16000 64000")
        pd.send("obj array clip")
        start = time.monotonic()
        alive_at_start = pd.count(r"^alive: ")
        while time.monotonic() - start < STRESS_SECONDS:
            steps = ["1 0", "-1 1"] if compositions % 2 else ["1 0", "0 -1", "-1 1", "2 2"]
            for text in ("steps-clear", *[f"step {s}" for s in steps],
                         f"interp {compositions % 3}", f"spacing {0.1 + 0.1 * (compositions % 2)}",
                         "hallucinate mix", f"z-random {compositions}", "mode z", "generate",
                         "mode layer"):
                pd.send(f"obj {text}")
            compositions += 1
            pd.wait(r"reply: written mix ", compositions)
            pd.wait(r"reply: ready", compositions)
        seconds = pd.count(r"^alive: ") - alive_at_start
        # the readings once there is something to read: before the first composition
        # (the model loading, seconds on a busy machine) both arrays are silent
        lines = pd.text().splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("reply: written mix "))
        levels = [float(line.split()[-1]) for line in lines[first:] if line.startswith("level-mix: ")]
        lengths = {line.split()[-1] for line in pd.text().splitlines()
                   if line.startswith("reply: written mix ")}
        elapsed = time.monotonic() - start
        assert pd.process.poll() is None, "Pd ended during the run"
    finally:
        text, status = finish(pd, with_status=True)
    heard = sum(1 for level in levels if level > 0)
    print(f"run {run}: {compositions} compositions of {len(lengths)} lengths in "
          f"{elapsed:.0f} s, DSP clock counted {seconds} s, [tabread4~] "
          f"heard sound in {heard} of {len(levels)} one-second readings; Pd's exit: "
          f"{ {0: 'quit', None: 'ended by pid after the grace period'}.get(status, status) }")
    assert heard > len(levels) // 2, "DSP did not read the arrays"
    assert compositions >= 2 and len(lengths) >= 2
    assert seconds >= STRESS_SECONDS - 5, text[-2000:]
    assert "reply: error" not in text, text[-3000:]


def test_deleting_the_object_idle_and_busy(pyext_lib, tmp_path):
    """Deleting the box (its canvas cleared) while idle and while the worker is
    generating: no 'Object is still referenced', no crash, Pd carries on."""
    pd = run_pd(pyext_lib, tmp_path, "ganspacesynth")

    def create():
        pd.send("canvas obj 10 10 r sub-in")
        pd.send("canvas obj 10 40 pyext ganspacesynth_pyext ganspacesynth")
        pd.send("canvas obj 10 70 print sub")
        pd.send("canvas connect 0 0 1 1")
        pd.send("canvas connect 1 0 2 0")

    try:
        create()
        pd.send("sub load default")
        pd.wait(r"^sub: loaded \d+")
        pd.send("canvas clear")                          # idle
        create()
        pd.send("sub load default")
        pd.wait(r"^sub: loaded \d+", 2)
        pd.send("sub steps-clear")
        for _ in range(6):
            pd.send("sub step 1 -1")
        pd.send("sub interp 8")
        pd.send("sub hallucinate nowhere")               # no such array: an error at once
        pd.wait(r"^sub: error hallucinate: no array named 'nowhere'")
        pd.send("sub generate")
        pd.send("canvas clear")                          # while generating
        pd.send("obj load default")                      # Pd and pyext carry on
        pd.wait(r"reply: loaded \d+")
    finally:
        text = finish(pd)
    assert "still referenced" not in text


def test_creation_arguments(pyext_lib, tmp_path):
    """[pyext ganspacesynth_pyext ganspacesynth default] loads (with the model's
    own PCA) and replies with no message; so does one made in a subpatch that is
    then cleared, after which names are still found along Pd's -path."""
    import shutil

    from ganspacesynth.model import resolve_model_path

    elsewhere = tmp_path / "models"
    shutil.copytree(resolve_model_path("default"), elsewhere / "mine")
    pd = run_pd(pyext_lib, tmp_path, "ganspacesynth default", extra_paths=[elsewhere])
    try:
        pd.wait(r"^reply: loaded [1-9]\d* 16000 64000")
        pd.send("canvas obj 10 40 pyext ganspacesynth_pyext ganspacesynth default")
        pd.send("canvas obj 10 70 print sub")
        pd.send("canvas connect 0 0 1 0")
        pd.wait(r"^sub: loaded [1-9]\d* 16000 64000")
        pd.send("canvas clear")
        pd.send("obj load mine")
        pd.wait(r"^reply: loaded [1-9]\d* 16000 64000", 2)
        pd.send("obj generate")
        pd.wait(r"^reply: ready")
    finally:
        finish(pd)


@pytest.mark.skipif(not realtime_allowed(), reason="needs Linux and permission for real-time priority")
@pytest.mark.parametrize("worker_nice, nicer, policy", [
    (None, 10, "other"), ("3", 3, "other"), ("twenty", 10, "other"), ("idle", 19, "idle")])
def test_engine_threads_run_below_a_realtime_pd(pyext_lib, tmp_path, worker_nice, nicer, policy):
    """With `pd -rt` Pd's thread runs at real-time priority, and a Python thread inherits
    its maker's policy: the worker steps down before the engine starts, as [ganspacesynth~]'s
    does (the normal policy, 10 nicer than Pd or GANSPACESYNTH_WORKER_NICE's count, "idle"
    the idle policy, a bad value said and ignored), so TensorFlow's threads (made from it)
    never compete with Pd's audio at its own priority; and `threads` replies the default
    for a real-time Pd, every core."""
    env = {} if worker_nice is None else {"GANSPACESYNTH_WORKER_NICE": worker_nice}
    pd = run_pd(pyext_lib, tmp_path, "ganspacesynth", priority="-rt", env_extra=env)
    try:
        pd.send("obj threads")
        threads = pd.wait(r"reply: threads ")
        before = thread_table(pd.process.pid)
        pd.send("obj load default")
        pd.wait(r"reply: loaded ")
        pd.send("obj generate")
        pd.wait(r"reply: ready")
        after = thread_table(pd.process.pid)
    finally:
        text = finish(pd)
    assert threads == f"reply: threads {os.cpu_count()}"
    warned = ("GANSPACESYNTH_WORKER_NICE must be a whole number from 0 to 19 or idle, not \"twenty\": "
              "the worker runs 10 nicer than Pd")
    assert (warned in text) == (worker_nice == "twenty"), text[-3000:]
    _, main_nice, main_policy, _ = after.pop(pd.process.pid)
    assert main_policy == "fifo", "Pd did not get real-time priority"
    engine = {tid: row for tid, row in after.items() if tid not in before}
    print("\nthreads the engine started:", sorted(engine.values()))
    assert len(engine) >= 2, engine   # TensorFlow's pools at least
    assert {(n, how) for _, n, how, _ in engine.values()} == {(min(19, main_nice + nicer), policy)}
