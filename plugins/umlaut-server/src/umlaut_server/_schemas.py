"""A model version's signature as a JSON Schema for one input row: what the OpenAPI
document and the V2 model metadata say a model takes.

Read, in order: a table signature (``umlaut.table/1``, what a training dataset or a
fitted scikit-learn estimator gives a version: each column's type and nullability,
its training range or categories as a description, since umlaut only warns on
those); a JSON Schema object (``{"type": "object", "properties": …}``) as it is; a
hand-written mapping of column → type name (``{"sepal_length": "float"}``, or the
same under ``"inputs"``). Anything else (a prose note) is not a schema.
"""

from __future__ import annotations

from typing import Any

__all__ = ["input_schema"]

#: Type names a hand-written signature may use.
_TYPES = {
    "float": "number",
    "double": "number",
    "number": "number",
    "int": "integer",
    "long": "integer",
    "integer": "integer",
    "str": "string",
    "string": "string",
    "bool": "boolean",
    "boolean": "boolean",
}

#: JSON Schema of a table signature's logical types (``duration``, ``binary`` and
#: ``other`` take any JSON value).
_TABLE_TYPES: dict[str, dict[str, str]] = {
    "integer": {"type": "integer"},
    "float": {"type": "number"},
    "boolean": {"type": "boolean"},
    "string": {"type": "string"},
    "category": {"type": "string"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
}


def input_schema(signature: Any) -> dict[str, Any] | None:
    """A JSON Schema for one input row, from a version's signature (None if unknown):
    a table signature (``umlaut.table/1``: from a training dataset or a fitted
    scikit-learn estimator), or a hand-written ``{"inputs": {column: type}}`` note."""
    if not isinstance(signature, dict):
        return None
    from umlaut_core.datasets.signature import is_table_signature  # numpy: not at start-up

    if is_table_signature(signature):
        return _table_schema(signature["columns"])
    if signature.get("type") == "object" and isinstance(signature.get("properties"), dict):
        return signature
    columns = signature.get("inputs", signature)
    # A note is read as columns only when every value names a type: {"note": "…"} is
    # prose, not a column called "note".
    if (
        isinstance(columns, dict)
        and columns
        and all(isinstance(v, str) and v.lower() in _TYPES for v in columns.values())
    ):
        return {
            "type": "object",
            "properties": {k: {"type": _TYPES[v.lower()]} for k, v in columns.items()},
            "required": list(columns),
        }
    return None


def _table_schema(columns: list[dict[str, Any]]) -> dict[str, Any]:
    """Every column required (a nullable one may be null); ranges and categories are
    soft checks in umlaut, so they are described, not enforced, here."""
    properties: dict[str, Any] = {}
    for column in columns:
        spec: dict[str, Any] = dict(_TABLE_TYPES.get(str(column.get("type")), {}))
        if column.get("nullable") and "type" in spec:
            spec["type"] = [spec["type"], "null"]
        known = {k: column[k] for k in ("min", "max", "categories") if column.get(k) is not None}
        if known:
            spec["description"] = "seen in training: " + ", ".join(
                f"{k} {v}" for k, v in known.items()
            )
        properties[str(column["name"])] = spec
    return {"type": "object", "properties": properties, "required": list(properties)}
