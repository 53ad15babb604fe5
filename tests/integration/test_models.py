"""Every registered architecture, on real (tiny) demo-corpus databases built by the workflow's
stages (in this process):
it trains, ignores padding windows, gives the same predictions in either database layout and
after a save/load round trip through the model bundle; bad configurations are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import yaml

from deepser.bundle import load_bundle, make_bundle, save_bundle
from deepser.corpus.demo import synthesize_corpus
from deepser.database.store import read_info
from deepser.models.registry import ARCHITECTURES, build_model, hyperparameters

from ..helpers import REPO, run_stages

pytestmark = pytest.mark.slow

# one log-mel feature set in both layouts (14 windows of 16 frames: most utterances are
# shorter than 2.24 s, so rows have padding windows) and raw samples at 8 kHz (12 windows of
# 1600 samples)
DATABASES = {
    "db2d": {"feature_set": "logmel", "c_len": 16, "max_steps": 224},
    "db3d": {"feature_set": "logmel", "c_len": 16, "max_steps": 224, "layout": "3d"},
    "dbraw": {"feature_set": "raw", "c_len": 1600, "max_steps": 19200},
}
FEATURE_SETS = {
    "logmel": {"type": "logmel", "sample_rate": 16000, "n_mels": 16},
    "raw": {"type": "raw", "sample_rate": 8000},
}
# which database an architecture needs (default: the 2d log-mel one)
DATABASE_OF = {"cnn3d": "db3d", "raw_cnn_lstm": "dbraw"}
# tiny sizes, and between them every pooling, block type, recurrent cell and window reduction
TINY = {
    "dnn": {"window_units": [16], "dense_units": 8},
    "lstm": {
        "window_vector": "mean",
        "rnn": "gru",
        "rnn_units": 8,
        "bidirectional": True,
        "pooling": "last",
        "dense_units": 8,
        "dense_layers": 2,
    },
    "cnn1d": {
        "conv_filters": [8, 8],
        "block": "residual",
        "pooling": "attention",
        "attention_units": 8,
        "dense_units": 8,
    },
    "cnn2d": {
        "conv_filters": [4, 8],
        "block": "highway",
        "batch_norm": True,
        "window_pooling": "meanmax",
        "pooling": "max",
        "dense_units": 8,
    },
    "cnn_lstm": {
        "conv_filters": [4],
        "rnn_units": 8,
        "dense_units": 8,
        "pooling": "attention",
        "attention_units": 0,
    },
    "raw_cnn_lstm": {
        "front_filters": 8,
        "front_kernel": 16,
        "conv_filters": [8, 8],
        "kernel_size": 5,
        "block": "residual",
        "rnn_units": 8,
        "dense_units": 8,
    },
    "cnn3d": {
        "conv_filters": [4, 4],
        "pool_size": [2, 2, 2],  # pools the window axis (and the window mask) too
        "block": "highway",
        "rnn_units": 8,
        "pooling": "mean",
        "dense_units": 8,
    },
}
TASKS = ["emotion", "arousal"]


@pytest.fixture(scope="module")
def databases(tmp_path_factory) -> dict[str, Path]:
    return make_databases(tmp_path_factory.mktemp("models"))


def make_databases(work: Path) -> dict[str, Path]:
    """The tiny databases of :data:`DATABASES`, built by the workflow's stages in ``work``."""
    meta = synthesize_corpus(work / "data", seed=3, n_speakers=2, utterances_per_emotion=3)
    columns = {"emotion": "emotion", "speaker": "speaker", "arousal": "arousal"}
    paths = {}
    for name, db in DATABASES.items():
        db = dict(db)
        feature_set = FEATURE_SETS[db.pop("feature_set")]
        config = {"corpora": ["demo"], "tasks": ["emotion", "arousal"], **db}
        corpora = {"demo": {"meta": str(meta), "columns": columns}}
        paths[name] = run_stages(work / name, corpora, feature_set, config)["db"]
    return paths


def load(path: Path) -> dict:
    """A database in memory: inputs, labels, tasks, layout and training-data moments."""
    info = read_info(path)
    with h5py.File(path) as h5:
        feat, n_valid, label = h5["feat"][()], h5["n_valid"][()], h5["label"][()]
    layout = info.attrs["window_spec"]["layout"]
    windows = time_major(feat, layout)
    valid = windows[np.arange(windows.shape[1])[None] < n_valid[:, None]]
    frames = valid.reshape(-1, windows.shape[-1])
    return {
        "info": info,
        "layout": layout,
        "inputs": {"features": feat, "n_valid": n_valid.astype(np.int32)},
        "targets": {t: label[:, j].astype(np.int32) for j, t in enumerate(TASKS)},
        "mean": frames.mean(0),
        "var": frames.var(0) + 1e-6,
    }


def time_major(feat: np.ndarray, layout: str) -> np.ndarray:
    """A (N, T, c_len, D) view of the rows (writes go through to ``feat``)."""
    return feat[:, :, 0] if layout == "2d" else feat[:, 0]


def predict(model, inputs: dict) -> np.ndarray:
    out = model(inputs, training=False)
    return np.concatenate([np.asarray(out[t]) for t in TASKS], axis=1)


def build(arch: str, db: dict, layout: str | None = None, **overrides) -> keras.Model:
    info = db["info"]
    shape = info.row_shape
    layout = layout or db["layout"]
    if layout != db["layout"]:  # the same windows in the other layout
        t, c, d = time_major(np.empty((1, *shape)), db["layout"]).shape[1:]
        shape = (t, 1, c, d) if layout == "2d" else (1, t, c, d)
    hparams = {"dropout": 0.0, **TINY.get(arch, {}), **overrides}
    return build_model(arch, shape, layout, info.tasks, db["mean"], db["var"], **hparams)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture_trains_ignores_padding_and_round_trips(
    arch: str, databases: dict[str, Path], tmp_path: Path
) -> None:
    db = load(databases[DATABASE_OF.get(arch, "db2d")])
    inputs, targets = db["inputs"], db["targets"]
    keras.utils.set_random_seed(3)
    model = build(arch, db)
    assert sorted(model.output_names) == sorted(TASKS)
    assert model.input_shape[0][1:] == db["info"].row_shape

    # a few training steps: the training loss on the batch falls, every trainable weight moves
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss={t: "sparse_categorical_crossentropy" for t in TASKS},
        run_eagerly=True,  # no graph tracing: cheaper for six steps of a tiny model
    )
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    losses = [model.train_on_batch(inputs, targets)[0] for _ in range(6)]
    assert losses[-1] < losses[0] - 1e-3, losses
    frozen = [
        w.path
        for w, b in zip(model.trainable_weights, before, strict=True)
        if np.array_equal(keras.ops.convert_to_numpy(w), b)
    ]
    assert not frozen, f"weights that did not train: {frozen}"

    # padding windows beyond n_valid do not influence the outputs; valid windows do
    reference = predict(model, inputs)
    n_valid, steps = inputs["n_valid"], time_major(inputs["features"], db["layout"]).shape[1]
    padded = np.flatnonzero(n_valid < steps)
    assert padded.size >= 4, "the test database needs rows with padding windows"
    noisy = {k: v.copy() for k, v in inputs.items()}
    windows = time_major(noisy["features"], db["layout"])
    rng = np.random.default_rng(0)
    std = np.sqrt(db["var"])  # noise on the scale of each feature dimension
    for i in padded:
        shape = windows[i, n_valid[i] :].shape
        windows[i, n_valid[i] :] = db["mean"] + std * rng.normal(3.0, 5.0, shape)
    np.testing.assert_allclose(predict(model, noisy), reference, atol=1e-6)
    for i in padded:
        windows[i, n_valid[i] - 1] += std * rng.normal(0.0, 3.0, windows[i, 0].shape)
    changed = np.abs(predict(model, noisy) - reference).max(axis=1)
    assert (changed[padded] > 1e-5).all(), changed[padded]

    # the same network reads the other database layout (except the 3-D CNN, 3d only)
    if arch != "cnn3d":
        other = "3d" if db["layout"] == "2d" else "2d"
        twin = build(arch, db, layout=other)
        twin.set_weights(model.get_weights())
        feat = time_major(inputs["features"], db["layout"])
        feat = feat[:, :, None] if other == "2d" else feat[:, None]
        np.testing.assert_allclose(
            predict(twin, {**inputs, "features": feat}), reference, rtol=1e-5, atol=1e-6
        )

    # save/load round trip through the model bundle (safe_mode) gives identical predictions
    tasks = db["info"].tasks
    save_bundle(tmp_path / "bundle", model, make_bundle(db["info"].attrs, tasks, arch))
    loaded, bundle = load_bundle(tmp_path / "bundle")
    assert [t["name"] for t in bundle.tasks] == TASKS
    np.testing.assert_array_equal(predict(loaded, inputs), reference)


def test_cnn3d_on_a_2d_database_is_a_clear_error(databases: dict[str, Path]) -> None:
    db = load(databases["db2d"])
    with pytest.raises(ValueError, match=r"cnn3d .*3d layout.*set `layout: 3d`"):
        build("cnn3d", db)


def test_bad_hyperparameters_are_clear_errors(databases: dict[str, Path]) -> None:
    db = load(databases["db2d"])
    with pytest.raises(ValueError, match=r"'dnn' has no hyper-parameter 'rnn_units'"):
        build("dnn", db, rnn_units=8)
    with pytest.raises(ValueError, match=r"block must be one of plain, residual, highway"):
        build("cnn2d", db, block="dense")
    with pytest.raises(ValueError, match=r"pooling must be one of .*attention"):
        build("lstm", db, pooling="median")
    with pytest.raises(ValueError, match=r"kernel_size must be an integer or a list of 3"):
        build("cnn3d", load(databases["db3d"]), kernel_size=[3, 3])
    with pytest.raises(ValueError, match=r"raw_cnn_lstm needs raw-sample windows"):
        build("raw_cnn_lstm", db)
    with pytest.raises(ValueError, match=r"unknown architecture 'resnet'"):
        build_model("resnet", db["info"].row_shape, "2d", db["info"].tasks, 0.0, 1.0)


def test_attention_pooling_weights_only_valid_windows() -> None:
    from deepser.models.custom_layers import MaskedAttentionPooling

    layer = MaskedAttentionPooling(4)
    x = np.random.default_rng(1).normal(size=(3, 6, 5)).astype(np.float32)
    mask = np.arange(6)[None] < np.array([[6], [2], [1]])
    pooled = np.asarray(layer(x, mask))
    weights = np.asarray(layer.attention(x, mask))
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-6)
    assert (weights[~mask] == 0).all() and (weights[mask] > 0).all()
    assert weights[2, 0] == pytest.approx(1.0) and weights[0].std() > 1e-3  # not uniform
    np.testing.assert_allclose(pooled, np.einsum("bt,btf->bf", weights, x), rtol=1e-5)
    np.testing.assert_allclose(pooled[2], x[2, 0], rtol=1e-6)
    x[1, 2:] = 1e6  # padding never reaches the output, however large
    np.testing.assert_allclose(np.asarray(layer(x, mask)), pooled, rtol=1e-6)


def test_schema_lists_every_architecture_and_hyperparameter() -> None:
    schema = yaml.safe_load((REPO / "config/schema.yaml").read_text())
    model = schema["properties"]["experiments"]["additionalProperties"]["properties"]["model"]
    props = model["properties"]
    assert sorted(props["architecture"]["enum"]) == sorted(ARCHITECTURES)
    for arch in ARCHITECTURES:
        missing = set(hyperparameters(arch)) - set(props)
        assert not missing, f"{arch}: hyper-parameters missing from the schema: {missing}"
    documented = {name for arch in ARCHITECTURES for name in hyperparameters(arch)}
    assert set(props) - {"architecture"} == documented
    assert all(props[name].get("description") for name in documented)
    json.dumps(model)  # plain data


def test_the_trainer_fits_a_zoo_model(databases: dict[str, Path], tmp_path: Path) -> None:
    from deepser.training.train import train

    experiment = {
        "database": "db3d",
        "model": {"architecture": "cnn3d", **TINY["cnn3d"]},
        "training": {"epochs": 1, "batch_size": 8},
    }
    record = train(databases["db3d"], experiment, None, tmp_path)
    assert record.architecture == "cnn3d" and record.epochs_run == 1
    model = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    assert model.get_layer("conv1_gate").kernel.shape == (3, 3, 3, 4, 4)
    with pytest.raises(ValueError, match="'cnn3d' has no hyper-parameter 'window_units'"):
        train(
            databases["db3d"],
            {**experiment, "model": {"architecture": "cnn3d", "window_units": 8}},
            None,
            tmp_path,
        )
