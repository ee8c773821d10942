"""How long [ganspacesynth~]'s perform routine takes while the engine works.

    python benchmarks/pd_perform.py                 # the small test fixture, ~1 minute
    python benchmarks/pd_perform.py --model default --pca default --changes 200

Runs real Pd in batch mode with DSP on. Once the model has loaded, the
object plays its clip in a loop with `auto 1`, and the patch changes a
coefficient (or, without a PCA, z) every --interval ms of wall-clock time:
each change regenerates on the worker thread while the perform routine keeps
playing and swaps the new clip in with a crossfade. At the end `stats` gives
the perform routine's worst and mean time per 64-sample block.

The worst block is wall-clock time and includes the OS preempting Pd's
thread; batch-mode Pd is an ordinary busy thread competing with
TensorFlow's. On Linux the script also counts the voluntary context switches
of Pd's main thread during the measurement: a scheduler thread that waited
on a lock or on the engine would switch voluntarily, one that was only
preempted would not.

Pd comes from PATH; the external from GANSPACESYNTH_PD_PATH, the installed
package, or a CMake build in build/pd-bench.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "data" / "gansynth-reference"
sys.path.insert(0, str(REPO / "tests"))
from pd_patch import Patch, SetupError, locate_external, parse_stats  # noqa: E402  (the tests' patch writer)


def bench_patch(model, pca, changes, interval_ms):
    p = Patch()
    load = p.obj("loadbang")
    setup = p.msg(f"; pd dsp 1; gss load {model} {pca or ''}".rstrip()
                  + ("" if pca else "; gss mode z"))
    receive = p.obj("r gss")
    gss = p.obj("ganspacesynth~")
    dac = p.obj("dac~")
    p.chain(load, setup)
    p.chain(receive, gss, dac)
    show = p.obj("print reply")
    p.connect(gss, 1, show)
    route = p.obj("route loaded ready stats")
    p.connect(gss, 1, route)
    # `loaded`: the first clip, whose `ready` (TensorFlow traces the graph
    # first) starts the measurement: loop it with auto on, reset the stats
    p.connect(route, 0, p.msg("; gss generate, play, loop 1, xfade 10"))
    once = p.obj("spigot 1")
    start = p.obj("t b b b")
    close = p.msg("0")
    p.connect(route, 1, once)
    p.connect(once, 0, start)
    p.connect(start, 2, close)
    p.connect(close, 0, once, 1)
    p.connect(start, 1, p.msg("; gss auto 1, stats reset"))
    started = p.msg("start")
    p.connect(start, 1, started)
    p.connect(started, 0, p.obj("print bench"))
    # a change every interval_ms of wall-clock time (logical time races ahead)
    clock, tick = p.wall_clock_ticks(interval_ms)
    p.connect(start, 0, clock)
    value = p.obj("random 601")
    scaled = p.obj("expr ($f1 - 300) / 100")
    index = p.obj("random 8")
    pack = p.obj("pack f f")
    if pca:
        change = p.msg("; gss coeff $1 $2")
        p.connect(tick, 0, value)
        p.chain(value, scaled)
        p.connect(scaled, 0, pack, 1)
        p.connect(tick, 0, index)
        p.chain(index, pack, change)
    else:
        p.connect(tick, 0, p.msg("; gss z-random"))
    # after `changes` changes: stop, ask for stats; the stats reply quits
    count = p.obj("f")
    plus = p.obj("+ 1")
    enough = p.obj(f"sel {changes}")
    p.connect(tick, 0, count)
    p.chain(count, plus, enough)
    p.connect(plus, 0, count, 1)
    # then the next `ready` (the last change's clip) asks for stats
    stop = p.obj("t b b")
    off = p.msg("0")
    last = p.obj("spigot")
    p.connect(enough, 0, stop)
    p.connect(stop, 1, off)
    p.connect(off, 0, clock)
    on = p.msg("1")
    p.connect(stop, 0, on)
    p.connect(on, 0, last, 1)
    p.connect(route, 1, last)
    p.connect(last, 0, p.msg("; gss stats"))
    ended = p.msg("end")
    p.connect(route, 2, ended)
    p.connect(ended, 0, p.obj("print bench"))
    p.connect(route, 2, p.msg("; pd quit"))
    return p


def voluntary_switches(pid):
    try:
        text = Path(f"/proc/{pid}/task/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"voluntary_ctxt_switches:\s+(\d+)", text)
    return int(match.group(1)) if match else None


def _shown(path):
    """A path as the figures should show it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(FIXTURE), help="model folder or 'default' (default: test fixture)")
    parser.add_argument("--pca", default=None,
                        help="PCA file (default: the fixture's when the model is the fixture)")
    parser.add_argument("--changes", type=int, default=60, help="coefficient changes (default 60)")
    parser.add_argument("--interval", type=int, default=50, help="ms of wall clock between changes (default 50)")
    args = parser.parse_args(argv)
    pca = args.pca or (str(FIXTURE / "pca_conv0.pickle") if args.model == str(FIXTURE) else None)
    if not shutil.which("pd"):
        sys.exit("pd is not installed (Debian/Ubuntu: apt-get install puredata-core puredata-dev)")
    try:
        pd_dir = locate_external(REPO / "build" / "pd-bench", build_type="Release")
    except SetupError as error:
        sys.exit(str(error))

    with tempfile.TemporaryDirectory() as tmp:
        patch = Path(tmp) / "bench.pd"
        bench_patch(args.model, pca, args.changes, args.interval).write(patch)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        process = subprocess.Popen(["pd", "-nrt", "-noprefs", "-noaudio", "-nomidi", "-nogui", "-batch",
                                    "-stderr", "-path", str(pd_dir), str(patch)],
                                   stderr=subprocess.PIPE, text=True, env=env)
        marks, lines = {}, []

        def read():
            for line in process.stderr:
                lines.append(line.rstrip())
                if line.startswith("bench: "):
                    marks[line.split()[1]] = (time.perf_counter(), voluntary_switches(process.pid))

        reader = threading.Thread(target=read)
        reader.start()
        code = process.wait(timeout=900)
        reader.join()

    replies = [line[len("reply: "):] for line in lines if line.startswith("reply: ")]
    errors = [r for r in replies if r.startswith("error")]
    stats = [r for r in replies if r.startswith("stats")]
    if code or not stats or errors:
        print("\n".join(lines[-40:]))
        sys.exit(f"Pd exited with status {code}; errors: {errors[:5]}")
    perform = parse_stats(stats[-1])
    ready = [float(r.split()[1]) for r in replies if r.startswith("ready")][1:]  # not the warm-up
    (t0, v0), (t1, v1) = marks["start"], marks["end"]
    print(f"model {_shown(args.model)}" + (f", PCA {_shown(pca)}" if pca else " (z mode)"))
    print(f"{args.changes} changes, one every {args.interval} ms, over {t1 - t0:.1f} s of wall clock")
    print(f"generations finished: {len(ready)} (the others coalesced), "
          f"median {statistics.median(ready):.0f} ms on the worker" if ready else "no generation finished")
    print(f"clips swapped in with a crossfade: {perform['swaps']:.0f}; blocks played silent for want of "
          f"a clip: {perform['silent_blocks']:.0f}")
    print(f"perform routine per 64-sample block: worst {perform['max_us']:.1f} us, mean "
          f"{perform['mean_us']:.3f} us (wall clock); worst {perform['cpu_max_us']:.1f} us, mean "
          f"{perform['cpu_mean_us']:.3f} us of the thread's own CPU time; {perform['slow_blocks']:.0f} of "
          f"{perform['blocks']:.0f} blocks over 50 us of CPU")
    if v0 is not None and v1 is not None:
        print(f"voluntary context switches of Pd's main thread meanwhile: {v1 - v0}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
