"""Deployment: exporting a bundle for a light runtime (:mod:`~deepser.deploy.export`, needs
TensorFlow and Keras) and running an exported bundle without either
(:mod:`~deepser.deploy.runtime`: LiteRT or ONNX Runtime).

An exported bundle is a folder with the same ``bundle.json`` as the Keras bundle it came from
(feature spec, gain, windows, tasks, calibration, metrics) plus a ``runtime`` entry: the format,
the model file, its input and output names, and the check made at export time (the largest
difference from the Keras model's outputs over real database rows).
"""

from __future__ import annotations

FORMATS = ("litert", "onnx", "savedmodel")
MODEL_FILES = {"litert": "model.tflite", "onnx": "model.onnx", "savedmodel": "saved_model"}
# what a light install needs per format (the message of a missing runtime)
RUNTIME_PACKAGES = {
    "litert": ("ai_edge_litert", "pip install 'deepser[runtime]' (ai-edge-litert)"),
    "onnx": ("onnxruntime", "pip install 'deepser[runtime-onnx]' (onnxruntime)"),
    "savedmodel": ("tensorflow", "pip install tensorflow-cpu (a SavedModel runs on TensorFlow)"),
}
