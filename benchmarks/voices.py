"""Memory and load time of many [ganspacesynth~] voices on one model.

    python benchmarks/voices.py                  # 1 and 8 voices, default and full-size models
    python benchmarks/voices.py --voices 1 4 8 --models default

For each model and voice count, starts Pd (no audio, no GUI, not batch mode,
so that it stays alive once everything is loaded) with a patch of N
``[ganspacesynth~]`` objects that all ``load`` the model at once, waits until
every one has replied ``loaded``, then reads Pd's resident memory (VmRSS)
and its peak (VmHWM) from /proc and ends Pd by its process id. Voices on one
model share one loaded copy (engine/ganspacesynth/shared_models.py), so the
memory of 8 should be close to that of 1.

The full-size model is the released architecture with random weights, saved
to a temporary folder. The external comes from GANSPACESYNTH_PD_PATH, the
installed package, or a CMake build in build/pd-bench.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))
from realtime import REPO, Reader, stop  # noqa: E402
from run import full_size_model  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from pd_patch import Patch, SetupError, locate_external  # noqa: E402

ALL_LOADED = "ALL-LOADED"


def voices_patch(model, voices):
    """N voices loading `model` at once; prints ALL-LOADED when the last one is ready."""
    p = Patch()
    load = p.obj("loadbang")
    message = p.msg(f"load {model} none")
    p.connect(load, 0, message)
    bang = p.obj("t b")   # `loaded N RATE LENGTH` would set the count, not step it
    count = p.obj("f")
    p.connect(bang, 0, count)
    plus = p.obj("+ 1")
    p.chain(count, plus)
    p.connect(plus, 0, count, 1)
    done = p.obj(f"sel {voices}")
    p.connect(plus, 0, done)
    p.connect(done, 0, p.obj(f"print {ALL_LOADED}"))
    errors = p.obj("print voice")
    for _ in range(voices):
        voice = p.obj("ganspacesynth~")
        p.connect(message, 0, voice)
        route = p.obj("route loaded")
        p.connect(voice, 1, route)
        p.connect(voice, 1, errors)
        p.connect(route, 0, bang)
    return p


def status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def measure(pd_dir, model, voices, timeout=600):
    """{'rss_mib', 'peak_mib', 'load_s'} of Pd with `voices` voices on `model`."""
    with tempfile.TemporaryDirectory() as tmp:
        patch = Path(tmp) / "voices.pd"
        voices_patch(model, voices).write(patch)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        command = ["pd", "-nrt", "-noprefs", "-nosound", "-nomidi", "-nogui", "-stderr",
                   "-path", str(pd_dir), str(patch)]
        started = time.monotonic()
        pd = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                              env=env, cwd=tmp)
        reader = Reader(pd.stderr)
        try:
            while reader.first(ALL_LOADED) is None:
                failed = any(line.startswith("voice: error") for _, line in reader.lines)
                if failed or pd.poll() is not None or time.monotonic() - started > timeout:
                    tail = "\n".join(line for _, line in reader.lines[-20:])
                    raise SetupError(f"Pd did not load {voices} voices of {model}:\n{tail}")
                time.sleep(0.05)
            loaded = reader.first(ALL_LOADED) - started
            time.sleep(1)   # let the voices' first clips settle
            memory = status(pd.pid)
        finally:
            stop(pd)
    return {"rss_mib": memory["VmRSS"], "peak_mib": memory["VmHWM"], "load_s": loaded}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voices", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--models", nargs="+", default=["default", "full-size"],
                        help="'default', 'full-size' (released architecture, random weights) or folders")
    args = parser.parse_args(argv)
    try:
        pd_dir = locate_external(REPO / "build" / "pd-bench")
    except SetupError as error:
        sys.exit(str(error))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    rows = ["| model | voices | resident memory | peak | Pd start to all loaded | memory / one voice |",
            "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            folder = name
            if name == "full-size":
                folder = Path(tmp) / "full-size"
                full_size_model().save(folder)
            one = None
            for voices in args.voices:
                try:
                    r = measure(pd_dir, folder, voices)
                except SetupError as error:
                    sys.exit(str(error))
                one = one or r["rss_mib"]
                rows.append(f"| {name} | {voices} | {r['rss_mib']:.0f} MiB | {r['peak_mib']:.0f} MiB | "
                            f"{r['load_s']:.1f} s | {r['rss_mib'] / one:.2f} |")
                print(rows[-1], flush=True)
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
