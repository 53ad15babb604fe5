"""Training losses (backend-agnostic Keras 3).

The original trainer's focal loss was hard-coded to two classes and its weighted cross-entropy
always returned 0; :class:`SparseFocalLoss` is correct for any number of classes: ``gamma = 0``
and no ``alpha`` is exactly sparse categorical cross-entropy.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from deepser.tasks import is_categorical


@keras.saving.register_keras_serializable(package="deepser")
class SparseFocalLoss(keras.losses.Loss):
    """Focal loss on integer labels and softmax probabilities (Lin et al. 2017), multi-class:

    ``loss = -alpha[y] * (1 - p_y) ** gamma * sum_c t_c log p_c`` with ``t`` the (optionally
    label-smoothed) one-hot target. ``alpha``: None (1 for every class), one number for every
    class, or one weight per class. Targets may also be soft, (batch, classes) probability
    vectors (mixup): then ``t`` is that vector (smoothed), ``p_y = sum_c t_c p_c`` and
    ``alpha[y] = sum_c t_c alpha[c]``.
    """

    def __init__(
        self,
        n_classes: int,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        name: str = "sparse_focal_loss",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.n_classes, self.gamma, self.label_smoothing = (
            int(n_classes),
            float(gamma),
            float(label_smoothing),
        )
        if alpha is not None and not isinstance(alpha, int | float):
            alpha = [float(a) for a in alpha]
            if len(alpha) != self.n_classes:
                raise ValueError(
                    f"focal alpha has {len(alpha)} values for {self.n_classes} classes"
                )
        self.alpha = alpha

    def call(self, y_true, y_pred):
        if len(y_true.shape) == 2 and y_true.shape[-1] == self.n_classes > 1:
            # soft targets (batch, classes), e.g. mixup's mixtures of one-hot vectors
            onehot = ops.cast(y_true, y_pred.dtype)
            y_true = None
        else:
            y_true = ops.cast(ops.reshape(y_true, (-1,)), "int32")
            onehot = ops.one_hot(y_true, self.n_classes, dtype=y_pred.dtype)
        probs = ops.clip(y_pred, keras.config.epsilon(), 1.0 - keras.config.epsilon())
        target = onehot
        if self.label_smoothing:
            target = onehot * (1.0 - self.label_smoothing) + self.label_smoothing / self.n_classes
        ce = -ops.sum(target * ops.log(probs), axis=-1)
        if self.gamma:
            p_true = ops.sum(onehot * probs, axis=-1)
            ce = ops.power(1.0 - p_true, self.gamma) * ce
        if self.alpha is None:
            return ce
        if isinstance(self.alpha, float | int):
            return float(self.alpha) * ce
        alpha = ops.convert_to_tensor(self.alpha, dtype=y_pred.dtype)
        if y_true is None:  # soft targets: the targets' mixture of the class weights
            return ops.sum(onehot * alpha, axis=-1) * ce
        return ops.take(alpha, y_true) * ce

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "n_classes": self.n_classes,
            "gamma": self.gamma,
            "alpha": self.alpha,
            "label_smoothing": self.label_smoothing,
        }


@keras.saving.register_keras_serializable(package="deepser")
class ConcordanceLoss(keras.losses.Loss):
    """1 - CCC (Lin's concordance correlation coefficient) over the batch, for continuous
    tasks (the standard CCC; no min-max normalisation of predictions, unlike the original)."""

    def __init__(self, name: str = "ccc_loss", **kwargs) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1,))
        y_pred = ops.reshape(y_pred, (-1,))
        mt, mp = ops.mean(y_true), ops.mean(y_pred)
        vt, vp = ops.var(y_true), ops.var(y_pred)
        cov = ops.mean((y_true - mt) * (y_pred - mp))
        ccc = 2.0 * cov / (vt + vp + ops.square(mt - mp) + keras.config.epsilon())
        return ops.broadcast_to(1.0 - ccc, ops.shape(y_true))


def task_loss(task: dict, training: dict) -> keras.losses.Loss | str:
    """The loss of one task under the experiment's training settings."""
    if not is_categorical(task):
        return (
            ConcordanceLoss() if training.get("regression_loss") == "ccc" else "mean_squared_error"
        )
    loss = training.get("loss", "crossentropy")
    gamma = float(training.get("focal_gamma", 2.0)) if loss == "focal" else 0.0
    alpha = training.get("focal_alpha") if loss == "focal" else None
    if isinstance(alpha, dict):  # per task: {task: [one weight per class]}
        alpha = alpha.get(task["name"])
    smoothing = float(training.get("label_smoothing", 0.0))
    if not gamma and alpha is None and not smoothing and not training.get("mixup"):
        return "sparse_categorical_crossentropy"
    return SparseFocalLoss(len(task["classes"]), gamma, alpha, smoothing)
