"""``deepser demo-corpus``: write the embedded synthetic demo corpus."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Synthesize a small, deterministic, speech-like emotional corpus (four emotions, speakers "
    "alternating female and male) as 16-bit mono WAV files plus meta.tsv."
)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="output directory (created if missing)")
    parser.add_argument(
        "--seed", type=int, default=7, metavar="N", help="random seed, >= 0 (default: 7)"
    )
    parser.add_argument(
        "--n-speakers",
        type=int,
        default=8,
        metavar="N",
        help="number of speakers, alternating F/M (default: 8)",
    )
    parser.add_argument(
        "--utterances-per-emotion",
        type=int,
        default=10,
        metavar="N",
        help="utterances per speaker and emotion (default: 10)",
    )
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=16000,
        metavar="HZ",
        help="sample rate in Hz (default: 16000)",
    )
    return parser


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    # imported here, not at the top: the other commands' start-up does not load it
    from deepser.corpus.demo import EMOTIONS, synthesize_corpus

    try:
        meta = synthesize_corpus(
            args.out_dir,
            seed=args.seed,
            n_speakers=args.n_speakers,
            utterances_per_emotion=args.utterances_per_emotion,
            sample_rate=args.sample_rate,
        )
    except ValueError as exc:
        parser.error(str(exc))
    n = args.n_speakers * len(EMOTIONS) * args.utterances_per_emotion
    print(f"wrote {n} utterances and {meta}")
    return 0
