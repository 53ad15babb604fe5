"""``deepser card BUNDLE``: print a bundle's model card (``model_card.md``; a bundle without
one gets a card made from its ``bundle.json``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepser.errors import BundleError
from deepser.model_card import read_card

DESCRIPTION = (
    "Print a model bundle's card: what it predicts, the data it was trained on, its "
    "speaker-independent figures with confidence intervals, groups, calibration, degraded "
    "audio, other corpora, and its intended use and limits (Markdown)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="a bundle folder (holding bundle.json)")


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    folder = args.bundle
    if not (folder / "bundle.json").is_file():
        raise BundleError(f"{folder}: not a model bundle (no bundle.json)")
    try:
        text = read_card(folder)
    except ValueError as exc:
        raise BundleError(f"{folder / 'bundle.json'}: not valid JSON ({exc})") from None
    sys.stdout.write(text)
    return 0
