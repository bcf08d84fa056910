"""Literals in MLflow search filters: what a value may hold and how it is quoted.

MLflow's filter grammar has no escape for a quote inside a string, so a value that
holds both quote kinds (or a backslash) cannot be searched for by equality.
"""

from __future__ import annotations

__all__ = ["PAGE", "eq", "quote", "safe"]

#: Results per page of MLflow searches.
PAGE = 1000


def safe(value: str) -> str:
    """A value for a single-quoted filter literal (ids, digests, aliases, statuses)."""
    if "'" in value:
        raise ValueError(f"unexpected quote in {value!r}")
    return value


def quote(value: str) -> str | None:
    """Quote a free-form string for an MLflow filter, or None if it cannot be."""
    if "'" not in value and "\\" not in value:
        return f"'{value}'"
    if '"' not in value and "\\" not in value:
        return f'"{value}"'
    return None


def eq(field: str, value: str) -> str | None:
    quoted = quote(value)
    return f"{field} = {quoted}" if quoted is not None else None
