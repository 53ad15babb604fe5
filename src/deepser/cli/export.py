"""``deepser export BUNDLE --format litert|onnx|savedmodel --out DIR``: a bundle for a light
runtime, checked against the Keras model before it is written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepser.cli.common import check_output
from deepser.deploy import FORMATS

DESCRIPTION = (
    "Export a trained model bundle for a light runtime: 'litert' (a .tflite model with "
    "built-in ops only, run by ai-edge-litert), 'onnx' (run by ONNX Runtime) or 'savedmodel' "
    "(a TensorFlow SavedModel, for TensorFlow Serving). The exported folder holds the same "
    "bundle.json (features, gain, windows, tasks, calibration, metrics) plus the model file; "
    "'deepser recognize --model DIR' runs it without Keras (and, for litert and onnx, without "
    "TensorFlow). Before anything is written the exported model and the Keras model predict the "
    "same rows (the bundle's database when it is at hand, else --database, else features of "
    "synthetic audio); a difference above --tolerance is an error."
)
EPILOG = """\
examples:
  deepser export results/experiments/demo/final --format litert --out deploy/demo-litert
  deepser recognize --model deploy/demo-litert --wav speech.wav
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="a trained (Keras) model bundle folder")
    parser.add_argument(
        "--format", required=True, choices=FORMATS, help="the exported model's format"
    )
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="new (or empty) folder to write"
    )
    parser.add_argument(
        "--database",
        type=Path,
        metavar="DB.h5",
        help="a database to take the check's rows from [the bundle's own, when it exists]",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-5,
        metavar="T",
        help="largest allowed difference from the Keras model's outputs [1e-5]",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no status lines")


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not args.tolerance > 0:
        parser.error(f"--tolerance {args.tolerance}: give a positive number")
    check_output(args.out, [args.bundle], folder=True)
    if args.database is not None and not args.database.is_file():
        parser.error(f"--database {args.database}: no such file")
    from deepser.deploy.export import describe, export_bundle

    def status(message: str) -> None:
        if not args.quiet:
            print(f"deepser export: {message}", file=sys.stderr, flush=True)

    result = export_bundle(
        args.bundle,
        args.format,
        args.out,
        database=args.database,
        tolerance=args.tolerance,
        status=status,
    )
    status(describe(result))
    return 0
