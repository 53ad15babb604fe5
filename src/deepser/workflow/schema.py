"""Config validation against the JSON schema (``config/schema.yaml``), with short messages.

Each problem is one line that names the key (``feature_sets.logmel: unknown key 'n_mel'
(did you mean 'n_mels'?)``) instead of a dump of the schema. Defaults given in the schema are
filled in, as Snakemake's ``validate`` does.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

MAX_VALUE_CHARS = 60


def _with_defaults(cls: type) -> type:
    """The validator class that fills in each property's schema ``default`` as it validates."""
    validate_properties = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema) -> Iterator[ValidationError]:
        if isinstance(instance, MutableMapping):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(cls, {"properties": set_defaults})


def _where(path: Iterable[Any]) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "the config"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _describe(error: ValidationError) -> str:
    """One line for one schema violation."""
    if error.context:  # oneOf / anyOf: the branch that came closest
        return _describe(best_match(error.context))
    where = _where(error.absolute_path)
    kind, expected = error.validator, error.validator_value
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted((error.schema.get("properties") or {}).keys())
        lines = []
        for key in sorted(set(error.instance) - set(allowed)):
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(allowed)}"
            lines.append(f"{where}: unknown key {key!r} ({hint})")
        if lines:
            return "\n".join(lines)
    if kind == "required":
        missing = [k for k in expected if k not in error.instance]
        return f"{where}: missing key {', '.join(map(repr, missing))}"
    if kind == "enum":
        return f"{where}: {_short(error.instance)} is not one of {', '.join(map(str, expected))}"
    if kind == "type":
        types = expected if isinstance(expected, list) else [expected]
        return f"{where}: {_short(error.instance)} is not of type {' or '.join(types)}"
    if kind in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
        words = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "greater than",
            "exclusiveMaximum": "less than",
        }
        return f"{where}: {_short(error.instance)} must be {words[kind]} {expected}"
    if kind == "pattern":
        what = error.schema.get("description") or f"the pattern {expected}"
        return f"{where}: {_short(error.instance)} is not {what}"
    message = error.message
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{where}: {message}"


def load_schema(path: str | Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def validate_config(config: MutableMapping[str, Any], schema: dict[str, Any]) -> list[str]:
    """Every schema violation of ``config``, one line each (empty: valid); fills in defaults."""
    validator = _with_defaults(Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    lines: list[str] = []
    for error in errors:
        for line in _describe(error).splitlines():
            if line not in lines:
                lines.append(line)
    return lines
