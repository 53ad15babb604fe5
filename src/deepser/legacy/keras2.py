"""Rebuild a Keras-2 model file in Keras 3, with the numerics it had under Keras 2.

Keras 3 cannot load the original toolkit's ``.h5`` models (layers nested in ``TimeDistributed``
are Keras-2 configs), and loading them with Keras 3's own definitions silently changes their
outputs. :func:`read_legacy` parses the file's ``model_config`` attribute and its
``model_weights`` with h5py; :func:`build_model` rebuilds the graph layer by layer in Keras 3 and
copies the weights, keeping these Keras-2 semantics:

- ``hard_sigmoid`` is ``clip(0.2 x + 0.5, 0, 1)``
  (:func:`deepser.models.custom_layers.keras2_hard_sigmoid`, registered, so the model saves and
  loads with ``safe_mode=True``);
- ``'same'`` convolutions pad like TensorFlow: ``(k - 1) // 2`` before and the rest after (for
  stride 1); the padding is an explicit ``ZeroPadding`` layer before a ``'valid'`` convolution,
  so every backend computes the same thing;
- ``channels_first`` convolutions and poolings run channels_last (CPU kernels of TensorFlow
  support only NHWC) between ``Permute`` layers; tensors are permuted back only where a layer
  needs the original order: ``Flatten`` therefore flattens in (channels, rows, cols) order, and
  a Keras-2 ``Flatten(data_format='channels_first')`` in (rows, cols, channels) order;
- LSTM gates (i, f, c, o), GRU gates (z, r, h; ``reset_after`` as saved) and kernel layouts are
  the same in Keras 2 and 3, so weights are copied as they are.

Supported layer types: see :data:`SUPPORTED`; anything else is a :class:`LegacyModelError`
naming the layer. Regularisers, constraints and initialisers are not carried over (an imported
model is for inference; fine-tuning it trains without the original's L2 terms).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepser.errors import LegacyModelError

SUPPORTED = (
    "InputLayer",
    "Dense",
    "Dropout",
    "Activation",
    "LeakyReLU",
    "Flatten",
    "Reshape",
    "Permute",
    "BatchNormalization",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "LSTM",
    "GRU",
    "SimpleRNN",
    "Bidirectional",
    "TimeDistributed",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
)
ACTIVATIONS = (
    "linear",
    "relu",
    "tanh",
    "sigmoid",
    "hard_sigmoid",
    "softmax",
    "elu",
    "selu",
    "softplus",
    "softsign",
    "exponential",
)
# custom layers of the original trainer (its Highway variants): named in the error message
ORIGINAL_CUSTOM = ("Highway", "Conv1DHighway", "Conv2DHighway", "Conv3DHighway")
_SPATIAL = {"1D": 1, "2D": 2, "3D": 3}
# kernels longer than this (taps on one axis) are computed in pieces (see _Builder.chunked_conv)
LONG_KERNEL = 128
# layer kinds whose output is always in the original (Keras-2) layout
_ORIGINAL_LAYOUT_OUT = (
    "Dense",
    "Flatten",
    "Reshape",
    "Permute",
    "BatchNormalization",
    "Concatenate",
    "LSTM",
    "GRU",
    "SimpleRNN",
    "Bidirectional",
) + tuple(f"Global{p}Pooling{n}D" for p in ("Average", "Max") for n in (1, 2, 3))


@dataclass(frozen=True)
class LegacyLayer:
    """One layer of the saved graph: its config and, per call (node), its inputs."""

    name: str
    class_name: str
    config: dict[str, Any]
    inbound: list[list[tuple[str, int, int]]]


@dataclass(frozen=True)
class LegacyModel:
    """A parsed Keras-2 model file."""

    path: Path
    keras_version: str
    backend: str
    layers: list[LegacyLayer]
    inputs: list[tuple[str, int, int]]
    outputs: list[tuple[str, int, int]]
    weights: dict[str, list[np.ndarray]]
    training_config: dict[str, Any] | None = None

    @property
    def input_layer(self) -> LegacyLayer:
        if len(self.inputs) != 1:
            names = [i[0] for i in self.inputs]
            raise LegacyModelError(
                f"{self.path}: the model has {len(names)} inputs ({', '.join(names)}); only "
                "single-input models can be imported"
            )
        return next(layer for layer in self.layers if layer.name == self.inputs[0][0])

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """Per-row input shape (no batch axis), e.g. ``(10, 1, 10, 80)``."""
        cfg = self.input_layer.config
        shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
        if shape is None:
            raise LegacyModelError(f"{self.path}: input layer without batch_input_shape")
        return tuple(shape[1:])

    @property
    def output_layer_names(self) -> list[str]:
        return [o[0] for o in self.outputs]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_legacy(path: str | Path) -> LegacyModel:
    """Parse a Keras-2 ``.h5`` model file (``model.save`` of Keras 2.x): graph and weights."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise LegacyModelError(f"{path}: file not found")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise LegacyModelError(f"{path}: not an HDF5 file ({exc})") from None
    with h5:
        if "model_config" not in h5.attrs:
            raise LegacyModelError(
                f"{path}: no 'model_config' attribute (a weights-only file?); import needs a "
                "whole model saved by Keras 2's model.save()"
            )
        version = _text(h5.attrs.get("keras_version", "unknown"))
        if version.startswith("3"):
            raise LegacyModelError(
                f"{path}: saved by Keras {version}; load it with keras.models.load_model"
            )
        config = json.loads(_text(h5.attrs["model_config"]))
        training = h5.attrs.get("training_config")
        training_config = json.loads(_text(training)) if training is not None else None
        group = h5["model_weights"] if "model_weights" in h5 else h5
        weights: dict[str, list[np.ndarray]] = {}
        for raw_name in group.attrs.get("layer_names", []):
            name = _text(raw_name)
            sub = group[name]
            weights[name] = [
                np.asarray(sub[_text(w)][()]) for w in sub.attrs.get("weight_names", [])
            ]
        backend = _text(h5.attrs.get("backend", "unknown"))
    layers, inputs, outputs = _parse_graph(config, path)
    return LegacyModel(path, version, backend, layers, inputs, outputs, weights, training_config)


def _node_inputs(node: Any) -> list[tuple[str, int, int]]:
    if isinstance(node, dict):  # a newer (Keras 2.13+) node format
        args = node.get("args", [])
        raise LegacyModelError(f"unsupported node format {str(args)[:80]}")
    return [(str(entry[0]), int(entry[1]), int(entry[2])) for entry in node]


def _parse_graph(config: dict[str, Any], path: Path):
    kind = config.get("class_name")
    body = config.get("config")
    if kind == "Sequential":
        specs = body if isinstance(body, list) else body.get("layers", [])
        layers: list[LegacyLayer] = []
        prev: str | None = None
        for spec in specs:
            cfg = spec["config"]
            name = cfg.get("name") or spec.get("name")
            if prev is None and spec["class_name"] != "InputLayer":
                shape = cfg.get("batch_input_shape")
                if shape is None:
                    raise LegacyModelError(f"{path}: Sequential model without an input shape")
                prev = f"{name}_input"
                layers.append(
                    LegacyLayer(
                        prev,
                        "InputLayer",
                        {"batch_input_shape": shape, "dtype": cfg.get("dtype", "float32")},
                        [],
                    )
                )
            inbound = [] if prev is None else [[(prev, 0, 0)]]
            layers.append(LegacyLayer(name, spec["class_name"], cfg, inbound))
            prev = name
        return layers, [(layers[0].name, 0, 0)], [(layers[-1].name, 0, 0)]
    if kind not in ("Model", "Functional"):
        raise LegacyModelError(f"{path}: model class {kind!r} is neither Model nor Sequential")
    layers = [
        LegacyLayer(
            spec.get("name") or spec["config"]["name"],
            spec["class_name"],
            spec["config"],
            [_node_inputs(n) for n in spec.get("inbound_nodes", [])],
        )
        for spec in body["layers"]
    ]

    def refs(key: str) -> list[tuple[str, int, int]]:
        items = body[key]
        if items and isinstance(items[0], str):  # a single [name, node, tensor]
            items = [items]
        return [(str(a), int(b), int(c)) for a, b, c in items]

    return layers, refs("input_layers"), refs("output_layers")


# ------------------------------------------------------------------------------------ building
@dataclass(eq=False)
class _Ref:
    """A Keras 3 tensor standing for a Keras-2 tensor, possibly permuted: ``perm`` (Keras
    ``Permute`` dims) turns the original layout into this tensor's layout (None: original)."""

    tensor: Any
    perm: tuple[int, ...] | None = None
    views: dict[Any, Any] = field(default_factory=dict)


def _channels_last_perm(rank: int, lead: int) -> tuple[int, ...]:
    """Permute dims moving the channel axis (right after ``lead`` leading axes) to the end."""
    channel = lead + 1
    return tuple(d for d in range(1, rank) if d != channel) + (channel,)


def _inverse(perm: Sequence[int]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p - 1] = i + 1
    return tuple(inv)


def _single_axis(axis: Any, where: str) -> int:
    """A batch-normalisation axis (Keras 2.2+ may save ``[3]``)."""
    if isinstance(axis, list | tuple):
        if len(axis) != 1:
            raise LegacyModelError(f"layer {where!r}: normalisation over axes {axis}")
        axis = axis[0]
    return int(axis)


def _tf_same_padding(size: int | None, kernel: int, stride: int, dilation: int):
    """TensorFlow's 'SAME' padding (before, after) of one axis; None if ``size`` is unknown and
    the stride makes the padding depend on it."""
    effective = (kernel - 1) * dilation + 1
    if size is None:
        if stride != 1:
            return None
        total = effective - 1
    else:
        out = -(-size // stride)
        total = max((out - 1) * stride + effective - size, 0)
    return (total // 2, total - total // 2)


class _Builder:
    """Builds the Keras 3 graph of a :class:`LegacyModel`."""

    def __init__(self, legacy: LegacyModel, reserved: Sequence[str], rename: dict[str, str]):
        import keras

        import deepser.models.custom_layers as compat

        self.keras = keras
        self.compat = compat
        self.legacy = legacy
        self.used: set[str] = set(reserved)
        self.rename = dict(rename)
        self.objects: dict[tuple[str, str], Any] = {}
        self.assigned: set[str] = set()

    # names and layer objects -------------------------------------------------------------
    def unique(self, base: str) -> str:
        base = base.replace("/", "_").replace(":", "_") or "layer"
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def primary_name(self, lname: str) -> str:
        key = (lname, "#name")
        if key not in self.objects:
            if lname in self.rename:
                self.objects[key] = self.rename[lname]
            else:
                self.objects[key] = self.unique(lname)
        return self.objects[key]

    def make(self, lname: str, role: str, factory: Callable[[str], Any], td: bool = False):
        """The Keras 3 layer of legacy layer ``lname`` for ``role`` (created once, so a layer
        called several times in the saved graph shares its weights)."""
        key = (lname, role)
        if key not in self.objects:
            base = self.primary_name(lname)
            name = base if role == "main" else self.unique(f"{base}_{role}")
            if td:
                inner = factory(self.unique(f"{name}_inner"))
                self.objects[key] = self.keras.layers.TimeDistributed(inner, name=name)
            else:
                self.objects[key] = factory(name)
        return self.objects[key]

    def set_weights(self, lname: str, layer, arrays: list[np.ndarray] | None = None) -> None:
        arrays = self.legacy.weights.get(lname, []) if arrays is None else arrays
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in arrays]
        if expected != got:
            raise LegacyModelError(
                f"layer {lname!r}: the file has weights {got}, the rebuilt layer needs {expected}"
            )
        if arrays:
            layer.set_weights(
                [np.asarray(a, dtype=w.dtype) for a, w in zip(arrays, layer.weights, strict=True)]
            )
        self.assigned.add(lname)

    # layouts ------------------------------------------------------------------------------
    def original(self, ref: _Ref):
        return self.view(ref, None)

    def view(self, ref: _Ref, perm: tuple[int, ...] | None):
        """``ref``'s tensor in the layout ``perm`` (None: the original layout)."""
        if ref.perm == perm:
            return ref.tensor
        if perm in ref.views:
            return ref.views[perm]
        if perm is None:
            name = self.unique("to_original_order")
            out = self.keras.layers.Permute(_inverse(ref.perm), name=name)(ref.tensor)
        else:
            base = ref.tensor if ref.perm is None else self.original(ref)
            name = self.unique("to_channels_last")
            out = self.keras.layers.Permute(perm, name=name)(base)
        ref.views[perm] = out
        return out

    # activations ---------------------------------------------------------------------------
    def activation(self, value: Any, where: str):
        if value is None:
            return None
        if isinstance(value, dict):  # {"class_name": "function", "config": "relu", ...}
            inner = value.get("config")
            value = inner if isinstance(inner, str) else (inner or {}).get("name")
        if value not in ACTIVATIONS:
            raise LegacyModelError(
                f"layer {where!r}: activation {value!r} is not supported "
                f"(supported: {', '.join(ACTIVATIONS)})"
            )
        return self.compat.keras2_hard_sigmoid if value == "hard_sigmoid" else value

    # the graph ------------------------------------------------------------------------------
    def build(self, input_name: str, output_names: Sequence[str] | None):
        keras = self.keras
        legacy = self.legacy
        inp = legacy.input_layer
        dtype = inp.config.get("dtype") or "float32"
        model_input = keras.Input(legacy.input_shape, dtype=dtype, name=input_name)
        refs: dict[tuple[str, int, int], _Ref] = {(inp.name, 0, 0): _Ref(model_input)}
        for layer in legacy.layers:
            if layer.class_name == "InputLayer":
                if layer.name != inp.name:
                    raise LegacyModelError(f"{legacy.path}: several input layers")
                continue
            self.check_supported(layer.class_name, layer.name)
            for node_index, node in enumerate(layer.inbound):
                try:
                    inputs = [refs[key] for key in node]
                except KeyError as exc:
                    raise LegacyModelError(
                        f"layer {layer.name!r}: input {exc.args[0]} is not defined before it"
                    ) from None
                out = self.convert(layer.name, layer.class_name, layer.config, inputs, False)
                for tensor_index, ref in enumerate(out):
                    refs[(layer.name, node_index, tensor_index)] = ref
        outputs = []
        names = list(output_names) if output_names else [o[0] for o in legacy.outputs]
        for key, name in zip(legacy.outputs, names, strict=True):
            tensor = self.original(refs[key])
            if tensor._keras_history.operation.name != name:  # the name is reserved for it
                tensor = keras.layers.Identity(name=name)(tensor)
            outputs.append(tensor)
        missing = [n for n, w in legacy.weights.items() if w and n not in self.assigned]
        if missing:
            raise LegacyModelError(f"weights of layer(s) {missing} were not used by any layer")
        return model_input, outputs

    def check_supported(self, class_name: str, name: str) -> None:
        if class_name in SUPPORTED:
            return
        extra = " (a custom layer of the original trainer)" if class_name in ORIGINAL_CUSTOM else ""
        raise LegacyModelError(
            f"layer {name!r} of type {class_name}{extra} is not supported by the importer "
            f"(supported: {', '.join(SUPPORTED)})"
        )

    def convert(self, lname: str, kind: str, cfg: dict, inputs: list[_Ref], td: bool):
        L = self.keras.layers
        if kind == "TimeDistributed":
            if td:
                raise LegacyModelError(f"layer {lname!r}: nested TimeDistributed")
            inner = cfg["layer"]
            self.check_supported(inner["class_name"], lname)
            if inner["class_name"] in ("TimeDistributed", "Bidirectional", "InputLayer"):
                raise LegacyModelError(
                    f"layer {lname!r}: TimeDistributed({inner['class_name']}) is not supported"
                )
            return self.convert(lname, inner["class_name"], inner["config"], inputs, True)
        if kind in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"):
            perms = {ref.perm for ref in inputs}
            perm = perms.pop() if len(perms) == 1 else None
            tensors = [self.view(ref, perm) for ref in inputs]
            layer = self.make(lname, "main", lambda n: getattr(L, kind)(name=n))
            return [_Ref(layer(tensors), perm)]
        if kind == "Concatenate":
            layer = self.make(lname, "main", lambda n: L.Concatenate(axis=cfg["axis"], name=n))
            return [_Ref(layer([self.original(ref) for ref in inputs]))]
        if len(inputs) != 1:
            raise LegacyModelError(f"layer {lname!r} ({kind}) has {len(inputs)} inputs, needs 1")
        ref = inputs[0]
        for suffix, n in _SPATIAL.items():
            if kind.endswith(suffix) and kind.startswith(("Conv", "MaxPooling", "AveragePooling")):
                return self.spatial(lname, kind, cfg, ref, td, n)
        handler = getattr(self, f"_{kind}", None)
        if handler is None:
            return self.simple(lname, kind, cfg, ref, td)
        return handler(lname, cfg, ref, td)

    # layer kinds ----------------------------------------------------------------------------
    def simple(self, lname: str, kind: str, cfg: dict, ref: _Ref, td: bool):
        """Layers whose config carries over (the original layout in and out)."""
        L = self.keras.layers
        if kind.startswith("Global"):
            n = _SPATIAL[kind[-2:]]
            rank = len(ref.tensor.shape)
            cf = cfg.get("data_format") == "channels_first"
            lead = 1 if td else 0
            if rank != 2 + lead + n:
                raise LegacyModelError(f"layer {lname!r}: {kind} on a rank-{rank} tensor")
            x = self.view(ref, _channels_last_perm(rank, lead) if cf else None)
            layer = self.make(lname, "main", lambda nm: getattr(L, kind)(name=nm), td)
            return [_Ref(layer(x))]
        factories = {
            "Reshape": lambda nm: L.Reshape(tuple(cfg["target_shape"]), name=nm),
            "Permute": lambda nm: L.Permute(tuple(cfg["dims"]), name=nm),
            "Dense": lambda nm: L.Dense(
                cfg["units"],
                activation=self.activation(cfg.get("activation"), lname),
                use_bias=cfg.get("use_bias", True),
                name=nm,
            ),
            "BatchNormalization": lambda nm: L.BatchNormalization(
                axis=_single_axis(cfg.get("axis", -1), lname),
                momentum=cfg.get("momentum", 0.99),
                epsilon=cfg.get("epsilon", 1e-3),
                center=cfg.get("center", True),
                scale=cfg.get("scale", True),
                name=nm,
            ),
        }
        if kind not in factories:
            raise LegacyModelError(f"layer {lname!r}: no converter for {kind}")
        layer = self.make(lname, "main", factories[kind], td)
        out = layer(self.original(ref))
        if kind in ("Dense", "BatchNormalization"):
            self.set_weights(lname, layer)
        return [_Ref(out)]

    def _Dropout(self, lname: str, cfg: dict, ref: _Ref, td: bool):
        layer = self.make(
            lname, "main", lambda nm: self.keras.layers.Dropout(cfg.get("rate", 0.0), name=nm)
        )  # element-wise: any layout
        return [_Ref(layer(ref.tensor), ref.perm)]

    def _Activation(self, lname: str, cfg: dict, ref: _Ref, td: bool):
        act = cfg["activation"]
        fn = self.activation(act, lname)
        layer = self.make(lname, "main", lambda nm: self.keras.layers.Activation(fn, name=nm))
        if act == "softmax":  # over the last axis of the original layout
            return [_Ref(layer(self.original(ref)))]
        return [_Ref(layer(ref.tensor), ref.perm)]

    def _LeakyReLU(self, lname: str, cfg: dict, ref: _Ref, td: bool):
        slope = cfg.get("alpha", cfg.get("negative_slope", 0.3))
        layer = self.make(
            lname, "main", lambda nm: self.keras.layers.LeakyReLU(negative_slope=slope, name=nm)
        )
        return [_Ref(layer(ref.tensor), ref.perm)]

    def _Flatten(self, lname: str, cfg: dict, ref: _Ref, td: bool):
        rank = len(ref.tensor.shape)
        lead = 1 if td else 0
        # Keras 2.2+ Flatten(data_format='channels_first') flattens in channels_last order
        cf = cfg.get("data_format") == "channels_first" and rank > lead + 2
        x = self.view(ref, _channels_last_perm(rank, lead) if cf else None)
        layer = self.make(lname, "main", lambda nm: self.keras.layers.Flatten(name=nm), td)
        return [_Ref(layer(x))]

    def spatial(self, lname: str, kind: str, cfg: dict, ref: _Ref, td: bool, n: int):
        """ConvND, MaxPoolingND, AveragePoolingND; channels_first runs channels_last."""
        L = self.keras.layers
        rank = len(ref.tensor.shape)
        lead = 1 if td else 0
        if rank != 2 + lead + n:
            raise LegacyModelError(
                f"layer {lname!r}: {kind} expects rank {2 + lead + n} input, got rank {rank}"
            )
        cf = cfg.get("data_format") == "channels_first"
        perm = _channels_last_perm(rank, lead) if cf else None
        x = self.view(ref, perm)
        if kind.startswith("Conv"):
            if cfg.get("groups", 1) != 1:
                raise LegacyModelError(f"layer {lname!r}: grouped convolutions not supported")
            kernel = tuple(int(k) for k in cfg["kernel_size"])
            strides = tuple(int(s) for s in cfg.get("strides", (1,) * n))
            dilation = cfg.get("dilation_rate", (1,) * n)
            dilation = (dilation,) * n if isinstance(dilation, int) else tuple(dilation)
            padding = cfg.get("padding", "valid")
            pads = None
            if padding == "same":
                spatial = x.shape[1 + lead : 1 + lead + n]
                pads = [
                    _tf_same_padding(s, k, st, d)
                    for s, k, st, d in zip(spatial, kernel, strides, dilation, strict=True)
                ]
                if any(p is None for p in pads):
                    pads = None  # unknown length with stride > 1: Keras 3's 'same' (TF rule)
                else:
                    padding = "valid"
            elif padding == "causal":
                pads = [((kernel[0] - 1) * dilation[0], 0)]
                padding = "valid"
            elif padding != "valid":
                raise LegacyModelError(f"layer {lname!r}: padding {padding!r} not supported")
            if pads is not None and any(p != (0, 0) for p in pads):
                pad_cls = getattr(L, f"ZeroPadding{n}D")
                arg = pads[0] if n == 1 else tuple(pads)
                pad = self.make(lname, "pad", lambda nm: pad_cls(arg, name=nm), td)
                x = pad(x)
            spatial = x.shape[1 + lead : 1 + lead + n]
            if padding == "valid" and any(k > LONG_KERNEL for k in kernel) and None not in spatial:
                out = self.chunked_conv(lname, cfg, x, td, n, kernel, strides, dilation, spatial)
                return [_Ref(out, perm)]
            conv_cls = getattr(L, f"Conv{n}D")
            layer = self.make(
                lname,
                "main",
                lambda nm: conv_cls(
                    cfg["filters"],
                    kernel,
                    strides=strides,
                    padding=padding,
                    dilation_rate=dilation,
                    activation=self.activation(cfg.get("activation"), lname),
                    use_bias=cfg.get("use_bias", True),
                    name=nm,
                ),
                td,
            )
            out = layer(x)
            self.set_weights(lname, layer)
            return [_Ref(out, perm)]
        pool = tuple(int(p) for p in cfg["pool_size"])
        strides = cfg.get("strides") or pool
        padding = cfg.get("padding", "valid")
        pool_cls = getattr(L, kind)
        layer = self.make(
            lname,
            "main",
            lambda nm: pool_cls(pool, strides=tuple(strides), padding=padding, name=nm),
            td,
        )
        return [_Ref(layer(x), perm)]

    def chunked_conv(self, lname, cfg, x, td, n, kernel, strides, dilation, spatial):
        """A 'valid' convolution with a kernel longer than :data:`LONG_KERNEL` taps on some
        axis, as the sum of convolutions with kernel pieces of at most that length over cropped
        inputs (bias and activation once, after the sum): the same numbers, but TensorFlow's
        oneDNN CPU kernels, wrong for such long kernels (e.g. 200 taps x 20 channels), are
        never given one."""
        import itertools

        L = self.keras.layers
        weights = self.legacy.weights.get(lname, [])
        use_bias = cfg.get("use_bias", True)
        if len(weights) != (2 if use_bias else 1) or weights[0].shape[:n] != kernel:
            shapes = [tuple(w.shape) for w in weights]
            raise LegacyModelError(f"layer {lname!r}: unexpected weights {shapes}")
        out_size = [
            (size - (k - 1) * d - 1) // s + 1
            for size, k, s, d in zip(spatial, kernel, strides, dilation, strict=True)
        ]
        pieces = [[(a, min(a + LONG_KERNEL, k)) for a in range(0, k, LONG_KERNEL)] for k in kernel]
        conv_cls, crop_cls = getattr(L, f"Conv{n}D"), getattr(L, f"Cropping{n}D")
        parts = []
        for i, ranges in enumerate(itertools.product(*pieces)):
            crops = []
            for (a, b), size, o, s, d in zip(
                ranges, spatial, out_size, strides, dilation, strict=True
            ):
                keep = (o - 1) * s + (b - a - 1) * d + 1
                crops.append((a * d, size - a * d - keep))
            y = x
            if any(c != (0, 0) for c in crops):
                arg = crops[0] if n == 1 else tuple(crops)
                crop = self.make(lname, f"crop{i}", lambda nm, arg=arg: crop_cls(arg, name=nm), td)
                y = crop(y)
            size = tuple(b - a for a, b in ranges)
            bias = use_bias and i == 0
            conv = self.make(
                lname,
                "main" if i == 0 else f"part{i}",
                lambda nm, size=size, bias=bias: conv_cls(
                    cfg["filters"],
                    size,
                    strides=strides,
                    dilation_rate=dilation,
                    use_bias=bias,
                    name=nm,
                ),
                td,
            )
            parts.append(conv(y))
            piece = weights[0][tuple(slice(a, b) for a, b in ranges)]
            self.set_weights(lname, conv, [piece, weights[1]] if bias else [piece])
        out = self.make(lname, "sum", lambda nm: L.Add(name=nm))(parts)
        act = self.activation(cfg.get("activation"), lname)
        if act not in (None, "linear"):
            out = self.make(lname, "activation", lambda nm: L.Activation(act, name=nm))(out)
        return out

    def recurrent(self, lname: str, kind: str, cfg: dict):
        """An (uncalled) Keras 3 recurrent layer from a Keras-2 config."""
        L = self.keras.layers
        if cfg.get("return_state") or cfg.get("stateful"):
            raise LegacyModelError(f"layer {lname!r}: return_state / stateful RNNs not supported")
        common = {
            "activation": self.activation(cfg.get("activation", "tanh"), lname),
            "use_bias": cfg.get("use_bias", True),
            "return_sequences": cfg.get("return_sequences", False),
            "go_backwards": cfg.get("go_backwards", False),
            "unroll": cfg.get("unroll", False),
            "dropout": cfg.get("dropout", 0.0),
            "recurrent_dropout": cfg.get("recurrent_dropout", 0.0),
        }
        if kind != "SimpleRNN":
            rec = cfg.get("recurrent_activation", "hard_sigmoid")
            common["recurrent_activation"] = self.activation(rec, lname)
        if kind == "GRU":
            common["reset_after"] = cfg.get("reset_after", False)
        cls = {"LSTM": L.LSTM, "GRU": L.GRU, "SimpleRNN": L.SimpleRNN}.get(kind)
        if cls is None:
            raise LegacyModelError(f"layer {lname!r}: {kind} is not a supported recurrent layer")
        return lambda nm: cls(cfg["units"], name=nm, **common)

    def _rnn(self, lname: str, kind: str, cfg: dict, ref: _Ref, td: bool):
        if td:
            raise LegacyModelError(f"layer {lname!r}: TimeDistributed({kind}) not supported")
        layer = self.make(lname, "main", self.recurrent(lname, kind, cfg))
        out = layer(self.original(ref))
        self.set_weights(lname, layer)
        return [_Ref(out)]

    def _LSTM(self, lname: str, cfg: dict, ref: _Ref, td: bool):
        return self._rnn(lname, "LSTM", cfg, ref, td)

    def _GRU(self, lname: str, cfg: dict, ref: _Ref, td: bool):
        return self._rnn(lname, "GRU", cfg, ref, td)

    def _SimpleRNN(self, lname: str, cfg: dict, ref: _Ref, td: bool):
        return self._rnn(lname, "SimpleRNN", cfg, ref, td)

    def _Bidirectional(self, lname: str, cfg: dict, ref: _Ref, td: bool):
        inner = cfg["layer"]
        mode = cfg.get("merge_mode", "concat")

        def factory(nm: str):
            rnn = self.recurrent(lname, inner["class_name"], inner["config"])(f"{nm}_rnn")
            return self.keras.layers.Bidirectional(rnn, merge_mode=mode, name=nm)

        layer = self.make(lname, "main", factory)
        out = layer(self.original(ref))
        self.set_weights(lname, layer)
        return [_Ref(out)]


def build_model(
    legacy: LegacyModel,
    input_name: str | None = None,
    output_names: Sequence[str] | None = None,
    extra_inputs: Sequence[Any] = (),
    name: str | None = None,
):
    """The Keras 3 model of ``legacy`` with its weights.

    ``input_name`` renames the input (default: the original's), ``output_names`` names the
    outputs (default: the original output layers' names); ``extra_inputs`` are further
    ``keras.Input`` tensors the model accepts and ignores (e.g. the recogniser's ``n_valid``).
    With several outputs the model returns a dict keyed by output name.
    """
    import keras

    input_name = input_name or legacy.input_layer.name
    if output_names is not None and len(output_names) != len(legacy.outputs):
        raise LegacyModelError(
            f"{legacy.path}: the model has {len(legacy.outputs)} output(s) "
            f"({', '.join(legacy.output_layer_names)}), {len(output_names)} name(s) given"
        )
    names = list(output_names) if output_names else legacy.output_layer_names
    if len(set(names)) != len(names):
        raise LegacyModelError(f"output names must differ: {names}")
    extra_names = [t._keras_history.operation.name for t in extra_inputs]
    # an output layer (called once) whose output keeps the original layout takes its
    # output's name; other outputs get an Identity layer of that name
    by_name = {layer.name: layer for layer in legacy.layers}
    rename = {}
    for key, out_name in zip(legacy.outputs, names, strict=True):
        layer = by_name[key[0]]
        kind = layer.class_name
        if kind == "TimeDistributed":
            kind = layer.config["layer"]["class_name"]
        if len(layer.inbound) == 1 and kind in _ORIGINAL_LAYOUT_OUT:
            rename[key[0]] = out_name
    builder = _Builder(legacy, [input_name, *extra_names, *names], rename)
    inp, outputs = builder.build(input_name, names)
    inputs = [inp, *extra_inputs] if extra_inputs else inp
    if len(outputs) == 1 and not extra_inputs:
        out: Any = outputs[0]
    else:
        out = dict(zip(names, outputs, strict=True))
    return keras.Model(inputs, out, name=name or "legacy_model")


def load_legacy_model(path: str | Path):
    """Read a Keras-2 ``.h5`` model and rebuild it in Keras 3 (same input layout and name)."""
    return build_model(read_legacy(path))
