"""Reference outputs of the original toolkit's two Keras-2 models (``reference.json``).

Run it in a throwaway environment OUTSIDE the repository, never in deepser's own ``.venv``::

    python3 -m venv /tmp/tfk
    /tmp/tfk/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 jax h5py
    /tmp/tfk/bin/python tests/data/legacy/make_reference.py ../shared/legacy-models \\
        tests/data/legacy/reference.json

Each model is run on the same fixed inputs (``inputs()``: all zeros, all 0.5, three seeded
uniform rows) in three independent ways, each in its own process:

- ``tf_keras``: the original file loaded unchanged by tf-keras 2.21 (``TF_USE_LEGACY_KERAS=1``),
  i.e. Keras-2 code on TensorFlow's CPU kernels;
- ``jax``: Keras 3 on the JAX backend, ``load_model`` with the Keras-2 layer classes and a
  Keras-2 ``hard_sigmoid`` (``clip(0.2 x + 0.5, 0, 1)``) as custom objects (channels_first
  convolutions executed by XLA, no rebuild);
- ``numpy``: a float64 NumPy forward pass written from the file's config and weights with the
  Keras-2 semantics (TF 'SAME' padding: (k - 1) // 2 before, the rest after; channels_first;
  flatten in (channels, rows, cols) order; LSTM gates i, f, c, o with the hard sigmoid).

The reference kept for a model is ``tf_keras`` where it agrees with both others within 1e-6,
else the NumPy pass where JAX agrees with it within 1e-6. For ``ami.raw.cnnlstmfcn.0.h5`` TF's
oneDNN CPU kernel for a 'same' Conv2D whose kernel (400 taps) is longer than its input (160)
is wrong, so tf-keras is off by ~1e-4 there and the NumPy/JAX result is kept; all three numbers
are stored so the disagreement stays visible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

MODELS = ("ami.laugh.mspec.cnnlstm.0.h5", "ami.raw.cnnlstmfcn.0.h5")
SEED = 20170901
AGREE = 1e-6


def inputs(shape: tuple[int, ...]) -> np.ndarray:
    """Fixed float32 inputs for a model of per-row ``shape``: zeros, 0.5, three seeded rows."""
    rng = np.random.default_rng(SEED)
    rand = rng.random((3, *shape)).astype(np.float32)
    return np.concatenate(
        [np.zeros((1, *shape), np.float32), np.full((1, *shape), 0.5, np.float32), rand]
    )


def input_shape(path: Path) -> tuple[int, ...]:
    import h5py

    with h5py.File(path, "r") as h5:
        cfg = json.loads(h5.attrs["model_config"])
    first = cfg["config"]["layers"][0]["config"]
    return tuple(first["batch_input_shape"][1:])


# ---------------------------------------------------------------- float64 NumPy, Keras-2 semantics
def _weights(h5, name: str) -> list[np.ndarray]:
    group = h5["model_weights"][name]
    return [np.asarray(group[n], np.float64) for n in group.attrs["weight_names"]]


def _hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def _act(name: str, x):
    if name == "relu":
        return np.maximum(x, 0)
    if name == "softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    if name == "tanh":
        return np.tanh(x)
    if name == "hard_sigmoid":
        return _hard_sigmoid(x)
    if name == "linear":
        return x
    raise ValueError(name)


def _conv2d_cf(x, kernel, bias, cfg):
    """x (B, C, H, W) channels_first, stride 1, TF 'SAME'/'valid' padding."""
    assert tuple(cfg["strides"]) == (1, 1) and tuple(cfg["dilation_rate"]) == (1, 1)
    kh, kw = kernel.shape[:2]
    if cfg["padding"] == "same":
        x = np.pad(x, ((0, 0), (0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)))
    h, w = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    out = np.zeros((x.shape[0], kernel.shape[3], h, w))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("bchw,co->bohw", x[:, :, i : i + h, j : j + w], kernel[i, j])
    return _act(cfg["activation"], out + bias[None, :, None, None])


def _maxpool_cf(x, cfg):
    assert cfg["padding"] == "valid"
    (ph, pw), (sh, sw) = cfg["pool_size"], cfg["strides"]
    win = np.lib.stride_tricks.sliding_window_view(x, (ph, pw), axis=(2, 3))
    return win[:, :, ::sh, ::sw].max(axis=(-2, -1))


def _lstm(x, kernel, recurrent, bias, cfg):
    units = cfg["units"]
    h = np.zeros((x.shape[0], units))
    c = np.zeros((x.shape[0], units))
    seq = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i = _act(cfg["recurrent_activation"], z[:, :units])
        f = _act(cfg["recurrent_activation"], z[:, units : 2 * units])
        g = _act(cfg["activation"], z[:, 2 * units : 3 * units])
        o = _act(cfg["recurrent_activation"], z[:, 3 * units :])
        c = f * c + i * g
        h = o * _act(cfg["activation"], c)
        seq.append(h)
    return np.stack(seq, 1) if cfg["return_sequences"] else h


def numpy_forward(path: Path, x: np.ndarray) -> np.ndarray:
    """The model's output for ``x`` (a linear chain of the layer types these two files use)."""
    import h5py

    with h5py.File(path, "r") as h5:
        cfg = json.loads(h5.attrs["model_config"])
        y = np.asarray(x, np.float64)
        for layer in cfg["config"]["layers"][1:]:
            kind, lc, name = layer["class_name"], layer["config"], layer["name"]
            if kind == "TimeDistributed":
                n, t = y.shape[:2]
                inner, ic = lc["layer"]["class_name"], lc["layer"]["config"]
                z = y.reshape(n * t, *y.shape[2:])
                if inner == "BatchNormalization":
                    gamma, beta, mean, var = _weights(h5, name)
                    assert ic["axis"] == -1
                    z = (z - mean) / np.sqrt(var + ic["epsilon"]) * gamma + beta
                elif inner == "Conv2D":
                    assert ic["data_format"] == "channels_first"
                    z = _conv2d_cf(z, *_weights(h5, name), ic)
                elif inner == "MaxPooling2D":
                    assert ic["data_format"] == "channels_first"
                    z = _maxpool_cf(z, ic)
                elif inner == "Flatten":
                    z = z.reshape(z.shape[0], -1)
                else:
                    raise ValueError(inner)
                y = z.reshape(n, t, *z.shape[1:])
            elif kind == "LSTM":
                y = _lstm(y, *_weights(h5, name), lc)
            elif kind == "Dense":
                kernel, bias = _weights(h5, name)
                y = _act(lc["activation"], y @ kernel + bias)
            elif kind == "Dropout":
                pass
            else:
                raise ValueError(kind)
    return y


# ---------------------------------------------------------------- the TF and JAX runs
def run_tf_keras(path: Path, x: np.ndarray) -> np.ndarray:
    import tf_keras

    model = tf_keras.models.load_model(str(path), compile=False)
    return np.asarray(model.predict(x, verbose=0), np.float64)


def run_jax(path: Path, x: np.ndarray) -> np.ndarray:
    import keras

    assert keras.backend.backend() == "jax"
    custom = {
        n: getattr(keras.layers, n)
        for n in ("BatchNormalization", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dropout")
    }

    def hard_sigmoid(v):  # Keras 2.1.5's, not Keras 3's relu6(x + 3) / 6
        return keras.ops.clip(0.2 * v + 0.5, 0.0, 1.0)

    class LSTM(keras.layers.LSTM):
        def __init__(self, *args, **kwargs):
            kwargs["recurrent_activation"] = hard_sigmoid
            kwargs.pop("implementation", None)
            super().__init__(*args, **kwargs)

    model = keras.models.load_model(
        str(path), compile=False, custom_objects={**custom, "LSTM": LSTM}
    )
    return np.asarray(model.predict(x, verbose=0), np.float64)


def _child(mode: str, path: Path, out: Path) -> None:
    x = inputs(input_shape(path))
    y = {"tf_keras": run_tf_keras, "jax": run_jax, "numpy": numpy_forward}[mode](path, x)
    np.save(out, y)


def main(models_dir: str, out_json: str) -> None:
    import tempfile

    result = {
        "seed": SEED,
        "inputs": "rows: zeros, 0.5, then np.random.default_rng(seed).random((3, *shape)) float32",
        "how": __doc__.split("\n\n", 2)[1].strip(),
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            path = Path(models_dir) / name
            runs = {}
            for mode in ("tf_keras", "jax", "numpy"):
                env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
                env.update(
                    {"TF_USE_LEGACY_KERAS": "1"} if mode == "tf_keras" else {"KERAS_BACKEND": "jax"}
                )
                out = Path(tmp) / f"{mode}.npy"
                subprocess.run(
                    [sys.executable, __file__, "--child", mode, str(path), str(out)],
                    env=env,
                    check=True,
                )
                runs[mode] = np.load(out)
            diff = {
                f"{a}_vs_{b}": float(np.abs(runs[a] - runs[b]).max())
                for a, b in (("tf_keras", "numpy"), ("jax", "numpy"), ("tf_keras", "jax"))
            }
            if diff["tf_keras_vs_numpy"] <= AGREE and diff["jax_vs_numpy"] <= AGREE:
                chosen = "tf_keras"
            elif diff["jax_vs_numpy"] <= AGREE:
                chosen = "numpy"
            else:
                raise SystemExit(f"{name}: no two independent computations agree: {diff}")
            x = inputs(input_shape(path))
            result["models"][name] = {
                "input_shape": list(input_shape(path)),
                "input_sum": float(x.astype(np.float64).sum()),
                "reference": chosen,
                "max_abs_diff": diff,
                "outputs": {mode: runs[mode].tolist() for mode in runs},
            }
            print(name, chosen, diff)
    Path(out_json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        _child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main(sys.argv[1], sys.argv[2])
