#!/usr/bin/env python3
"""Rebuild ganspacesynth's embedded default model from the FluidR3 General MIDI soundfont.

Steps (each skipped when its output already exists, so a stopped build resumes):

1. render: one 4-second note per instrument, pitch and velocity (3 s held,
   then the release), written as a tiny Standard MIDI File and rendered by
   fluidsynth at 16 kHz with reverb and chorus off, into WORK/render/.
2. prepare: ``ganspacesynth prepare``'s API cuts them into the training
   dataset WORK/dataset/ (mono, 16 kHz, 4 s, pitch from the file name).
3. train: ``ganspacesynth train WORK/dataset WORK/run`` with TRAIN_OPTIONS
   below (resumable: rerun the script to continue), exporting WORK/run/model/.
   A run that did not finish in one sitting may be kept in the repository's
   ``training-state/default/`` (its ``train/`` and ``logs/`` folders): a new
   WORK/run starts from there, and the trainer resumes exactly.
4. With --install: copy the model into engine/ganspacesynth/models/default/,
   compute its PCA there (``pca.npz``: exact covariance of 65,536 conv0
   samples over all pitches, 16 components, with latent directions), and
   measure it with ``ganspacesynth evaluate`` against its own dataset
   (table on the terminal, WORK/evaluation.json and WORK/evaluation.png).

Needs, from Debian/Ubuntu (this script installs nothing itself):
    apt-get install fluidsynth fluid-soundfont-gm
and ganspacesynth's own Python dependencies. Usage::

    python scripts/build_default_model.py WORK [--install] [--threads 2]

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

# General MIDI programs (0-based) that hold a steady, clearly pitched tone
# for as long as the key is down: organs, bowed strings, brass, reeds, pipes,
# two synth leads and a pad. Decaying sounds (piano, guitar, mallets) are left
# out: a note that fades in a second gives the pitch tracker little to hear.
INSTRUMENTS = {
    "drawbar_organ": 16,
    "church_organ": 19,
    "reed_organ": 20,
    "accordion": 21,
    "harmonica": 22,
    "violin": 40,
    "viola": 41,
    "cello": 42,
    "strings": 48,
    "slow_strings": 49,
    "choir_aahs": 52,
    "trumpet": 56,
    "trombone": 57,
    "french_horn": 60,
    "brass_section": 61,
    "soprano_sax": 64,
    "alto_sax": 65,
    "oboe": 68,
    "clarinet": 71,
    "flute": 73,
    "recorder": 74,
    "square_lead": 80,
    "saw_lead": 81,
    "warm_pad": 89,
}
# One chromatic octave from middle C (C4..C5). Pitch is only learnable where
# the model resolves it: these notes span mel bins 44..89 of 1024 (an octave
# lower spans only 22), so the two top resolutions still tell semitones apart.
PITCHES = list(range(60, 73))
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


def keep_first_clip(wav: Path, seconds=CLIP_SECONDS):
    """Cut a rendering to the note's clip: fluidsynth renders on until its
    voices fall silent (up to 8 s for long releases), and ``prepare`` would
    turn that tail into extra clips of fading sound."""
    import soundfile

    audio, rate = soundfile.read(wav, always_2d=True)
    soundfile.write(wav, audio[:int(round(seconds * rate))], rate, subtype="PCM_16")


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
                    keep_first_clip(partial)
                    os.replace(partial, wav)
    print(f"rendered {len(list(out_dir.glob('*.wav')))} notes into {out_dir}")


def prepare(render_dir: Path, dataset_dir: Path):
    from ganspacesynth.data import prepare_dataset

    if (dataset_dir / "meta.json").is_file():
        return
    summary = prepare_dataset(render_dir, dataset_dir, tail="drop")
    print(summary.format())


def seed_run(run_dir: Path):
    """Start a new run folder from the committed state of an unfinished run, if there is one."""
    state = ROOT / "training-state" / "default"
    if run_dir.exists() or not (state / "train").is_dir():
        return
    run_dir.mkdir(parents=True)
    for part in ("train", "logs"):
        if (state / part).is_dir():
            shutil.copytree(state / part, run_dir / part)
    print(f"resuming the run kept in {state.relative_to(ROOT)}")


def ship(model: Path, dataset_dir: Path, work: Path, target: Path):
    """PCA and named directions into the installed model folder; the evaluation printed and
    kept in WORK."""
    import ganspacesynth
    from ganspacesynth.evaluate import evaluate, save_json

    loaded = ganspacesynth.load_model(target)
    pca = ganspacesynth.compute_pca(loaded, layer="conv0", n_samples=65536, n_components=16,
                                    estimator="cov", seed=0)
    pca.save(target / "pca.npz")
    print(f"PCA: {target / 'pca.npz'}")
    # `ganspacesynth directions default --per-pitch`: about 75 minutes on 2 cores
    named = ganspacesynth.compute_directions(loaded, per_pitch=True, progress=True)
    named.save(target / "named.npz")
    print(f"named directions: {target / 'named.npz'}")
    result = evaluate(loaded, dataset_dir, seed=0, plot=work / "evaluation.png", progress=print)
    save_json(result, work / "evaluation.json")
    print(result.format())


# The shipped model's run: the cpu-small preset (pitch label gain 48,
# stage-resolution gradient penalty, EMA 0.995, batch 8) with the projection
# critic, its 64x512 and 128x1024 stable stages shortened (6,400 and 4,800
# images, from 12,800 and 9,600) to fit the sitting that finished it.
TRAIN_OPTIONS = ["--preset", "cpu-small", "--seed", "0", "--pitch-critic", "projection",
                 "--stage-images", "40000,20000,30000,15000,20000,16000,16000,12000,12000,8000,6400,4800,4800"]


def train_command(dataset_dir: Path, run_dir: Path, threads):
    command = [sys.executable, "-m", "ganspacesynth", "train", str(dataset_dir), str(run_dir), *TRAIN_OPTIONS]
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
    seed_run(work / "run")
    subprocess.run(train_command(work / "dataset", work / "run", args.threads), check=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(
                       filter(None, [str(ROOT / "engine"), os.environ.get("PYTHONPATH")]))})
    if args.install:
        install(work / "run" / "model", work)
    else:
        report(work / "run" / "model")


def report(model: Path):
    """What the run says about itself, and how far each block moved from its initial weights."""
    config = json.loads((model / "config.json").read_text())
    info = config["training"]
    print(f"trained: {info['images_seen']} images in {info['wall_time_seconds']:.0f} s, "
          f"final losses {info['final_losses']}")
    if "kernel_change" not in info:  # exported by a trainer older than the measure
        import ganspacesynth
        from ganspacesynth.weight_change import kernel_change

        loaded = ganspacesynth.load_model(model)
        info["kernel_change"] = kernel_change(loaded.generator, info["settings"]["seed"])
        (model / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print("share of each block's kernels that is not a multiple of their initial value: "
          + ", ".join(f"block {b} {v:.3f}" for b, v in info["kernel_change"].items()))


def install(model: Path, work: Path):
    """Copy a trained model into the package, then give it its PCA and measure it."""
    report(model)
    target = ROOT / "engine" / "ganspacesynth" / "models" / "default"
    target.mkdir(parents=True, exist_ok=True)
    for old in ("config.json", "weights"):
        path = target / old
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    # The recorded command names this machine's folders (and the thread count of
    # the last sitting); the package records the run's settings only.
    config = json.loads((model / "config.json").read_text())
    config["training"]["command"] = " ".join(["ganspacesynth train WORK/dataset WORK/run", *TRAIN_OPTIONS])
    (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.copytree(model / "weights", target / "weights")
    print(f"installed into {target}")
    ship(model, work / "dataset", work, target)


if __name__ == "__main__":
    main()
