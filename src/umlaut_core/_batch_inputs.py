"""What ``run_batch`` accepts as its inputs, and how each item reaches the model.

A batch is any iterable of inputs, with three shapes that would iterate wrongly
refused or read as their users mean them: a ``str``/``bytes`` (it would run once per
character) and a mapping (once per key) are refused; a pandas ``DataFrame`` (which
iterates its column names) runs once per row, each row a dict of column → value with
Python scalars. pandas is recognised by module name, never imported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sized
from typing import Any

from .exceptions import ConfigurationError
from .ids import is_id
from .libraries import is_pandas
from .naming import check_reference_id

__all__ = ["FrameRows", "batch_source", "record_ids_for", "reference_list"]

#: Rows converted to dicts at a time: bounds the copy a DataFrame batch makes.
FRAME_CHUNK = 1_000


class FrameRows:
    """The rows of a DataFrame as dicts, made a chunk at a time; iterable again."""

    def __init__(self, frame: Any) -> None:
        columns = frame.columns
        if not columns.is_unique:
            repeated = sorted({str(c) for c in columns[columns.duplicated()]})
            raise ConfigurationError(
                f"the DataFrame has repeated column names {repeated}; a row cannot be "
                f"passed as a dict with repeated keys. Rename them first."
            )
        self._frame = frame

    def __len__(self) -> int:
        return len(self._frame)

    def __iter__(self) -> Iterator[dict[Any, Any]]:
        frame = self._frame
        for start in range(0, len(frame), FRAME_CHUNK):
            # to_dict gives Python scalars (int, float, Timestamp), as a model that was
            # called with dicts expects; the index is not part of a row.
            yield from frame.iloc[start : start + FRAME_CHUNK].to_dict(orient="records")


def batch_source(inputs: Any) -> tuple[Iterable[Any], int | None]:
    """The items of a batch, and how many there are when that is known up front (a
    collection such as a list, or a DataFrame: those are checked in full before any
    model runs; an iterator or generator is checked item by item as it runs)."""
    if isinstance(inputs, (str, bytes, bytearray, memoryview)):
        raise ConfigurationError(
            f"run_batch takes an iterable of inputs, not a {type(inputs).__name__}: it "
            f"would run the model once per character. Use run_model for one input, or "
            f"pass a list of inputs."
        )
    if isinstance(inputs, Mapping):
        raise ConfigurationError(
            "run_batch takes an iterable of inputs, not one mapping: it would run the "
            "model on each key. Use run_model(name, input) for one input, or "
            "run_batch(name, [input, ...]) for many."
        )
    if is_pandas(inputs, "DataFrame"):
        rows = FrameRows(inputs)
        return rows, len(rows)
    # A collection (a list, an array) can be iterated again; an iterator cannot.
    if (
        isinstance(inputs, Sized)
        and isinstance(inputs, Iterable)
        and not isinstance(inputs, Iterator)
    ):
        return inputs, len(inputs)
    if not isinstance(inputs, Iterable):
        raise ConfigurationError(
            f"run_batch takes an iterable of inputs (a list, a generator, a DataFrame), "
            f"not a {type(inputs).__name__}"
        )
    return inputs, None


def reference_list(
    reference_ids: Iterable[str | None] | None, count: int | None
) -> list[str | None]:
    """``run_batch``'s ``reference_ids``, checked: a string is refused (not iterated),
    and when the number of inputs is known there must be one per input."""
    if reference_ids is None:
        return []
    if isinstance(reference_ids, (str, bytes)):
        raise ConfigurationError("reference_ids must be a list of strings, not a string")
    checked = [check_reference_id(r) for r in reference_ids]
    if count is not None and len(checked) != count:
        raise ConfigurationError(f"reference_ids has {len(checked)} entries for {count} inputs")
    return checked


def record_ids_for(record_ids: Iterable[str], count: int | None) -> tuple[Iterator[str], int]:
    """``run_batch``'s ``record_ids``, checked: ids, no repeats, one per input when
    the number of inputs is known; past the last id, asking for another refuses the
    rest of the batch (an input stream longer than its ids)."""
    if isinstance(record_ids, (str, bytes)):
        raise ConfigurationError("record_ids must be a list of ids, not a string")
    id_list = list(record_ids)
    bad = [i for i in id_list if not is_id(i)]
    if bad:
        raise ConfigurationError(
            f"record_ids holds {len(bad)} value(s) that are not umlaut ids, e.g. "
            f"{bad[0]!r}; make them with umlaut_core.ids.derived_id"
        )
    if len(set(id_list)) != len(id_list):
        raise ConfigurationError(
            "record_ids repeats an id: two inputs would share one audit record"
        )
    if count is not None and len(id_list) != count:
        raise ConfigurationError(f"record_ids has {len(id_list)} ids for {count} inputs")

    def each() -> Iterator[str]:
        yield from id_list
        raise ConfigurationError(f"the inputs outnumber record_ids ({len(id_list)} ids)")

    return each(), len(id_list)
