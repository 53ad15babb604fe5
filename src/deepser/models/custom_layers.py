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
