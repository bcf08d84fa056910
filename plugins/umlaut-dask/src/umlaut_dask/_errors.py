"""The error a batch's row keys can cause."""

from __future__ import annotations

from umlaut_core import UmlautError

__all__ = ["RowKeyError", "repeated_across"]


class RowKeyError(UmlautError, ValueError):
    """A row key is missing or repeats: two rows with one key would share one record.

    Raised on the client, without retrying the task (a retry would find the same keys).
    """


def repeated_across(key: object, partition: int, rows: int, held: int) -> RowKeyError:
    """Some of a partition's record ids were already stored by another partition of a
    batch that is not a resume: their keys repeat across partitions. (A retried
    partition finds all of its ids stored, never some: a partition is one transaction.)"""
    return RowKeyError(
        f"the row key {key!r} repeats across partitions: {held} of the {rows} rows of "
        f"partition {partition} have a key that another partition of this batch already "
        f"has, so those rows have no audit record of their own (the first row with a key "
        f"keeps its record; the other rows' records are stored). Make the key unique in "
        f"the batch (or choose a column that is) and score again under a new batch id"
    )
