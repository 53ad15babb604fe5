"""``deepser``: tools around the workflow (the recogniser is ``deepser-recognize``).

Subcommands:

- ``import-legacy``: a Keras-2 ``.h5`` model of the original toolkit -> a model bundle;
- ``convert-db``: an original-format H5 database -> a deepser database to train on.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from deepser.recognizer.cli import join_negative_gain

PROG = "deepser"

IMPORT_EPILOG = """\
examples (the original LIVE_SER laughter models):
  deepser import-legacy ami.laugh.mspec.cnnlstm.0.h5 --features mspec --tasks laughter:2 \\
      --gain -1,1 --out bundles/laugh
  deepser import-legacy ami.raw.cnnlstmfcn.0.h5 --features raw --tasks laughter:2 --out b/raw
  deepser-recognize --model bundles/laugh --wav talk.wav

--features: a preset of the original's features, 'mspec' (linear-power mel, n_fft 512, hop 512,
80 bands, 0-8 kHz, reflect-padded centred frames, 22 050 Hz) or 'raw' (the waveform at
22 050 Hz), with optional overrides ('mspec,sample_rate=16000'), or a .yaml/.json feature set.
--tasks: one per model output, in order: NAME:N_CLASSES (classes named 0..N-1; 1 = continuous)
or NAME:CLASS,CLASS,... (class names in the order of the output units).
--gain: the min-max bounds the features were normalised with, to [0, 1] like the original:
MIN,MAX, the original's <meta>.gain.txt, or none; default -1,1 (full scale: the bounds of the
published models were never recorded). deepser-recognize --gain auto calibrates at run time."""

CONVERT_EPILOG = """\
example (an original database built with -mt 1:2:4:5:6:7, so sid is label column 1):
  deepser convert-db ENT.MSPEC.2d.3cls.av.h5 --tasks emotion:6:0 arousal:3:4 valence:3:5 \\
      --speaker-column 1 --features mspec --gain -1.0541904,1.1097699 --out db/ent.h5

--tasks: NAME:N_CLASSES:LABEL_COL or NAME:CLASS,CLASS,...:LABEL_COL, the label column being a
column of the original 'label' matrix (as in the original trainer's -mt name:n:col); the
original's comma-separated form (acted:2:0,arousal:3:1) works too. Train on the result with an
experiment naming it (deepser.training.train)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tools for users of the original DEEPSER toolkit (the recogniser is "
        "deepser-recognize; the workflow is snakemake).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    imp = sub.add_parser(
        "import-legacy",
        help="turn a Keras-2 model of the original toolkit into a model bundle",
        description="Rebuild a Keras-2 .h5 model (the original trainer's or LIVE_SER's) in "
        "Keras 3 with Keras-2 numerics and write a model bundle for deepser-recognize.",
        epilog=IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("model", metavar="MODEL.h5", help="the Keras-2 model file")
    imp.add_argument("--features", required=True, help="feature preset or feature-set file")
    imp.add_argument("--tasks", required=True, nargs="+", metavar="TASK", help="output tasks")
    imp.add_argument("--gain", help="MIN,MAX, a *.gain.txt file, or none [-1,1]")
    imp.add_argument(
        "--layout", choices=("2d", "3d"), help="input layout (default: read off the input shape)"
    )
    imp.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder to write")

    conv = sub.add_parser(
        "convert-db",
        help="convert an original-format H5 database into a deepser database",
        description="Convert a database of the original toolkit (feat, label, start_indice, "
        "end_indice) into deepser's database format, ready for training.",
        epilog=CONVERT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conv.add_argument("database", metavar="ORIGINAL.h5", help="the original database")
    conv.add_argument("--tasks", required=True, nargs="+", metavar="TASK", help="tasks")
    conv.add_argument("--out", required=True, metavar="DB.h5", help="database to write")
    conv.add_argument(
        "--speaker-column",
        type=int,
        help="label column holding the speaker id (default: each fold is one speaker group)",
    )
    conv.add_argument(
        "--k-fold", type=int, help="without folds in the file: K contiguous folds (the -kf)"
    )
    conv.add_argument(
        "--layout", choices=("2d", "3d"), help="feat layout (default: read off its shape)"
    )
    conv.add_argument(
        "--c-len", type=int, help="frames per step of a frame-sequence feat (N, T, c_len*D)"
    )
    conv.add_argument("--corpus", help="corpus name (default: the file name)")
    conv.add_argument("--features", help="feature preset the features were computed with")
    conv.add_argument("--gain", help="MIN,MAX or *.gain.txt the features were computed with")
    return parser


def _import_legacy(args: argparse.Namespace) -> int:
    from deepser.legacy.importer import import_legacy

    info = import_legacy(
        args.model, args.features, args.tasks, args.out, gain=args.gain, layout=args.layout
    )
    if args.gain is None:
        print(
            "deepser: note: no --gain given; the bundle normalises audio from [-1, 1] to [0, 1] "
            "(use --gain MIN,MAX or deepser-recognize --gain auto if the model used others)",
            file=sys.stderr,
        )
    window, spec = info["window_spec"], info["feature_spec"]
    tasks = ", ".join(f"{t['name']} {t.get('classes', 'continuous')}" for t in info["tasks"])
    print(
        f"{args.out}: {info['legacy']['file']} (Keras {info['legacy']['keras_version']}) as a "
        f"deepser bundle; input {info['inputs']['features']} ({window['layout']}), features "
        f"{spec['type']} at {spec['sample_rate']} Hz, tasks: {tasks}"
    )
    return 0


def _convert_db(args: argparse.Namespace) -> int:
    from deepser.legacy.database import convert_database

    attrs = convert_database(
        args.database,
        args.tasks,
        args.out,
        layout=args.layout,
        c_len=args.c_len,
        speaker_column=args.speaker_column,
        k_fold=args.k_fold,
        corpus=args.corpus,
        features=args.features,
        gain=args.gain,
    )
    n_folds = len(attrs["folds"] or [])
    dropped = attrs["source"]["dropped_rows_outside_folds"]
    print(
        f"{args.out}: {attrs['n_utterances']} rows, {n_folds} folds, window "
        f"{attrs['window_spec']}, tasks {[t['name'] for t in attrs['tasks']]}"
        + (f"; dropped {dropped} rows outside every fold" if dropped else "")
    )
    return 0


def _start_keras_quietly() -> None:
    """Import Keras and run one op with C-level stderr silenced: TensorFlow prints start-up
    notices whatever TF_CPP_MIN_LOG_LEVEL says."""
    from deepser.recognizer.errors import quiet_stderr

    with quiet_stderr():
        import keras

        keras.ops.convert_to_numpy(keras.ops.zeros((1,)) + 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(join_negative_gain(sys.argv[1:] if argv is None else argv))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.command == "import-legacy":
        _start_keras_quietly()
    from deepser.legacy.database import LegacyDatabaseError
    from deepser.legacy.keras2 import LegacyModelError
    from deepser.legacy.presets import SpecError

    handlers = {"import-legacy": _import_legacy, "convert-db": _convert_db}
    try:
        return handlers[args.command](args)
    except (LegacyModelError, LegacyDatabaseError, SpecError, OSError) as exc:
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
