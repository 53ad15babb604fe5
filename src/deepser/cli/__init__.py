"""``deepser``: one command with subcommands.

- ``recognize``: emotion recognition on files or a microphone with a model bundle (also
  installed as ``deepser-recognize``);
- ``import-legacy``: a Keras-2 ``.h5`` model of the original toolkit -> a model bundle;
- ``convert-db``: an original-format H5 database -> a deepser database to train on;
- ``demo-corpus``: write the embedded synthetic demo corpus;
- ``card``: print a model bundle's model card;
- ``export``: a bundle for a light runtime (LiteRT, ONNX, SavedModel).

The workflow itself runs with ``snakemake``. Exit status: 0 done, 1 error (one line on stderr),
2 bad command line, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from deepser import __version__
from deepser.cli import card, demo, export, legacy, recognize
from deepser.cli.common import join_negative_gain
from deepser.errors import DeepserError, UsageError

PROG = "deepser"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="deepser: speech emotion recognition. Train with the Snakemake workflow "
        "(snakemake --cores all); recognise, import and convert with these subcommands.",
        epilog="Run 'deepser COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"deepser {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rec = sub.add_parser(
        "recognize",
        help="recognise emotions in audio files or live microphone input",
        description=recognize.DESCRIPTION,
        epilog=recognize.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    recognize.add_arguments(rec)
    rec.set_defaults(handler=recognize.run, command_parser=rec)
    legacy.add_import_legacy(sub)
    legacy.add_convert_db(sub)
    dem = sub.add_parser(
        "demo-corpus", help="write the synthetic demo corpus", description=demo.DESCRIPTION
    )
    demo.add_arguments(dem)
    dem.set_defaults(handler=demo.run, command_parser=dem)
    crd = sub.add_parser(
        "card", help="print a model bundle's model card", description=card.DESCRIPTION
    )
    card.add_arguments(crd)
    crd.set_defaults(handler=card.run, command_parser=crd)
    exp = sub.add_parser(
        "export",
        help="export a bundle for a light runtime (LiteRT, ONNX, SavedModel)",
        description=export.DESCRIPTION,
        epilog=export.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_arguments(exp)
    exp.set_defaults(handler=export.run, command_parser=exp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``deepser``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(join_negative_gain(sys.argv[1:] if argv is None else argv))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = args.command_parser
    try:
        return args.handler(command, args)
    except UsageError as exc:
        command.error(str(exc))
    except (DeepserError, OSError) as exc:  # the message as it is (it may list problems)
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
