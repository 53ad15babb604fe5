"""Timeline writers: the recogniser's output format.

One row per recognised segment: ``start_s``, ``end_s``, ``speech_ratio``, then per task the
predicted class name (column ``<task>``) and, with ``--output proba`` (the default), one
probability column per class (``<task>_p_<class>``, the naming of the workflow's
predictions.csv). Continuous tasks have one value column. With ``--min-confidence P`` a
categorical task whose top probability is below P is labelled ``uncertain`` (its probabilities
are still written). A leading ``file`` column names the
input when several files share one output. CSV (with a header) or JSON lines with the same keys.
Every row is flushed at once, so a live log is complete up to the last segment.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from typing import IO, Any

import numpy as np

from deepser.recognizer.engine import Prediction
from deepser.tasks import is_categorical

OUTPUT_MODES = ("proba", "label")
UNCERTAIN = "uncertain"


def columns(tasks: Sequence[Mapping[str, Any]], mode: str = "proba", with_file: bool = False):
    """Column names of a timeline, in order."""
    cols = ["file"] if with_file else []
    cols += ["start_s", "end_s", "speech_ratio"]
    for task in tasks:
        cols.append(task["name"])
        if mode == "proba" and is_categorical(task):
            cols += [f"{task['name']}_p_{c}" for c in task["classes"]]
    return cols


def row(
    pred: Prediction,
    tasks: Sequence[Mapping[str, Any]],
    mode: str = "proba",
    file: str | None = None,
    min_confidence: float = 0.0,
) -> dict[str, Any]:
    """One timeline row (rounded: times to ms, probabilities to 6 decimals); a categorical
    task whose top probability is below ``min_confidence`` gets the label ``uncertain``."""
    seg = pred.segment
    out: dict[str, Any] = {} if file is None else {"file": file}
    out.update(
        start_s=round(seg.start_s, 3),
        end_s=round(seg.end_s, 3),
        speech_ratio=round(float(seg.speech_ratio), 3),
    )
    for task in tasks:
        name, value = task["name"], np.asarray(pred.outputs[task["name"]]).reshape(-1)
        if not is_categorical(task):
            out[name] = _num(value[0])
            continue
        best = int(np.argmax(value))
        sure = min_confidence <= 0 or float(value[best]) >= min_confidence
        out[name] = task["classes"][best] if sure else UNCERTAIN
        if mode == "proba":
            for cls, p in zip(task["classes"], value, strict=True):
                out[f"{name}_p_{cls}"] = _num(p)
    return out


def _num(x: float) -> float | None:
    x = float(x)
    return round(x, 6) if math.isfinite(x) else None


class CsvWriter:
    """CSV with a header line."""

    def __init__(self, stream: IO[str], cols: Sequence[str]) -> None:
        self.stream = stream
        self._writer = csv.DictWriter(stream, fieldnames=list(cols), lineterminator="\n")
        self._writer.writeheader()
        stream.flush()

    def write(self, record: Mapping[str, Any]) -> None:
        self._writer.writerow(record)
        self.stream.flush()


class JsonlWriter:
    """One JSON object per line."""

    def __init__(self, stream: IO[str], cols: Sequence[str] | None = None) -> None:
        self.stream = stream

    def write(self, record: Mapping[str, Any]) -> None:
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()


WRITERS = {"csv": CsvWriter, "jsonl": JsonlWriter}


class Outputs:
    """Several writers fed the same rows; closes the files it opened."""

    def __init__(self) -> None:
        self.writers: list[CsvWriter | JsonlWriter] = []
        self._owned: list[IO[str]] = []
        self.n_rows = 0

    def add(self, kind: str, stream: IO[str], cols: Sequence[str], owned: bool = True) -> None:
        self.writers.append(WRITERS[kind](stream, cols))
        if owned:
            self._owned.append(stream)

    def write(self, record: Mapping[str, Any]) -> None:
        for writer in self.writers:
            writer.write(record)
        self.n_rows += 1

    def close(self) -> None:
        for stream in self._owned:
            stream.close()
        self._owned = []
        self.writers = []
