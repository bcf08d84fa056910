"""Group commit: appends from concurrent threads of one process share a transaction.

Each spooled call used to open its own write transaction. Two threads of one process
(a server's model threads) then met on SQLite's write lock, and the one that lost slept
in SQLite's busy handler, whose first steps are 1, 2, 5 and 10 ms: a 50 µs commit
became a wait of milliseconds, and the scoring server's p99 tail.

Here the first caller to arrive *leads*: it writes its own rows and those of every
caller that queued meanwhile in one transaction, then hands the lead to the first
caller that queued while it wrote. Every caller still returns only once its own rows
are committed, so nothing is acknowledged that is not in the file, and no caller waits
for more than the batch in front of it and its own.

When a batch fails, each of its callers is retried alone, so that one caller's
outcome (a full spool under ``spool_full="raise"``, say) is never another's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .exceptions import BackendError

__all__ = ["GroupCommit", "Turn"]

R = TypeVar("R")


@dataclass(eq=False)
class Turn(Generic[R]):
    """One caller's rows (a function of the commit time, iterable again on a retry),
    their count, and how they must be written (only turns with equal ``how`` share a
    transaction)."""

    rows: Callable[[float], Iterable[R]]
    count: int
    how: object = None
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    committed: bool = False
    error: BaseException | None = None

    def outcome(self) -> None:
        """Return if the rows are committed, else raise why not."""
        if self.committed:
            return
        if self.error is not None:
            raise self.error
        # The leader was interrupted (KeyboardInterrupt, SystemExit) mid-write.
        raise BackendError("the audit spool write was interrupted; the record was not queued")


class GroupCommit(Generic[R]):
    """Serialises ``write`` within a process and batches the callers that wait for it.

    ``write(turns)`` writes every turn's rows in one transaction, or raises and writes
    none of them.
    """

    def __init__(self, write: Callable[[list[Turn[R]]], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._queue: list[Turn[R]] = []
        self._busy = False
        self._pid = os.getpid()

    def submit(self, rows: Callable[[float], Iterable[R]], count: int, how: object = None) -> None:
        """Write ``rows`` with whatever else is waiting; return once they are committed."""
        turn = Turn(rows, count, how)
        with self._lock:
            if self._pid != os.getpid():
                # Forked while another thread led: that thread does not exist here.
                self._queue, self._busy, self._pid = [], False, os.getpid()
            if self._busy:
                self._queue.append(turn)
            else:
                self._busy = turn.lead = True
        if not turn.lead:
            turn.done.wait()
            if not turn.lead:  # another leader wrote (or failed) this turn
                turn.outcome()
                return
        self._lead(turn)

    def _lead(self, turn: Turn[R]) -> None:
        with self._lock:
            batch = [turn, *(t for t in self._queue if t.how == turn.how)]
            self._queue = [t for t in self._queue if t.how != turn.how]
        try:
            self._write_each(batch)
        finally:
            with self._lock:
                following = self._queue.pop(0) if self._queue else None
                if following is None:
                    self._busy = False
                else:
                    following.lead = True
            for other in batch[1:]:
                other.done.set()
            if following is not None:
                following.done.set()
        turn.outcome()

    def _write_each(self, batch: list[Turn[R]]) -> None:
        """One transaction for the batch; on failure, one per turn, each turn keeping
        its own error."""
        try:
            self._write(batch)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
        else:
            for turn in batch:
                turn.committed = True
            return
        for turn in batch:
            try:
                self._write([turn])
            except Exception as exc:
                turn.error = exc
            else:
                turn.committed = True
