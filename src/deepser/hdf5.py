"""What every HDF5 file of deepser shares: UTF-8 string datasets, JSON-encoded attributes and a
format version (feature shards: :mod:`deepser.features.shards`; databases:
:mod:`deepser.database.store`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import h5py

STR = h5py.string_dtype(encoding="utf-8")
FORMAT_VERSION = 1


def write_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    """Store each value JSON-encoded, plus the format version."""
    for key, value in {**attrs, "format_version": FORMAT_VERSION}.items():
        obj.attrs[key] = json.dumps(value, sort_keys=True)


def read_attrs(obj: h5py.HLObject) -> dict[str, Any]:
    """Attributes written by :func:`write_attrs` as Python values."""
    out = {}
    for key, value in obj.attrs.items():
        try:
            out[key] = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            out[key] = value
    return out
