"""Checking a tool's ``structuredContent`` against its ``outputSchema``, no dependency.

MCP (2025-06-18 and later, Tools, "Output Schema") says clients SHOULD validate
structured results against the output schema.  This is the subset of JSON Schema
(2020-12) that tool schemas use in practice, pydantic's output included: ``type``,
``properties``, ``required``, ``additionalProperties``, ``items``, ``prefixItems``,
``enum``, ``const``, ``anyOf``/``oneOf``/``allOf``/``not``, local ``$ref`` (``#/$defs/...``,
``#/definitions/...``), the numeric, string and array bounds, and ``pattern`` where
Python's ``re`` reads it.  Keywords outside it (``format``, remote references...) are
not checked: a schema this cannot read never makes a valid result fail.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["header_annotation_problem", "schema_errors"]

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and math.isfinite(v) and v.is_integer())
    ),
}
#: Deeper than this, a schema (or a value) is not followed: ``$ref`` cycles end here.
_MAX_DEPTH = 64


def schema_errors(value: Any, schema: Any) -> list[str]:
    """Why ``value`` does not match ``schema``: an empty list when it does."""
    errors: list[str] = []
    _check(value, schema, schema, "$", errors, 0)
    return errors


def _resolve(ref: str, root: Any) -> Any:
    if not ref.startswith("#/"):
        return True  # a remote reference: not followed
    node = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return True
        node = node[part]
    return node


def _check(value: Any, schema: Any, root: Any, path: str, errors: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH or schema is True or not isinstance(schema, dict):
        if schema is False:
            errors.append(f"{path}: no value is allowed here")
        return
    if isinstance(schema.get("$ref"), str):
        _check(value, _resolve(schema["$ref"], root), root, path, errors, depth + 1)
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(k in _TYPES and _TYPES[k](value) for k in kinds):
            errors.append(f"{path}: expected {' or '.join(map(str, kinds))}, got {type(value).__name__}")
            return
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_same(value, e) for e in enum):
        errors.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and not _same(value, schema["const"]):
        errors.append(f"{path}: expected {schema['const']!r}")
    _combinators(value, schema, root, path, errors, depth)
    if isinstance(value, dict):
        _object(value, schema, root, path, errors, depth)
    elif isinstance(value, list):
        _array(value, schema, root, path, errors, depth)
    elif isinstance(value, str):
        _string(value, schema, path, errors)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _number(value, schema, path, errors)


def _same(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1.
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _matches(value: Any, schema: Any, root: Any, path: str, depth: int) -> bool:
    found: list[str] = []
    _check(value, schema, root, path, found, depth + 1)
    return not found


def _combinators(
    value: Any, schema: dict[str, Any], root: Any, path: str, errors: list[str], depth: int
) -> None:
    for sub in schema.get("allOf") or []:
        _check(value, sub, root, path, errors, depth + 1)
    any_of = schema.get("anyOf")
    if isinstance(any_of, list) and any_of and not any(_matches(value, s, root, path, depth) for s in any_of):
        errors.append(f"{path}: matches none of anyOf")
    one_of = schema.get("oneOf")
    if isinstance(one_of, list) and one_of:
        count = sum(_matches(value, s, root, path, depth) for s in one_of)
        if count != 1:
            errors.append(f"{path}: matches {count} of oneOf, not exactly one")
    if "not" in schema and _matches(value, schema["not"], root, path, depth):
        errors.append(f"{path}: matches a schema it must not")


def _object(
    value: dict[str, Any], schema: dict[str, Any], root: Any, path: str, errors: list[str], depth: int
) -> None:
    found = schema.get("properties")
    properties: dict[str, Any] = found if isinstance(found, dict) else {}
    for name in schema.get("required") or []:
        if name not in value:
            errors.append(f"{path}: missing required property {name!r}")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            _check(item, properties[name], root, f"{path}.{name}", errors, depth + 1)
        elif extra is False:
            errors.append(f"{path}: unexpected property {name!r}")
        elif isinstance(extra, dict):
            _check(item, extra, root, f"{path}.{name}", errors, depth + 1)


def _array(
    value: list[Any], schema: dict[str, Any], root: Any, path: str, errors: list[str], depth: int
) -> None:
    found = schema.get("prefixItems")
    prefix: list[Any] = found if isinstance(found, list) else []
    for index, item in enumerate(value):
        sub = prefix[index] if index < len(prefix) else schema.get("items", True)
        _check(item, sub, root, f"{path}[{index}]", errors, depth + 1)
    _bounds(len(value), schema, "minItems", "maxItems", path, "items", errors)


def _string(value: str, schema: dict[str, Any], path: str, errors: list[str]) -> None:
    _bounds(len(value), schema, "minLength", "maxLength", path, "characters", errors)
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, value) is None:
                errors.append(f"{path}: does not match pattern {pattern!r}")
        except re.error:
            pass  # an ECMA-262 pattern Python cannot compile: not checked


def _number(value: float, schema: dict[str, Any], path: str, errors: list[str]) -> None:
    for keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = schema.get(keyword)
        if not isinstance(bound, (int, float)) or isinstance(bound, bool):
            continue
        ok = {
            "minimum": value >= bound,
            "maximum": value <= bound,
            "exclusiveMinimum": value > bound,
            "exclusiveMaximum": value < bound,
        }[keyword]
        if not ok:
            errors.append(f"{path}: {value} fails {keyword} {bound}")


def _bounds(
    size: int, schema: dict[str, Any], low: str, high: str, path: str, unit: str, errors: list[str]
) -> None:
    minimum, maximum = schema.get(low), schema.get(high)
    if isinstance(minimum, int) and size < minimum:
        errors.append(f"{path}: fewer than {minimum} {unit}")
    if isinstance(maximum, int) and size > maximum:
        errors.append(f"{path}: more than {maximum} {unit}")


#: RFC 9110 §5.6.2: a field name is a token, ``1*tchar``.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
#: The JSON types an ``x-mcp-header`` property may have (MCP 2026-07-28): not
#: ``number``, whose text form differs between implementations.
_HEADER_TYPES = frozenset({"string", "integer", "boolean"})


def header_annotation_problem(schema: Any) -> str | None:
    """Why a tool's ``x-mcp-header`` annotations are malformed, or ``None``.

    MCP 2026-07-28, Transports, Streamable HTTP, "Custom Headers from Tool
    Parameters": a name is a non-empty token (no spaces, colons, control or non-ASCII
    characters), names are unique regardless of case, and only a primitive property
    may be annotated; clients MUST reject (leave out) a tool that breaks these rules,
    since its headers could not be sent as the server expects.
    """
    seen: dict[str, str] = {}
    return _annotations(schema, seen, 0)


def _annotations(schema: Any, seen: dict[str, str], depth: int) -> str | None:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return None
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        if "x-mcp-header" in prop:
            header = prop["x-mcp-header"]
            if not isinstance(header, str) or not header:
                return f"property {name!r}: x-mcp-header must be a non-empty string"
            if not _TOKEN.match(header):
                return f"property {name!r}: x-mcp-header {header!r} is not an HTTP field-name token"
            if header.lower() in seen:
                return f"x-mcp-header {header!r} of {name!r} repeats that of {seen[header.lower()]!r}"
            seen[header.lower()] = name
            kinds = prop.get("type")
            kinds = [kinds] if isinstance(kinds, str) else kinds
            primitive = [k for k in kinds if k != "null"] if isinstance(kinds, list) else []
            if not primitive or any(k not in _HEADER_TYPES for k in primitive):
                return f"property {name!r}: x-mcp-header on a {prop.get('type')!r} property, not a primitive"
        problem = _annotations(prop, seen, depth + 1)
        if problem is not None:
            return problem
    return None
