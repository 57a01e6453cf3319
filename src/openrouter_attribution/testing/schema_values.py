"""Deterministic JSON values generated from a JSON schema, guided by the user's words.

The fake model "reads" the last user message for hints: numbers are used, in
order, for ``integer`` / ``number`` properties, and quoted text (``'...'``,
``"..."``, ``“...”``, ``‘...’``) is used, in order, for ``string`` properties.
When the hints run out, integers and numbers fall back to ``1`` and strings to a
readable placeholder derived from the property name. So
``"What is magic_function(3)?"`` gives ``{"input": 3}`` for a tool whose schema
has one integer property ``input``, and ``"Create a customer named '你好'"``
gives ``{"customer_name": "你好", ...}``.

Supported schema keywords: ``type`` (also lists), ``properties`` (required and
optional alike are filled), ``items``, ``prefixItems``, ``minItems`` /
``maxItems``, ``enum`` (first value), ``const``, ``anyOf`` / ``oneOf`` (first
non-null branch), ``allOf`` (merged), local ``$ref`` (``#/$defs/...``,
``#/definitions/...``), ``minimum`` / ``maximum`` / ``exclusiveMinimum`` /
``exclusiveMaximum``, ``minLength`` / ``maxLength`` and the common string
``format`` values. ``pattern`` is not honoured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Hints", "generate_value"]

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w])")
_QUOTED = re.compile(r"(?<!\w)(?:'([^'\n]+)'|\"([^\"\n]+)\"|“([^”\n]+)”|‘([^’\n]+)’)(?!\w)")
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000001",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "example.com",
}
_MAX_DEPTH = 8


@dataclass
class Hints:
    """Numbers and quoted strings found in a text, consumed in order of appearance.

    Example:
        >>> hints = Hints.from_text("Add 3 and 4.5 for 'Zoë'")
        >>> hints.next_number(), hints.next_number(), hints.next_number(), hints.next_string()
        (3, 4.5, None, 'Zoë')
    """

    numbers: list[int | float] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)

    @classmethod
    def from_text(cls, text: str) -> Hints:
        """Extract hints from ``text``."""
        numbers: list[int | float] = []
        for match in _NUMBER.finditer(text):
            token = match.group(0)
            numbers.append(float(token) if "." in token else int(token))
        strings = [next(group for group in m.groups() if group is not None) for m in _QUOTED.finditer(text)]
        return cls(numbers, strings)

    def next_number(self) -> int | float | None:
        """Return the next unused number, or ``None`` when none is left."""
        return self.numbers.pop(0) if self.numbers else None

    def next_string(self) -> str | None:
        """Return the next unused quoted string, or ``None`` when none is left."""
        return self.strings.pop(0) if self.strings else None


def generate_value(schema: Any, hints: Hints, *, name: str = "value") -> Any:
    """Return a value valid against ``schema`` (a JSON schema as a dict).

    Args:
        schema: The JSON schema; its own ``$defs`` / ``definitions`` resolve ``$ref``.
        hints: Numbers and strings to use, consumed in order.
        name: Name of the property being generated, used for placeholder strings.

    Returns:
        A JSON-compatible value.
    """
    return _Generator(schema if isinstance(schema, dict) else {}, hints).value(schema, name, 0)


@dataclass
class _Generator:
    root: dict[str, Any]
    hints: Hints

    def value(self, schema: Any, name: str, depth: int) -> Any:
        schema = self._resolve(schema if isinstance(schema, dict) else {})
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                return self.value(_first_non_null(schema[key]), name, depth)
        if schema.get("allOf"):
            return self.value(self._merge(schema), name, depth)
        kind = _type_of(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind in ("integer", "number"):
            return self._number(schema, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(schema, name)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen: set[str] = set()
        while isinstance(schema.get("$ref"), str) and schema["$ref"] not in seen:
            ref = schema["$ref"]
            seen.add(ref)
            target: Any = self.root
            for part in ref.removeprefix("#/").split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **extra} if isinstance(target, dict) else extra
        return schema

    def _merge(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = self._resolve(part if isinstance(part, dict) else {})
            for key, value in part.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return merged

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        if depth >= _MAX_DEPTH:
            properties = {k: v for k, v in properties.items() if k in schema.get("required", ())}
        return {key: self.value(sub, key, depth + 1) for key, sub in properties.items()}

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix = [self.value(sub, name, depth + 1) for sub in schema.get("prefixItems") or []]
        count = max(1, int(schema.get("minItems", 1))) if depth < _MAX_DEPTH else int(schema.get("minItems", 0))
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        items = schema.get("items")
        if schema.get("prefixItems") and not isinstance(items, dict):
            return prefix
        return prefix + [self.value(items, name, depth + 1) for _ in range(max(0, count - len(prefix)))]

    def _number(self, schema: dict[str, Any], *, integer: bool) -> int | float:
        hint = self.hints.next_number()
        number: int | float = 1 if hint is None else hint
        if integer:
            number = int(number)
        step = 1 if integer else 0.5
        low, high = _bound(schema, "minimum"), _bound(schema, "maximum")
        low_open, high_open = _bound(schema, "exclusiveMinimum"), _bound(schema, "exclusiveMaximum")
        if low is not None:
            number = max(number, low)
        if low_open is not None and number <= low_open:
            number = low_open + step
        if high is not None:
            number = min(number, high)
        if high_open is not None and number >= high_open:
            number = high_open - step
        return int(number) if integer else number

    def _string(self, schema: dict[str, Any], name: str) -> str:
        text = _FORMATS.get(str(schema.get("format")))
        if text is None:
            hint = self.hints.next_string()
            text = hint if hint is not None else f"example {name.replace('_', ' ')}"
        min_length = int(schema.get("minLength", 0))
        if len(text) < min_length:
            text = text + "x" * (min_length - len(text))
        if "maxLength" in schema:
            text = text[: int(schema["maxLength"])]
        return text


def _bound(schema: dict[str, Any], key: str) -> int | float | None:
    """Return a numeric bound (draft-4 boolean ``exclusiveMinimum`` / ``exclusiveMaximum`` are ignored)."""
    value = schema.get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _first_non_null(branches: list[Any]) -> Any:
    for branch in branches:
        if not (isinstance(branch, dict) and branch.get("type") == "null"):
            return branch
    return branches[0]


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"
