"""ganspacesynth's benchmark table: one command, figures as median ± spread.

    python benchmarks/run.py            # default settings: a few minutes on 2 cores
    python benchmarks/run.py --repeats 9 --only generation

Each figure is the median of ``--repeats`` runs after a warm-up, with the
spread (max - min) beside it. The *floor* is the arithmetic of one clip of the
released architecture divided by the rate at which TensorFlow, the engine's
own math library, multiplies large float32 matrices on the same threads,
measured in the same run: a clip cannot be generated faster than its FLOPs at
that rate. The same floor is given for each part a knob turn waits for
(``Instrument.generate_parts``), its multiply-adds counted from the graph
TensorFlow runs. Tests check behaviour; speed is only ever measured here.

    python benchmarks/run.py --threads 1 --only generation --only parts
"""

import argparse
import functools
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import ganspacesynth  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parent / "engine"))


def timings(fn, repeats, warmup=1):
    """Seconds of each of ``repeats`` runs of ``fn()``, after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def measure(fn, repeats, warmup=1):
    """Median and spread (max - min) in seconds of ``fn()`` over ``repeats`` runs."""
    times = timings(fn, repeats, warmup)
    return statistics.median(times), max(times) - min(times)


class Table:
    def __init__(self):
        self.rows = []
        self.relayed = []  # (script, lines) of the benchmark scripts run from here

    def add(self, name, value, spread=None, unit="", note=""):
        self.rows.append((name, value, spread, unit, note))
        text = _format(value, spread, unit)
        print(f"  {name:<52} {text:>22}  {note}", flush=True)

    def markdown(self):
        lines = ["| measurement | value | note |", "|---|---|---|"]
        for name, value, spread, unit, note in self.rows:
            lines.append(f"| {name} | {_format(value, spread, unit)} | {note} |")
        for script, output in self.relayed:
            lines += ["", f"`benchmarks/{script}`:", "", "```", *output, "```"]
        return "\n".join(lines)


def _format(value, spread, unit):
    if isinstance(value, str):
        return value
    digits = 3 if abs(value) < 10 else 1
    text = f"{value:.{digits}f}"
    if spread is not None:
        text += f" ± {spread:.{digits}f}"
    return f"{text} {unit}".strip()


def machine_line():
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import tensorflow as tf

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"TensorFlow {tf.__version__}, numpy {np.__version__}, load average {load:.2f} at start")


def clip_flops(config, fused=True):
    """Multiply-adds x 2 of every conv of one clip (and the last to_rgb), from the architecture;
    ``fused`` as in ``ModelConfig.multiply_adds``."""
    return 2 * sum(config.multiply_adds(block, layer, fused)
                   for block in range(1, config.num_blocks + 1)
                   for layer in ["conv0", "conv1"] + (["to_rgb"] if block == config.num_blocks else []))


@functools.lru_cache(maxsize=None)
def matmul_rate(repeats):
    """TensorFlow's float32 matrix-product rate (FLOP/s, and its spread) on the threads it was
    given: the engine's convolutions use the same library and threads. (Not numpy: its BLAS
    may be built for another CPU than TensorFlow's kernels.) Measured once per run, so that
    every floor in the table is over the same rate."""
    import tensorflow as tf

    n = 2048
    a = tf.constant(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))
    b = tf.constant(np.random.default_rng(1).standard_normal((n, n)).astype(np.float32))
    product = tf.function(tf.linalg.matmul)
    flops = 2 * n ** 3
    times = timings(lambda: product(a, b).numpy(), repeats, warmup=2)
    return flops / statistics.median(times), flops / min(times) - flops / max(times)


def graph_multiply_adds(function, *specs):
    """Multiply-adds of the convolutions and matrix products in ``function``'s graph for
    inputs of ``specs``: exactly the arithmetic TensorFlow runs, cut rows included."""
    graph = function.get_concrete_function(*specs).graph
    total = 0
    for op in graph.get_operations():
        if op.type == "Conv2D":
            kh, kw, cin, _ = op.inputs[1].shape
            total += int(np.prod(op.outputs[0].shape[1:])) * kh * kw * cin
        elif op.type in ("MatMul", "BatchMatMulV2"):
            total += int(np.prod(op.outputs[0].shape)) * op.inputs[0].shape[-1]
    return total


def full_size_model():
    """The released architecture (fmap_base 4096, fmap_max 256) with random weights."""
    from ganspacesynth.config import ModelConfig
    from ganspacesynth.generator import Generator
    from ganspacesynth.model import Model

    return Model(Generator(ModelConfig()), source="full-size released architecture, random weights")


def bench_generation(table, args, model):
    from ganspacesynth import spectral

    flops = clip_flops(model.config)
    rate, rate_spread = matmul_rate(args.repeats)
    floor = flops / rate
    table.add("clip arithmetic, released architecture as written", clip_flops(model.config, fused=False) / 1e9,
              unit="GFLOP")
    table.add("  as computed (upscale fused into the next conv)", flops / 1e9, unit="GFLOP")
    table.add("TensorFlow float32 matmul rate (2048^3)", rate / 1e9, rate_spread / 1e9, "GFLOP/s")
    table.add("floor: clip FLOPs / matmul rate", floor, unit="s/clip")
    results = {"floor": floor}
    for batch in (1, 8):
        z = model.random_z(batch, seed=0)
        seconds, spread = measure(lambda: model.generate(z, 60), args.repeats)
        per_clip = seconds / batch
        results[batch] = per_clip
        table.add(f"generate, batch {batch}", per_clip, spread / batch, "s/clip",
                  f"{per_clip / floor:.2f} x floor")
    z = model.random_z(1, seed=0)
    spec = model.generate_specgrams(z, 60)
    seconds, spread = measure(lambda: model.generate_specgrams(z, 60), args.repeats)
    table.add("  of which the generator network", seconds, spread, "s/clip")
    seconds, spread = measure(lambda: spectral.specgrams_to_waves(spec), args.repeats)
    table.add("  of which the inverse STFT (mel -> audio)", seconds, spread, "s/clip")
    return results


def bench_parts(table, args, model):
    """What a knob turn waits for: each part ``Instrument.generate_parts`` makes first (its
    leading frames only, one graph, from the z input as the `z` mode plays), against the floor
    of its own multiply-adds at TensorFlow's matmul rate. The first part's floor is as fast as
    a change can be heard on these threads, however the convolutions were written."""
    import tensorflow as tf
    from ganspacesynth import spectral
    from ganspacesynth.instrument import PART_FRAMES

    rate, _ = matmul_rate(args.repeats)
    z = model.random_z(1, seed=0)
    specs = (tf.TensorSpec((1, model.latent_size), tf.float32),
             tf.TensorSpec((1, model.config.num_pitches), tf.float32))
    for frames in (*PART_FRAMES, spectral.N_FRAMES):
        length = spectral.samples_for_frames(frames)
        macs = graph_multiply_adds(model._function(-1, None, model.frames_for_length(length)), *specs)
        seconds, spread = measure(lambda: model.generate(z, 60, length=length), args.repeats)
        floor = 2 * macs / rate
        name = "whole clip" if frames == spectral.N_FRAMES else f"part of {frames} frames"
        table.add(f"{name}: {macs / 1e9:.3f} G multiply-adds, floor {floor * 1e3:.1f} ms",
                  seconds * 1e3, spread * 1e3, "ms", f"{seconds / floor:.2f} x floor")


def bench_load(table, args, model):
    import ganspacesynth

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        model.save(folder)

        def load_and_generate():
            loaded = ganspacesynth.load_model(folder)
            loaded.generate(loaded.random_z(1, seed=0), 60)

        seconds, spread = measure(load_and_generate, max(3, args.repeats // 2), warmup=1)
    table.add("load model + first clip (full size, in process)", seconds, spread, "s")


def _native_dir():
    """Where the built bridge is: GANSPACESYNTH_PD_PATH, the installed package, or a CMake
    build (the one pd_perform.py uses too)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from pd_patch import locate_external

    return locate_external(HERE.parent / "build" / "pd-bench", build_type="Release")


def bench_bridge(table, args, model):
    """The path the Pd external takes: a C host, libpython loaded globally, then the bridge."""
    import subprocess
    import sysconfig

    native = _native_dir()
    bridge = next(native.glob("libganspacesynth_bridge.*"))
    libpython = Path(sysconfig.get_config_var("LIBDIR")) / sysconfig.get_config_var("INSTSONAME")
    with tempfile.TemporaryDirectory() as tmp:
        host = Path(tmp) / "bridge_host"
        subprocess.run(["cc", "-O2", "-o", str(host), str(HERE / "bridge_host.c"), "-ldl"], check=True)
        folder = Path(tmp) / "model"
        model.save(folder)
        loads, clips = [], []
        for _ in range(max(2, args.repeats // 2)):
            run = subprocess.run([str(host), str(libpython), str(bridge), str(folder), str(args.repeats)],
                                 capture_output=True, text=True, check=True)
            for line in run.stdout.splitlines():
                kind, value = line.split()
                (loads if kind == "load" else clips).append(float(value))
    table.add("bridge: start Python + load model to ready (full size)", statistics.median(loads),
              max(loads) - min(loads), "s", "a fresh process each time")
    table.add("bridge: generate one clip, resampled to 48 kHz", statistics.median(clips),
              max(clips) - min(clips), "s/clip")


def bench_hallu(table, args, model):
    """A 4-step, 8-interpolation composition (28 points) against 28 single generations.

    With the default envelope a note keeps 1.5 s of each 4 s clip, and Hallu
    generates only the frames under it; a second row uses notes of the whole
    clip, where that saving is gone and only batching is left.
    """
    import ganspacesynth
    from ganspacesynth.hallu import interpolate_steps

    # A PCA from few samples is enough to time synthesis; its quality does not matter here.
    pca = ganspacesynth.compute_pca(model, n_samples=512, n_components=8, estimator="pca", seed=0)
    steps = [[2, 0, 0], [-2, 1, 0], [0, -2, 1], [1, 1, -1]]
    points = interpolate_steps(steps, 8)

    def singles():
        for point in points:
            model.synthesize(pca, point)

    repeats = max(2, args.repeats // 2)
    alone, alone_spread = measure(singles, repeats)
    table.add(f"{len(points)} single generations (whole clips)", alone, alone_spread, "s")
    envelopes = {"default envelope, 1.5 s notes": {},
                 "4 s notes (attack 1, sustain 2, release 1)": {"attack": 1.0, "sustain": 2.0, "release": 1.0}}
    for name, envelope in envelopes.items():
        together, spread = measure(lambda: ganspacesynth.hallucinate(model, pca, steps, interp_steps=8,
                                                                     **envelope), repeats)
        table.add(f"Hallu, {len(points)} points (4 steps, 8 between), {name}", together, spread, "s",
                  f"composition / singles = {together / alone:.2f}")


def _relay(table, script, *script_args):
    """Run another benchmark script and keep its table as it printed it."""
    import subprocess

    run = subprocess.run([sys.executable, str(HERE / script), *script_args], capture_output=True, text=True)
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    for line in lines:
        print("  " + line, flush=True)
    if run.returncode != 0:
        print(run.stderr[-2000:], flush=True)
    table.relayed.append((script, lines if run.returncode == 0 else lines + ["(failed)"]))


def bench_pca(table, args, model):
    _relay(table, "pca.py")


def bench_pd(table, args, model):
    _relay(table, "pd_perform.py")


SECTIONS = {
    "generation": bench_generation,
    "parts": bench_parts,
    "load": bench_load,
    "bridge": bench_bridge,
    "hallu": bench_hallu,
    "pca": bench_pca,
    "pd": bench_pd,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (default 5)")
    parser.add_argument("--only", action="append", choices=sorted(SECTIONS),
                        help="run only this section (repeatable)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--threads", type=int, help="TensorFlow's compute threads in this process "
                        "(default: every core, as the offline commands; the Pd external's default "
                        "is one fewer unless Pd runs at real-time priority)")
    args = parser.parse_args(argv)

    from ganspacesynth.threads import configure_threads, use_every_core

    threads = configure_threads(args.threads) if args.threads else use_every_core()
    machine = f"{machine_line()}, {threads} TensorFlow thread(s)"
    print(machine)
    table = Table()
    model = full_size_model()
    for name, section in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        print(f"[{name}]", flush=True)
        section(table, args, model)
    if args.markdown:
        Path(args.markdown).write_text(machine + "\n\n" + table.markdown() + "\n")


if __name__ == "__main__":
    main()
