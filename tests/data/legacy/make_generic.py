"""A small Keras-2 model using every layer type the importer supports (``generic_keras2.npz``).

Run it in the throwaway environment of ``make_reference.py`` (tf-keras 2.21, i.e. the Keras 2
code base, ``TF_USE_LEGACY_KERAS=1``)::

    TF_USE_LEGACY_KERAS=1 /tmp/tfk/bin/python tests/data/legacy/make_generic.py \\
        tests/data/legacy/generic_keras2.npz

The model is saved with Keras 2's ``model.save(...h5)``; the npz keeps what the test needs to
write the same ``.h5`` again (``model_config``, per layer the weight names and arrays) plus fixed
inputs and tf-keras's outputs for them. Its kernels are short (TensorFlow's oneDNN bug needs
kernels of about 200 taps), so tf-keras's outputs are right.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import tf_keras as keras
from tf_keras import layers as L


def build() -> keras.Model:
    inp = keras.Input((6, 1, 8, 5), name="feat")  # 2d layout: T 6, c_len 8, D 5
    # channels_first 2-D CNN per window, even 'same' kernels, 'same' average pooling
    a = L.TimeDistributed(L.BatchNormalization(axis=-1), name="td_bn")(inp)
    a = L.TimeDistributed(
        L.Conv2D(3, (2, 4), padding="same", activation="relu", data_format="channels_first"),
        name="td_conv",
    )(a)
    a = L.TimeDistributed(
        L.AveragePooling2D((2, 2), padding="same", data_format="channels_first"), name="td_avg"
    )(a)
    a = L.TimeDistributed(L.MaxPooling2D((1, 2), data_format="channels_first"), name="td_max")(a)
    a = L.TimeDistributed(L.Flatten(), name="td_flat")(a)  # (C, H, W) order
    a = L.GRU(4, return_sequences=True, reset_after=False, recurrent_activation="hard_sigmoid")(a)
    a = L.Bidirectional(L.LSTM(3, recurrent_activation="hard_sigmoid"), name="bilstm")(a)
    # frame sequence: Conv1D 'same' (even) and 'causal' (dilated), pooling, RNNs
    b = L.Reshape((6, 40), name="to_seq")(inp)
    b = L.Conv1D(4, 4, padding="same", activation="tanh", name="c1_same")(b)
    b = L.Conv1D(4, 3, padding="causal", dilation_rate=2, name="c1_causal")(b)
    b = L.AveragePooling1D(1, name="avg1")(b)
    gmax = L.GlobalMaxPooling1D(name="gmax")(b)
    b = L.MaxPooling1D(2, name="max1")(b)
    b = L.SimpleRNN(3, return_sequences=True, name="srnn")(b)
    gavg = L.GlobalAveragePooling1D(name="gavg")(b)
    b = L.GRU(5, name="gru_ra")(b)  # reset_after=True, sigmoid (Keras 2.3+ defaults)
    # 3-D: channels_first Conv3D with a stride ('same' padding that depends on the size)
    c = L.Permute((2, 1, 3, 4), name="to_3d")(inp)  # (1, 6, 8, 5)
    c = L.Conv3D(
        2, (2, 3, 2), strides=(1, 2, 1), padding="same", data_format="channels_first", name="c3"
    )(c)
    c = L.MaxPooling3D((2, 2, 2), data_format="channels_first", name="p3")(c)
    c3avg = L.AveragePooling3D((1, 2, 1), padding="same", data_format="channels_first")(c)
    gap3 = L.GlobalAveragePooling3D(data_format="channels_first", name="gap3")(c3avg)
    c = L.Flatten(data_format="channels_first", name="flat_cf")(c)  # Keras 2.2+: (H, W, C)
    c = L.Dense(6, activation="hard_sigmoid", name="d6")(c)
    c = L.Dropout(0.3)(c)
    c = L.Activation("tanh", name="act")(c)
    shared = L.Dense(6, name="shared")  # one layer called at two nodes
    s = L.Multiply(name="mul")([shared(a), shared(c)])
    s = L.Subtract(name="sub")([s, L.Average(name="avg")([a, c])])
    s = L.Maximum(name="maxm")([s, L.Minimum(name="minm")([a, c])])
    m = L.Concatenate(name="cat")([s, b, gmax, gavg, gap3])
    m = L.Dense(8, activation="relu", name="d8")(m)
    m = L.BatchNormalization(name="bn8")(m)
    m = L.LeakyReLU(0.1, name="leaky")(m)
    emotion = L.Dense(3, activation="softmax", name="emotion")(m)
    arousal = L.Dense(1, name="arousal")(L.Add(name="add")([L.Dense(5, name="a5")(a), b]))
    return keras.Model(inp, [emotion, arousal])


def main(out: str) -> None:
    keras.utils.set_random_seed(7)
    model = build()
    rng = np.random.default_rng(7)
    for layer in model.layers:  # non-trivial batch-norm statistics
        if isinstance(layer, (L.BatchNormalization, L.TimeDistributed)):
            weights = layer.get_weights()
            if len(weights) == 4:
                n = weights[0].shape
                layer.set_weights(
                    [
                        rng.uniform(0.5, 1.5, n),
                        rng.normal(0, 0.3, n),
                        rng.normal(0, 0.5, n),
                        rng.uniform(0.5, 2, n),
                    ]
                )
    x = rng.normal(0, 1, (4, 6, 1, 8, 5)).astype(np.float32)
    x[0, 3:] = 0  # a zero-padded row
    y_emotion, y_arousal = model.predict(x, verbose=0)
    data: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generic.h5"
        model.save(path)
        with h5py.File(path, "r") as h5:
            attrs = {k: h5.attrs[k] for k in ("model_config", "keras_version", "backend")}
            group = h5["model_weights"]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]]
            layers = {}
            for name in names:
                wn = [
                    w.decode() if isinstance(w, bytes) else w
                    for w in group[name].attrs["weight_names"]
                ]
                layers[name] = wn
                for i, w in enumerate(wn):
                    data[f"w/{name}/{i}"] = group[name][w][()]
    meta = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in attrs.items()}
    meta["layers"] = layers
    data["meta"] = np.array(json.dumps(meta))
    data["x"] = x
    data["emotion"] = y_emotion
    data["arousal"] = y_arousal
    np.savez_compressed(out, **data)
    print(out, {k: v.shape for k, v in data.items() if not k.startswith("w/")})


if __name__ == "__main__":
    main(sys.argv[1])
