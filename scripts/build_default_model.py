#!/usr/bin/env python3
"""Rebuild ganspacesynth's embedded default model from the FluidR3 General MIDI soundfont.

Steps (each skipped when its output already exists, so a stopped build resumes):

1. render: one 4-second note per instrument, pitch and velocity (3 s held,
   then the release), written as a tiny Standard MIDI File and rendered by
   fluidsynth at 16 kHz with reverb and chorus off, into WORK/render/.
2. prepare: ``ganspacesynth prepare``'s API cuts them into the training
   dataset WORK/dataset/ (mono, 16 kHz, 4 s, pitch from the file name).
3. train: ``ganspacesynth train WORK/dataset WORK/run --preset cpu-small``
   (resumable: rerun the script to continue), exporting WORK/run/model/.
4. Copy the model into engine/ganspacesynth/models/default/ with --install.

Needs, from Debian/Ubuntu (this script installs nothing itself):
    apt-get install fluidsynth fluid-soundfont-gm
and ganspacesynth's own Python dependencies. Usage::

    python scripts/build_default_model.py WORK [--install] [--threads 2]

Training on the shipped settings took about an hour on two shared CPU cores;
models/default/TRAINING.md records the run that produced the shipped model.
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")

# General MIDI programs (0-based) with clear, stable pitched notes across C3..C4.
INSTRUMENTS = {
    "piano": 0,
    "epiano": 4,
    "vibraphone": 11,
    "organ": 19,
    "nylon_guitar": 24,
    "violin": 40,
    "strings": 48,
    "trumpet": 56,
    "clarinet": 71,
    "flute": 73,
}
PITCHES = list(range(48, 61))  # one chromatic octave, C3..C4
VELOCITIES = [80, 115]
HOLD_SECONDS = 3.0
CLIP_SECONDS = 4.0

TICKS_PER_BEAT = 480
TEMPO_US_PER_BEAT = 500_000  # 120 bpm: 960 ticks per second


def _varlen(value):
    """MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def note_midi(program, pitch, velocity, hold=HOLD_SECONDS, length=CLIP_SECONDS):
    """A format-0 Standard MIDI File: program change, one note held ``hold`` s, end at ``length`` s."""
    ticks_per_second = TICKS_PER_BEAT * 1_000_000 // TEMPO_US_PER_BEAT
    hold_ticks = int(round(hold * ticks_per_second))
    tail_ticks = int(round((length - hold) * ticks_per_second))
    events = b"".join([
        _varlen(0) + b"\xff\x51\x03" + TEMPO_US_PER_BEAT.to_bytes(3, "big"),
        _varlen(0) + bytes([0xC0, program]),
        _varlen(0) + bytes([0x90, pitch, velocity]),
        _varlen(hold_ticks) + bytes([0x80, pitch, 0]),
        _varlen(tail_ticks) + b"\xff\x2f\x00",
    ])
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_BEAT)
    return header + b"MTrk" + struct.pack(">I", len(events)) + events


def render(out_dir: Path):
    if not SOUNDFONT.is_file():
        sys.exit(f"{SOUNDFONT} is missing: apt-get install fluid-soundfont-gm")
    if shutil.which("fluidsynth") is None:
        sys.exit("fluidsynth is missing: apt-get install fluidsynth")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, program in INSTRUMENTS.items():
            for velocity in VELOCITIES:
                for pitch in PITCHES:
                    # prepare reads the pitch from the trailing _<pitch>.
                    wav = out_dir / f"{name}_v{velocity}_{pitch}.wav"
                    if wav.is_file():
                        continue
                    mid = Path(tmp) / "note.mid"
                    mid.write_bytes(note_midi(program, pitch, velocity))
                    partial = wav.with_suffix(".partial.wav")
                    subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5",
                                    "-r", "16000", "-F", str(partial), str(SOUNDFONT), str(mid)],
                                   check=True, stdout=subprocess.DEVNULL)
                    os.replace(partial, wav)
    print(f"rendered {len(list(out_dir.glob('*.wav')))} notes into {out_dir}")


def prepare(render_dir: Path, dataset_dir: Path):
    from ganspacesynth.data import prepare_dataset

    if (dataset_dir / "meta.json").is_file():
        return
    summary = prepare_dataset(render_dir, dataset_dir, tail="drop")
    print(summary.format())


def train_command(dataset_dir: Path, run_dir: Path, threads):
    command = [sys.executable, "-m", "ganspacesynth", "train", str(dataset_dir), str(run_dir),
               "--preset", "cpu-small", "--seed", "0"]
    if threads:
        command += ["--threads", str(threads)]
    return command


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work", help="working folder for the rendered notes, dataset and training run")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow threads for training")
    parser.add_argument("--install", action="store_true",
                        help="copy WORK/run/model into engine/ganspacesynth/models/default/")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    render(work / "render")
    prepare(work / "render", work / "dataset")
    subprocess.run(train_command(work / "dataset", work / "run", args.threads), check=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(
                       filter(None, [str(ROOT / "engine"), os.environ.get("PYTHONPATH")]))})
    model = work / "run" / "model"
    info = json.loads((model / "config.json").read_text())["training"]
    print(f"trained: {info['images_seen']} images in {info['wall_time_seconds']:.0f} s, "
          f"final losses {info['final_losses']}")
    if args.install:
        target = ROOT / "engine" / "ganspacesynth" / "models" / "default"
        target.mkdir(parents=True, exist_ok=True)
        for old in ("config.json", "weights"):
            path = target / old
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        # The command names this machine's folders; the package should not.
        config = json.loads((model / "config.json").read_text())
        command = config["training"].get("command")
        if command:
            config["training"]["command"] = command.replace(str(work), "WORK")
        (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        shutil.copytree(model / "weights", target / "weights")
        print(f"installed into {target}")


if __name__ == "__main__":
    main()
