"""How well PCA components and named directions each move one thing: the README's matrix.

    python benchmarks/disentanglement.py --png matrix.png     # the README's, 64 starts: ~11 min on 2 cores
    python benchmarks/disentanglement.py --named dirs.npz     # named directions from another file
    python benchmarks/disentanglement.py MODEL --fit --save dirs.npz   # fit them first: ~25 min
    python benchmarks/disentanglement.py --fit --per-pitch    # one set per pitch too: ~90 min

Measures the model's own named directions (``named.npz`` in its folder, as
the default model ships them), or the file ``--named`` gives, or with
``--fit`` (or when the model has none) fits them first (``compute_directions``
with its defaults, seed 0; with ``--per-pitch`` one set per pitch too); then
measures the disentanglement matrix of
the model's first four PCA components and of the named directions on the
same starts (random z at random pitches, z space, -2..2 in 9 points), and
prints one table: Spearman's rho of each descriptor with the coefficient,
the own descriptor in brackets, and whether the direction moves one thing
(own |rho| > 0.9, others < 0.3). Named directions fitted per pitch are
measured as synthesis plays them in z space (each start along its own
pitch's set), and their pooled set beside them. For each descriptor it also prints the best
PCA component's |rho| next to the named direction's. ``--png`` writes the
table as a heat map.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

try:
    import ganspacesynth  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))


def joined(parts):
    """One matrix of the rows of several ({prefix: matrix}), measured on the same starts."""
    matrices = list(parts.values())
    out = dict(matrices[0])
    out["labels"] = [f"{prefix} {label}" for prefix, matrix in parts.items() for label in matrix["labels"]]
    for key in ("rho", "own", "moves_one"):
        out[key] = np.concatenate([matrix[key] for matrix in matrices])
    out["rho_starts"] = np.concatenate([matrix["rho_starts"] for matrix in matrices], axis=1)
    return out


def main(argv=None):
    from ganspacesynth import compute_directions, describe, load_model, load_pca

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="default")
    parser.add_argument("--pca", default="default", help="PCA file (default: the model's own)")
    parser.add_argument("--named", help="named directions file (default: the model's own named.npz)")
    parser.add_argument("--fit", action="store_true", help="fit named directions instead of loading them")
    parser.add_argument("--starts", type=int, default=64, help="random starts (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random starts (default 0)")
    parser.add_argument("--png", help="write the matrix as a heat map")
    parser.add_argument("--save", help="write the fitted named directions to this PCA file")
    parser.add_argument("--per-pitch", action="store_true",
                        help="fit, with one set per pitch too (compute_directions(per_pitch=True), ~75 min)")
    args = parser.parse_args(argv)

    model = load_model(args.model)
    pca = load_pca(args.pca if args.pca != "default" or args.model == "default" else
                   Path(args.model) / "pca.npz", model=model)
    shipped = Path(model.source) / "named.npz" if model.source else None
    if args.named or (not (args.fit or args.per_pitch) and shipped is not None and shipped.is_file()):
        named = load_pca(args.named or shipped, model=model)
    else:
        began = time.perf_counter()
        named = compute_directions(model, per_pitch=args.per_pitch, progress=True)
        print(f"named directions fitted in {time.perf_counter() - began:.0f} s")
        for name, fit in named.fit.items():
            print(f"  {name:<16} up at {100 * fit['consistency']:.0f}% of {fit['starts']} starts")
        if args.save:
            named.save(args.save)
            print(f"named directions saved to {args.save}")
    sets = {"PCA": pca, "named": named}
    if named.pitch_sets is not None:  # each start along its own pitch's set; beside it, the pooled set
        sets["pooled"] = named.with_pitch_sets(None)
    measured = {prefix: describe.disentanglement(model, directions, components=4, space="z", starts=args.starts,
                                                 seed=args.seed) for prefix, directions in sets.items()}
    matrix = joined(measured)
    print(describe.format_matrix(matrix))
    if "pooled" in sets:
        print(f"named: each start along its own pitch's set ({len(named.pitch_sets)} pitches); pooled: the "
              "set pooled over the pitches, which layer space plays")
    names, pca_rho, named_matrix = matrix["descriptors"], np.abs(measured["PCA"]["rho"]), measured["named"]
    print("\nown |rho|: best PCA component vs the named direction")
    for row, label in enumerate(named_matrix["labels"]):
        if label in names:
            column = names.index(label)
            best = int(np.nanargmax(pca_rho[:, column]))
            print(f"  {label:<16} PCA component {best} {pca_rho[best, column]:.2f}   named "
                  f"{abs(named_matrix['rho'][row, column]):.2f}")
    if args.png:
        shown = joined({prefix: measured[prefix] for prefix in ("PCA", "named")})
        print(describe.plot_matrix(shown, args.png, title=f"{args.model}: Spearman rho, z space, "
                                                         f"{args.starts} starts at random pitches"))


if __name__ == "__main__":
    main()
