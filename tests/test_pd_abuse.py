"""Abuse [ganspacesynth~] in real Pd: thousands of messages in random order.

Missing files, NaN and infinite coefficients, generate storms, unload while
generating, the object deleted mid-generation and created again (dynamic
patching into [pd slot]), DSP switched on and off... Pd must keep going and
exit with status 0, and every error the object reports in Pd's window must
also reach its outlet as an `error` reply. At the end a fresh object must
still load and generate.

The messages come from a [qlist] stepped on wall-clock time (batch mode's
logical time would fire them all before the engine has done anything), and
only once the first object has loaded, so that the worker is busy while they
arrive. A second run does the same under AddressSanitizer.
"""

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pd_helpers import EXTERNAL, REPO, Patch, cmake_build, locate_external, printed, run_pd

pytestmark = [pytest.mark.pd, pytest.mark.slow]

FIXTURE = REPO / "tests" / "data" / "gansynth-reference"
FIXTURE_PCA = FIXTURE / "pca_conv0.pickle"
STEP_MS = 8  # wall-clock time between steps of the script


@pytest.fixture(scope="session")
def pd_dir():
    return locate_external(REPO / "build" / "pd-tests")


def create(args="", replies="replies"):
    """Messages that empty [pd slot] and put a [ganspacesynth~ args] in it."""
    # connecting the signal outlet to [dac~] makes Pd rebuild its DSP chain
    # with the new object in it, as it does for a musician's patch
    return ["pd-slot clear", "pd-slot obj 10 10 r gss", f"pd-slot obj 10 40 ganspacesynth~ {args}".strip(),
            f"pd-slot obj 10 80 s {replies}", "pd-slot obj 100 80 dac~", "pd-slot connect 0 0 1 0",
            "pd-slot connect 1 1 2 0", "pd-slot connect 1 0 3 0"]


def abuse_script(seed, n_messages):
    """Steps of messages (`receiver message...`), at least n_messages in all.

    Cheap messages come in random order; the expensive ones (a model load
    costs the worker a second or more on a busy machine, and the first
    generation after it as much again for TensorFlow's tracing) come a few
    times, at random places, so that the worker finishes some generations
    while the storm goes on.
    """
    rng = random.Random(seed)
    coefficients = lambda n: " ".join(f"{rng.uniform(-3, 3):.3f}" for _ in range(n))  # noqa: E731
    cheap = {
        "load missing": (3, lambda: [f"gss load /nonexistent/model-{rng.randrange(99)}"]),
        "PCA missing": (2, lambda: ["gss pca /nonexistent/pca.pickle"]),
        "coeffs": (10, lambda: [f"gss coeffs {coefficients(rng.randint(1, 40))}"]),
        "coeff": (4, lambda: [f"gss coeff {rng.randint(0, 40)} {rng.uniform(-3, 3):.2f}"]),
        "infinite": (2, lambda: ["gss coeffs 1 1e+39", "gss coeff 0 -1e+39"]),
        "NaN": (2, lambda: [rng.choice(["make-nan bang", "make-nan-coeff bang"])]),
        "z": (3, lambda: [rng.choice(["gss z-random", f"gss z-random {rng.randrange(9)}",
                                      "gss z-array zvec", "gss z-array nosuch"])]),
        "pitch": (3, lambda: [f"gss pitch {rng.choice([24, 60, 84, 13, 100, 60.5])}"]),
        "mode": (6, lambda: [f"gss mode {rng.choice(['layer', 'z', 'z', 'latent', 'sideways'])}"]),
        "storm": (8, lambda: [rng.choice(["gss generate", "gss bang"]) for _ in range(rng.randint(5, 20))]),
        "auto": (1, lambda: [f"gss auto {rng.randint(0, 1)}"]),
        "player": (8, lambda: [rng.choice(["gss play", "gss stop", "gss loop 1", "gss loop 0",
                                           "gss xfade 5", "gss write clip", "gss stats",
                                           "gss stats reset"]) for _ in range(rng.randint(1, 4))]),
        "hallu": (1, lambda: ["gss steps-clear", f"gss step {coefficients(3)}", f"gss step {coefficients(2)}",
                              "gss interp 1", "gss spacing 0.1", "gss hallucinate hallu"]),
        "unload while generating": (1, lambda: ["gss generate", "gss unload"]),
        "DSP": (2, lambda: [f"pd dsp {rng.randint(0, 1)}"]),
        "nonsense": (1, lambda: [rng.choice(["gss frobnicate 1", "gss pitch sixty", "gss write",
                                             "gss coeffs", "gss mode", "gss 1 2 3"])]),
    }
    expensive = [
        lambda: [f"gss load {FIXTURE}"],
        lambda: [f"gss load {FIXTURE} {FIXTURE_PCA}"],
        lambda: [f"gss pca {FIXTURE_PCA}"],
        lambda: ["gss generate", "pd-slot clear"],   # deleted while generating
        lambda: ["pd-slot clear"],
        lambda: ["gss mode z", "gss generate", "pd-slot clear"],
    ]
    names = list(cheap)
    weights = [cheap[name][0] for name in names]
    n_steps = n_messages // 3
    heavy_at = dict(zip(rng.sample(range(n_steps // 10, n_steps), len(expensive)), expensive))
    steps, alive, count = [], True, 0
    while count < n_messages:
        if not alive:
            step = create(rng.choices([str(FIXTURE), f"{FIXTURE} {FIXTURE_PCA}", ""], [2, 2, 1])[0])
            alive = True
        elif len(steps) in heavy_at:
            step = heavy_at[len(steps)]()
            alive = step[-1] != "pd-slot clear"
        else:
            step = cheap[rng.choices(names, weights)[0]][1]()
        steps.append(step)
        count += len(step)
    return steps, count


def write_qlist(path, steps):
    # Each step starts with a number: `next` stops there until the next step.
    path.write_text("".join("0;\n" + "".join(f"{m};\n" for m in step) for step in steps))
    return path


def abuse_patch(tmp_path, steps):
    script = write_qlist(tmp_path / "abuse.txt", steps)
    patch = Patch()
    patch.obj("table clip")
    patch.obj("table hallu")
    patch.obj("table zvec 256")
    # replies of whichever object lives in the slot
    replies = patch.obj("r replies")
    patch.connect(replies, 0, patch.obj("print reply"))
    # NaN only exists as a computed float
    for name, prefix in (("make-nan", "coeffs 0.5"), ("make-nan-coeff", "coeff 1")):
        source = patch.obj(f"r {name}")
        nan = patch.obj("expr sqrt(-1)")
        prepend = patch.obj(f"list prepend {prefix}")
        trim = patch.obj("list trim")
        patch.chain(source, nan, prepend, trim, patch.obj("s gss"))
    patch.subpatch("slot")
    # start: one object with the model; the script starts once it has loaded
    start = patch.obj("loadbang")
    first = patch.msg("; " + "; ".join(create(str(FIXTURE))) + "; pd dsp 1")
    patch.chain(start, first)
    loaded = patch.obj("route loaded")
    patch.connect(replies, 0, loaded)
    once = patch.obj("spigot 1")
    opened = patch.obj("t b b b")
    close = patch.msg("0")
    qlist = patch.obj("qlist")
    read = patch.msg(f"read {script}, rewind")
    # a step every STEP_MS of wall-clock time
    clock, step = patch.wall_clock_ticks(STEP_MS)
    patch.connect(loaded, 0, once)
    patch.chain(once, opened)
    patch.connect(opened, 2, close)
    patch.connect(close, 0, once, 1)
    patch.connect(opened, 1, read)
    patch.connect(read, 0, qlist)
    patch.connect(opened, 0, clock)
    next_ = patch.msg("next")
    patch.connect(step, 0, next_)
    patch.connect(next_, 0, qlist)
    # the end: a fresh object, answering to [r final], must still load and
    # generate; its `ready` asks for stats, and the stats reply quits
    ended = patch.obj("t b b")
    stop = patch.msg("0")
    patch.connect(qlist, 1, ended)
    patch.connect(ended, 1, stop)
    patch.connect(stop, 0, clock)
    final = patch.msg("; " + "; ".join(create(str(FIXTURE), replies="final"))
                      + "; pd dsp 1; gss mode z; gss generate")
    patch.connect(ended, 0, final)
    final_replies = patch.obj("r final")
    patch.connect(final_replies, 0, patch.obj("print reply"))
    route = patch.obj("route ready stats")
    patch.connect(final_replies, 0, route)
    patch.connect(route, 0, patch.msg("; gss stats"))
    patch.connect(route, 1, patch.msg("; pd quit"))
    return patch.write(tmp_path / "abuse.pd")


def check_run(code, stderr, n_messages):
    lines = stderr.splitlines()
    assert code == 0, f"Pd exited with status {code}:\n" + "\n".join(lines[-60:])
    replies = printed(stderr, "reply")
    console = [re.sub(r"\\(.)", r"\1", line[len("error: ganspacesynth~: "):])
               for line in lines if line.startswith("error: ganspacesynth~: ")]
    reply_errors = [r[len("error "):] for r in replies if r.startswith("error ")]
    others = [line for line in lines if line.startswith("error:") and "ganspacesynth~" not in line]
    assert not others, "errors from something else than the object:\n" + "\n".join(others[:20])
    assert sorted(console) == sorted(reply_errors), (
        "console and replies differ:\n" + "\n".join(sorted(set(console) ^ set(reply_errors))[:20]))
    assert not [line for line in lines if "AddressSanitizer" in line or line.startswith("bug:")]
    kinds = {}
    for text in reply_errors:
        key = re.sub(r"[-\d.]+|/\S+", "#", text)[:50]
        kinds[key] = kinds.get(key, 0) + 1
    print(f"\n{n_messages} messages; {len(reply_errors)} error replies, e.g.:")
    for key, n in sorted(kinds.items(), key=lambda item: -item[1])[:12]:
        print(f"  {n:5d}  {key}")
    done = {kind: sum(r.split()[0] == kind for r in replies) for kind in ("loaded", "ready", "written")}
    print("  replies besides errors: " + ", ".join(f"{n} {kind}" for kind, n in done.items()))
    assert reply_errors, "the script should have provoked errors"
    assert any(r.startswith("ready") for r in replies), "the final object never generated"
    stats = [r for r in replies if r.startswith("stats")]
    assert stats, "no stats from the final object"
    return stats[-1]


def test_abuse(pd_dir, tmp_path):
    steps, n_messages = abuse_script(seed=6, n_messages=3000)
    code, stderr = run_pd(abuse_patch(tmp_path, steps), pd_dir, timeout=400)
    print("final object:", check_run(code, stderr, n_messages))


@pytest.fixture(scope="session")
def asan_pd_dir():
    """The external built with -fsanitize=address (the bridge and Pd are not)."""
    return cmake_build(REPO / "build" / "pd-tests-asan", "-DGSS_SANITIZE=address")


def sanitizer_runtime(name):
    """The path of gcc's libasan.so / libtsan.so, for LD_PRELOAD into an uninstrumented pd."""
    gcc = subprocess.run(["gcc", f"-print-file-name=lib{name}.so"], capture_output=True, text=True)
    path = gcc.stdout.strip()
    if not path or not os.path.isabs(path) or not Path(path).exists():
        pytest.fail(f"lib{name}.so not found (install gcc's sanitizer runtime, e.g. lib{name}8 or "
                    f"lib{name}2)", pytrace=False)
    return str(Path(path).resolve())


def test_abuse_under_address_sanitizer(asan_pd_dir, tmp_path):
    # An uninstrumented pd needs the ASan runtime first in line. TensorFlow and
    # CPython allocate in ways ASan's leak checker and mismatch checks do not
    # understand; what matters here is our code's use of memory.
    env = {"LD_PRELOAD": sanitizer_runtime("asan"),
           "ASAN_OPTIONS": "detect_leaks=0:alloc_dealloc_mismatch=0:new_delete_type_mismatch=0:"
                           "detect_odr_violation=0:abort_on_error=0:exitcode=99"}
    steps, n_messages = abuse_script(seed=7, n_messages=1000)
    code, stderr = run_pd(abuse_patch(tmp_path, steps), asan_pd_dir, env=env, timeout=500)
    assert "ERROR: AddressSanitizer" not in stderr, stderr[stderr.find("ERROR: AddressSanitizer"):][:6000]
    print("final object:", check_run(code, stderr, n_messages))


STANDIN = REPO / "tests" / "native" / "engine_standin.c"


@pytest.fixture(scope="session")
def tsan_pd_dir(tmp_path_factory):
    """The external built with -fsanitize=thread, beside a stand-in engine: the C
    ABI of the bridge without Python (tests/native/engine_standin.c). CPython and
    TensorFlow take many minutes to start under ThreadSanitizer's interceptors,
    and the threads to watch are the external's own: Pd's, the perform
    routine's and the worker's."""
    built = cmake_build(REPO / "build" / "pd-tests-tsan", "-DGSS_SANITIZE=thread")
    folder = tmp_path_factory.mktemp("tsan-pd")
    shutil.copy(built / EXTERNAL, folder / EXTERNAL)
    bridge = "libganspacesynth_bridge." + ("dylib" if EXTERNAL.endswith("darwin") else "so")
    compiler = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([compiler, "-std=gnu11", "-O1", "-g", "-Wall", "-Werror", "-shared", "-fPIC",
                    "-fsanitize=thread", "-I", str(REPO / "bridge"), str(STANDIN),
                    "-o", str(folder / bridge), "-lm", "-lpthread"], check=True)
    return folder


def test_abuse_under_thread_sanitizer(tsan_pd_dir, tmp_path):
    """Hand-off, playback, request coalescing, unloading and deletion while
    generating, from Pd's thread, the perform routine and the worker, with
    ThreadSanitizer watching: no data race, no lock misused."""
    env = {"LD_PRELOAD": sanitizer_runtime("tsan"), "GSS_STANDIN_MS": "3",
           # Reports go to files of their own: Pd's stderr is the test's evidence.
           "TSAN_OPTIONS": f"log_path={tmp_path / 'tsan'} halt_on_error=0 report_signal_unsafe=0"}
    steps, n_messages = abuse_script(seed=8, n_messages=1500)
    code, stderr = run_pd(abuse_patch(tmp_path, steps), tsan_pd_dir, env=env, timeout=600)
    reports = "".join(path.read_text() for path in sorted(tmp_path.glob("tsan*")))
    assert "ThreadSanitizer" not in reports, reports[:8000]
    print("final object:", check_run(code, stderr, n_messages))


def test_thread_sanitizer_reports_reach_the_test(tsan_pd_dir, tmp_path):
    """The check above is not vacuous: a race put in on purpose is reported."""
    env = {"LD_PRELOAD": sanitizer_runtime("tsan"), "GSS_STANDIN_MS": "3", "GSS_STANDIN_RACE": "1",
           "TSAN_OPTIONS": f"log_path={tmp_path / 'tsan'} halt_on_error=0 report_signal_unsafe=0"}
    steps, _ = abuse_script(seed=9, n_messages=100)
    run_pd(abuse_patch(tmp_path, steps), tsan_pd_dir, env=env, timeout=600)
    reports = "".join(path.read_text() for path in sorted(tmp_path.glob("tsan*")))
    assert "WARNING: ThreadSanitizer: data race" in reports and "race_on_purpose" in reports


def wall_clock_wait(patch, ms):
    """(entry, exit): a bang into entry comes out of exit ms later on the wall
    clock ([delay] would wait on batch mode's racing logical time)."""
    entry = patch.obj("t b b")
    clock = patch.obj("metro 1")
    elapsed = patch.obj("realtime")
    poll = patch.obj("t b")
    due = patch.obj(f"moses {ms}")
    exit_ = patch.obj("t b b")
    stop = patch.msg("0")
    patch.connect(entry, 1, elapsed)        # reset the stopwatch...
    patch.connect(entry, 0, clock)          # ...then poll it every logical ms
    patch.chain(clock, poll)
    patch.connect(poll, 0, elapsed, 1)
    patch.connect(elapsed, 0, due)
    patch.connect(due, 1, exit_)
    patch.connect(exit_, 1, stop)
    patch.connect(stop, 0, clock)
    return entry, exit_


def test_deleting_or_quitting_while_generating(pd_dir, tmp_path):
    """Delete an object while its worker is inside a (deliberately slow)
    generation: Pd goes on at once, a new object works, and quitting while
    another generation runs still exits with status 0."""
    patch = Patch()
    replies = patch.obj("r replies")
    patch.connect(replies, 0, patch.obj("print reply"))
    patch.subpatch("slot")
    start = patch.obj("loadbang")
    patch.chain(start, patch.msg("; " + "; ".join(create(str(FIXTURE))) + "; pd dsp 1"))
    route = patch.obj("route loaded ready")
    patch.connect(replies, 0, route)
    # loaded #1: generate, wait 500 ms (the worker sleeps in the engine),
    # delete the object and make a second one
    loaded = patch.obj("t b")
    count = patch.obj("f")
    plus = patch.obj("+ 1")
    which = patch.obj("sel 1 2")
    patch.connect(route, 0, loaded)
    patch.chain(loaded, count, plus, which)
    patch.connect(plus, 0, count, 1)
    first = patch.msg("; gss mode z; gss generate")
    wait1, waited1 = wall_clock_wait(patch, 500)
    patch.connect(which, 0, first)
    patch.connect(which, 0, wait1)
    patch.connect(waited1, 0, patch.msg("; " + "; ".join(create(str(FIXTURE)))))
    # loaded #2: generate; on its `ready` start another generation and quit
    # 300 ms into it
    patch.connect(which, 1, patch.msg("; gss mode z; gss generate"))
    ready = patch.obj("t b b")
    patch.connect(route, 1, ready)
    patch.connect(ready, 1, patch.msg("; gss z-random 5; gss generate"))
    wait2, waited2 = wall_clock_wait(patch, 300)
    patch.connect(ready, 0, wait2)
    patch.connect(waited2, 0, patch.msg("; pd quit"))
    code, stderr = run_pd(patch.write(tmp_path / "delete.pd"), pd_dir,
                          env={"GANSPACESYNTH_TEST_DELAY": "2"})
    replies = printed(stderr, "reply")
    assert code == 0, stderr[-3000:]
    assert [r.split()[0] for r in replies] == ["loading", "loaded", "loading", "loaded", "ready"], replies
