"""How fast each GANSpace estimator learns conv0 of the released architecture.

    python benchmarks/pca.py                 # default settings: a few minutes on 2 cores
    python benchmarks/pca.py --full          # also measure 1,048,576 samples with cov (~10-20 min)
    python benchmarks/pca.py --only cov ipca --samples 32768

SeFa, closed form, is timed last on the same model (whole ``compute_pca`` calls).

The model is the full-size generator (``ModelConfig()``: conv0 is 2 x 16 x 256
= 8192 values) with random weights: the cost of sampling and fitting does not
depend on what the weights are. Each estimator's time is split into the
streaming part (sampling + feeding batches, which grows with the sample
count) and the final step (eigendecomposition, SVD or ICA, which for ``cov``
does not), so the time for 1,048,576 samples is extrapolated as
``stream * 1048576 / samples + final``; samples/s is over the total.
``pca`` and ``ica`` keep every sample in memory, so they cannot reach that
count (32 GiB); their rows say so.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

try:
    import ganspacesynth  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))

TARGET = 1_048_576
GOAL_SECONDS = 20 * 60
DEFAULT_SAMPLES = {"cov": 16384, "ipca": 4096, "pca": 2048, "ica": 2048}


def full_size_model():
    from ganspacesynth.config import ModelConfig
    from ganspacesynth.generator import Generator
    from ganspacesynth.model import Model

    return Model(Generator(ModelConfig()))


def run(model, estimator, samples, components, batch_size):
    """(streaming seconds, final-step seconds, warnings) of one compute_pca without latent directions."""
    import warnings

    from ganspacesynth.pca import compute_pca

    marks = {}

    def progress(stage, done, total):
        if done == total:
            marks["streamed"] = time.perf_counter()

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compute_pca(model, layer="conv0", n_samples=samples, n_components=components, estimator=estimator,
                    batch_size=batch_size, seed=0, progress=progress, latent_samples=0)
    end = time.perf_counter()
    return marks["streamed"] - start, end - marks["streamed"], [str(w.message) for w in caught]


def forward_rate(model, batch_size, batches=4):
    z = model.random_z(batch_size, seed=0)
    model.layer_output("conv0", z, model.default_pitch)  # trace once
    start = time.perf_counter()
    for _ in range(batches):
        model.layer_output("conv0", z, model.default_pitch)
    return batch_size * batches / (time.perf_counter() - start)


def minutes(seconds):
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(DEFAULT_SAMPLES), default=list(DEFAULT_SAMPLES),
                        help="estimators to measure (default: all)")
    parser.add_argument("--samples", type=int, help="samples per estimator (default: " +
                        ", ".join(f"{k} {v}" for k, v in DEFAULT_SAMPLES.items()) + ")")
    parser.add_argument("--components", type=int, default=32, help="components (default 32)")
    parser.add_argument("--batch-size", type=int, default=2048, help="generator batch (default 2048)")
    parser.add_argument("--full", action="store_true", help=f"also measure {TARGET:,} samples with cov")
    args = parser.parse_args(argv)

    model = full_size_model()
    shape = model.layer_shape("conv0")
    print(f"machine   {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print(f"layer     conv0 {shape} = {int(np.prod(shape))} values, {args.components} components, "
          f"batches of {args.batch_size}")
    print(f"forward   {forward_rate(model, args.batch_size):,.0f} samples/s up to conv0 (generator alone)")
    print()
    header = (f"{'estimator':<10}{'samples':>9}{'stream':>9}{'final':>9}{'total':>9}{'samples/s':>11}   "
              f"{TARGET:,} samples")
    print(header)
    print("-" * len(header))
    for estimator in args.only:
        samples = args.samples or DEFAULT_SAMPLES[estimator]
        stream, final, caught = run(model, estimator, samples, args.components, args.batch_size)
        if estimator == "ica" and any("converge" in text for text in caught):
            # Random weights give nearly Gaussian activations: nothing independent to find.
            estimator = "ica*"
        if estimator in ("pca", "ica", "ica*"):
            projection = f"n/a: keeps all samples ({TARGET * np.prod(shape) * 4 / 2**30:.0f} GiB)"
        else:
            projected = stream * TARGET / samples + final
            verdict = "under" if projected < GOAL_SECONDS else "over"
            projection = f"{minutes(projected)} extrapolated ({verdict} the 20 min goal)"
        print(row(estimator, samples, stream, final) + projection, flush=True)
    print(sefa_row(model, args.components), flush=True)
    if args.full:
        stream, final, _ = run(model, "cov", TARGET, args.components, args.batch_size)
        print(row("cov", TARGET, stream, final) + f"{minutes(stream + final)} measured")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end (other work on the machine slows every row)")
    if "ica" in args.only:
        print("ica*: FastICA did not converge (random weights leave little independent structure); "
              "the time is for its iteration limit")


def sefa_row(model, components, repeats=5):
    """SeFa samples nothing: the median of a few whole compute_pca calls (the first one traces)."""
    from ganspacesynth.pca import compute_pca

    model.identifier  # hashed once per model, not part of the estimator
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        compute_pca(model, layer="conv0", n_components=components, estimator="sefa")
        times.append(time.perf_counter() - start)
    steady = sorted(times[1:])
    return (f"{'sefa':<10}{'0':>9}{'-':>9}{steady[len(steady) // 2]:>8.2f}s{'':>9}{'':>11}   "
            f"closed form: median of {repeats} (range {steady[0]:.2f}..{steady[-1]:.2f} s; "
            f"first call {times[0]:.2f} s)")


def row(estimator, samples, stream, final):
    total = stream + final
    return (f"{estimator:<10}{samples:>9}{stream:>8.1f}s{final:>8.1f}s{total:>8.1f}s"
            f"{samples / total:>11,.0f}   ")


if __name__ == "__main__":
    main()
