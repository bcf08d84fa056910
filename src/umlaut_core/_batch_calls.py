"""``run_batch``'s model calls in chunks: one vectorized call per chunk of inputs
when the flavor has one (``LoadedModel.run_many``), one call per input otherwise."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._calls import Outcome, call_model, error_message, error_type
from .encoding import encode_output
from .ids import new_run_id
from .records import ModelVersion, RecordFields

if TYPE_CHECKING:
    from .deadline import Deadline

__all__ = ["CHUNK", "call_chunks"]

#: Inputs per vectorized call in ``run_batch``: enough that a scikit-learn call's
#: fixed cost (about a millisecond) is about a microsecond a row, few enough that
#: a chunk's outputs stay small.
CHUNK = 1024

_UTC = dt.UTC
Check = Callable[[Any], tuple[Any, Mapping[str, str] | None]]


def call_chunks(
    run: Callable[[Any], Any],
    run_many: Callable[[Sequence[Any]], list[Any]] | None,
    mv: ModelVersion,
    selector: str,
    items: Iterable[tuple[Any, str, str | None]],
    tags: Mapping[str, str],
    *,
    stop_at_error: bool,
    before: Callable[[Any], object] | None = None,
    ids: Iterable[str] | None = None,
    check: Check | None = None,
    deadlines: Iterable[Deadline] | None = None,
) -> Iterator[list[Outcome]]:
    """:func:`~umlaut_core._calls.call_model` for ``run_batch``, vectorized when
    ``run_many`` is given.

    Yields lists of outcomes: every item of a list ran (or was refused) already, so
    the caller keeps all of a list's records even past an error, and stops after
    the list when it stops at errors. Without ``run_many`` each list is one item,
    run lazily as ``call_model`` runs it.

    With ``run_many``, up to :data:`CHUNK` items at a time: each item's observer hook,
    input checks and deadline start, then one ``run_many`` over the items that passed
    (with ``stop_at_error``, only those before the first refused one), each output
    encoded, each deadline finished. The items share the call's start time and split
    its duration. If ``run_many`` raises an ``Exception`` (an input it refuses, rows
    that do not stack) the items run one by one instead, so each error is its own
    item's record and, with ``stop_at_error``, no item after it runs.
    """
    if run_many is None:
        outcomes = call_model(run, mv, selector, items, tags, None, before, ids, check, deadlines)
        yield from ([outcome] for outcome in outcomes)
        return
    new_id = new_run_id if ids is None else iter(ids).__next__
    limits = None if deadlines is None else iter(deadlines)
    source = iter(items)
    while chunk := list(itertools.islice(source, CHUNK)):
        block = _Block(
            mv, selector, tags, chunk, [new_id() for _ in chunk],
            None if limits is None else [next(limits) for _ in chunk],
        )  # fmt: skip
        yield from block.run(run, run_many, stop_at_error, before, check)


@dataclass
class _Block:
    """One chunk of inputs and what each of their records needs."""

    mv: ModelVersion
    selector: str
    tags: Mapping[str, str]
    items: list[tuple[Any, str, str | None]]  # (input, inputs_json, reference_id)
    ids: list[str]
    limits: list[Deadline] | None

    def run(
        self,
        run: Callable[[Any], Any],
        run_many: Callable[[Sequence[Any]], list[Any]],
        stop_at_error: bool,
        before: Callable[[Any], object] | None,
        check: Check | None,
    ) -> Iterator[list[Outcome]]:
        started = dt.datetime.now(_UTC)
        t0 = time.perf_counter()
        taken, refused = self._admit(stop_at_error, before, check)
        outcomes: dict[int, tuple[Any, str | None, BaseException | None]] = {}
        try:
            outputs = run_many([item for _, item, _ in taken]) if taken else []
            if len(outputs) != len(taken):
                raise ValueError(f"run_many gave {len(outputs)} outputs for {len(taken)} inputs")
        except Exception:
            yield from self._one_by_one(run, taken, refused, t0, started)
            return
        except BaseException as exc:  # KeyboardInterrupt…: every item of the call was in it
            outcomes = {i: (None, None, exc) for i, _, _ in taken}
        else:
            for (i, _, _), output in zip(taken, outputs, strict=True):
                try:
                    outcomes[i] = (output, encode_output(output), None)
                except BaseException as exc:
                    outcomes[i] = (None, None, exc)
        if self.limits is not None:
            for i, _, _ in taken:
                late = self.limits[i].finish(outcomes[i][2])
                if late is not None:
                    outcomes[i] = (None, None, late)
        share = (time.perf_counter() - t0) * 1000.0 / len(self.items)
        tags_at = {i: t for i, _, t in taken}
        done: list[Outcome] = []
        for i in range(len(self.items)):
            output, text, error = outcomes.get(i, (None, None, refused.get(i)))
            fields = self._fields(i, text, started, share, error, tags_at.get(i, self.tags))
            done.append((fields, output if error is None else None, error))
        yield done

    def _admit(
        self,
        stop_at_error: bool,
        before: Callable[[Any], object] | None,
        check: Check | None,
    ) -> tuple[list[tuple[int, Any, Mapping[str, str]]], dict[int, BaseException]]:
        """Each item's hook, checks and deadline start: ``(position, input to run,
        tags)`` of those that may run, and the errors of those refused. With
        ``stop_at_error`` the block ends at the first refused item."""
        taken: list[tuple[int, Any, Mapping[str, str]]] = []
        refused: dict[int, BaseException] = {}
        for i, (item, _, _) in enumerate(self.items):
            if before is not None:
                before(item)
            item_tags = self.tags
            try:
                if check is not None:
                    item, findings = check(item)
                    if findings:
                        item_tags = {**self.tags, **findings}
                late = None if self.limits is None else self.limits[i].start()
                if late is not None:
                    raise late
            except BaseException as exc:
                refused[i] = exc
                if stop_at_error:
                    del self.items[i + 1 :]
                    break
                continue
            taken.append((i, item, item_tags))
        return taken, refused

    def _one_by_one(
        self,
        run: Callable[[Any], Any],
        taken: list[tuple[int, Any, Mapping[str, str]]],
        refused: dict[int, BaseException],
        t0: float,
        started: dt.datetime,
    ) -> Iterator[list[Outcome]]:
        """The vectorized call failed: item by item (checks and deadline starts
        already done); refused items keep their place and their error."""
        checked = {i: (item, item_tags) for i, item, item_tags in taken}
        # Refused items' share of the failed attempt: what they cost before the model.
        share = (time.perf_counter() - t0) * 1000.0 / len(self.items)
        for i in range(len(self.items)):
            if i in refused:
                fields = self._fields(i, None, started, share, refused[i], self.tags)
                yield [(fields, None, refused[i])]
                continue
            item, item_tags = checked[i]
            when = dt.datetime.now(_UTC)
            t1 = time.perf_counter()
            output: Any = None
            text: str | None = None
            error: BaseException | None = None
            try:
                output = run(item)
                text = encode_output(output)
            except BaseException as exc:
                error = exc
            if self.limits is not None:
                late = self.limits[i].finish(error)
                if late is not None:
                    error = late
            took = (time.perf_counter() - t1) * 1000.0
            fields = self._fields(i, text, when, took, error, item_tags)
            yield [(fields, output if error is None else None, error)]

    def _fields(
        self,
        i: int,
        output_json: str | None,
        started: dt.datetime,
        duration_ms: float,
        error: BaseException | None,
        tags: Mapping[str, str],
    ) -> RecordFields:
        mv, (_, inputs_json, reference_id) = self.mv, self.items[i]
        if error is None:
            return (
                self.ids[i], mv.name, mv.version, self.selector, inputs_json, output_json,
                "ok", started, duration_ms, reference_id, None, None, tags, False,
            )  # fmt: skip
        return (
            self.ids[i], mv.name, mv.version, self.selector, inputs_json, None, "error",
            started, duration_ms, reference_id, error_type(error), error_message(error),
            tags, False,
        )  # fmt: skip
