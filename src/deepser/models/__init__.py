"""Model registry: each architecture is a function (input spec, tasks, hyper-parameters) ->
an uncompiled ``keras.Model`` with inputs ``features`` and ``n_valid`` and one output per task
(named after the task)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import layers

from deepser.models.custom_layers import LengthMask, MaskedMaxPooling

Builder = Callable[..., keras.Model]
ARCHITECTURES: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Add an architecture builder to the registry."""

    def wrap(fn: Builder) -> Builder:
        ARCHITECTURES[name] = fn
        return fn

    return wrap


def model_inputs(
    row_shape: Sequence[int], layout: str, mean: np.ndarray, variance: np.ndarray
) -> tuple[keras.KerasTensor, keras.KerasTensor, keras.KerasTensor, keras.KerasTensor]:
    """Inputs in the database's layout -> (features, n_valid, normalised (batch, T, c, D, 1)
    windows, mask (batch, T)). Normalisation statistics (training data only) live in the model."""
    features = keras.Input(tuple(row_shape), name="features")
    n_valid = keras.Input((), dtype="int32", name="n_valid")
    x = features
    if layout == "3d":  # (1, T, c, D) -> (T, 1, c, D)
        x = layers.Permute((2, 1, 3, 4), name="time_major")(x)
    steps, _, c_len, dims = x.shape[1:]
    x = layers.Reshape((steps, c_len, dims, 1), name="windows")(x)
    x = layers.Normalization(
        axis=-2,
        mean=np.asarray(mean).reshape(-1).tolist(),
        variance=np.asarray(variance).reshape(-1).tolist(),
        name="feature_norm",
    )(x)
    mask = LengthMask(steps, name="window_mask")(n_valid)
    return features, n_valid, x, mask


def task_heads(x: keras.KerasTensor, tasks: Sequence[Mapping[str, Any]]) -> dict:
    """One softmax head per categorical task, one linear unit per continuous task."""
    outputs = {}
    for task in tasks:
        if task["type"] == "categorical":
            outputs[task["name"]] = layers.Dense(
                len(task["classes"]), activation="softmax", name=task["name"]
            )(x)
        else:
            outputs[task["name"]] = layers.Dense(1, name=task["name"])(x)
    return outputs


@register("cnn_lstm")
def cnn_lstm(
    row_shape: Sequence[int],
    layout: str,
    tasks: Sequence[Mapping[str, Any]],
    mean: np.ndarray,
    variance: np.ndarray,
    *,
    conv_filters: Sequence[int] = (8, 16),
    kernel_size: int = 3,
    pool_size: int = 2,
    batch_norm: bool = False,
    rnn: str = "lstm",
    rnn_units: int = 64,
    bidirectional: bool = False,
    dense_units: int = 64,
    dropout: float = 0.3,
    l2: float = 0.0,
) -> keras.Model:
    """Per-window 2-D CNN (TimeDistributed) -> recurrent layer over windows -> mean and max
    pooling over the valid windows only -> dense -> one head per task."""
    features, n_valid, x, mask = model_inputs(row_shape, layout, mean, variance)
    reg = keras.regularizers.L2(l2) if l2 else None
    for i, filters in enumerate(conv_filters):
        x = layers.TimeDistributed(
            layers.Conv2D(
                filters,
                kernel_size,
                padding="same",
                kernel_regularizer=reg,
                activation=None if batch_norm else "relu",
            ),
            name=f"conv{i}",
        )(x)
        if batch_norm:  # doubles the CPU cost of the convolutions (TensorFlow 2.21)
            x = layers.TimeDistributed(layers.BatchNormalization(), name=f"conv{i}_bn")(x)
            x = layers.Activation("relu", name=f"conv{i}_relu")(x)
        x = layers.TimeDistributed(
            layers.MaxPooling2D(pool_size, padding="same"), name=f"conv{i}_pool"
        )(x)
    # average over the frames of each window, keep the frequency axis: (T, freq x filters)
    x = layers.TimeDistributed(layers.AveragePooling2D((x.shape[2], 1)), name="window_time_mean")(x)
    x = layers.TimeDistributed(layers.Flatten(), name="window_embedding")(x)
    x = layers.Dropout(dropout, name="embedding_dropout")(x)
    cell = {"lstm": layers.LSTM, "gru": layers.GRU}[rnn]
    recurrent = cell(rnn_units, return_sequences=True, kernel_regularizer=reg, name=rnn)
    if bidirectional:
        recurrent = layers.Bidirectional(recurrent, name=f"bi{rnn}")
    x = recurrent(x, mask=mask)
    pooled = layers.Concatenate(name="pooled")(
        [
            layers.GlobalAveragePooling1D(name="mean_pool")(x, mask=mask),
            MaskedMaxPooling(name="max_pool")(x, mask),
        ]
    )
    x = layers.Dropout(dropout, name="pooled_dropout")(pooled)
    if dense_units:
        x = layers.Dense(dense_units, activation="relu", kernel_regularizer=reg, name="dense")(x)
        x = layers.Dropout(dropout, name="dense_dropout")(x)
    return keras.Model([features, n_valid], task_heads(x, tasks), name="cnn_lstm")


def build_model(
    architecture: str,
    row_shape: Sequence[int],
    layout: str,
    tasks: Sequence[Mapping[str, Any]],
    mean: np.ndarray,
    variance: np.ndarray,
    **hparams: Any,
) -> keras.Model:
    """Build a registered architecture; unknown names and hyper-parameters are clear errors."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}"
        )
    try:
        return ARCHITECTURES[architecture](row_shape, layout, tasks, mean, variance, **hparams)
    except TypeError as exc:
        raise ValueError(f"architecture {architecture!r}: {exc}") from None
