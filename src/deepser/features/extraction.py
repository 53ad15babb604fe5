"""Per-shard work: gain statistics and feature extraction over a shard's utterances."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from deepser.corpus.audio import load_audio
from deepser.corpus.gain import apply_gain, resolve_gain, shard_stats
from deepser.corpus.manifest import file_digest
from deepser.errors import AudioError, BadAudioError, DamagedFileError, FeatureError, rerun_recovery
from deepser.features.augment import augmented_id, copy_rng, perturb
from deepser.features.registry import extract
from deepser.features.shards import write_feature_shard
from deepser.files import read_json

log = logging.getLogger(__name__)

Row = Sequence[str]  # (utt_id, audio path)


def _progress(rows: Sequence[Row], desc: str) -> tqdm:
    return tqdm(rows, desc=desc, unit="utt", mininterval=2.0, ascii=True)


def gain_stats_for_shard(rows: Sequence[Row], sample_rate: int) -> dict[str, float | int]:
    """Sample statistics of a shard's audio at ``sample_rate`` (unreadable files are skipped:
    the feature stage reports them)."""

    def signals() -> Iterator[np.ndarray]:
        for utt_id, audio in _progress(rows, "gain statistics"):
            try:
                yield load_audio(audio, sample_rate)
            except AudioError as exc:
                log.warning("skipping %s for gain statistics: %s", utt_id, exc.reason)

    return shard_stats(signals())


def shard_gain(config: Mapping[str, Any], corpus_stats: str | Path | None) -> dict[str, Any]:
    """The explicit gain normalisation of a feature set (``corpus_stats``: the merged corpus
    statistics file when the feature set uses them)."""
    stats = None
    if corpus_stats:
        try:
            stats = read_json(corpus_stats)
            if not isinstance(stats, dict):
                raise DamagedFileError(f"{corpus_stats}: not a JSON object", corpus_stats)
        except DamagedFileError as exc:
            recover = rerun_recovery(corpus_stats, "merges it again from the shards' statistics")
            raise DamagedFileError(f"gain statistics {exc}. {recover}", corpus_stats) from None
    return resolve_gain(config, stats)


def extract_shard(
    rows: Sequence[Row],
    spec: Mapping[str, Any],
    gain: Mapping[str, Any],
    out: str | Path,
    on_bad_audio: str = "fail",
    augment: Mapping[str, Any] | None = None,
    transform: Callable[[np.ndarray, int, str], np.ndarray] | None = None,
    states: Mapping[str, tuple[int, int]] | None = None,
) -> list[dict[str, Any]]:
    """Compute ``spec`` features for every row into the shard file ``out``; with ``augment``
    (:func:`deepser.features.augment.waveform_config`), also its perturbed copies
    ``<utt_id>#aug<k>``; with ``transform(y, sample_rate, utt_id)``, of the transformed audio
    (before the gain normalisation, as a recording made that way would be). With ``states``
    (utt_id -> (size, mtime_ns), from the shard's manifest), each file's content digest is
    recorded in the shard with its state (:mod:`deepser.corpus.manifest` re-runs the shard only
    when the content changes).

    Returns the rejected utterances (``on_bad_audio: skip``); with ``fail``, raises
    :class:`BadAudioError` naming every bad file once the whole shard has been checked.
    """
    bad: list[dict[str, Any]] = []
    sources: list[tuple[str, str, int, int]] = []
    sr = int(spec["sample_rate"])

    def items() -> Iterator[tuple[str, np.ndarray]]:
        for utt_id, audio in _progress(rows, "features"):
            if states is not None:
                sources.append((utt_id, file_digest(audio), *states[utt_id]))
            try:
                y = load_audio(audio, spec["sample_rate"])
                if transform is not None:
                    y = transform(y, sr, utt_id)
                feat = extract(apply_gain(y, gain), spec)
            except AudioError as exc:
                bad.append(
                    {"utt_id": utt_id, "audio": audio, "stage": "features", "reason": exc.reason}
                )
                continue
            except FeatureError as exc:
                bad.append(
                    {"utt_id": utt_id, "audio": audio, "stage": "features", "reason": str(exc)}
                )
                continue
            if not np.all(np.isfinite(feat)):
                bad.append(
                    {
                        "utt_id": utt_id,
                        "audio": audio,
                        "stage": "features",
                        "reason": "non-finite feature values",
                    }
                )
                continue
            yield utt_id, feat
            for k in range(1, int(augment["copies"]) + 1) if augment else ():
                copy = perturb(y, sr, augment, copy_rng(utt_id, k, int(augment["seed"])))
                yield augmented_id(utt_id, k), extract(apply_gain(copy, gain), spec)

    def final_attrs() -> dict[str, Any]:
        if bad and on_bad_audio == "fail":
            raise BadAudioError(bad)  # the temporary file is discarded
        attrs = {"feature_spec": dict(spec), "gain": dict(gain), "rejected": bad}
        return {**attrs, "augment": dict(augment)} if augment else attrs

    n = write_feature_shard(
        out, items(), final_attrs, (lambda: sources) if states is not None else None
    )
    log.info("%d utterances written to %s, %d rejected", n, out, len(bad))
    return bad
