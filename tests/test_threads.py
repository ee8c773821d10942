"""TensorFlow's compute threads and the engine's priority.

The thread count reaches TensorFlow (read back with tf.config.threading in a
fresh engine process), bad counts are clear errors, and in real Pd the
worker and every thread it started run nicer than Pd's own thread.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from ganspacesynth.errors import GanspacesynthError
from ganspacesynth.instrument import Instrument
from ganspacesynth.threads import (THREADS_ENV, check_threads, default_threads, main_thread_is_realtime,
                                   requested_threads)
from pd_helpers import Patch, REPO, locate_external, pd_binary, printed
from pd_patch import realtime_allowed, thread_table

WORKER_NICE = 10  # as in ganspacesynth~.c


# --- the count -----------------------------------------------------------------

needs_realtime = pytest.mark.skipif(not realtime_allowed(),
                                    reason="needs Linux and permission for real-time priority")

DEFAULT_IN_PROCESS = r"""
import os, sys
from ganspacesynth.threads import default_threads, main_thread_is_realtime
if sys.argv[1] == "fifo":
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
print("DEFAULT", default_threads(), main_thread_is_realtime())
"""


def default_in_a_process(policy):
    """default_threads() in a fresh process whose main thread runs in `policy` ("fifo"
    or "other"), as Pd's thread does with and without -rt."""
    result = subprocess.run([sys.executable, "-c", DEFAULT_IN_PROCESS, policy], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.split("DEFAULT ")[-1].split()


def test_default_leaves_a_core_without_realtime_priority(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert default_in_a_process("other") == [str(max(1, (os.cpu_count() or 1) - 1)), "False"]
    if not main_thread_is_realtime():
        assert default_threads() == max(1, (os.cpu_count() or 1) - 1)
    assert requested_threads() == (default_threads(), False)
    monkeypatch.setenv(THREADS_ENV, "3")
    assert requested_threads() == (3, False)
    assert requested_threads(2) == (2, True)


@needs_realtime
def test_default_takes_every_core_under_realtime_priority():
    """A real-time main thread (Pd's with -rt) preempts the engine's whenever it wakes,
    so the default leaves it no core: every core computes."""
    assert default_in_a_process("fifo") == [str(os.cpu_count() or 1), "True"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", "", None, True, float("nan"), 5000])
def test_bad_counts_are_clear_errors(bad):
    with pytest.raises(GanspacesynthError, match=r"threads: expected a whole number of threads"):
        check_threads(bad)
    if bad is not None:
        with pytest.raises(GanspacesynthError, match="threads"):
            Instrument(threads=bad)


def test_bad_environment_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(GanspacesynthError, match=f"{THREADS_ENV}: expected a whole number of threads"):
        requested_threads()


ENGINE_PROCESS = r"""
import json, sys
import tensorflow as tf
from ganspacesynth.errors import GanspacesynthError
from ganspacesynth.instrument import Instrument

explicit = json.loads(sys.argv[1])
instrument = Instrument(threads=explicit)
instrument.load("default")
instrument.generate(16000)
report = {"intra": tf.config.threading.get_intra_op_parallelism_threads(),
          "inter": tf.config.threading.get_inter_op_parallelism_threads(),
          "same": instrument.set_threads(instrument.set_threads())}
try:
    instrument.set_threads(report["intra"] + 1)
except GanspacesynthError as error:
    report["later"] = str(error)
print("REPORT", json.dumps(report))
"""


def engine_process(explicit, environment):
    env = {k: v for k, v in os.environ.items() if k != THREADS_ENV}
    env.update(environment, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", ENGINE_PROCESS, json.dumps(explicit)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("REPORT ")][-1]
    return json.loads(line[len("REPORT "):])


@pytest.mark.slow
@pytest.mark.parametrize("explicit, environment, expected", [
    (None, {}, max(1, (os.cpu_count() or 1) - 1)),   # a Python whose main thread is not real-time
    (None, {THREADS_ENV: "2"}, 2),
    (1, {THREADS_ENV: "2"}, 1),
])
def test_the_count_reaches_tensorflow(explicit, environment, expected):
    report = engine_process(explicit, environment)
    assert report["intra"] == expected and report["inter"] == 1
    assert report["same"] == expected  # asking again for the count in effect is fine
    # a different count once TensorFlow has started: an error that says when it applies
    assert "cannot change" in report["later"] and "starts again" in report["later"]


@pytest.mark.slow
def test_default_keeps_a_count_given_before():
    """Other code (training's --threads) that set TensorFlow's count first keeps it."""
    code = ("import tensorflow as tf; tf.config.threading.set_intra_op_parallelism_threads(3); "
            "from ganspacesynth.threads import configure_threads; "
            "print('COUNT', configure_threads(), tf.config.threading.get_intra_op_parallelism_threads())")
    env = {k: v for k, v in os.environ.items() if k != THREADS_ENV}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "COUNT 3 3" in result.stdout


OFFLINE_COMMAND = r"""
import sys
import tensorflow as tf
from ganspacesynth.cli import build_parser, main

parser = build_parser()
marked = {name: getattr(parser.parse_args(args), "every_core", False)
          for name, args in (("info", ["info", "default"]), ("pd-path", ["pd-path"]))}
main(["info", "default"])
print("REPORT", tf.config.threading.get_intra_op_parallelism_threads(), marked["info"], marked["pd-path"])
"""


@pytest.mark.slow
@pytest.mark.parametrize("environment, expected", [({}, os.cpu_count()), ({THREADS_ENV: "1"}, 1)])
def test_offline_commands_take_every_core(environment, expected):
    """The command line's offline commands (here `info`) need no core for audio: every core,
    unless the environment says otherwise; commands without TensorFlow do not start it."""
    env = {k: v for k, v in os.environ.items() if k != THREADS_ENV}
    env.update(environment, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", OFFLINE_COMMAND], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"REPORT {expected} True False" in result.stdout, result.stdout[-2000:]


# --- in Pd ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def pd_dir():
    return locate_external(REPO / "build" / "pd-tests")


@pytest.mark.pd
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
@pytest.mark.parametrize("worker_nice, nicer", [("3", 3), ("twenty", WORKER_NICE), ("idle", 19)])
def test_threads_message_and_nice_in_pd(pd_dir, tmp_path, worker_nice, nicer):
    """`threads` before the first load is taken and replied; bad counts and a
    change after TensorFlow started are error replies; while the engine works
    every thread but Pd's own runs GANSPACESYNTH_WORKER_NICE nicer than Pd,
    or WORKER_NICE (also without it: tests/test_realtime.py) after saying
    why a bad value was not taken; "idle": 19 nicer and in SCHED_IDLE, where Pd's
    own thread stays in the normal policy."""
    patch = Patch()
    load = patch.obj("loadbang")
    gss = patch.obj("ganspacesynth~")
    show = patch.obj("print reply")
    route = patch.obj("route loaded ready")
    patch.connect(gss, 1, show)
    patch.connect(gss, 1, route)
    patch.chain(load, patch.msg("threads 0, threads 1.5, threads two, threads 1 2, threads 1, "
                                "load default"), gss)
    patch.chain(patch.obj("r next"), gss)
    # loaded: generate (slowed down by the test delay, before each part of
    # the clip and the whole, so that the threads are looked at while the
    # engine works); first ready: a different count, ask, generate again;
    # second ready: quit
    patch.chain(route, patch.msg("generate"), gss)
    bang = patch.obj("t b")
    count = patch.obj("f")
    patch.chain(bang, count)
    patch.connect(route, 1, bang)
    patch.connect(count, 0, patch.obj("+ 1"))
    patch.connect(count + 1, 0, count, 1)
    choose = patch.obj("sel 0 1")
    patch.connect(count, 0, choose)
    patch.connect(choose, 0, patch.msg("; next threads 2; next threads; next generate"))
    patch.connect(choose, 1, patch.msg("; pd quit"))
    path = patch.write(tmp_path / "threads.pd")

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", GANSPACESYNTH_TEST_DELAY="0.5",
               GANSPACESYNTH_WORKER_NICE=worker_nice)
    env.pop(THREADS_ENV, None)
    # Pd's real-time scheduler, no -batch: batch mode's thread never sleeps,
    # and on a busy machine the worker, 10 nicer, would load the model on a
    # small slice of a core (see pd_helpers.py).
    command = [pd_binary(), "-nrt", "-noprefs", "-noaudio", "-nomidi", "-nogui", "-stderr",
               "-path", str(pd_dir), str(path)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=env, cwd=str(tmp_path))
    busiest = {}
    deadline = time.monotonic() + 300
    try:
        while process.poll() is None and time.monotonic() < deadline:
            table = thread_table(process.pid)
            if len(table) > len(busiest):
                busiest = table
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.kill()
        stderr = process.communicate()[1]
    assert process.returncode == 0, stderr[-3000:]
    replies = printed(stderr, "reply")
    errors = [r for r in replies if r.startswith("error")]
    assert errors[0] == "error threads: 0 is not a whole number of threads from 1 to 1024"
    assert errors[1] == "error threads: 1.5 is not a whole number of threads from 1 to 1024"
    assert errors[2].startswith("error threads: expected nothing or a whole number")
    assert errors[3].startswith("error threads: expected nothing or a whole number")
    loaded = [i for i, r in enumerate(replies) if r.startswith("loaded")]
    assert loaded and "threads 1" in replies[:loaded[0]], replies
    assert any("cannot change" in e and "starts again" in e for e in errors[4:]), replies
    assert replies.count("threads 1") == 2, replies  # taken, then asked for
    assert len(errors) == 5, errors

    main_name, main_nice, main_policy, _ = busiest.pop(process.pid)
    expected = min(19, main_nice + nicer)
    if nicer == WORKER_NICE:
        assert ("GANSPACESYNTH_WORKER_NICE must be a whole number from 0 to 19 or idle, not \"twenty\": "
                f"the worker runs {WORKER_NICE} nicer than Pd") in stderr
    print(f"\nPd's thread: nice {main_nice} {main_policy}; {len(busiest)} other threads: "
          + ", ".join(f"{name} {nice} {policy}" for name, nice, policy, _ in sorted(busiest.values())))
    # the worker plus Python's and TensorFlow's threads
    assert len(busiest) >= 2, busiest
    assert {nice for _, nice, _, _ in busiest.values()} == {expected}, busiest
    assert main_policy == "other"
    wanted = "idle" if worker_nice == "idle" else "other"
    assert {policy for _, _, policy, _ in busiest.values()} == {wanted}, busiest


@pytest.mark.pd
@pytest.mark.slow
@pytest.mark.parametrize("priority", ["-rt", "-nrt"])
def test_default_count_in_pd_follows_its_priority(pd_dir, tmp_path, priority):
    """`threads` alone, before any load, replies the default in effect: every core
    in a Pd at real-time priority, one fewer in one without."""
    if priority == "-rt" and not realtime_allowed():
        pytest.skip("needs Linux and permission for real-time priority")
    patch = Patch()
    gss = patch.obj("ganspacesynth~")
    patch.chain(patch.obj("loadbang"), patch.msg("threads"), gss)
    patch.connect(gss, 1, patch.obj("print reply"))
    route = patch.obj("route threads error")
    patch.connect(gss, 1, route)
    done = patch.msg("; pd quit")
    patch.connect(route, 0, done)
    patch.connect(route, 1, done)
    path = patch.write(tmp_path / "default-threads.pd")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop(THREADS_ENV, None)
    # no -batch: its thread never sleeps, and at real-time priority it would hold a core
    command = [pd_binary(), priority, "-noprefs", "-noaudio", "-nomidi", "-nogui", "-stderr",
               "-path", str(pd_dir), str(path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(tmp_path),
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    cores = os.cpu_count() or 1
    expected = cores if priority == "-rt" else max(1, cores - 1)
    assert printed(result.stderr, "reply") == [f"threads {expected}"], result.stderr[-3000:]


# --- the pyext fallback -----------------------------------------------------------

@pytest.mark.slow
def test_pyext_threads_message(monkeypatch):
    """The pyext class takes `threads` like [ganspacesynth~]: bad counts are
    error replies, `threads` alone replies the count in effect."""
    import importlib.util

    import pyext_standin

    pd = pyext_standin.Pd(samplerate=16000)
    pd.install()
    try:
        spec = importlib.util.spec_from_file_location("ganspacesynth_pyext",
                                                      REPO / "pd_external" / "ganspacesynth_pyext.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        obj = pd.create(module.ganspacesynth, canvas_dir=REPO)
        obj.message("threads 0")
        obj.message("threads 1 2")
        obj.message("threads")
        # the second is refused on Pd's side at once, the first by the engine
        errors = sorted(" ".join(r.atoms) for r in obj.wait_for("error", 2, timeout=120))
        assert errors == ["threads: expected a whole number of threads from 1 to 1024, got 0",
                          "threads: expected nothing or a whole number of threads"]
        (reply,) = obj.wait_for("threads", timeout=120)
        assert int(reply.atoms[0]) >= 1
    finally:
        pd.close()
