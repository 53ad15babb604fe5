"""The model bundle: bundles written before the package was split by stage still load and
predict exactly as then (``tests/data/bundles``, every custom layer and an imported Keras-2
model among them); ``bundle.json`` reads and writes through one record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepser.bundle import Bundle, load_bundle, read_bundle
from deepser.errors import BundleError

from ..helpers import REPO

OLD = REPO / "tests" / "data" / "bundles"
OLD_BUNDLES = sorted(p.name for p in OLD.iterdir() if (p / "bundle.json").is_file())


def test_every_old_bundle_is_kept() -> None:
    assert OLD_BUNDLES == ["cnn1d", "cnn3d", "cnn_lstm", "legacy_generic", "lstm"]


@pytest.mark.parametrize("name", OLD_BUNDLES)
def test_a_bundle_written_by_the_old_layout_loads_and_predicts_the_same(name: str) -> None:
    model, bundle = load_bundle(OLD / name)
    expected = np.load(OLD / name / "expected.npz")
    out = model.predict_on_batch({"features": expected["features"], "n_valid": expected["n_valid"]})
    out = out if isinstance(out, dict) else {bundle.tasks[0]["name"]: out}
    for task in bundle.tasks:
        np.testing.assert_allclose(
            np.asarray(out[task["name"]]), expected[f"out_{task['name']}"], rtol=1e-6, atol=1e-7
        )


def test_old_per_corpus_gain_reads_as_gain_and_gains() -> None:
    bundle = read_bundle(OLD / "cnn_lstm")  # trained on corpora a and b, normalised differently
    assert bundle.gain == {"method": "peak", "target": 0.5}
    assert set(bundle.gains) == {"a", "b"} and "'a'" in bundle.gain_warning
    assert read_bundle(OLD / "lstm").gain_warning is None  # one corpus
    same = {"method": "minmax", "range": [0, 1], "min": -1.0, "max": 1.0}
    reordered = dict(reversed(list(same.items())))
    bundle = Bundle.from_json({**bundle.to_json(), "gains": {"a": same, "b": reordered}})
    assert bundle.gain_warning is None  # the same gain, keys in another order


def test_bundle_json_round_trips_and_is_checked(tmp_path: Path) -> None:
    bundle = read_bundle(OLD / "legacy_generic")
    again = Bundle.from_json(json.loads(json.dumps(bundle.to_json())))
    assert again == bundle and again.legacy["keras_version"]
    assert bundle.to_json()["inputs"]["features"] == f"float32 {list(bundle.row_shape)}"
    folder = tmp_path / "b"
    shutil.copytree(OLD / "lstm", folder)
    data = json.loads((folder / "bundle.json").read_text())
    for broken, message in (
        ({**data, "format_version": 7}, "bundle format 7 is not supported"),
        ({k: v for k, v in data.items() if k != "tasks"}, "missing tasks"),
    ):
        (folder / "bundle.json").write_text(json.dumps(broken))
        with pytest.raises(BundleError, match=message):
            read_bundle(folder)
    for broken in ({**data, "tasks": None}, {**data, "gain": "peak"}):
        (folder / "bundle.json").write_text(json.dumps(broken))
        with pytest.raises(BundleError, match="malformed"):
            read_bundle(folder)
    (folder / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        read_bundle(folder)
    (folder / "model.keras").unlink()
    with pytest.raises(BundleError, match="not a model bundle"):
        read_bundle(folder)
