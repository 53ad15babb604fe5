"""Shared building blocks of the architectures: the inputs (normalisation inside the model, the
window mask), convolution blocks (plain, residual, highway), reductions of a window to a vector,
and the sequence head (optional recurrence -> masked pooling over windows -> dense -> task heads).

Shapes: ``model_inputs`` gives windows as (batch, T, c_len, D, 1) in both database layouts, and a
boolean mask (batch, T) that is True on the ``n_valid`` real windows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import keras
import numpy as np
from keras import layers

from deepser.models import FEATURES, N_VALID
from deepser.models.custom_layers import (
    FirstStep,
    LastValidPooling,
    LengthMask,
    MaskedAttentionPooling,
    MaskedMaxPooling,
    MaskSteps,
    PerWindow,
    PoolMask,
    UtteranceNorm,
)

BLOCKS = ("plain", "residual", "highway")
POOLINGS = ("meanmax", "attention", "mean", "max", "last")
WINDOW_POOLINGS = ("mean", "max", "meanmax")
WINDOW_VECTORS = ("flatten", "mean")
RNNS = ("lstm", "gru")
UTTERANCE_NORMS = ("none", "mean", "meanvar")
HIGHWAY_GATE_BIAS = -1.0  # the transform gate starts mostly closed: y ~ x at initialisation


def model_inputs(
    row_shape: Sequence[int],
    layout: str,
    mean: np.ndarray,
    variance: np.ndarray,
    utterance_norm: str = "none",
) -> tuple[keras.KerasTensor, keras.KerasTensor, keras.KerasTensor, keras.KerasTensor]:
    """Inputs in the database's layout -> (features, n_valid, normalised (batch, T, c, D, 1)
    windows, mask (batch, T)). Normalisation statistics (training data only) live in the model;
    ``utterance_norm`` (mean, meanvar) then also standardises each utterance on its own."""
    features = keras.Input(tuple(row_shape), name=FEATURES)
    n_valid = keras.Input((), dtype="int32", name=N_VALID)
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
    if choice("utterance_norm", utterance_norm, UTTERANCE_NORMS) != "none":
        x = UtteranceNorm(utterance_norm, name="utterance_norm")(x, mask)
    return features, n_valid, x, mask


def split_channels(x: keras.KerasTensor, channels: int) -> keras.KerasTensor:
    """Windows (batch, T, c, D, 1) whose D dimensions are ``channels`` blocks of equal size (e.g.
    log-mel, delta, delta-delta: a feature set with ``deltas: 2``) -> (batch, T, c, D/channels,
    channels): the blocks become input channels of the convolutions (the 3-D log-mel input of
    Chen et al. 2018)."""
    channels = positive("feature_channels", channels)
    if channels == 1:
        return x
    steps, c_len, dims = x.shape[1:4]
    if dims % channels:
        raise ValueError(
            f"feature_channels={channels} needs feature dimensions divisible by it; the "
            f"database's windows have {dims}"
        )
    x = layers.Reshape((steps, c_len, channels, dims // channels), name="feature_blocks")(x)
    return layers.Permute((1, 2, 4, 3), name="feature_channels")(x)


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


# --- checks of hyper-parameter values --------------------------------------------------------


def choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``, else a ValueError naming the hyper-parameter."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def positive(name: str, value: Any, minimum: int = 1) -> int:
    """An integer hyper-parameter >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def int_list(name: str, value: Any, minimum: int = 1) -> list[int]:
    """A list of integers >= ``minimum`` (a single integer is a one-item list)."""
    items = [value] if isinstance(value, int | np.integer) else list(value)
    return [positive(f"{name}[{i}]", v, minimum) for i, v in enumerate(items)]


def per_axis(name: str, value: Any, rank: int) -> tuple[int, ...]:
    """An integer (same on every axis) or one integer per axis -> a tuple of ``rank`` ints."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return (positive(name, value),) * rank
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []
    if len(items) != rank:
        raise ValueError(f"{name} must be an integer or a list of {rank} integers; got {value!r}")
    return tuple(positive(f"{name}[{i}]", v) for i, v in enumerate(items))


def regularizer(l2: float):
    return keras.regularizers.L2(l2) if l2 else None


# --- convolutions ----------------------------------------------------------------------------

_CONV = {1: layers.Conv1D, 2: layers.Conv2D, 3: layers.Conv3D}
_MAX_POOL = {1: layers.MaxPooling1D, 2: layers.MaxPooling2D, 3: layers.MaxPooling3D}


def _wrap(per_window: bool, layer_cls, name: str, *args, **kwargs):
    """``layer_cls(*args, **kwargs)`` named ``name``, per window (PerWindow) or not."""
    if per_window:
        return PerWindow(layer_cls(*args, **kwargs), name=name)
    return layer_cls(*args, name=name, **kwargs)


def conv_block(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int | tuple[int, ...],
    *,
    rank: int,
    block: str,
    batch_norm: bool,
    reg,
    name: str,
    per_window: bool,
    strides: int = 1,
) -> keras.KerasTensor:
    """One convolution block, 'same' padding, ReLU.

    - plain: relu(bn(conv(x)))
    - residual: relu(bn(conv(x)) + skip(x)), skip = identity, or a 1x1 projection when the
      channels (or the stride) differ
    - highway: carry + T * (H - carry) = T*H + (1-T)*carry with H = relu(bn(conv(x))), the
      transform gate T = sigmoid(conv_T(x)) (bias initialised to -1), carry = x or its 1x1
      projection when the channels (or the stride) differ
    """
    conv = partial(_wrap, per_window, _CONV[rank])
    linear = block == "residual" or batch_norm
    h = conv(
        name,
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        kernel_regularizer=reg,
        activation=None if linear else "relu",
    )(x)
    if batch_norm:  # doubles the CPU cost of the convolutions (TensorFlow 2.21)
        h = _wrap(per_window, layers.BatchNormalization, f"{name}_bn")(h)
        if block != "residual":
            h = layers.Activation("relu", name=f"{name}_relu")(h)
    if block == "plain":
        return h
    skip = x
    if x.shape[-1] != filters or strides != 1:
        skip = conv(f"{name}_proj", filters, 1, strides=strides, kernel_regularizer=reg)(x)
    if block == "residual":
        y = layers.Add(name=f"{name}_add")([h, skip])
        return layers.Activation("relu", name=f"{name}_relu")(y)
    gate = conv(
        f"{name}_gate",
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        kernel_regularizer=reg,
        activation="sigmoid",
        bias_initializer=keras.initializers.Constant(HIGHWAY_GATE_BIAS),
    )(x)
    diff = layers.Subtract(name=f"{name}_transform")([h, skip])
    gated = layers.Multiply(name=f"{name}_gated")([gate, diff])
    return layers.Add(name=f"{name}_highway")([skip, gated])


def conv_stack(
    x: keras.KerasTensor,
    conv_filters: Sequence[int],
    kernel_size: tuple[int, ...],
    pool_size: tuple[int, ...],
    *,
    rank: int,
    block: str,
    batch_norm: bool,
    reg,
    per_window: bool,
    mask: keras.KerasTensor | None = None,
    prefix: str = "conv",
) -> tuple[keras.KerasTensor, keras.KerasTensor | None]:
    """``conv_block`` per entry of ``conv_filters``, each followed by max pooling ('same').

    With ``mask`` (convolutions across the window axis, not per window) the invalid windows are
    zeroed after every block, so padding never leaks into valid windows; pooling over the
    window axis (``pool_size[0] > 1``) pools the mask alongside. Returns (x, mask)."""
    for i, filters in enumerate(conv_filters):
        name = f"{prefix}{i}"
        x = conv_block(
            x,
            filters,
            kernel_size,
            rank=rank,
            block=block,
            batch_norm=batch_norm,
            reg=reg,
            name=name,
            per_window=per_window,
        )
        if mask is not None:
            x = MaskSteps(name=f"{name}_mask")(x, mask)
        if any(p > 1 for p in pool_size):
            pool = pool_size[0] if rank == 1 else pool_size
            x = _wrap(per_window, _MAX_POOL[rank], f"{name}_pool", pool, padding="same")(x)
            if mask is not None and pool_size[0] > 1:
                mask = PoolMask(pool_size[0], name=f"{name}_pool_mask")(mask)
    return x, mask


# --- a window -> a vector ---------------------------------------------------------------------


def reduce_frames(x: keras.KerasTensor, how: str) -> keras.KerasTensor:
    """Per window, pool over the frame axis (mean, max or both) and flatten what is left:
    (batch, T, frames, channels) -> (batch, T, channels) and (batch, T, frames, freq, channels)
    -> (batch, T, freq x channels) (the frequency axis is kept)."""
    choice("window_pooling", how, WINDOW_POOLINGS)
    per_window = x.shape[2:]
    kinds = ("mean", "max") if how == "meanmax" else (how,)
    single = len(kinds) == 1
    parts = []
    for kind in kinds:
        if len(per_window) == 2:  # (frames, channels)
            cls = layers.GlobalAveragePooling1D if kind == "mean" else layers.GlobalMaxPooling1D
            name = "window_embedding" if single else f"window_time_{kind}"
            parts.append(PerWindow(cls(), name=name)(x))
        else:  # (frames, freq, channels)
            cls = layers.AveragePooling2D if kind == "mean" else layers.MaxPooling2D
            pooled = PerWindow(cls((per_window[0], 1)), name=f"window_time_{kind}")(x)
            name = "window_embedding" if single else f"window_{kind}_flat"
            parts.append(PerWindow(layers.Flatten(), name=name)(pooled))
    return parts[0] if single else layers.Concatenate(name="window_embedding")(parts)


def window_vectors(x: keras.KerasTensor, how: str) -> keras.KerasTensor:
    """(batch, T, c, D, 1) -> (batch, T, c*D) (flatten) or (batch, T, D) (mean over frames)."""
    choice("window_vector", how, WINDOW_VECTORS)
    if how == "flatten":
        return PerWindow(layers.Flatten(), name="window_vector")(x)
    steps, c_len, dims = x.shape[1:4]
    x = layers.Reshape((steps, c_len, dims), name="window_frames")(x)
    return PerWindow(layers.GlobalAveragePooling1D(), name="window_vector")(x)


def dense_stack(
    x: keras.KerasTensor, units: Sequence[int], dropout: float, reg, prefix: str
) -> keras.KerasTensor:
    """Dense (ReLU) + dropout per entry of ``units`` (applied per step on sequences)."""
    for i, n in enumerate(units):
        x = layers.Dense(n, activation="relu", kernel_regularizer=reg, name=f"{prefix}{i}")(x)
        x = layers.Dropout(dropout, name=f"{prefix}{i}_dropout")(x)
    return x


# --- windows -> utterance -> tasks ----------------------------------------------------------


def pool_windows(
    x: keras.KerasTensor,
    mask: keras.KerasTensor,
    pooling: str,
    attention_units: int = 32,
    reg=None,
) -> keras.KerasTensor:
    """Pool (batch, T, units) over the valid windows only -> (batch, units) (meanmax: 2 units)."""
    choice("pooling", pooling, POOLINGS)
    if pooling == "meanmax":
        return layers.Concatenate(name="pooled")(
            [
                layers.GlobalAveragePooling1D(name="mean_pool")(x, mask=mask),
                MaskedMaxPooling(name="max_pool")(x, mask),
            ]
        )
    if pooling == "mean":
        return layers.GlobalAveragePooling1D(name="pooled")(x, mask=mask)
    if pooling == "max":
        return MaskedMaxPooling(name="pooled")(x, mask)
    if pooling == "last":
        return LastValidPooling(name="pooled")(x, mask)
    units = positive("attention_units", attention_units, minimum=0)
    return MaskedAttentionPooling(units, kernel_regularizer=reg, name="pooled")(x, mask)


def sequence_head(
    x: keras.KerasTensor,
    mask: keras.KerasTensor,
    *,
    rnn: str = "lstm",
    rnn_units: int = 0,
    rnn_layers: int = 1,
    bidirectional: bool = False,
    pooling: str = "meanmax",
    attention_units: int = 32,
    dense_units: int = 64,
    dense_layers: int = 1,
    dropout: float = 0.3,
    reg=None,
) -> keras.KerasTensor:
    """Window embeddings (batch, T, units) -> [recurrent layers over the valid windows] ->
    masked pooling -> dropout -> [dense (ReLU) + dropout] x dense_layers. ``last`` pooling
    after a bidirectional layer takes each direction's final state."""
    choice("rnn", rnn, RNNS)
    choice("pooling", pooling, POOLINGS)
    pooled = None
    if rnn_units:
        cell = {"lstm": layers.LSTM, "gru": layers.GRU}[rnn]
        n_layers = positive("rnn_layers", rnn_layers)
        for i in range(n_layers):
            name = rnn if i == 0 else f"{rnn}{i}"
            recurrent = cell(rnn_units, return_sequences=True, kernel_regularizer=reg, name=name)
            if not bidirectional:
                x = recurrent(x, mask=mask)
            elif pooling == "last" and i == n_layers - 1:
                # each direction's final state: forward at the last valid window, backward at
                # the first one (it has read the utterance from its end)
                forward, backward = layers.Bidirectional(
                    recurrent, merge_mode=None, name=f"bi{name}"
                )(x, mask=mask)
                pooled = layers.Concatenate(name="pooled")(
                    [
                        LastValidPooling(name="last_forward")(forward, mask),
                        FirstStep(name="last_backward")(backward),
                    ]
                )
            else:
                x = layers.Bidirectional(recurrent, name=f"bi{name}")(x, mask=mask)
    x = pooled if pooled is not None else pool_windows(x, mask, pooling, attention_units, reg)
    x = layers.Dropout(dropout, name="pooled_dropout")(x)
    if dense_units:
        for i in range(positive("dense_layers", dense_layers, minimum=0)):
            name = "dense" if i == 0 else f"dense{i}"
            x = layers.Dense(dense_units, activation="relu", kernel_regularizer=reg, name=name)(x)
            x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x
