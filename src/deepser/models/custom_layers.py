"""Custom layers (registered, so models load with ``safe_mode=True``; no Lambda layers)."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="deepser")
class LengthMask(layers.Layer):
    """``n_valid`` (batch,) -> boolean mask (batch, steps): True for the first n_valid steps."""

    def __init__(self, steps: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.steps = int(steps)

    def call(self, n_valid):
        n = ops.reshape(ops.cast(n_valid, "int32"), (-1, 1))
        return ops.expand_dims(ops.arange(self.steps, dtype="int32"), 0) < n

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.steps)

    def get_config(self) -> dict:
        return {**super().get_config(), "steps": self.steps}


@keras.saving.register_keras_serializable(package="deepser")
class MaskedMaxPooling(layers.Layer):
    """Max over the steps where ``mask`` is True: (batch, steps, units) -> (batch, units)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, x, mask):
        neg = ops.full_like(x, -1e9)
        return ops.max(ops.where(ops.expand_dims(mask, -1), x, neg), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@keras.saving.register_keras_serializable(package="deepser")
class MaskSteps(layers.Layer):
    """Zero the steps (axis 1) where ``mask`` is False: (batch, steps, ...) -> same shape.

    Used before and between convolutions that span the window axis (``cnn3d``), so that what
    padding windows hold never reaches a valid window."""

    def call(self, x, mask):
        m = mask
        for _ in range(len(x.shape) - 2):
            m = ops.expand_dims(m, -1)
        return ops.where(m, x, ops.zeros_like(x))

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="deepser")
class PoolMask(layers.Layer):
    """A step mask after max pooling over the step axis with ``padding='same'``: a pooled
    step is valid when any of its source steps is. (batch, steps) -> (batch, ceil(steps/pool))."""

    def __init__(self, pool_size: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)

    def call(self, inputs):
        m = ops.expand_dims(ops.cast(inputs, "float32"), -1)
        pooled = ops.max_pool(m, self.pool_size, strides=self.pool_size, padding="same")
        return ops.squeeze(pooled, -1) > 0.5

    def compute_output_shape(self, input_shape):
        steps = input_shape[1]
        return (input_shape[0], None if steps is None else -(-steps // self.pool_size))

    def get_config(self) -> dict:
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package="deepser")
class LastValidPooling(layers.Layer):
    """The last step where ``mask`` is True: (batch, steps, units) -> (batch, units)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, x, mask):
        m = ops.cast(mask, x.dtype)
        following = ops.concatenate([m[:, 1:], ops.zeros_like(m[:, :1])], axis=1)
        last = ops.expand_dims(m * (1.0 - following), -1) > 0.5
        return ops.sum(ops.where(last, x, ops.zeros_like(x)), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@keras.saving.register_keras_serializable(package="deepser")
class FirstStep(layers.Layer):
    """The first step: (batch, steps, units) -> (batch, units) (a backward RNN's final state)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def call(self, x):
        return x[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


@keras.saving.register_keras_serializable(package="deepser")
class MaskedAttentionPooling(layers.Layer):
    """Softmax attention over the steps where ``mask`` is True:
    (batch, steps, features) -> (batch, features), the attention-weighted mean.

    Score of a step: ``v . tanh(W x + b)`` with ``units`` hidden units (``units=0``: a linear
    score ``w . x``). Masked steps get weight exactly 0."""

    def __init__(self, units: int = 32, kernel_regularizer=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return None

    def build(self, input_shape) -> None:
        features = int(input_shape[-1])
        hidden = self.units or features
        if self.units:
            self.kernel = self.add_weight(
                shape=(features, hidden),
                initializer="glorot_uniform",
                regularizer=self.kernel_regularizer,
                name="kernel",
            )
            self.bias = self.add_weight(shape=(hidden,), initializer="zeros", name="bias")
        self.score = self.add_weight(
            shape=(hidden, 1),
            initializer="glorot_uniform",
            regularizer=self.kernel_regularizer,
            name="score",
        )

    def attention(self, x, mask):
        """Attention weights (batch, steps), 0 on masked steps, summing to 1."""
        h = ops.tanh(ops.matmul(x, self.kernel) + self.bias) if self.units else x
        scores = ops.squeeze(ops.matmul(h, self.score), -1)
        scores = ops.where(mask, scores, ops.zeros_like(scores))
        low = ops.min(scores, axis=1, keepdims=True)
        top = ops.max(ops.where(mask, scores, low), axis=1, keepdims=True)
        e = ops.exp(ops.where(mask, scores - top, ops.zeros_like(scores)))
        e = e * ops.cast(mask, e.dtype)
        return e / ops.maximum(ops.sum(e, axis=1, keepdims=True), 1e-12)

    def call(self, x, mask):
        x = ops.where(ops.expand_dims(mask, -1), x, ops.zeros_like(x))
        return ops.sum(x * ops.expand_dims(self.attention(x, mask), -1), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        }


@keras.saving.register_keras_serializable(package="deepser")
class UtteranceNorm(layers.Layer):
    """Per-utterance normalisation of windows (batch, T, c_len, D, 1) with a window mask
    (batch, T): each feature dimension minus its mean over the valid frames of the utterance
    (``mode='mean'``, cepstral-mean-style) or also divided by its standard deviation there
    (``mode='meanvar'``, floored at ``epsilon``). Padding windows come out 0. Uses no
    statistics beyond the utterance itself, so it is the same at training, test and
    recognition time."""

    MODES = ("mean", "meanvar")

    def __init__(self, mode: str = "mean", epsilon: float = 1e-3, **kwargs) -> None:
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"UtteranceNorm mode must be one of {self.MODES}; got {mode!r}")
        self.mode, self.epsilon = mode, float(epsilon)

    def call(self, x, mask):
        m = ops.cast(mask, x.dtype)
        for _ in range(len(x.shape) - 2):
            m = ops.expand_dims(m, -1)  # (batch, T, 1, 1, 1)
        frames = ops.cast(x.shape[2], x.dtype)
        count = ops.maximum(ops.sum(m, axis=1, keepdims=True) * frames, 1.0)
        mean = ops.sum(x * m, axis=(1, 2), keepdims=True) / count
        y = x - mean
        if self.mode == "meanvar":
            var = ops.sum(ops.square(y) * m, axis=(1, 2), keepdims=True) / count
            y = y / ops.sqrt(var + self.epsilon**2)
        return y * m

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="deepser")
class PerWindow(layers.Wrapper):
    """Apply ``layer`` to every window on its own: (batch, T, ...) -> (batch, T, ...'), by
    folding the windows into the batch axis.

    Same weights and results as ``TimeDistributed(layer)``, which in Keras 3 runs the layer once
    per window in a Python loop: about 9x slower for per-window convolutions on CPU (a
    (20, 10, 40) window stack, batch 32, TensorFlow 2.21). Batch normalisation inside it takes
    its statistics over all windows of the batch (TimeDistributed: per window position)."""

    def __init__(self, layer, **kwargs) -> None:
        super().__init__(layer, **kwargs)
        self.supports_masking = False

    def build(self, input_shape) -> None:
        super().build((None, *input_shape[2:]))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])

    def call(self, inputs, training=None):
        steps = inputs.shape[1]
        kwargs = {"training": training} if self.layer._call_has_training_arg else {}
        y = self.layer.call(ops.reshape(inputs, (-1, *inputs.shape[2:])), **kwargs)
        return ops.reshape(y, (-1, steps, *y.shape[1:]))


@keras.saving.register_keras_serializable(package="deepser_legacy", name="hard_sigmoid")
def keras2_hard_sigmoid(x):
    """Keras 2's ``hard_sigmoid``: ``clip(0.2 x + 0.5, 0, 1)``, for models imported from the
    original toolkit (registered under its old name, so their bundles keep loading).

    Keras 3's ``hard_sigmoid`` is ``relu6(x + 3) / 6`` (slope 1/6): using it for a Keras-2
    LSTM's recurrent activation changes the original laughter model's outputs by up to 0.027.
    """
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)
