"""Keras-2 numerics as registered Keras 3 objects (so imported models load with ``safe_mode=True``).

Importing this module registers them; :func:`deepser.bundle.load_bundle` imports it.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="deepser_legacy", name="hard_sigmoid")
def keras2_hard_sigmoid(x):
    """Keras 2's ``hard_sigmoid``: ``clip(0.2 x + 0.5, 0, 1)``.

    Keras 3's ``hard_sigmoid`` is ``relu6(x + 3) / 6`` (slope 1/6): using it for a Keras-2
    LSTM's recurrent activation changes the original laughter model's outputs by up to 0.027.
    """
    return ops.clip(0.2 * x + 0.5, 0.0, 1.0)
