"""Models: one registry of architectures (:mod:`~deepser.models.registry`, builders in
:mod:`~deepser.models.zoo` from the blocks of :mod:`~deepser.models.blocks`), the custom layers
(:mod:`~deepser.models.custom_layers`) and atomic saving / safe loading
(:mod:`~deepser.models.saving`).

Every model takes two named inputs, a batch of database rows and their numbers of valid
windows, and has one output per task, named after the task. This module holds only those input
names (no Keras import), so the data pipeline and the recogniser can use them cheaply.
"""

from __future__ import annotations

import numpy as np

FEATURES = "features"  # float32 rows in the database layout, (batch, *row_shape)
N_VALID = "n_valid"  # int32 number of valid (not padding) windows per row
INPUT_NAMES = (FEATURES, N_VALID)


def as_inputs(feat: np.ndarray, n_valid: np.ndarray) -> dict[str, np.ndarray]:
    """A batch of rows as the models' named inputs."""
    return {FEATURES: feat, N_VALID: n_valid}
