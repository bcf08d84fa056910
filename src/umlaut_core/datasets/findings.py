"""An input item's problems and findings: counted, rendered, and kept as an audit tag.

The input checks (:mod:`umlaut_core.datasets.validation`) add each problem or finding
to a :class:`Tally`, once per row it occurs in; :func:`findings_tags` turns the
rendered tally into the :data:`FINDINGS_TAG` of the item's audit record.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["FINDINGS_TAG", "Tally", "findings_tags"]

#: The audit-record tag holding an item's findings, as a JSON list.
FINDINGS_TAG = "umlaut.findings"
_MAX_TAG = 4_900  # tag values hold 5,000 characters


class Tally:
    """An item's problems (or findings), each counted over the rows it occurs in."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str, str], list[Any]] = {}

    def add(self, kind: str, column: str, text: str, at: int | None, *values: Any) -> None:
        self.add_many(kind, column, text, 1, [] if at is None else [at], values)

    def add_many(
        self, kind: str, column: str, text: str, count: int, at: Any, values: Any = ()
    ) -> None:
        entry = self.entries.setdefault((kind, column, text), [0, [], []])
        entry[0] += count
        entry[1].extend(list(at)[: 5 - len(entry[1])])
        entry[2].extend(list(values)[: 3 - len(entry[2])])

    def render(self, verbose: bool) -> list[tuple[str, str, int, str]]:
        out = []
        for (kind, column, text), (count, rows, values) in self.entries.items():
            if rows:
                shown = ", ".join(map(str, rows)) + (", …" if count > len(rows) else "")
                text += f" (row {shown})" if count == 1 else f" ({count} rows: {shown})"
            if verbose and values:
                text += "; values: " + ", ".join(_show(v) for v in values)
            out.append((kind, column, count, text))
        return out


def findings_tags(rendered: list[tuple[str, str, int, str]]) -> dict[str, str]:
    """The findings as one JSON tag, cut to fit a tag value."""
    items = [{"kind": k, "column": c, "count": n, "message": t} for k, c, n, t in rendered]
    text = json.dumps(items, ensure_ascii=False)
    if len(text) > _MAX_TAG:  # rare: dozens of columns refused at once
        kept: list[dict[str, Any]] = []
        size = 64  # room for the closing "truncated" entry
        for entry in items:
            size += len(json.dumps(entry, ensure_ascii=False)) + 2
            if size > _MAX_TAG:
                break
            kept.append(entry)
        kept.append({"kind": "truncated", "count": len(items) - len(kept)})
        text = json.dumps(kept, ensure_ascii=False)
    return {FINDINGS_TAG: text}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
