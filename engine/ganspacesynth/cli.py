"""The ``ganspacesynth`` command line.

One ``_add_<command>`` function per subcommand declares its arguments; the
work itself lives in the engine's modules and is imported only when the
command runs, so ``--help`` answers at once. Errors the engine raises for bad
input (``GanspacesynthError``) are printed as one line and exit with status 2;
anything else is a bug and keeps its traceback.
"""

import argparse
import signal
import sys
from pathlib import Path


def _add_info(sub):
    p = sub.add_parser("info", help="describe a model: architecture, pitches, layers",
                       description="Print what a model is: its architecture, the pitches it was "
                                   "trained on and the layers GANSpace can hook.")
    p.add_argument("model", help="model folder (Magenta or ganspacesynth format) or 'default'")
    p.set_defaults(run=_run_info, every_core=True)


def _run_info(args):
    from .model import load_model

    model = load_model(args.model)
    print(model.describe())


def _add_generate(sub):
    p = sub.add_parser("generate", help="generate a clip from a random latent vector",
                       description="Generate one clip per seed from a random z at a pitch and write it as WAV.")
    p.add_argument("model", help="model folder or 'default'")
    p.add_argument("--pitch", type=int, default=None,
                   help="MIDI pitch (default: the model's middle pitch)")
    p.add_argument("--seed", type=int, default=0, help="random seed for z (default 0)")
    p.add_argument("-n", "--count", type=int, default=1,
                   help="number of clips; clip i uses seed + i and goes to OUT with _i appended")
    p.add_argument("-o", "--output", required=True, help="output WAV file")
    p.set_defaults(run=_run_generate, every_core=True)


def _run_generate(args):
    from .audio import write_wav
    from .model import load_model

    model = load_model(args.model)
    pitch = model.default_pitch if args.pitch is None else args.pitch
    z = model.random_z(args.count, seed=args.seed)
    audio = model.generate(z, pitch)
    paths = write_wav(args.output, audio, model.sample_rate)
    for path in paths:
        print(path)


def _add_convert(sub):
    p = sub.add_parser("convert", help="convert a Magenta GANSynth checkpoint to the ganspacesynth format",
                       description="Read a Magenta/SopiMlab GANSynth model folder (experiment.json, "
                                   "stage_*/) and write it as a ganspacesynth model folder.")
    p.add_argument("magenta_dir", help="Magenta model folder")
    p.add_argument("out_dir", help="folder to write (must not exist or be empty)")
    p.set_defaults(run=_run_convert, every_core=True)


def _run_convert(args):
    from .model import load_model

    model = load_model(args.magenta_dir)
    model.save(args.out_dir)
    print(f"wrote {args.out_dir}")


def _add_prepare(sub):
    p = sub.add_parser(
        "prepare", help="cut recordings into a GANSynth training dataset",
        description="Cut every audio file below IN_DIR (wav, flac, ogg, aiff...; any length, rate "
                    "and channel count) and NSynth-style *.tfrecord files into 4-second 16 kHz "
                    "mono clips: OUT_DIR/audio/*.wav, OUT_DIR/meta.json ({name: {\"pitch\": P, "
                    "...}}) and OUT_DIR/prepare_summary.json. Unreadable files are reported and "
                    "skipped. Exits with status 2 if no clip at all was produced.")
    p.add_argument("in_dir", metavar="IN_DIR", help="folder of recordings (read recursively), or one file")
    p.add_argument("out_dir", metavar="OUT_DIR", help="dataset folder to write (new or empty)")
    p.add_argument("--hop", type=float, default=4.0, metavar="SECONDS",
                   help="time between clip starts; below 4 the clips overlap (default 4)")
    p.add_argument("--tail", choices=("pad", "drop"), default="pad",
                   help="the audio after the last full clip, and files shorter than 4 s: pad with "
                        "silence into one more clip, or drop (default pad)")
    p.add_argument("--min-tail", type=float, default=0.5, metavar="SECONDS",
                   help="with --tail pad, drop a tail that adds less new audio than this "
                        "(never a whole short file) (default 0.5)")
    p.add_argument("--skip-silent", action=argparse.BooleanOptionalAction, default=True,
                   help="skip clips quieter than --silence-db (default on)")
    p.add_argument("--silence-db", type=float, default=-60.0, metavar="DB",
                   help="silence threshold, RMS dBFS over the clip after file normalisation "
                        "(default -60)")
    p.add_argument("--normalize", choices=("file", "clip", "none"), default="file",
                   help="peak-normalise each source file (keeps its dynamics), each clip, or "
                        "nothing (default file)")
    p.add_argument("--peak-db", type=float, default=-1.0, metavar="DB",
                   help="peak level for --normalize, dBFS (default -1)")
    p.add_argument("--pitch", type=int, default=32,
                   help="MIDI pitch of files without a _<pitch> name suffix (default 32)")
    p.add_argument("--pitch-from-name", action=argparse.BooleanOptionalAction, default=True,
                   help="read the pitch from a trailing _<0..127> in file names, e.g. "
                        "cello_A_57.wav (default on)")
    p.add_argument("--bit-depth", choices=("16", "24", "float"), default="16",
                   help="WAV sample format of the clips (default 16, like NSynth)")
    p.add_argument("--tfrecord", action="append", default=[], metavar="FILE",
                   help="also read this NSynth-style TFRecord file (repeatable)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a dataset that prepare wrote to OUT_DIR before")
    p.set_defaults(run=_run_prepare)


def _run_prepare(args):
    from .data import NoClipsError, prepare_dataset

    try:
        summary = prepare_dataset(
            args.in_dir, args.out_dir, hop=args.hop, tail=args.tail, min_tail=args.min_tail,
            skip_silent=args.skip_silent, silence_db=args.silence_db, normalize=args.normalize,
            peak_db=args.peak_db, pitch=args.pitch, pitch_from_name=args.pitch_from_name,
            bit_depth=args.bit_depth, tfrecords=args.tfrecord, overwrite=args.overwrite,
            progress=None)
    except NoClipsError as error:
        print(error.summary.format())
        raise
    print(summary.format())


def _add_pd_path(sub):
    p = sub.add_parser("pd-path", help="print the folder to add to Pd's search path",
                       description="Print the folder of the installed package that holds the Pd "
                                   "external [ganspacesynth~], its help patch and the Hallu "
                                   "abstractions: add it to Pd's search path (or pass it to pd -path).")
    p.set_defaults(run=_run_pd_path)


def _run_pd_path(args):
    from .paths import pd_path

    folder = pd_path()
    print(folder)
    if not folder.is_dir():
        # Still printed, but scripts doing pd -path "$(ganspacesynth pd-path)" should stop.
        print(f"ganspacesynth pd-path: {folder} does not exist: this copy of ganspacesynth was "
              "installed without the Pd external (were Pd's headers missing at build time?)",
              file=sys.stderr)
        return 1


def _add_pd_install(sub):
    p = sub.add_parser(
        "pd-install", help="install the Pd folder where a plain `pd` finds it",
        description="Link PREFIX/ganspacesynth (PREFIX: ~/Documents/Pd/externals, where deken installs) "
                    "to this package's Pd folder ([ganspacesynth~], its bridge and help, the Hallu "
                    "abstractions, the pyext module) and add that folder to the search path in Pd's "
                    "preferences, as a deken install does, so that a plain `pd` creates "
                    "[ganspacesynth~] and [hallu]. A link: upgrading the package upgrades what Pd "
                    "loads. Quit Pd first; it reads its preferences when it starts.")
    p.add_argument("--prefix", metavar="DIR",
                   help="install into DIR/ganspacesynth instead (default ~/Documents/Pd/externals)")
    p.add_argument("--no-search-path", dest="search_path", action="store_false",
                   help="leave Pd's preferences alone (then use pd -path or [declare -path])")
    p.set_defaults(run=_run_pd_install)


def _run_pd_install(args):
    from .pd_install import install

    print(install(prefix=args.prefix, search_path=args.search_path))


def _add_pd_uninstall(sub):
    p = sub.add_parser(
        "pd-uninstall", help="remove what pd-install installed",
        description="Remove the link pd-install made in PREFIX (default ~/Documents/Pd/externals) and "
                    "its entry in Pd's search path; anything pd-install did not make is left alone.")
    p.add_argument("--prefix", metavar="DIR", help="the --prefix given to pd-install")
    p.set_defaults(run=_run_pd_uninstall)


def _run_pd_uninstall(args):
    from .pd_install import uninstall

    print(uninstall(prefix=args.prefix))


def _add_hallu(sub):
    p = sub.add_parser("hallu", help="render a Hallu composition (a session file or steps given here)",
                       description="Render a hallucination: travel through GANSpace coefficient space "
                                   "from step to step, synthesising and stitching notes. Either give a "
                                   "session file, or --model, --pca and --step options.")
    p.add_argument("session", nargs="?", help="Hallu session JSON (model, PCA, steps, settings)")
    p.add_argument("--model", help="model folder or 'default'")
    p.add_argument("--pca", help="PCA file, 'default' or a bare name of a file in the model's folder, e.g. 'named'")
    p.add_argument("--step", action="append", metavar="C0,C1,...",
                   help="a principal step as comma-separated coefficients; repeat for each step")
    p.add_argument("--interp", type=int, help="points between consecutive steps (default 1)")
    p.add_argument("--spacing", type=float, help="seconds between note starts (default 0.2)")
    p.add_argument("--trim", type=float, help="seconds cut from the start of each clip (default 0)")
    p.add_argument("--attack", type=float, help="attack seconds (default 0.5)")
    p.add_argument("--sustain", type=float, help="sustain seconds (default 0.5)")
    p.add_argument("--release", type=float, help="release seconds (default 0.5)")
    p.add_argument("--peak", type=float, help="peak level of the mix, 0..1 (default 0.9)")
    p.add_argument("--mode", choices=["layer", "z", "latent"], help="synthesis space (default layer)")
    p.add_argument("--pitch", type=_pitch_list, metavar="P[,P...]",
                   help="MIDI pitch for the z and latent modes, or one per step (a melody)")
    p.add_argument("--seed", type=int, help="seed of z in z mode (default 0)")
    _add_output_options(p)
    p.add_argument("--save-session", metavar="JSON", help="also write the session to this file")
    p.set_defaults(run=_run_hallu, every_core=True)


def _pitch_list(text):
    """``--pitch 60`` or ``--pitch 60,64,67`` (one per step)."""
    try:
        pitches = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a MIDI pitch, or pitches separated by commas")
    return pitches[0] if len(pitches) == 1 else pitches


def _add_output_options(p):
    p.add_argument("-o", "--output", required=True, help="output WAV file")
    p.add_argument("--rate", type=int, help="resample the WAV to this rate (default: the model's, 16000)")
    p.add_argument("--bits", choices=["16", "24", "float"], default="24",
                   help="WAV sample format (default 24)")
    p.add_argument("--plot", metavar="PNG", help="also save a spectrogram picture")


def _session_from_args(args):
    from .errors import GanspacesynthError
    from .hallu import HalluSession, HalluSettings

    if args.session:
        if args.model or args.pca or args.step:
            raise GanspacesynthError("give either a session file or --model/--pca/--step, not both")
        session = HalluSession.load(args.session)
    else:
        missing = [name for name in ("model", "pca", "step") if not getattr(args, name)]
        if missing:
            raise GanspacesynthError("without a session file, --model, --pca and at least "
                             "one --step are needed (missing: " + ", ".join("--" + m for m in missing) + ")")
        try:
            steps = [[float(v) for v in step.split(",") if v.strip()] for step in args.step]
        except ValueError:
            raise GanspacesynthError("--step takes comma-separated numbers, e.g. --step 1,-0.5")
        session = HalluSession(model=args.model, pca=args.pca, steps=steps, settings=HalluSettings())
    overrides = {"interp_steps": args.interp, "spacing": args.spacing, "start_trim": args.trim,
                 "attack": args.attack, "sustain": args.sustain, "release": args.release, "peak": args.peak}
    for name, value in overrides.items():
        if value is not None:
            setattr(session.settings, name, value)
    for name in ("mode", "pitch", "seed"):
        if getattr(args, name) is not None:
            setattr(session, name, getattr(args, name))
    return session


def _render_session(session, args):
    from tqdm import tqdm

    from .audio import resample, write_wav
    from .model import load_model

    model = load_model(session.resolve(session.model))
    with tqdm(total=100, unit="%", desc="hallucinating", disable=None,
              bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}") as bar:
        def progress(fraction):
            bar.update(round(fraction * 100) - bar.n)

        audio, points = session.render(model=model, progress=progress)
    rate = model.sample_rate
    if args.rate and args.rate != rate:
        audio = resample(audio, rate, args.rate, quality="VHQ")
        rate = args.rate
    wav = write_wav(args.output, audio, rate, subtype=args.bits)[0]
    print(f"{wav}: {len(points)} points, {len(audio) / rate:.2f} s at {rate} Hz")
    if args.plot:
        from .plot import save_spectrogram

        print(save_spectrogram(args.plot, audio, rate, title=f"{len(points)} points"))
    return wav


def _run_hallu(args):
    session = _session_from_args(args)
    _render_session(session, args)
    if args.save_session:
        print(session.save(args.save_session))


def _add_demo(sub):
    p = sub.add_parser("demo", help="render the demo composition with the built-in default model",
                       description="Render the Hallu session shipped with the package, on the embedded "
                                   "default model and its PCA, to a WAV file and a spectrogram PNG.")
    p.add_argument("-o", "--output", default="ganspacesynth-demo.wav",
                   help="output WAV (default ganspacesynth-demo.wav); the PNG goes beside it")
    p.set_defaults(run=_run_demo, every_core=True)


def _run_demo(args):
    from .hallu import HalluSession
    from .paths import models_dir

    session = HalluSession.load(models_dir() / "default" / "demo_session.json")
    output = Path(args.output)
    args.rate, args.bits, args.plot = None, "24", str(output.with_suffix(".png"))
    wav = _render_session(session, args)
    print(f"demo written: {wav.resolve()} and {Path(args.plot).resolve()}")

def _add_train(sub):
    p = sub.add_parser(
        "train", help="train a GANSynth model on a prepared dataset (resumable)",
        description="Train GANSynth (progressive growing, WGAN-GP, pitch classifier, generator "
                    "EMA) on a dataset folder made by 'prepare'. Checkpoints go to OUT_DIR/train/ "
                    "and rerunning the same command resumes from the newest one; TensorBoard "
                    "scalars go to OUT_DIR/logs/; the model (EMA weights, ganspacesynth format) is "
                    "exported to OUT_DIR/model/ when the run ends or stops at --steps. Defaults are "
                    "Magenta's released models; --preset cpu-small trains a small model on a CPU.")
    p.add_argument("dataset", metavar="DATASET", help="dataset folder (audio/*.wav + meta.json)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="run folder (new, or a run to resume)")
    p.add_argument("--preset", default="gansynth", choices=("gansynth", "cpu-small"),
                   help="starting settings (default gansynth: Magenta's released models)")
    p.add_argument("--config", metavar="JSON",
                   help="JSON file of settings (ModelConfig and TrainConfig keys, flat or under "
                        "\"model\" / \"train\"), applied over the preset")
    p.add_argument("--fmap-base", type=int, help="filters: min(fmap_base / 2**block, fmap_max)")
    p.add_argument("--fmap-max", type=int, help="maximum filters per conv")
    p.add_argument("--latent-size", type=int, help="length of z (default 256)")
    p.add_argument("--pitch-label-gain", type=float,
                   help="scale of the one-hot pitch beside z (default 1, Magenta's; cpu-small 48: "
                        "a small, short run learns the pitch only when the label outweighs z)")
    p.add_argument("--batch-size", type=int, help="batch size at every resolution (default 8)")
    p.add_argument("--stage-images", metavar="N[,N...]",
                   help="images per stage: one number for every stage, or 2*R-1 numbers")
    p.add_argument("--stable-images", type=int, help="images per stable stage (default 800000)")
    p.add_argument("--transition-images", type=int,
                   help="images per transition stage (default 800000)")
    p.add_argument("--total-images", type=int, help="images in the whole run (default 11000000)")
    p.add_argument("--learning-rate", type=float, help="Adam learning rate of G and D (default 8e-4)")
    p.add_argument("--stage-learning-rates", metavar="LR,LR,...",
                   help="Adam learning rate of G and D in each stage (2*R-1 numbers), instead of "
                        "--learning-rate, e.g. lower for the top stages")
    p.add_argument("--ema-decay", type=float,
                   help="decay of the generator's moving average, the exported weights (default "
                        "0.999, about 1,000 steps; cpu-small 0.995: its short top stages need an "
                        "average that forgets their start)")
    p.add_argument("--gradient-penalty", choices=("stage", "magenta"),
                   help="where the WGAN-GP gradient is measured: 'stage' (default), on what the "
                        "discriminator sees at the stage's resolution; 'magenta', on the "
                        "full-size denormalised spectrogram, as GANSynth did")
    p.add_argument("--pitch-critic", choices=("classifier", "projection"),
                   help="how the critic judges pitch: 'classifier' (default, Magenta's: a head "
                        "that names the pitch of real clips, which the generator is rewarded for "
                        "satisfying); 'projection', that head's logit of the label also added to "
                        "the critic's score, so that the critic compares real and generated clips "
                        "of one pitch")
    p.add_argument("--stop-on-divergence", action="store_true",
                   help="when the gradient penalty, the drift term or a loss leaves its healthy "
                        "band (median over --health-window steps) or is not finite, go back to "
                        "the last healthy checkpoint, export it and stop")
    p.add_argument("--health-window", type=int, default=100, metavar="STEPS",
                   help="steps whose median the health watch judges (default 100)")
    p.add_argument("--init-from", metavar="RUN_OR_CHECKPOINT",
                   help="start this new run where another run's checkpoint stood (weights, optimiser, "
                        "counters), with this run's settings: e.g. OLD_RUN/train/healthy, the last "
                        "healthy point of a run that diverged, with a lower --learning-rate")
    p.add_argument("--seed", type=int, help="seed of the initial weights, data order and noise")
    p.add_argument("--steps", type=int,
                   help="stop when the step counter reaches this (saves and exports; rerun to go on)")
    p.add_argument("--save-every", type=float, default=600.0, metavar="SECONDS",
                   help="checkpoint interval, besides every stage change and the end (default 600)")
    p.add_argument("--summary-every", type=int, default=20, metavar="STEPS",
                   help="TensorBoard scalar interval (default 20)")
    p.add_argument("--strategy", default="default", choices=("default", "mirrored", "multiworker"),
                   help="tf.distribute strategy: one device, all local devices, or the workers "
                        "named by TF_CONFIG")
    p.add_argument("--cpu-devices", type=int, metavar="N",
                   help="split the CPU into N logical devices (to try --strategy mirrored without GPUs)")
    p.add_argument("--threads", type=int, metavar="N", help="cap TensorFlow's CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_train)


def _run_train(args):
    import json

    from .train import TrainError, configure_devices, train

    configure_devices(args.cpu_devices, args.threads)
    settings = None
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as f:
                settings = json.load(f)
        except (OSError, ValueError) as error:
            raise TrainError(f"{args.config}: cannot read settings ({error})") from None
    overrides = {}
    for flag, key in (("fmap_base", "fmap_base"), ("fmap_max", "fmap_max"),
                      ("latent_size", "latent_size"), ("pitch_label_gain", "pitch_label_gain"),
                      ("stable_images", "stable_stage_images"),
                      ("transition_images", "transition_stage_images"),
                      ("total_images", "total_images"), ("seed", "seed"),
                      ("ema_decay", "ema_decay"), ("gradient_penalty", "gradient_penalty_space"),
                      ("pitch_critic", "pitch_critic")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    if args.batch_size is not None:
        overrides["batch_size_schedule"] = [args.batch_size]
    if args.learning_rate is not None:
        overrides["generator_learning_rate"] = overrides["discriminator_learning_rate"] = args.learning_rate
        overrides["stage_learning_rates"] = None  # one rate everywhere, whatever the preset says
    if args.stage_images is not None:
        try:
            counts = [int(n) for n in args.stage_images.split(",")]
        except ValueError:
            raise TrainError(f"--stage-images {args.stage_images!r}: expected numbers separated by commas") from None
        overrides["stage_images"] = counts
    if args.stage_learning_rates is not None:
        try:
            overrides["stage_learning_rates"] = [float(r) for r in args.stage_learning_rates.split(",")]
        except ValueError:
            raise TrainError(f"--stage-learning-rates {args.stage_learning_rates!r}: expected "
                             "numbers separated by commas") from None
    command = "ganspacesynth " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["train"] else None
    path, trainer = train(args.dataset, args.out_dir, preset=args.preset, settings=settings,
                          overrides=overrides, steps=args.steps, strategy=args.strategy,
                          save_every=args.save_every, summary_every=args.summary_every,
                          progress_bar=not args.no_progress, command=command,
                          stop_on_divergence=args.stop_on_divergence,
                          health_window=args.health_window, init_from=args.init_from)
    if trainer.diverged is not None:
        d = trainer.diverged
        print(f"training stopped: diverged at step {d['detected_at_step']} ({d['reason']}); "
              f"went back to step {d['restored_step']}, the last healthy checkpoint")
    if path is not None:
        state = "finished" if trainer.done else f"stopped at step {int(trainer.step.numpy())}"
        print(f"training {state}; model written to {path}")
    curves = Path(args.out_dir) / "train" / "loss_curves.png"
    if curves.is_file():
        print(f"loss curves: {curves}")
    if trainer.interrupted:
        print(f"{trainer.interrupted}: checkpoint saved at step {int(trainer.step.numpy())}; run the "
              "same command again to resume exactly")
        return 128 + int(getattr(signal, trainer.interrupted))


def _usage_errors(run):
    """Bad numbers or pitches (ValueError from the engine) become one-line errors, as bad files do."""
    def wrapped(args):
        from .errors import GanspacesynthError

        try:
            return run(args)
        except ValueError as error:
            raise GanspacesynthError(str(error)) from None

    return wrapped


def _coefficient_list(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 1,-0.5, got {text!r}")


def _add_pca(sub):
    from .pca import DEFAULT_COMPONENTS, DEFAULT_SAMPLES

    p = sub.add_parser("pca", help="find GANSpace directions: PCA of one generator layer",
                       description="Sample random z, run the generator up to LAYER, fit the estimator to "
                                   "the activations and write the directions (and the latent directions "
                                   "the 'latent' space plays) to a .npz file.")
    p.add_argument("model", help="model folder or 'default'")
    p.add_argument("-o", "--output", required=True, help="output .npz file")
    p.add_argument("--layer", default="conv0", help="layer to hook (default conv0; see 'ganspacesynth info')")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                   help=f"number of random samples (default {DEFAULT_SAMPLES})")
    p.add_argument("--components", type=int, default=DEFAULT_COMPONENTS,
                   help=f"number of components (default {DEFAULT_COMPONENTS})")
    p.add_argument("--estimator", choices=["ipca", "cov", "pca", "ica", "sefa"], default="ipca",
                   help="ipca: incremental, as the paper (default); cov: exact and fastest, layers up to "
                        "16384 values; pca, ica: keep all samples in memory; sefa: closed form from "
                        "conv0's weights, no sampling (directions in z)")
    p.add_argument("--pitch", type=int, help="sample at this MIDI pitch only (default: all of the model's)")
    p.add_argument("--batch-size", type=int, help="samples per generator batch (default: about 64 MiB)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--latent-samples", type=int,
                   help="samples for the latent directions (default min(samples, 16384); 0: none)")
    p.set_defaults(run=_usage_errors(_run_pca), every_core=True)


def _run_pca(args):
    from .model import load_model
    from .pca import compute_pca

    model = load_model(args.model)
    pca = compute_pca(model, layer=args.layer, n_samples=args.samples, n_components=args.components,
                      estimator=args.estimator, pitch=args.pitch, batch_size=args.batch_size, seed=args.seed,
                      progress=True, latent_samples=args.latent_samples)
    print(pca.save(args.output))
    print(pca.summary())


def _synthesis_args(p):
    p.add_argument("--z-seed", type=int, help="play around the z drawn from this seed (default space: z)")
    p.add_argument("--pitch", type=int,
                   help="MIDI pitch in the z and latent spaces (default: the model's middle pitch)")
    p.add_argument("--space", choices=["layer", "z", "latent"],
                   help="layer: mean + edit, z and pitch have no effect (default without --z-seed); "
                        "z: edit added to z's activation (default with --z-seed); latent: z moved along "
                        "the latent directions, around --z-seed's z or zero")


def _synthesis_kwargs(model, args):
    if args.space == "z" and args.z_seed is None:
        raise ValueError("--space z adds the edit to a z's activation: give --z-seed")
    kwargs = {"space": args.space}
    if args.z_seed is not None:
        kwargs["z"] = model.random_z(1, seed=args.z_seed)[0]
    if args.pitch is not None:
        kwargs["pitch"] = args.pitch
    return kwargs


def _add_synth(sub):
    p = sub.add_parser("synth", help="synthesise a clip from GANSpace coefficients",
                       description="Synthesise audio from coefficients along a PCA's components "
                                   "(in standard deviations): layer = mean + sum_i c_i * stdev_i * "
                                   "component_i, or the same edit added to a z's activation, or z moved "
                                   "along the latent directions.")
    p.add_argument("model", help="model folder or 'default'")
    p.add_argument("pca", help="PCA file (.npz, or an original GANSpaceSynth pickle), 'default' or "
                               "a bare name of a file in the model's folder, e.g. 'named'")
    p.add_argument("--coeffs", type=_coefficient_list, action="append", required=True, metavar="C0,C1,...",
                   help="comma-separated coefficients (missing ones are 0); write --coeffs=-1,0.5 when the "
                        "first is negative; repeat for several clips (OUT_0.wav, OUT_1.wav, ...)")
    p.add_argument("-o", "--output", required=True, help="output WAV file")
    _synthesis_args(p)
    p.set_defaults(run=_usage_errors(_run_synth), every_core=True)


def _run_synth(args):
    import numpy as np

    from .audio import write_wav
    from .model import load_model
    from .pca import load_pca

    model = load_model(args.model)
    pca = load_pca(args.pca, model=model)
    width = max(len(row) for row in args.coeffs)
    rows = np.zeros((len(args.coeffs), max(width, 1)))
    for i, row in enumerate(args.coeffs):
        rows[i, :len(row)] = row
    audio = model.synthesize(pca, rows[0] if len(rows) == 1 else rows, **_synthesis_kwargs(model, args))
    for path in write_wav(args.output, audio, model.sample_rate):
        print(path)


def _descriptor_list(text):
    from .describe import check_descriptors

    try:
        return check_descriptors([name.strip() for name in text.split(",") if name.strip()])
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error))


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _length(model, seconds):
    """Seconds of each clip to generate and describe, as samples (None: whole clips)."""
    if seconds is None:
        return None
    return min(model.audio_length, max(1, int(round(seconds * model.sample_rate))))


def _add_evaluate(sub):
    p = sub.add_parser(
        "evaluate", help="measure a model against its dataset: pitch (pYIN), NDB, timbre, envelope",
        description="Generate, for every pitch the model and the dataset share, as many clips as a "
                    "held-out set of real clips (the same random z every time for one --seed), and "
                    "measure both: the share of clips in which pYIN (librosa) finds a pitch and the "
                    "median error in cents from the label; NDB (k-means bins of log-mel spectrograms "
                    "of the other real clips, two-proportion test per bin); the share of energy above "
                    "7 kHz, spectral flatness and the RMS of the first, middle and last quarter "
                    "second. The held-out real clips' figures are the ceiling. Prints a table (or "
                    "JSON with --json) and writes a PNG of real and generated spectrograms per pitch.")
    p.add_argument("model", help="model folder or 'default'")
    p.add_argument("dataset", metavar="DATASET", help="dataset folder as 'prepare' writes it")
    p.add_argument("--clips-per-pitch", type=int, default=16,
                   help="held-out real and generated clips per pitch (default 16; at most half the "
                        "real clips of a pitch are held out)")
    p.add_argument("--seed", type=int, default=0, help="seed of the z draws and the held-out split (default 0)")
    p.add_argument("--ndb-bins", type=int, default=20, help="k-means bins for NDB (default 20)")
    p.add_argument("--plot", metavar="PNG", default="evaluation.png",
                   help="spectrogram grid (default evaluation.png; 'none' for no picture)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    p.add_argument("--workers", type=int, help="processes for pitch tracking (default: the CPU's cores)")
    p.set_defaults(run=_usage_errors(_run_evaluate), every_core=True)


def _run_evaluate(args):
    import json

    from .evaluate import evaluate

    if args.clips_per_pitch < 1 or args.ndb_bins < 2:
        raise ValueError("--clips-per-pitch must be at least 1 and --ndb-bins at least 2")
    progress = None if args.json else (lambda text: print(f"{text}...", file=sys.stderr, flush=True))
    result = evaluate(args.model, args.dataset, clips_per_pitch=args.clips_per_pitch, seed=args.seed,
                      ndb_bins=args.ndb_bins, plot=None if args.plot == "none" else args.plot,
                      progress=progress, workers=args.workers)
    print(json.dumps(result.to_json(), indent=2) if args.json else result.format())


def _add_describe(sub):
    p = sub.add_parser("describe", help="what each component does to the sound (brightness, loudness...)",
                       description="Sweep each of the first K components from -2 to +2 (the others at 0) "
                                   "and report how brightness (spectral centroid), loudness (RMS), "
                                   "noisiness (spectral flatness), pitch salience and pitch (f0) change, "
                                   "as a table and optionally a PNG plot, and which descriptor each "
                                   "component moves most. With --matrix: Spearman's rho of each descriptor "
                                   "with each direction's coefficient, averaged over starting points (the "
                                   "mean in layer space; --starts random z in z and latent space), marking "
                                   "the directions that move one thing (own |rho| > 0.9, others < 0.3).")
    p.add_argument("model", help="model folder or 'default'")
    p.add_argument("pca", help="PCA file, 'default' or a bare name of a file in the model's folder, e.g. 'named'")
    p.add_argument("-k", "--components", type=int, default=4, help="components to sweep (default 4)")
    p.add_argument("--points", type=int, default=9, help="coefficients per sweep (default 9)")
    p.add_argument("--limit", type=float, default=2.0, help="sweep from -LIMIT to +LIMIT (default 2)")
    p.add_argument("--plot", metavar="PNG", help="also plot descriptor against coefficient (with --matrix: "
                   "the matrix as a heat map)")
    p.add_argument("--matrix", action="store_true", help="measure the disentanglement matrix")
    p.add_argument("--starts", type=int, default=4,
                   help="random starting z in z and latent space, from --z-seed on, each at a random "
                        "pitch of the model's unless --pitch gives one (default 4)")
    p.add_argument("--descriptors", type=_descriptor_list, metavar="NAME,...",
                   help="descriptors of the matrix (default brightness,loudness,noisiness,pitch-salience)")
    p.add_argument("--length", type=_seconds, metavar="SECONDS",
                   help="describe only the first SECONDS of each clip (faster; default the whole clip)")
    _synthesis_args(p)
    p.set_defaults(run=_usage_errors(_run_describe), every_core=True)


def _run_describe(args):
    from tqdm import tqdm

    from .describe import (MATRIX_DESCRIPTORS, disentanglement, format_matrix, format_most_moved,
                           format_sweep, plot_matrix, plot_sweep, sweep)
    from .model import load_model
    from .pca import load_pca

    model = load_model(args.model)
    pca = load_pca(args.pca, model=model)
    k = min(args.components, pca.n_components)
    length = _length(model, args.length)
    if args.matrix:
        space = args.space or ("z" if args.z_seed is not None else "layer")
        with tqdm(total=1, desc="sweeping", unit="sweep", disable=None, leave=False) as bar:
            def progress(done, total):
                bar.total = total
                bar.update(done - bar.n)

            matrix = disentanglement(model, pca, components=k, names=args.descriptors or MATRIX_DESCRIPTORS,
                                     points=args.points, limit=args.limit, starts=args.starts, space=space,
                                     pitch=args.pitch, seed=args.z_seed or 0, length=length, progress=progress)
        print(format_matrix(matrix))
        if args.plot:
            title = f"{pca.layer} {pca.estimator}: Spearman rho, {space} space"
            print(plot_matrix(matrix, args.plot, title=title))
        return
    with tqdm(total=k, desc="sweeping", unit="component", disable=None, leave=False) as bar:
        result = sweep(model, pca, components=k, points=args.points, limit=args.limit,
                       progress=lambda done, total: bar.update(done - bar.n), length=length,
                       **_synthesis_kwargs(model, args))
    print(format_sweep(result))
    print()
    print(format_most_moved(result))
    if args.plot:
        title = f"{pca.layer} {pca.estimator}: descriptors along components"
        print(plot_sweep(result, args.plot, title=title))


def _add_invert(sub):
    p = sub.add_parser("invert", help="find this sound: the point of the model closest to a recording",
                       description="Search the model for the clip that sounds most like AUDIO's first "
                                   "seconds (as long as the model's clips): every pitch label with a few "
                                   "random z, then gradient descent on z through the generator on a "
                                   "multi-resolution STFT distance, optionally refining the hooked layer. "
                                   "Writes a JSON record (z, pitch, layer values, the distance, and with "
                                   "--pca the coefficients in each synthesis space) and the found clip "
                                   "as WAV.")
    p.add_argument("model", help="model folder or 'default'")
    p.add_argument("audio", help="audio file (any rate and channel count)")
    p.add_argument("-o", "--output", required=True, help="output JSON file")
    p.add_argument("--wav", help="output WAV file (default: OUTPUT with .wav)")
    p.add_argument("--pca", help="PCA or named-directions file: also write the coefficients along it")
    p.add_argument("--pitch", type=int, help="use this MIDI pitch label (default: try every one)")
    p.add_argument("--starts", type=int, default=4, help="random z per pitch label in the search (default 4)")
    p.add_argument("--keep", type=int, default=4, help="candidates refined by gradient descent (default 4)")
    p.add_argument("--steps", type=int, default=200, help="gradient steps on z (default 200)")
    p.add_argument("--layer-steps", type=int, default=0,
                   help="gradient steps on the layer's activations afterwards (default 0)")
    p.add_argument("--layer", default="conv0", help="layer to refine and record (default conv0)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(run=_usage_errors(_run_invert), every_core=True)


def _run_invert(args):
    from tqdm import tqdm

    from .invert import invert_file
    from .model import load_model
    from .pca import load_pca

    model = load_model(args.model)
    pca = None if args.pca is None else load_pca(args.pca, model=model)
    with tqdm(total=1000, desc="searching", unit="", bar_format="{l_bar}{bar}| {elapsed}<{remaining}",
              disable=None) as bar:
        found = invert_file(model, args.audio, pitch=args.pitch, starts=args.starts, keep=args.keep,
                            steps=args.steps, layer_steps=args.layer_steps, layer=args.layer, seed=args.seed,
                            progress=lambda fraction: bar.update(int(1000 * fraction) - bar.n))
    for path in found.save(args.output, pca=pca, wav=args.wav):
        print(path)
    print(f"pitch {found.pitch}, spectral distance {found.distance:.4f} (after the z search "
          f"{found.distance_z:.4f})")


def _add_directions(sub):
    from .directions import (DEFAULT_BASIS_COMPONENTS, DEFAULT_DESCRIPTORS, DEFAULT_LATENT_SAMPLES,
                             DEFAULT_PITCH_STARTS, DEFAULT_RIDGE, DEFAULT_STARTS, DEFAULT_STEP)

    p = sub.add_parser("directions", help="named directions: one per descriptor, moving it alone",
                       description="Fit one direction per descriptor at a layer: at random starts, probe every "
                                   "axis of a PCA basis of the layer up and down and measure the descriptors; "
                                   "each direction holds the other descriptors' mean slopes at 0 and moves "
                                   "its own the same way at as many starts as it can. Writes a PCA file whose "
                                   "components are named after the descriptors.")
    p.add_argument("model", help="model folder or 'default'")
    p.add_argument("-o", "--output", required=True, help="output .npz file")
    p.add_argument("--descriptors", type=_descriptor_list, default=list(DEFAULT_DESCRIPTORS), metavar="NAME,...",
                   help="descriptors, one direction each (default " + ",".join(DEFAULT_DESCRIPTORS) +
                        "; also: pitch)")
    p.add_argument("--layer", default="conv0", help="layer to hook (default conv0)")
    p.add_argument("--starts", type=int, default=DEFAULT_STARTS,
                   help=f"random starting points; each costs 2 clips per basis component (default "
                        f"{DEFAULT_STARTS})")
    p.add_argument("--step", type=float, default=DEFAULT_STEP,
                   help=f"probe this far up and down each axis, in stdevs (default {DEFAULT_STEP:g})")
    p.add_argument("--ridge", type=float, default=DEFAULT_RIDGE,
                   help=f"0: trust the spread of the slopes over the starts; large: InterFaceGAN's "
                        f"conditioned direction (default {DEFAULT_RIDGE:g})")
    p.add_argument("--basis", metavar="PCA", help="PCA file of the layer to probe (default: an exact PCA "
                   "computed first)")
    p.add_argument("--basis-components", type=int, default=DEFAULT_BASIS_COMPONENTS,
                   help=f"components of that PCA (default {DEFAULT_BASIS_COMPONENTS})")
    p.add_argument("--pitch", type=_pitch_list, metavar="P[,P...]",
                   help="start at these MIDI pitches only (default: all of the model's)")
    p.add_argument("--per-pitch", action="store_true",
                   help="also fit one set per pitch, which z and latent space play at that pitch "
                        "(layer space plays the pooled set)")
    p.add_argument("--pitch-starts", type=int, default=DEFAULT_PITCH_STARTS,
                   help=f"with --per-pitch: starts at each pitch (default {DEFAULT_PITCH_STARTS})")
    p.add_argument("--length", type=_seconds, metavar="SECONDS",
                   help="describe only the first SECONDS of each clip (faster; default the whole clip)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--latent-samples", type=int, default=DEFAULT_LATENT_SAMPLES,
                   help=f"samples for the latent directions (default {DEFAULT_LATENT_SAMPLES}; 0: none; "
                        "with --per-pitch, shared among the pitches)")
    p.set_defaults(run=_usage_errors(_run_directions), every_core=True)


def _run_directions(args):
    from .directions import compute_directions
    from .model import load_model
    from .pca import load_pca

    model = load_model(args.model)
    basis = None if args.basis is None else load_pca(args.basis, model=model)
    named = compute_directions(model, descriptors=args.descriptors, layer=args.layer, starts=args.starts,
                               basis=basis, basis_components=args.basis_components, pitch=args.pitch,
                               seed=args.seed, length=_length(model, args.length), step=args.step,
                               ridge=args.ridge, latent_samples=args.latent_samples, per_pitch=args.per_pitch,
                               pitch_starts=args.pitch_starts, progress=True)
    print(named.save(args.output))
    print(named.summary())
    for where, directions in [("", named), *((f" at pitch {p}", d) for p, d in (named.pitch_sets or {}).items())]:
        for name, fit in directions.fit.items():
            print(f"{name:<16} slope {fit['slope']:+.3g} per unit, up at {100 * fit['consistency']:.0f}% of "
                  f"{fit['starts']} starts{where}; cos {fit['cosine_to_raw']:.2f} to its mean slope")


COMMANDS = [
    _add_info,
    _add_generate,
    _add_convert,
    _add_prepare,
    _add_hallu,
    _add_demo,
    _add_pd_path,
    _add_pd_install,
    _add_pd_uninstall,
    _add_train,
    _add_pca,
    _add_synth,
    _add_describe,
    _add_evaluate,
    _add_directions,
    _add_invert,
]


def build_parser():
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="ganspacesynth",
        description="Play the latent space of GANSynth models: generate, find GANSpace "
                    "directions, synthesise from coefficients, compose Hallu hallucinations.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    # Before or after the command: ganspacesynth --verbose info M, ganspacesynth info M --verbose
    for p in [parser, *sub.choices.values()]:
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="show TensorFlow's own start-up and log lines (hidden by default)")
    return parser


def _set_verbosity(verbose):
    """TensorFlow reads its log level when it is first imported, after this.
    A TF_CPP_MIN_LOG_LEVEL of the user's own is left alone."""
    import os

    from . import _TF_LOG_LEVEL_FROM_USER, quiet

    if verbose:
        os.environ["GANSPACESYNTH_VERBOSE"] = "1"
        quiet.uninstall()
        if not _TF_LOG_LEVEL_FROM_USER:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    elif not _TF_LOG_LEVEL_FROM_USER:
        # errors too: training's grappler "remapper failed" lines are harmless
        # noise, and real failures reach the user as Python exceptions
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


# Options whose value is a comma-separated coefficient list. argparse takes a
# value such as "-1,0.5" for an option, so these are glued to their value.
LIST_OPTIONS = ("--step", "--coeffs")


def _glue_list_options(argv):
    glued, i = [], 0
    while i < len(argv):
        if argv[i] in LIST_OPTIONS and i + 1 < len(argv):
            glued.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            glued.append(argv[i])
            i += 1
    return glued


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(_glue_list_options(sys.argv[1:] if argv is None else list(argv)))
    _set_verbosity(getattr(args, "verbose", False))
    from .errors import GanspacesynthError

    try:
        if getattr(args, "every_core", False):
            # These commands run offline: no audio needs a core, so they take every one
            # (GANSPACESYNTH_THREADS still decides when set).
            from .threads import use_every_core

            use_every_core()
        return args.run(args) or 0
    except GanspacesynthError as error:
        print(f"ganspacesynth {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
