"""A dataset version's profile as a printable Markdown table.

The layout of mlops-lite's README column table (column, original dtype, stored
type, nulls, distinct, min, max) plus the logical type, the role, and mean and
standard deviation for numbers, under a one-line header::

    **iris** v1 · 150 rows · 5 columns · sha256:5f0c…

    | column | role | type | dtype | stored as | nulls | distinct | min | max | mean | std |
    | --- | --- | --- | --- | --- | ---: | ---: | --- | --- | ---: | ---: |
    | sepal width | feature | float | float64 | double | 0 | 23 | 2 | 4.4 | 3.05733 | 0.435866 |

An estimated distinct count is shown as ``≈N``; long values are cut to 40 characters.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import ColumnProfile, DatasetVersion

__all__ = ["profile_table"]

_HEADINGS = (
    "column", "role", "type", "dtype", "stored as", "nulls", "distinct", "min", "max",
    "mean", "std",
)  # fmt: skip
_ALIGN = ("---", "---", "---", "---", "---", "---:", "---:", "---", "---", "---:", "---:")
_WIDEST = 40
_DICTIONARY = re.compile(r"dictionary<values=(.+), indices=\w+, ordered=([01])>")


def profile_table(dv: DatasetVersion) -> str:
    """The profile of ``dv`` as Markdown: a header line, a blank line, the table."""
    header = (
        f"**{_cell(dv.name)}** v{dv.version} · {dv.rows:,} rows · {len(dv.columns)} "
        f"columns · {dv.digest}"
    )
    lines = [header, "", _row(_HEADINGS), _row(_ALIGN)]
    lines.extend(_row(_cells(c)) for c in dv.columns)
    return "\n".join(lines) + "\n"


def _cells(c: ColumnProfile) -> tuple[str, ...]:
    distinct = f"{c.distinct_count:,}" if c.distinct_exact else f"≈{c.distinct_count:,}"
    return (
        _cell(c.name), c.role, c.logical_type, _cell(c.dtype), _cell(_stored(c.stored_type)),
        f"{c.null_count:,}", distinct, _value(c.min), _value(c.max), _value(c.mean),
        _value(c.std),
    )  # fmt: skip


def _stored(arrow_type: str) -> str:
    """A dictionary type by its values: the index width is storage detail."""
    found = _DICTIONARY.fullmatch(arrow_type)
    if found is None:
        return arrow_type
    ordered = ", ordered" if found.group(2) == "1" else ""
    return f"dictionary<{found.group(1)}{ordered}>"


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return _cell(str(value))


def _cell(text: str) -> str:
    """Text that cannot break the table: no pipes or line breaks, at most 40 chars."""
    flat = " ".join(str(text).split())
    if len(flat) > _WIDEST:
        flat = flat[: _WIDEST - 1] + "…"
    return flat.replace("|", "\\|")
