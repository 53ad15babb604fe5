"""``deepser export``: every registered architecture exports to LiteRT (built-in ops only) and
ONNX, and the exported model's outputs equal the Keras model's within 1e-5 on every row of a
real (tiny) demo-corpus database built by the workflow's stages; SavedModel for one; the legacy
import exports too; fused bundles and bad outputs are refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from deepser.bundle import load_bundle, load_exported, make_bundle, read_bundle, save_bundle
from deepser.database.store import read_info
from deepser.deploy.export import ExportError, export_bundle
from deepser.models.registry import ARCHITECTURES

from ..helpers import REPO
from .test_models import DATABASE_OF, build, load, make_databases

pytestmark = pytest.mark.slow

TOLERANCE = 1e-5
# (architecture, format) -> what the refusal names: LiteRT has no built-in 3-D max pooling
REFUSED = {("cnn3d", "litert"): "uses MaxPool3D, which LiteRT has no built-in op for"}


@pytest.fixture(scope="module")
def databases(tmp_path_factory) -> dict[str, Path]:
    return make_databases(tmp_path_factory.mktemp("export-dbs"))


def all_rows(db_path: Path) -> dict[str, np.ndarray]:
    with h5py.File(db_path) as h5:
        return {"features": h5["feat"][()], "n_valid": h5["n_valid"][()].astype(np.int32)}


def keras_bundle(arch: str, db_path: Path, folder: Path):
    """A bundle of the (untrained, seeded) architecture on the database; -> (folder, model)."""
    import keras

    db = load(db_path)
    keras.utils.set_random_seed(5)
    model = build(arch, db)
    info = read_info(db_path)
    bundle = make_bundle(info.attrs, info.tasks, f"export-{arch}")
    save_bundle(folder, model, bundle)
    return folder


def max_diff(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) for k in a)


@pytest.mark.parametrize("fmt", ["litert", "onnx"])
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_exports_and_predicts_as_keras(
    arch: str,
    fmt: str,
    databases: dict[str, Path],
    tmp_path: Path,
) -> None:
    db_path = databases[DATABASE_OF.get(arch, "db2d")]
    folder = keras_bundle(arch, db_path, tmp_path / "keras")
    out = tmp_path / fmt
    if (arch, fmt) in REFUSED:
        with pytest.raises(ExportError, match=REFUSED[arch, fmt]) as refused:
            export_bundle(folder, fmt, out, database=db_path)
        assert "--format onnx" in str(refused.value) and "\n" not in str(refused.value)
        assert not out.exists()
        return
    result = export_bundle(folder, fmt, out, database=db_path, tolerance=TOLERANCE)
    assert result.max_abs_diff <= TOLERANCE
    assert (out / result.model_file).is_file()

    # independently: every database row, through the runtime, against Keras
    rows = all_rows(db_path)
    model, _ = load_bundle(folder)
    expected = model.predict_on_batch(rows)
    runner, exported = load_exported(out)
    got = runner.predict_on_batch(rows)
    assert sorted(got) == sorted(expected) == sorted(t["name"] for t in exported.tasks)
    assert max_diff(expected, got) <= TOLERANCE
    # the same bundle.json, plus the runtime entry
    before = json.loads((folder / "bundle.json").read_text())
    after = json.loads((out / "bundle.json").read_text())
    runtime = after.pop("runtime")
    assert after == before
    assert runtime["format"] == fmt and runtime["check"]["max_abs_diff"] <= TOLERANCE
    assert runtime["check"]["rows"] == 2 * min(64, len(rows["n_valid"]))
    if fmt == "litert":  # built-in ops only: no Flex (SELECT_TF_OPS) custom op in the model
        assert b"Flex" not in (out / "model.tflite").read_bytes()


def test_savedmodel_export_runs_on_tensorflow_without_keras_model(
    databases: dict[str, Path],
    tmp_path: Path,
) -> None:
    db_path = databases["db2d"]
    folder = keras_bundle("cnn_lstm", db_path, tmp_path / "keras")
    out = tmp_path / "sm"
    result = export_bundle(folder, "savedmodel", out, database=db_path)
    assert (out / "saved_model" / "saved_model.pb").is_file()
    runner, _ = load_exported(out)
    rows = all_rows(db_path)
    expected = load_bundle(folder)[0].predict_on_batch(rows)
    assert max_diff(expected, runner.predict_on_batch(rows)) <= TOLERANCE
    assert result.max_abs_diff <= TOLERANCE


def test_the_legacy_import_exports(tmp_path: Path) -> None:
    """An imported Keras-2 model of the original toolkit (3-D convolutions and pooling): ONNX
    takes it, LiteRT refuses its 3-D pooling by name."""
    folder = REPO / "tests/data/bundles/legacy_generic"
    with pytest.raises(ExportError, match="uses AvgPool3D, MaxPool3D, which LiteRT has no"):
        export_bundle(folder, "litert", tmp_path / "refused")
    out = tmp_path / "legacy"
    result = export_bundle(folder, "onnx", out)
    assert "synthetic audio" in result.rows_from  # its training database is not at hand
    assert result.max_abs_diff <= TOLERANCE
    bundle = read_bundle(folder)
    runner, _ = load_exported(out)
    model, _ = load_bundle(folder)
    rng = np.random.default_rng(1)
    steps = bundle.row_shape[0 if bundle.window_spec["layout"] == "2d" else 1]
    feat = rng.normal(size=(4, *bundle.row_shape)).astype(np.float32)
    rows = {"features": feat, "n_valid": np.array([1, 2, steps, steps], np.int32)}
    assert max_diff(model.predict_on_batch(rows), runner.predict_on_batch(rows)) <= TOLERANCE


def test_refusals_are_one_clear_line(databases: dict[str, Path], tmp_path: Path) -> None:
    db_path = databases["db2d"]
    folder = keras_bundle("dnn", db_path, tmp_path / "keras")
    # a folder that is not empty is never written into
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="not an empty folder"):
        export_bundle(folder, "litert", busy)
    assert sorted(p.name for p in busy.iterdir()) == ["keep.txt"]
    with pytest.raises(ExportError, match="unknown format"):
        export_bundle(folder, "coreml", tmp_path / "x")
    # a fused bundle
    fused = tmp_path / "fused"
    fused.mkdir()
    (fused / "bundle.json").write_text(json.dumps({"format_version": 1, "kind": "fusion"}))
    with pytest.raises(ExportError, match="fused bundle; export each member"):
        export_bundle(fused, "litert", tmp_path / "y")
    # a tolerance nothing meets: nothing is written
    with pytest.raises(ExportError, match="differs from the Keras model"):
        export_bundle(folder, "litert", tmp_path / "z", database=db_path, tolerance=1e-30)
    assert not (tmp_path / "z").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".z.")]
    # an exported bundle is not a Keras bundle
    export_bundle(folder, "litert", tmp_path / "ok", database=db_path)
    with pytest.raises(ExportError, match="exported bundle"):
        export_bundle(tmp_path / "ok", "onnx", tmp_path / "again")
