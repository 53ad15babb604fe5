"""The architectures. Each is ``(row_shape, layout, tasks, mean, variance, **hparams)`` ->
an uncompiled ``keras.Model`` with inputs ``features`` (a database row) and ``n_valid``, and one
output per task. Their keyword-only arguments are the hyper-parameters an experiment's ``model:``
block may set; padding windows beyond ``n_valid`` never influence the outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import layers

from deepser.models.blocks import (
    BLOCKS,
    choice,
    conv_stack,
    dense_stack,
    int_list,
    model_inputs,
    per_axis,
    positive,
    reduce_frames,
    regularizer,
    sequence_head,
    split_channels,
    task_heads,
    window_vectors,
)
from deepser.models.custom_layers import MaskSteps, PerWindow

Tasks = Sequence[Mapping[str, Any]]
IntOrList = int | Sequence[int]


def _model(features, n_valid, x, tasks: Tasks, name: str) -> keras.Model:
    return keras.Model([features, n_valid], task_heads(x, tasks), name=name)


def dnn(
    row_shape: Sequence[int],
    layout: str,
    tasks: Tasks,
    mean: np.ndarray,
    variance: np.ndarray,
    *,
    window_vector: str = "flatten",
    window_units: IntOrList = (128, 128),
    pooling: str = "meanmax",
    attention_units: int = 32,
    dense_units: int = 64,
    dense_layers: int = 1,
    dropout: float = 0.3,
    l2: float = 0.0,
    utterance_norm: str = "none",
) -> keras.Model:
    """Per window: flatten (or mean over frames) -> dense stack; masked pooling over the
    windows -> dense -> heads (the original's f_dnn + u_dnn)."""
    features, n_valid, x, mask = model_inputs(row_shape, layout, mean, variance, utterance_norm)
    reg = regularizer(l2)
    x = window_vectors(x, window_vector)
    x = dense_stack(x, int_list("window_units", window_units), dropout, reg, "window_dense")
    x = sequence_head(
        x,
        mask,
        pooling=pooling,
        attention_units=attention_units,
        dense_units=dense_units,
        dense_layers=dense_layers,
        dropout=dropout,
        reg=reg,
    )
    return _model(features, n_valid, x, tasks, "dnn")


def lstm(
    row_shape: Sequence[int],
    layout: str,
    tasks: Tasks,
    mean: np.ndarray,
    variance: np.ndarray,
    *,
    window_vector: str = "flatten",
    window_units: IntOrList = (),
    rnn: str = "lstm",
    rnn_units: int = 64,
    rnn_layers: int = 2,
    bidirectional: bool = False,
    pooling: str = "meanmax",
    attention_units: int = 32,
    dense_units: int = 64,
    dense_layers: int = 1,
    dropout: float = 0.3,
    l2: float = 0.0,
    utterance_norm: str = "none",
) -> keras.Model:
    """Per window: flatten (or mean over frames) [-> dense stack]; a (bidirectional) LSTM or
    GRU stack over the valid windows -> masked pooling -> dense -> heads."""
    features, n_valid, x, mask = model_inputs(row_shape, layout, mean, variance, utterance_norm)
    reg = regularizer(l2)
    x = window_vectors(x, window_vector)
    x = dense_stack(x, int_list("window_units", window_units), dropout, reg, "window_dense")
    x = sequence_head(
        x,
        mask,
        rnn=rnn,
        rnn_units=positive("rnn_units", rnn_units),
        rnn_layers=rnn_layers,
        bidirectional=bidirectional,
        pooling=pooling,
        attention_units=attention_units,
        dense_units=dense_units,
        dense_layers=dense_layers,
        dropout=dropout,
        reg=reg,
    )
    return _model(features, n_valid, x, tasks, "lstm")


def cnn1d(
    row_shape: Sequence[int],
    layout: str,
    tasks: Tasks,
    mean: np.ndarray,
    variance: np.ndarray,
    *,
    conv_filters: IntOrList = (32, 32),
    kernel_size: int = 3,
    pool_size: int = 2,
    block: str = "plain",
    batch_norm: bool = False,
    window_pooling: str = "meanmax",
    pooling: str = "meanmax",
    attention_units: int = 32,
    dense_units: int = 64,
    dense_layers: int = 1,
    dropout: float = 0.3,
    l2: float = 0.0,
    utterance_norm: str = "none",
) -> keras.Model:
    """Per window: 1-D convolutions over the frames (the feature dimensions are the input
    channels) -> pooling over the frames; masked pooling over the windows -> dense -> heads."""
    features, n_valid, x, mask = model_inputs(row_shape, layout, mean, variance, utterance_norm)
    reg = regularizer(l2)
    steps, c_len, dims = x.shape[1:4]
    x = layers.Reshape((steps, c_len, dims), name="window_frames")(x)
    x, _ = conv_stack(
        x,
        int_list("conv_filters", conv_filters),
        per_axis("kernel_size", kernel_size, 1),
        per_axis("pool_size", pool_size, 1),
        rank=1,
        block=choice("block", block, BLOCKS),
        batch_norm=batch_norm,
        reg=reg,
        per_window=True,
    )
    x = reduce_frames(x, window_pooling)
    x = layers.Dropout(dropout, name="embedding_dropout")(x)
    x = sequence_head(
        x,
        mask,
        pooling=pooling,
        attention_units=attention_units,
        dense_units=dense_units,
        dense_layers=dense_layers,
        dropout=dropout,
        reg=reg,
    )
    return _model(features, n_valid, x, tasks, "cnn1d")


def _cnn2d_windows(
    x, conv_filters, kernel_size, pool_size, block, batch_norm, window_pooling, dropout, reg
):
    """Per-window 2-D convolutions over (frames, freq) -> window embeddings (batch, T, units)."""
    x, _ = conv_stack(
        x,
        int_list("conv_filters", conv_filters),
        per_axis("kernel_size", kernel_size, 2),
        per_axis("pool_size", pool_size, 2),
        rank=2,
        block=choice("block", block, BLOCKS),
        batch_norm=batch_norm,
        reg=reg,
        per_window=True,
    )
    # pool over the frames of each window, keep the frequency axis: (T, freq x filters)
    x = reduce_frames(x, window_pooling)
    return layers.Dropout(dropout, name="embedding_dropout")(x)


def cnn2d(
    row_shape: Sequence[int],
    layout: str,
    tasks: Tasks,
    mean: np.ndarray,
    variance: np.ndarray,
    *,
    feature_channels: int = 1,
    conv_filters: IntOrList = (8, 16),
    kernel_size: IntOrList = 3,
    pool_size: IntOrList = 2,
    block: str = "plain",
    batch_norm: bool = False,
    window_pooling: str = "mean",
    pooling: str = "meanmax",
    attention_units: int = 32,
    dense_units: int = 64,
    dense_layers: int = 1,
    dropout: float = 0.3,
    l2: float = 0.0,
    utterance_norm: str = "none",
) -> keras.Model:
    """Per window: 2-D convolutions over (frames, freq) -> pooling over the frames; masked
    pooling over the windows (no recurrence) -> dense -> heads."""
    features, n_valid, x, mask = model_inputs(row_shape, layout, mean, variance, utterance_norm)
    x = split_channels(x, feature_channels)
    reg = regularizer(l2)
    x = _cnn2d_windows(
        x, conv_filters, kernel_size, pool_size, block, batch_norm, window_pooling, dropout, reg
    )
    x = sequence_head(
        x,
        mask,
        pooling=pooling,
        attention_units=attention_units,
        dense_units=dense_units,
        dense_layers=dense_layers,
        dropout=dropout,
        reg=reg,
    )
    return _model(features, n_valid, x, tasks, "cnn2d")


def cnn_lstm(
    row_shape: Sequence[int],
    layout: str,
    tasks: Tasks,
    mean: np.ndarray,
    variance: np.ndarray,
    *,
    feature_channels: int = 1,
    conv_filters: IntOrList = (8, 16),
    kernel_size: IntOrList = 3,
    pool_size: IntOrList = 2,
    block: str = "plain",
    batch_norm: bool = False,
    window_pooling: str = "mean",
    rnn: str = "lstm",
    rnn_units: int = 64,
    rnn_layers: int = 1,
    bidirectional: bool = False,
    pooling: str = "meanmax",
    attention_units: int = 32,
    dense_units: int = 64,
    dense_layers: int = 1,
    dropout: float = 0.3,
    l2: float = 0.0,
    utterance_norm: str = "none",
) -> keras.Model:
    """Per-window 2-D CNN -> recurrent layer(s) over the valid windows ->
    masked pooling (mean and max by default) -> dense -> one head per task."""
    features, n_valid, x, mask = model_inputs(row_shape, layout, mean, variance, utterance_norm)
    x = split_channels(x, feature_channels)
    reg = regularizer(l2)
    x = _cnn2d_windows(
        x, conv_filters, kernel_size, pool_size, block, batch_norm, window_pooling, dropout, reg
    )
    x = sequence_head(
        x,
        mask,
        rnn=rnn,
        rnn_units=positive("rnn_units", rnn_units),
        rnn_layers=rnn_layers,
        bidirectional=bidirectional,
        pooling=pooling,
        attention_units=attention_units,
        dense_units=dense_units,
        dense_layers=dense_layers,
        dropout=dropout,
        reg=reg,
    )
    return _model(features, n_valid, x, tasks, "cnn_lstm")


def raw_cnn_lstm(
    row_shape: Sequence[int],
    layout: str,
    tasks: Tasks,
    mean: np.ndarray,
    variance: np.ndarray,
    *,
    front_filters: int = 16,
    front_kernel: int = 32,
    front_stride: int = 4,
    conv_filters: IntOrList = (16, 16, 16),
    kernel_size: int = 9,
    pool_size: int = 4,
    block: str = "highway",
    batch_norm: bool = False,
    window_pooling: str = "mean",
    rnn: str = "lstm",
    rnn_units: int = 64,
    rnn_layers: int = 1,
    bidirectional: bool = False,
    pooling: str = "mean",
    attention_units: int = 32,
    dense_units: int = 64,
    dense_layers: int = 1,
    dropout: float = 0.3,
    l2: float = 0.0,
    utterance_norm: str = "none",
) -> keras.Model:
    """Raw-waveform model after Kim et al., ACM MM 2017 (deep temporal models with identity
    skip connections): per window of raw samples, a strided 1-D convolution front end ->
    highway (or residual) 1-D convolution blocks with max pooling -> global pooling over the
    window; an LSTM over the valid windows -> masked pooling -> dense -> heads.

    Needs raw-sample windows: a database of feature type ``raw`` (row (T, 1, samples, 1))."""
    steps_axis = 0 if layout == "2d" else 1
    c_len, dims = row_shape[2], row_shape[3]
    if dims != 1 and c_len != 1:
        raise ValueError(
            f"raw_cnn_lstm needs raw-sample windows (a database of feature type 'raw', row "
            f"shape (T, 1, samples, 1)); this database's rows are {tuple(row_shape)} "
            f"({row_shape[steps_axis]} windows of {c_len} frames x {dims} dimensions)"
        )
    features, n_valid, x, mask = model_inputs(row_shape, layout, mean, variance, utterance_norm)
    reg = regularizer(l2)
    steps = x.shape[1]
    x = layers.Reshape((steps, c_len * dims, 1), name="window_samples")(x)
    x = PerWindow(
        layers.Conv1D(
            positive("front_filters", front_filters),
            positive("front_kernel", front_kernel),
            strides=positive("front_stride", front_stride),
            padding="same",
            activation="relu",
            kernel_regularizer=reg,
        ),
        name="front",
    )(x)
    x, _ = conv_stack(
        x,
        int_list("conv_filters", conv_filters),
        per_axis("kernel_size", kernel_size, 1),
        per_axis("pool_size", pool_size, 1),
        rank=1,
        block=choice("block", block, BLOCKS),
        batch_norm=batch_norm,
        reg=reg,
        per_window=True,
    )
    x = reduce_frames(x, window_pooling)  # global pooling over the samples of a window
    x = layers.Dropout(dropout, name="embedding_dropout")(x)
    x = sequence_head(
        x,
        mask,
        rnn=rnn,
        rnn_units=positive("rnn_units", rnn_units),
        rnn_layers=rnn_layers,
        bidirectional=bidirectional,
        pooling=pooling,
        attention_units=attention_units,
        dense_units=dense_units,
        dense_layers=dense_layers,
        dropout=dropout,
        reg=reg,
    )
    return _model(features, n_valid, x, tasks, "raw_cnn_lstm")


def cnn3d(
    row_shape: Sequence[int],
    layout: str,
    tasks: Tasks,
    mean: np.ndarray,
    variance: np.ndarray,
    *,
    feature_channels: int = 1,
    conv_filters: IntOrList = (8, 16),
    kernel_size: IntOrList = 3,
    pool_size: IntOrList = (1, 2, 2),
    block: str = "plain",
    batch_norm: bool = False,
    window_pooling: str = "mean",
    rnn: str = "lstm",
    rnn_units: int = 0,
    rnn_layers: int = 1,
    bidirectional: bool = False,
    pooling: str = "meanmax",
    attention_units: int = 32,
    dense_units: int = 64,
    dense_layers: int = 1,
    dropout: float = 0.3,
    l2: float = 0.0,
    utterance_norm: str = "none",
) -> keras.Model:
    """3-D CNN after Kim et al., ACII 2017 (spectro-temporal features with 3D CNNs): Conv3D
    over (windows, frames, freq) on the 3d layout, invalid windows zeroed before and after every
    block -> pooling over the frames of each window -> [optional LSTM] -> masked pooling over
    the windows -> dense -> heads. Kernel and pool sizes: an integer or [windows, frames, freq]."""
    if layout != "3d":
        raise ValueError(
            "cnn3d convolves across windows and needs a database with the 3d layout (rows "
            f"(1, T, c_len, D)); this one is {layout!r} with rows {tuple(row_shape)}: set "
            "`layout: 3d` in the database's config"
        )
    features, n_valid, x, mask = model_inputs(row_shape, layout, mean, variance, utterance_norm)
    x = split_channels(x, feature_channels)
    reg = regularizer(l2)
    x = MaskSteps(name="input_mask")(x, mask)
    x, mask = conv_stack(
        x,
        int_list("conv_filters", conv_filters),
        per_axis("kernel_size", kernel_size, 3),
        per_axis("pool_size", pool_size, 3),
        rank=3,
        block=choice("block", block, BLOCKS),
        batch_norm=batch_norm,
        reg=reg,
        per_window=False,
        mask=mask,
    )
    x = reduce_frames(x, window_pooling)
    x = layers.Dropout(dropout, name="embedding_dropout")(x)
    x = sequence_head(
        x,
        mask,
        rnn=rnn,
        rnn_units=positive("rnn_units", rnn_units, minimum=0),
        rnn_layers=rnn_layers,
        bidirectional=bidirectional,
        pooling=pooling,
        attention_units=attention_units,
        dense_units=dense_units,
        dense_layers=dense_layers,
        dropout=dropout,
        reg=reg,
    )
    return _model(features, n_valid, x, tasks, "cnn3d")


# name -> builder, in the order the README lists them
ARCHITECTURES = {
    "dnn": dnn,
    "lstm": lstm,
    "cnn1d": cnn1d,
    "cnn2d": cnn2d,
    "cnn_lstm": cnn_lstm,
    "raw_cnn_lstm": raw_cnn_lstm,
    "cnn3d": cnn3d,
}
