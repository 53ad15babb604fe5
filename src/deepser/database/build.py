"""Build an H5 database (the format of :mod:`deepser.database.store`) from cached feature
shards: labels from the validated meta, folds by speaker, context windows."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from deepser import __version__
from deepser.corpus.meta import normalise_types, read_table
from deepser.database.folds import DEFAULT_FOLD_BY
from deepser.database.rows import BATCH_ROWS, RowBlock, RowPlan
from deepser.database.shard_reads import RawShards
from deepser.database.store import DatabaseWriter
from deepser.database.windows import layout_shape, n_steps
from deepser.errors import DamagedFileError, rerun_recovery
from deepser.features.shards import FeatureShard
from deepser.files import (
    config_hash,
    read_json,
    read_tsv,
    read_tsv_batches,
    read_tsv_header,
    write_tsv,
)
from deepser.hdf5 import H5File

log = logging.getLogger(__name__)

COPY_BYTES = 1 << 20  # database rows written at once
READ_ROWS = 16384  # meta rows read at once


@dataclass(frozen=True)
class CorpusInput:
    """One corpus's files as the database build reads them."""

    name: str
    meta: Path
    vocab: Path
    shards: tuple[Path, ...]
    rejected: Path | None = None


def resolve_tasks(refs: Sequence[str | int], columns: Sequence[str]) -> list[str]:
    """Task column names from names or 0-based indexes into the corpus's kept columns."""
    tasks = []
    for ref in refs:
        if isinstance(ref, int):
            if not 0 <= ref < len(columns):
                raise ValueError(f"task index {ref} out of range: columns are {list(columns)}")
            tasks.append(columns[ref])
        elif ref in columns:
            tasks.append(ref)
        else:
            raise ValueError(f"unknown task column {ref!r}: columns are {list(columns)}")
    return tasks


def merge_vocab(name: str, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One vocabulary for a label over several corpora (first corpus's order, then new classes)."""
    types = {e["type"] for e in entries}
    if len(types) != 1:
        raise ValueError(f"label {name!r} is categorical in one corpus and continuous in another")
    if types == {"continuous"}:
        return {"type": "continuous"}
    classes: list[str] = []
    for entry in entries:
        classes += [c for c in entry["classes"] if c not in classes]
    return {"type": "categorical", "classes": classes}


def build_database(
    corpora: Sequence[CorpusInput],
    db: Mapping[str, Any],
    out: str | Path,
    rejected_out: str | Path | None = None,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, Any]:
    """Build the database ``out`` for the database config ``db``; return its summary attributes.

    Out of core (:mod:`deepser.database.rows`, in batches of ``batch_rows`` rows): memory does
    not grow with the corpus; the temporary files (about 100 bytes per utterance) go to a
    folder next to ``out``."""
    vocabs = [read_vocab(corpus) for corpus in corpora]
    columns = list(vocabs[0])
    tasks = resolve_tasks(db["tasks"], columns)
    task_vocab = {}
    for task in tasks:
        missing = [c.name for c, v in zip(corpora, vocabs, strict=True) if task not in v]
        if missing:
            raise ValueError(f"task {task!r} is not a column of corpus {', '.join(missing)}")
        task_vocab[task] = merge_vocab(task, [v[task] for v in vocabs])
    fold_by = db.get("fold_by", DEFAULT_FOLD_BY)
    speaker_col = "speaker" if all("speaker" in v for v in vocabs) else None
    c_len, max_steps, layout = int(db["c_len"]), int(db["max_steps"]), db.get("layout", "2d")
    t_max = n_steps(max_steps, c_len)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        tmp = stack.enter_context(
            tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent)
        )
        names = [c.name for c in corpora]
        plan = RowPlan(Path(tmp), names, tasks, task_vocab, fold_by, speaker_col, batch_rows)
        first = 0
        for i, (corpus, vocab) in enumerate(zip(corpora, vocabs, strict=True)):
            needed = [c for c in (fold_by, speaker_col, *tasks) if c]
            batches = meta_batches(corpus, vocab, needed)
            plan.add_meta(i, batches, len(corpus.shards), first, corpus.meta)
            first += len(corpus.shards)
        specs = ShardSpecs()
        raw = stack.enter_context(RawShards())
        for s, (i, k, path) in enumerate(_all_shards(corpora)):
            with FeatureShard(path) as shard:
                specs.check(corpora[i].name, shard)
                plan.scan_shard(i, s, k, shard, corpora[i].meta)
                raw.add(shard)
        if not plan.n_rows:
            raise ValueError("no utterance with features: nothing to build")
        dim = specs.dims()
        folds_meta = plan.assign_folds(db.get("n_folds"))
        shape = layout_shape(layout, t_max, c_len, dim)
        writer = DatabaseWriter(out, plan.n_rows, shape, len(tasks), scattered=True)
        try:
            bar = stack.enter_context(
                tqdm(total=plan.n_rows, desc="database", unit="utt", mininterval=2.0, ascii=True)
            )
            buf = np.empty((max(1, COPY_BYTES // (4 * int(np.prod(shape)))), *shape), np.float32)
            for block in plan.rows(c_len, t_max):
                for a, b in block.runs():
                    writer.write_columns(
                        int(block.row[a]),
                        block.label[a:b],
                        block.n_valid[a:b],
                        block.fold[a:b],
                        block.utt_id[a:b],
                        block.speaker[a:b],
                        block.corpus[a:b],
                    )
                _copy_features(block, raw, writer, buf, c_len)
                bar.update(len(block.row))
            attrs = {
                "feature_spec": specs.spec,
                "gain": specs.gain,
                "window_spec": {
                    "c_len": c_len,
                    "max_steps": max_steps,
                    "layout": layout,
                    "n_steps": t_max,
                    "dims": dim,
                },
                "tasks": [{"name": t, **task_vocab[t]} for t in tasks],
                "fold_by": fold_by,
                "folds": folds_meta,
                "corpora": [c.name for c in corpora],
                "n_utterances": plan.n_originals,
                "n_augmented": plan.n_rows - plan.n_originals,
                "speakers": plan.speakers_present,
                "config_hash": config_hash(dict(db)),
                "deepser_version": __version__,
            }
            writer.finish(plan.fold_bounds, attrs)
        except BaseException:
            writer.abort()
            raise
    if rejected_out is not None:
        write_rejected(corpora, specs.rejected, rejected_out)
    log.info("database %s: %d utterances, %s", out, plan.n_rows, attrs["window_spec"])
    return attrs


def _all_shards(corpora: Sequence[CorpusInput]) -> Iterator[tuple[int, int, Path]]:
    """(corpus index, shard index in the corpus, path) of every shard, in order."""
    for i, corpus in enumerate(corpora):
        for k, path in enumerate(corpus.shards):
            yield i, k, Path(path)


def _copy_features(
    block: RowBlock, raw: RawShards, writer: DatabaseWriter, buf: np.ndarray, c_len: int
) -> None:
    """Copy a block's rows into the database: each row's kept frames (whole windows, or the
    frames of an utterance shorter than one) read from its shard straight into ``buf`` (zeroed
    first: the rest is padding), each run of consecutive rows written at once."""
    rows = [memoryview(r).cast("B") for r in buf.reshape(len(buf), -1)]
    frame_bytes = 4 * buf.shape[-1]
    keep = np.where(block.n_frames >= c_len, block.n_valid * c_len, block.n_frames)
    offset, single = raw.locate(block.shard, block.start, keep)
    shard, start, size = block.shard.tolist(), block.start.tolist(), (keep * frame_bytes).tolist()
    offset, single, keep = offset.tolist(), single.tolist(), keep.tolist()
    for a, b in block.runs():
        for first in range(a, b, len(buf)):
            last = min(b, first + len(buf))
            buf.fill(0.0)
            for row, i in zip(rows, range(first, last), strict=False):
                view = row[: size[i]]
                if not single[i] or os.preadv(raw.fd(shard[i]), [view], offset[i]) != size[i]:
                    raw.read_into(shard[i], start[i], keep[i], view)  # across chunks, or short
            writer.write_features(int(block.row[first]), buf[: last - first])


class ShardSpecs:
    """What every shard of a database must share (feature spec, dimension), and the gain and
    rejected audio of each corpus, checked shard by shard."""

    def __init__(self) -> None:
        self.spec: dict[str, Any] | None = None
        self._first: Path | None = None
        self._dims: dict[int, str] = {}
        self.gain: dict[str, Any] = {}
        self.rejected: list[dict[str, Any]] = []

    def check(self, corpus: str, shard: FeatureShard) -> None:
        missing = [k for k in ("feature_spec", "gain") if k not in shard.attrs]
        if missing:
            raise shard.file.fail(f"no {', '.join(missing)} attribute(s); not a complete shard")
        if self.spec is None:
            self.spec, self._first = shard.attrs["feature_spec"], shard.path
        elif shard.attrs["feature_spec"] != self.spec:
            raise shard.file.fail(
                f"extracted with another feature spec than {self._first}: "
                f"{shard.attrs['feature_spec']} vs {self.spec}"
            )
        if shard.index:
            self._dims.setdefault(shard.dims, str(shard.path))
        self.gain[corpus] = shard.attrs["gain"]
        self.rejected += [{"corpus": corpus, **r} for r in shard.attrs.get("rejected", [])]

    def dims(self) -> int:
        """The feature dimension every non-empty shard shares."""
        if len(self._dims) != 1:
            raise ValueError(f"feature shards disagree on the feature dimension: {self._dims}")
        return next(iter(self._dims))


def meta_batches(
    corpus: CorpusInput, vocab: Mapping[str, Any], needed: Sequence[str], rows: int | None = None
) -> Iterator[pd.DataFrame]:
    """The columns ``utt_id``, ``shard`` and ``needed`` of the corpus's normalised meta
    (``meta.tsv``) in batches of ``rows`` rows (default ``READ_ROWS``), checked as
    :func:`read_corpus_tables` checks the whole table (a ``needed`` column it lacks is a
    ValueError: not in every corpus)."""
    meta_file = _corpus_file(corpus, Path(corpus.meta), "normalised meta file")
    if not meta_file.path.is_file():
        raise meta_file.fail("file not found")
    with meta_file.reading("it as a table"):
        header = list(read_tsv_header(corpus.meta))
    missing = [c for c in ("utt_id", "shard", *vocab) if c not in header]
    if missing:
        raise meta_file.fail(f"no column(s) {', '.join(missing)}")
    absent = [c for c in needed if c not in header]
    if absent:
        raise ValueError(f"column {absent[0]!r} is not in every corpus (not in {corpus.meta})")
    columns = list(dict.fromkeys(["utt_id", "shard", *needed]))
    types = {c: vocab[c] for c in columns if c in vocab}
    with meta_file.reading("it as a table"):
        for batch in read_tsv_batches(corpus.meta, rows or READ_ROWS, columns):
            yield normalise_types(batch, types)


def _corpus_file(corpus: CorpusInput, path: Path, kind: str) -> H5File:
    """A file of the corpus's prepared meta (``meta.tsv``, ``vocab.json``, ``rejected.tsv``, one
    job's outputs: the recovery deletes them together, so the workflow writes them again)."""
    outputs = [p for p in (corpus.meta, corpus.vocab, corpus.rejected) if p is not None]
    return H5File(
        path,
        kind,
        rerun_recovery(outputs, "prepares the corpus's meta again (prepare_meta)"),
        written_whole=True,
    )


def read_vocab(corpus: CorpusInput) -> dict[str, Any]:
    """A corpus's vocabulary (``vocab.json``), checked: a damaged file raises
    :class:`DamagedFileError` naming it and how to recover."""
    vocab_file = _corpus_file(corpus, Path(corpus.vocab), "vocabulary file")
    if not vocab_file.path.is_file():
        raise vocab_file.fail("file not found")
    try:
        vocab = read_json(corpus.vocab)
    except DamagedFileError:
        raise vocab_file.fail("not a valid JSON file") from None
    if not isinstance(vocab, dict) or not all(isinstance(v, dict) for v in vocab.values()):
        raise vocab_file.fail("not a JSON object of label vocabularies")
    return vocab


def read_corpus_tables(corpus: CorpusInput) -> tuple[dict[str, Any], pd.DataFrame]:
    """A corpus's vocabulary (:func:`read_vocab`) and normalised meta (``meta.tsv``), checked:
    a damaged file raises :class:`DamagedFileError` naming it and how to recover."""
    vocab = read_vocab(corpus)
    meta_file = _corpus_file(corpus, Path(corpus.meta), "normalised meta file")
    if not meta_file.path.is_file():
        raise meta_file.fail("file not found")
    with meta_file.reading("it as a table"):
        table = read_table(corpus.meta, vocab)
        missing = [c for c in ("utt_id", *vocab) if c not in table]
        if missing:
            raise meta_file.fail(f"no column(s) {', '.join(missing)}")
    return vocab, table


def write_rejected(
    corpora: Sequence[CorpusInput], feature_rejects: list[dict[str, Any]], out: str | Path
) -> None:
    """All rejected audio (meta stage and feature stage) of the database's corpora, one TSV."""
    frames = []
    for corpus in corpora:
        if corpus.rejected is not None and Path(corpus.rejected).stat().st_size:
            with _corpus_file(corpus, Path(corpus.rejected), "rejected-audio list").reading("it"):
                frames.append(read_tsv(corpus.rejected).assign(corpus=corpus.name))
    if feature_rejects:
        frames.append(pd.DataFrame.from_records(feature_rejects).astype(str))
    columns = ["corpus", "utt_id", "audio", "stage", "reason"]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    write_tsv(out, table.reindex(columns=columns))
