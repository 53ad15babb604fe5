"""Transfer learning: start a model from another model's weights (layer by layer, where names
and shapes match) and freeze chosen layers."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def initialise_from(model, source: str | Path, freeze: list[str]) -> dict[str, list[str]]:
    """Copy the weights of every layer of the model ``source`` whose name and weight shapes
    match (the normalisation layer excepted: its statistics come from this training data),
    then freeze the layers whose names start with one of ``freeze``."""
    from deepser.models.saving import load_model

    donor = load_model(source)
    donors = {layer.name: layer for layer in donor.layers}
    copied, skipped = [], []
    for layer in model.layers:
        theirs = donors.get(layer.name)
        if theirs is None or not layer.weights or layer.name == "feature_norm":
            continue
        mine, other = layer.get_weights(), theirs.get_weights()
        same = len(mine) == len(other)
        if same and all(a.shape == b.shape for a, b in zip(mine, other, strict=True)):
            layer.set_weights(other)
            copied.append(layer.name)
        else:
            skipped.append(layer.name)
    if not copied:
        raise ValueError(f"{source}: no layer matches this model (same architecture and sizes?)")
    frozen = [
        layer.name
        for layer in model.layers
        if any(layer.name.startswith(prefix) for prefix in freeze)
    ]
    unknown = [p for p in freeze if not any(n.startswith(p) for n in frozen)]
    if unknown:
        names = ", ".join(layer.name for layer in model.layers)
        raise ValueError(f"freeze: no layer name starts with {unknown} (layers: {names})")
    for layer in model.layers:
        if layer.name in frozen:
            layer.trainable = False
    log.info(
        "initialised from %s: copied %s, shapes differ %s, frozen %s",
        source,
        copied,
        skipped,
        frozen,
    )
    return {"copied": copied, "shape_mismatch": skipped, "frozen": frozen}
