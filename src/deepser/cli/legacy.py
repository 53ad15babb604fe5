"""``deepser import-legacy`` and ``deepser convert-db``: the original toolkit's Keras-2 models
and H5 databases, carried over."""

from __future__ import annotations

import argparse
import sys

from deepser.cli.common import check_output, int_at_least
from deepser.errors import SpecError, UsageError

IMPORT_EPILOG = """\
examples (the original LIVE_SER laughter models):
  deepser import-legacy ami.laugh.mspec.cnnlstm.0.h5 --features mspec --tasks laughter:2 \\
      --gain -1,1 --out bundles/laugh
  deepser import-legacy ami.raw.cnnlstmfcn.0.h5 --features raw --tasks laughter:2 --out b/raw
  deepser recognize --model bundles/laugh --wav talk.wav

--features: a preset of the original's features, 'mspec' (linear-power mel, n_fft 512, hop 512,
80 bands, 0-8 kHz, reflect-padded centred frames, 22 050 Hz) or 'raw' (the waveform at
22 050 Hz), with optional overrides ('mspec,sample_rate=16000'), or a .yaml/.json feature set.
--tasks: one per model output, in order: NAME:N_CLASSES (classes named 0..N-1; 1 = continuous)
or NAME:CLASS,CLASS,... (class names in the order of the output units).
--gain: the min-max bounds the features were normalised with, to [0, 1] like the original:
MIN,MAX, the original's <meta>.gain.txt, or none; default -1,1 (full scale: the bounds of the
published models were never recorded). deepser recognize --gain auto calibrates at run time."""

CONVERT_EPILOG = """\
example (an original database built with -mt 1:2:4:5:6:7, so sid is label column 1):
  deepser convert-db ENT.MSPEC.2d.3cls.av.h5 --tasks emotion:6:0 arousal:3:4 valence:3:5 \\
      --speaker-column 1 --features mspec --gain -1.0541904,1.1097699 --out db/ent.h5

--tasks: NAME:N_CLASSES:LABEL_COL or NAME:CLASS,CLASS,...:LABEL_COL, the label column being a
column of the original 'label' matrix (as in the original trainer's -mt name:n:col); the
original's comma-separated form (acted:2:0,arousal:3:1) works too. Train on the result with an
experiment naming it (deepser.training.train)."""


def add_import_legacy(sub) -> None:
    imp = sub.add_parser(
        "import-legacy",
        help="turn a Keras-2 model of the original toolkit into a model bundle",
        description="Rebuild a Keras-2 .h5 model (the original trainer's or LIVE_SER's) in "
        "Keras 3 with Keras-2 numerics and write a model bundle for deepser-recognize.",
        epilog=IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.set_defaults(handler=import_legacy, command_parser=imp)
    imp.add_argument("model", metavar="MODEL.h5", help="the Keras-2 model file")
    imp.add_argument("--features", required=True, help="feature preset or feature-set file")
    imp.add_argument("--tasks", required=True, nargs="+", metavar="TASK", help="output tasks")
    imp.add_argument("--gain", help="MIN,MAX, a *.gain.txt file, or none [-1,1]")
    imp.add_argument(
        "--layout", choices=("2d", "3d"), help="input layout (default: read off the input shape)"
    )
    imp.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder to write")


def add_convert_db(sub) -> None:
    conv = sub.add_parser(
        "convert-db",
        help="convert an original-format H5 database into a deepser database",
        description="Convert a database of the original toolkit (feat, label, start_indice, "
        "end_indice) into deepser's database format, ready for training.",
        epilog=CONVERT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conv.set_defaults(handler=convert_db, command_parser=conv)
    conv.add_argument("database", metavar="ORIGINAL.h5", help="the original database")
    conv.add_argument("--tasks", required=True, nargs="+", metavar="TASK", help="tasks")
    conv.add_argument("--out", required=True, metavar="DB.h5", help="database to write")
    conv.add_argument(
        "--speaker-column",
        type=int_at_least(0),
        help="label column holding the speaker id (default: each fold is one speaker group)",
    )
    conv.add_argument(
        "--k-fold",
        type=int_at_least(2),
        help="without folds in the file: K contiguous folds (the -kf)",
    )
    conv.add_argument(
        "--layout", choices=("2d", "3d"), help="feat layout (default: read off its shape)"
    )
    conv.add_argument(
        "--c-len",
        type=int_at_least(1),
        help="frames per step of a frame-sequence feat (N, T, c_len*D)",
    )
    conv.add_argument("--corpus", help="corpus name (default: the file name)")
    conv.add_argument("--features", help="feature preset the features were computed with")
    conv.add_argument("--gain", help="MIN,MAX or *.gain.txt the features were computed with")


def import_legacy(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from deepser.legacy.importer import import_legacy
    from deepser.runtime import start_keras_quietly

    check_output(args.out, [args.model], folder=True)
    start_keras_quietly()
    try:
        bundle = import_legacy(
            args.model, args.features, args.tasks, args.out, gain=args.gain, layout=args.layout
        )
    except SpecError as exc:  # --features, --tasks or --gain: a bad command-line value
        raise UsageError(str(exc)) from None
    if args.gain is None:
        print(
            "deepser: note: no --gain given; the bundle normalises audio from [-1, 1] to [0, 1] "
            "(use --gain MIN,MAX or deepser recognize --gain auto if the model used others)",
            file=sys.stderr,
        )
    window, spec, legacy = bundle.window_spec, bundle.feature_spec, bundle.legacy
    tasks = ", ".join(f"{t['name']} {t.get('classes', 'continuous')}" for t in bundle.tasks)
    print(
        f"{args.out}: {legacy['file']} (Keras {legacy['keras_version']}) as a deepser bundle; "
        f"input float32 {list(bundle.row_shape)} ({window['layout']}), features "
        f"{spec['type']} at {spec['sample_rate']} Hz, tasks: {tasks}"
    )
    return 0


def convert_db(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    check_output(args.out, [args.database])
    try:
        attrs = _convert(args)
    except SpecError as exc:  # --tasks, --features or --gain: a bad command-line value
        raise UsageError(str(exc)) from None
    n_folds = len(attrs["folds"] or [])
    dropped = attrs["source"]["dropped_rows_outside_folds"]
    print(
        f"{args.out}: {attrs['n_utterances']} rows, {n_folds} folds, window "
        f"{attrs['window_spec']}, tasks {[t['name'] for t in attrs['tasks']]}"
        + (f"; dropped {dropped} rows outside every fold" if dropped else "")
    )
    return 0


def _convert(args: argparse.Namespace) -> dict:
    from deepser.legacy.database import convert_database

    return convert_database(
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
