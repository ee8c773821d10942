"""How close `invert` gets to a real note the model never heard, next to the closest note it did hear.

    python benchmarks/invert_note.py DATASET [--model default] [--program 69 --pitch 64]

Renders one FluidR3 note that is not in the default model's training set (by
default General MIDI program 69, English horn, which the dataset leaves out,
at MIDI 64 and velocity 100) with the build script's own renderer, searches
for it with ``invert`` and prints the spectral distance of what it found,
next to the distance of every training clip of the dataset (``DATASET``, a
folder as ``prepare`` writes it) to the same note: the nearest one is what a
"find the closest sample" search would give. Needs fluidsynth and the
FluidR3 soundfont (Debian: fluidsynth, fluid-soundfont-gm).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
try:
    import ganspacesynth  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "engine"))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402


def render_note(program, pitch, velocity, folder: Path) -> Path:
    import build_default_model as build

    mid, wav = folder / "note.mid", folder / f"program{program}_v{velocity}_{pitch}.wav"
    mid.write_bytes(build.note_midi(program, pitch, velocity))
    subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", "16000",
                    "-F", str(wav), str(build.SOUNDFONT), str(mid)], check=True,
                   stdout=subprocess.DEVNULL)
    build.keep_first_clip(wav)
    return wav


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", help="the model's training dataset folder")
    parser.add_argument("--model", default="default")
    parser.add_argument("--program", type=int, default=69, help="General MIDI program (0-based)")
    parser.add_argument("--pitch", type=int, default=64)
    parser.add_argument("--velocity", type=int, default=100)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--layer-steps", type=int, default=100)
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()

    import build_default_model as build

    from ganspacesynth import load_model
    from ganspacesynth.invert import audio_distance, invert, read_target

    if args.program in build.INSTRUMENTS.values():
        sys.exit(f"program {args.program} is in the training set; choose another")
    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        target = read_target(model, render_note(args.program, args.pitch, args.velocity, Path(tmp)))
    start = time.perf_counter()
    found = invert(model, target, steps=args.steps, layer_steps=args.layer_steps)
    seconds = time.perf_counter() - start

    dataset = Path(args.dataset)
    names = sorted(json.loads((dataset / "meta.json").read_text()))
    clips = [read_target(model, dataset / "audio" / f"{name}.wav") for name in names]
    distances = np.concatenate([audio_distance(np.stack(clips[i:i + 32]),
                                               np.repeat(target[None], len(clips[i:i + 32]), 0))
                                for i in range(0, len(clips), 32)])
    order = np.argsort(distances)
    figures = {
        "note": {"program": args.program, "pitch": args.pitch, "velocity": args.velocity},
        "invert": {"distance": round(float(found.distance), 4), "z_only": round(float(found.distance_z), 4),
                   "pitch": int(found.pitch), "seconds": round(seconds, 1),
                   "steps": args.steps, "layer_steps": args.layer_steps},
        "nearest_training_clips": [{"clip": names[i], "distance": round(float(distances[i]), 4)}
                                   for i in order[:3]],
        "training_clips_median_distance": round(float(np.median(distances)), 4),
    }
    print(f"target: FluidR3 program {args.program}, MIDI {args.pitch}, velocity {args.velocity}")
    print(f"invert ({args.steps} z steps, {args.layer_steps} layer steps, {seconds:.0f} s): distance "
          f"{found.distance:.3f} (z alone {found.distance_z:.3f}), pitch label {found.pitch}")
    for row in figures["nearest_training_clips"]:
        print(f"training clip {row['clip']}: distance {row['distance']:.3f}")
    print(f"median over the {len(names)} training clips: {figures['training_clips_median_distance']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
