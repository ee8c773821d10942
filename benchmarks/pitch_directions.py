"""Named directions fitted pitch by pitch: would a knob per pitch move one thing?

    python benchmarks/pitch_directions.py                   # the default model: ~60 min on 2 cores
    python benchmarks/pitch_directions.py --folder fits     # keep (and reuse) each pitch's fit
    python benchmarks/pitch_directions.py --pooled dirs.npz # and measure pooled directions beside them
    python benchmarks/pitch_directions.py --folder fits --pooled dirs.npz --save per-pitch.npz

The named directions ``compute_directions`` fits hold the other descriptors
still on average over the model's pitches, not at each (README: at pitch 66
the named brightness also moves loudness and noisiness). This fits one set
per pitch instead (``compute_directions(pitch=p)``, ``--starts-per-pitch``
starts each, all on one shared PCA basis of the layer, seed 0), then
measures the README's matrix on the same random starts as
``benchmarks/disentanglement.py`` (random z at random pitches, z space,
-2..2 in 9 points), each start swept along the directions of its own pitch.
The same sets are what ``compute_directions(per_pitch=True)`` (``ganspacesynth
directions --per-pitch``) fits in one go; this script fits them a pitch at
a time, keeping each in ``--folder``, so that a long run can be stopped and
resumed, and ``--save`` writes them, with ``--pooled``, as one file.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:
    import ganspacesynth  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine"))


def main(argv=None):
    from ganspacesynth import compute_directions, describe, load_model, load_pca
    from ganspacesynth.directions import DEFAULT_PITCH_STARTS, default_basis

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="default")
    parser.add_argument("--starts-per-pitch", type=int, default=DEFAULT_PITCH_STARTS,
                        help=f"starts probed per pitch (default {DEFAULT_PITCH_STARTS})")
    parser.add_argument("--starts", type=int, default=32, help="random starts measured (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="z seed of the measured starts (default 0)")
    parser.add_argument("--folder", help="where each pitch's fit is saved, and found again next time")
    parser.add_argument("--pooled", help="named directions fitted over all pitches, measured on the same starts")
    parser.add_argument("--save", help="write one PCA file: the --pooled directions with the sets per pitch "
                                       "(what `ganspacesynth directions --per-pitch` writes, without latent "
                                       "directions per pitch)")
    args = parser.parse_args(argv)

    model = load_model(args.model)
    folder = Path(args.folder) if args.folder else None
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
    basis = default_basis(model, seed=0)  # compute_directions' own, made once for every pitch
    per_pitch = {}
    for pitch in model.pitches:
        saved = folder / f"named-{pitch}.npz" if folder else None
        if saved and saved.is_file():
            per_pitch[pitch] = load_pca(saved, model=model)
            continue
        began = time.perf_counter()
        per_pitch[pitch] = compute_directions(model, pitch=pitch, starts=args.starts_per_pitch, basis=basis,
                                              latent_samples=0, seed=0)
        print(f"pitch {pitch}: fitted in {time.perf_counter() - began:.0f} s", flush=True)
        if saved:
            per_pitch[pitch].save(saved)

    pooled = load_pca(args.pooled, model=model) if args.pooled else None
    # in z space each start is swept along its own pitch's set, however pooled is
    played = (pooled or next(iter(per_pitch.values()))).with_pitch_sets(per_pitch)
    measured = describe.disentanglement(model, played, components=4, space="z", starts=args.starts,
                                        seed=args.seed)
    print("each start along its own pitch's named directions:")
    print(describe.format_matrix(measured))
    if pooled:
        pooled = describe.disentanglement(model, pooled, components=4, space="z", starts=args.starts,
                                          seed=args.seed)
        print("\nthe same starts along the pooled named directions:")
        print(describe.format_matrix(pooled))
    if args.save:
        print("saved", played.save(args.save))


if __name__ == "__main__":
    main()
