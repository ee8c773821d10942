"""The ``ganspacesynth`` command line.

One ``_add_<command>`` function per subcommand declares its arguments; the
work itself lives in the engine's modules and is imported only when the
command runs, so ``--help`` answers at once. Errors the engine raises for bad
input (``GanspacesynthError``) are printed as one line and exit with status 2;
anything else is a bug and keeps its traceback.
"""

import argparse
import sys


def _add_info(sub):
    p = sub.add_parser("info", help="describe a model: architecture, pitches, layers",
                       description="Print what a model is: its architecture, the pitches it was "
                                   "trained on and the layers GANSpace can hook.")
    p.add_argument("model", help="model folder (Magenta or ganspacesynth format) or 'default'")
    p.set_defaults(run=_run_info)


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
    p.set_defaults(run=_run_generate)


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
    p.set_defaults(run=_run_convert)


def _run_convert(args):
    from .model import load_model

    model = load_model(args.magenta_dir)
    model.save(args.out_dir)
    print(f"wrote {args.out_dir}")


COMMANDS = [
    _add_info,
    _add_generate,
    _add_convert,
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
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import GanspacesynthError

    try:
        return args.run(args) or 0
    except GanspacesynthError as error:
        print(f"ganspacesynth {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
