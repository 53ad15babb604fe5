"""The database build's row plan, out of core: which database row each utterance of the feature
shards becomes, with memory that does not grow with the corpus.

1. :meth:`RowPlan.add_meta`: each corpus's meta, read in batches, is partitioned by shard into
   temporary files (utterance id; fold group, speaker and labels as fixed-size records).
2. :meth:`RowPlan.scan_shard`: each shard is matched against its part of the meta (the
   utterances it holds, and their augmented copies, become rows; one the meta puts there that is
   neither held nor rejected is an error). The rows go, sorted by (group, utterance id), into
   runs of at most ``batch_rows`` rows on disk; rows are counted per group.
3. :meth:`RowPlan.assign_folds`: folds from the counts; each group gets a block of rows (folds in
   order; in a fold, groups by (corpus, group)), so the database is sorted by (fold, corpus,
   group, utterance id), whatever the number of shards.
4. :meth:`RowPlan.rows`: the runs merged a block at a time (numpy, no per-row Python); row k
   of group g is block_start[g] + k. Each row carries where its frames lie in its shard, so the
   build copies features in database order (:mod:`deepser.database.shard_reads`).

Memory: a batch of meta rows, one shard's index, a run being sorted, a block of each run while
merging, and a few numbers per group and per speaker. Disk: about 100 bytes per utterance.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepser.database.folds import assign_folds
from deepser.database.windows import count_valid
from deepser.features.augment import is_augmented, source_id
from deepser.features.shards import FeatureShard

BATCH_ROWS = 65536  # meta rows buffered before they are partitioned; rows of a sorted run
MERGE_BLOCK = 1024  # rows read at once from each run while merging


class Names:
    """Distinct strings -> int codes, in order of first appearance."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def code(self, values: Sequence[str] | pd.Series) -> np.ndarray:
        """The codes of ``values`` (new strings get new codes)."""
        local, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=False)
        codes = self.codes
        known = np.fromiter((codes.setdefault(str(u), len(codes)) for u in uniques), dtype=np.int32)
        return known[local]

    @property
    def names(self) -> list[str]:
        return list(self.codes)


def _append_part(stem: Path, ids: Sequence[str], records: np.ndarray) -> None:
    """Append meta rows to a shard's part: ids one per line (``.ids``; a normalised meta's
    ids hold no line breaks), the rest as fixed-size records (``.rec``)."""
    with open(stem.with_suffix(".ids"), "ab") as f:
        f.write(("\n".join(ids) + "\n").encode())
    with open(stem.with_suffix(".rec"), "ab") as f:
        records.tofile(f)


def _read_part(stem: Path, dtype: np.dtype) -> tuple[list[str], np.ndarray]:
    """A shard's part as :func:`_append_part` wrote it (none: empty)."""
    if not stem.with_suffix(".ids").exists():
        return [], np.zeros(0, dtype=dtype)
    ids = stem.with_suffix(".ids").read_bytes().decode().split("\n")[:-1]
    return ids, np.fromfile(stem.with_suffix(".rec"), dtype=dtype)


def _by_key(keys: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(key, row indices) for each distinct key, indices in their original order."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    bounds = np.flatnonzero(np.diff(sorted_keys)) + 1
    for rows in np.split(order, bounds):
        if rows.size:
            yield int(keys[rows[0]]), rows


@dataclass
class RowPlan:
    """The row plan of one database build (see the module docstring); ``tmp`` an empty folder."""

    tmp: Path
    corpora: Sequence[str]
    tasks: Sequence[str]
    task_vocab: Mapping[str, Mapping[str, Any]]
    fold_by: str | None
    speaker_col: str | None
    batch_rows: int = BATCH_ROWS
    groups: Names = field(default_factory=Names)
    speakers: Names = field(default_factory=Names)
    _group_corpus: list[int] = field(default_factory=list)
    _runs: list[tuple[Path, np.dtype, int]] = field(default_factory=list)
    _pending: list[np.ndarray] = field(default_factory=list)
    _pending_rows: int = 0
    _meta: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    _meta_rows: int = 0
    _rank: np.ndarray | None = None
    n_rows: int = 0

    @property
    def multi(self) -> bool:
        return len(self.corpora) > 1

    # ------------------------------------------------------------------ 1. meta by shard

    def add_meta(
        self,
        corpus: int,
        batches: Iterable[pd.DataFrame],
        n_shards: int,
        first_shard: int,
        meta: str | Path,
    ) -> None:
        """Partition corpus ``corpus``'s meta (``batches`` of its normalised table) into the
        parts of its shards (global indexes ``first_shard`` + the meta's ``shard``)."""
        name = self.corpora[corpus]
        classes = {
            t: {c: float(i) for i, c in enumerate(v["classes"])}
            for t, v in self.task_vocab.items()
            if v["type"] != "continuous"
        }
        for batch in batches:
            if batch.empty:
                continue
            shard = batch["shard"].to_numpy(dtype=np.int64)
            bad = (shard < 0) | (shard >= n_shards)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"{meta}: utterance {batch['utt_id'].iloc[i]!r} is in shard {shard[i]}, but "
                    f"corpus {name} has {n_shards} feature shard(s)"
                )
            ids = batch["utt_id"].to_numpy(dtype=object)
            if self.fold_by:
                group_keys = self._qualified(name, batch[self.fold_by])
            else:
                group_keys = [name] * len(batch)
            before = len(self.groups.codes)
            rec = np.empty(len(batch), dtype=self._part_dtype)
            rec["g"] = self.groups.code(group_keys)
            self._group_corpus += [corpus] * (len(self.groups.codes) - before)
            spk = self._qualified(name, batch[self.speaker_col]) if self.speaker_col else None
            rec["spk"] = self.speakers.code(spk if spk is not None else [""] * len(batch))
            for j, task in enumerate(self.tasks):
                if task in classes:
                    values = batch[task].astype(str)
                    mapped = values.map(classes[task])
                    if mapped.isna().any():
                        i = int(np.flatnonzero(mapped.isna().to_numpy())[0])
                        raise ValueError(
                            f"{meta}: utterance {batch['utt_id'].iloc[i]!r} has {task} "
                            f"{values.iloc[i]!r}, not a class of its vocabulary"
                        )
                    rec["lab"][:, j] = mapped.to_numpy(dtype=np.float64)
                else:
                    rec["lab"][:, j] = batch[task].to_numpy(dtype=np.float64)
            self._meta.append((shard + first_shard, ids, rec))
            self._meta_rows += len(rec)
            if self._meta_rows >= self.batch_rows:
                self._write_parts()
        self._write_parts()

    def _write_parts(self) -> None:
        """Append the meta rows read so far to their shards' parts."""
        if not self._meta:
            return
        shard, ids, rec = (np.concatenate(a) for a in zip(*self._meta, strict=True))
        self._meta.clear()
        self._meta_rows = 0
        for s, rows in _by_key(shard):
            _append_part(self.tmp / f"meta-{s}", ids[rows].tolist(), rec[rows])

    @property
    def _part_dtype(self) -> np.dtype:
        return np.dtype(
            [("g", np.int32), ("spk", np.int32), ("lab", np.float64, (len(self.tasks),))]
        )

    def _qualified(self, corpus: str, values: pd.Series) -> pd.Series:
        values = values.astype(str)
        return f"{corpus}/" + values if self.multi else values

    def _ranks(self) -> np.ndarray:
        """Each group's rank in the database's order: by (corpus name, group)."""
        if self._rank is None:
            corpus_rank = {
                c: r
                for r, c in enumerate(
                    sorted(range(len(self.corpora)), key=lambda i: self.corpora[i])
                )
            }
            names = self.groups.names
            order = sorted(
                range(len(names)), key=lambda g: (corpus_rank[self._group_corpus[g]], names[g])
            )
            self._rank = np.empty(len(names), dtype=np.int32)
            self._rank[order] = np.arange(len(names), dtype=np.int32)
            self._group_rows = np.zeros(len(names), dtype=np.int64)
            self._group_originals = np.zeros(len(names), dtype=np.int64)
            self._speaker_seen = np.zeros(len(self.speakers.codes), dtype=bool)
        return self._rank

    # ------------------------------------------------------------------ 2. shards into runs

    def scan_shard(
        self, corpus: int, s: int, k: int, shard: FeatureShard, meta: str | Path
    ) -> None:
        """Match global shard ``s`` (shard ``k`` of corpus ``corpus``) against its meta part."""
        rank = self._ranks()
        ids, part = _read_part(self.tmp / f"meta-{s}", self._part_dtype)
        gcode, scode, labels = part["g"], part["spk"], part["lab"]
        self._check_missing(corpus, k, shard, ids, meta)
        row_of = {u: i for i, u in enumerate(ids)}
        positions, rows, copies = [], [], []
        for pos, utt in enumerate(shard.ids):
            i = row_of.get(utt)
            if i is None and is_augmented([utt])[0]:
                i = row_of.get(source_id(utt))
                if i is not None:
                    copies.append(len(rows))
            if i is not None:
                positions.append(pos)
                rows.append(i)
        if not rows:
            return
        take = np.asarray(rows, dtype=np.int64)
        held = shard.ids
        out_ids = np.asarray([held[p].encode() for p in positions], dtype=np.bytes_)
        aug = np.zeros(take.size, dtype=bool)
        aug[copies] = True
        dtype = np.dtype(
            [
                ("g", np.int32),
                ("id", out_ids.dtype),
                ("s", np.int32),
                ("at", np.int64),
                ("nf", np.int64),
                ("spk", np.int32),
                ("c", np.int32),
                ("aug", np.bool_),
                ("lab", np.float64, (len(self.tasks),)),
            ]
        )
        rec = np.empty(take.size, dtype=dtype)
        pos_arr = np.asarray(positions, dtype=np.int64)
        rec["g"] = rank[gcode[take]]
        rec["id"] = out_ids
        rec["s"] = s
        rec["at"] = shard.starts[pos_arr]
        rec["nf"] = shard.n_frames[pos_arr]
        rec["spk"] = scode[take]
        rec["c"] = corpus
        rec["aug"] = aug
        rec["lab"] = labels[take]
        np.add.at(self._group_rows, gcode[take], 1)
        np.add.at(self._group_originals, gcode[take[~aug]], 1)
        self._speaker_seen[scode[take]] = True
        self.n_rows += int(take.size)
        self._pending.append(rec)
        self._pending_rows += rec.size
        if self._pending_rows >= self.batch_rows:
            self._write_run()

    def _check_missing(
        self, corpus: int, k: int, shard: FeatureShard, ids: Sequence[str], meta: str | Path
    ) -> None:
        rejected = {str(r.get("utt_id")) for r in shard.attrs.get("rejected", [])}
        missing = [u for u in ids if u not in shard.index and u not in rejected]
        if missing:
            raise shard.file.fail(
                f"missing {len(missing)} utterance(s) that {meta} puts in shard {k} of "
                f"corpus {self.corpora[corpus]} (e.g. {missing[0]!r}), not rejected by its "
                "extraction"
            )

    def _write_run(self) -> None:
        if not self._pending:
            return
        width = max(1, *(r.dtype["id"].itemsize for r in self._pending))
        first = self._pending[0].dtype
        dtype = np.dtype([(n, f"S{width}") if n == "id" else (n, first[n]) for n in first.names])
        run = np.concatenate([r.astype(dtype) for r in self._pending])
        self._pending.clear()
        self._pending_rows = 0
        run = run[np.lexsort((run["id"], run["g"]))]
        path = self.tmp / f"run-{len(self._runs)}.bin"
        run.tofile(path)
        self._runs.append((path, dtype, run.size))

    # ------------------------------------------------------------------ 3. folds and blocks

    def assign_folds(self, n_folds: int | None) -> list[dict[str, Any]] | None:
        """Folds and row blocks; the folds' attribute (None without ``fold_by``)."""
        self._write_run()
        rank = self._ranks()
        names = self.groups.names
        present = np.flatnonzero(self._group_rows > 0)
        self._fold = np.full(len(names), -1, dtype=np.int32)
        folds_meta = None
        if self.fold_by:
            assignment = assign_folds(
                [names[g] for g in present], n_folds, weights=self._group_rows[present].tolist()
            )
            for g in present:
                self._fold[g] = assignment[names[g]]
            n = max(assignment.values()) + 1
            folds_meta = []
            for f in range(n):
                members = present[self._fold[present] == f]
                folds_meta.append(
                    {
                        "fold": f,
                        "groups": sorted(names[g] for g in members),
                        "n_utterances": int(self._group_originals[members].sum()),
                    }
                )
        order = present[np.lexsort((rank[present], self._fold[present]))]
        self._start_by_rank = np.zeros(len(names), dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(self._group_rows[order])[:-1]])
        self._start_by_rank[rank[order]] = starts
        self._fold_by_rank = np.empty(len(names), dtype=np.int32)
        self._fold_by_rank[rank] = self._fold
        self.fold_bounds = None
        if folds_meta is not None:
            sizes = [
                int(self._group_rows[present[self._fold[present] == f]].sum())
                for f in range(len(folds_meta))
            ]
            ends = np.cumsum(sizes)
            self.fold_bounds = [(int(e - n), int(e)) for e, n in zip(ends, sizes, strict=True)]
        return folds_meta

    @property
    def n_originals(self) -> int:
        return int(self._group_originals.sum())

    @property
    def speakers_present(self) -> list[str]:
        names = self.speakers.names
        return sorted(names[i] for i in np.flatnonzero(self._speaker_seen))

    # ------------------------------------------------------------------ 4. merge

    def rows(self, c_len: int, t_max: int) -> Iterator[RowBlock]:
        """The runs merged, in blocks: each row with its database row (a group's rows are
        consecutive, in utterance id order; the blocks follow the groups' ranks)."""
        width = max(d["id"].itemsize for _, d, _ in self._runs)
        dtype = np.dtype(
            [(n, f"S{width}") if n == "id" else (n, d) for n, d in _fields(self._runs[0][1])]
        )
        nxt = self._start_by_rank.copy()
        for merged in _merge([_Run(p, d, dtype) for p, d, _ in self._runs]):
            g = merged["g"].astype(np.int64)
            first = np.concatenate([[True], g[1:] != g[:-1]])
            starts = np.flatnonzero(first)
            rank_in = np.arange(g.size) - np.repeat(starts, np.diff([*starts, g.size]))
            row = nxt[g] + rank_in
            np.add.at(nxt, g[starts], np.diff([*starts, g.size]))
            yield self._block(merged, row, c_len, t_max)

    def _block(self, rec: np.ndarray, row: np.ndarray, c_len: int, t_max: int) -> RowBlock:
        speakers = np.asarray(self.speakers.names, dtype=object)
        corpora = np.asarray(self.corpora, dtype=object)
        n_frames = rec["nf"].astype(np.int64)
        return RowBlock(
            row=row,
            shard=rec["s"].astype(np.int64),
            start=rec["at"].astype(np.int64),
            n_frames=n_frames,
            n_valid=count_valid(n_frames, c_len, t_max),
            fold=self._fold_by_rank[rec["g"]],
            label=rec["lab"].reshape(len(rec), len(self.tasks)),
            utt_id=np.char.decode(rec["id"], "utf-8").tolist(),
            speaker=speakers[rec["spk"]].tolist(),
            corpus=corpora[rec["c"]].tolist(),
        )


def _fields(dtype: np.dtype) -> list[tuple[str, Any]]:
    return [(n, dtype.fields[n][0]) for n in dtype.names]


class _Run:
    """A sorted run on disk, read in blocks of ``MERGE_BLOCK`` rows (cast to ``dtype``)."""

    def __init__(self, path: Path, stored: np.dtype, dtype: np.dtype) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed when read to the end)
        self._stored, self._dtype = stored, dtype
        self.block = np.zeros(0, dtype=dtype)
        self.done = False
        self.refill()

    def refill(self) -> None:
        """Read the next block when the current one is used up."""
        if self.block.size or self.done:
            return
        block = np.fromfile(self._file, dtype=self._stored, count=MERGE_BLOCK)
        if block.size == 0:
            self.done = True
            self._file.close()
        self.block = block.astype(self._dtype)


def _merge(runs: list[_Run]) -> Iterator[np.ndarray]:
    """Merge sorted runs by (g, id), a block at a time: every row up to the smallest of the
    runs' last buffered keys is final, so it is taken from every run, sorted and yielded."""
    while True:
        for run in runs:
            run.refill()
        runs = [r for r in runs if not r.done]
        if not runs:
            return
        last = min((r.block[-1]["g"], r.block[-1]["id"]) for r in runs)
        taken = []
        for run in runs:
            b = run.block
            n = int(
                np.count_nonzero((b["g"] < last[0]) | ((b["g"] == last[0]) & (b["id"] <= last[1])))
            )
            taken.append(b[:n])
            run.block = b[n:]
        merged = np.concatenate(taken)
        yield merged[np.lexsort((merged["id"], merged["g"]))]


@dataclass
class RowBlock:
    """Merged rows: their database rows and what the database holds of them."""

    row: np.ndarray
    shard: np.ndarray  # global shard index
    start: np.ndarray  # first frame in the shard's ``feat``
    n_frames: np.ndarray
    n_valid: np.ndarray
    fold: np.ndarray
    label: np.ndarray
    utt_id: list[str]
    speaker: list[str]
    corpus: list[str]

    def runs(self) -> list[tuple[int, int]]:
        """(a, b) index ranges of the block whose database rows are consecutive."""
        cuts = [0, *(np.flatnonzero(np.diff(self.row) != 1) + 1).tolist(), len(self.row)]
        return list(zip(cuts[:-1], cuts[1:], strict=True))
