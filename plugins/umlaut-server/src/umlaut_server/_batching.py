"""Dynamic batching (``--batch-rows N``): concurrent requests for the same model and
selector answered by one ``Umlaut.run_batch`` call.

Off by default, as in Triton, TF Serving, Ray Serve and BentoML: a batched call may
answer in the last floating-point bit differently from a one-row call (numerical
libraries choose kernels by array shape), and it only pays for models whose per-call
cost dwarfs their per-row cost (scikit-learn's input validation: 0.3 to 0.8 ms a call).

There is no waiting window. A request is queued under its ``(model, version,
stage)``, and the queues are dispatched once the event loop has handled everything
that arrived with it (one ``call_soon``, microseconds later): then whenever a key has
no call running and one of the ``--threads`` model-call slots is free, its queue is
taken as it is, up to ``N`` rows (a request of more rows goes alone), and run as one
``run_batch`` in the thread pool. A lone request therefore starts at once, as without
batching; requests share a call when they arrive together (a burst read in one turn
of the loop: a proxy's, or closed-loop clients answered by one call) or while their
model is busy. Keys take turns, so one busy model does not starve another.

Dispatching in ``submit`` itself split every burst that found its model idle into a
lone call and a batch of the rest. With two workers, four connections each, that
kept batches at 1.5 to 2.8 requests; deferred to the loop's next turn they grew to
2.8 to 3.8 and the iris pipeline went from 1,661 to 2,398 req/s (the trivial model
4,557 to 5,782; one worker unchanged), interleaved 8 s ``wrk -t1 -c8`` runs.

One call per key at a time (Ray Serve's default, ``max_concurrent_batches=1``): a
model that holds the GIL gains nothing from a second call beside the first, which
only halves both batches and adds contention. Measured on the iris pipeline (2
cores, 8 connections, interleaved 5 s runs): two calls per key at once 865 and 945
req/s, one at a time 1,356 and 1,401 req/s.

Each request keeps its own everything: its own :class:`~umlaut_core.deadline.Deadline`
(``run_batch(deadlines=...)``), so its timeout answers 504 and records a
``DeadlineExceededError`` for it alone; its own reference id, audit record, output
and error (``on_error="continue"``). ``run_batch`` refuses a whole batch when one
input cannot be encoded, before any model runs; the requests of such a batch are
then run one by one, so that only the bad one fails, as it would unbatched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from umlaut_core import Umlaut
from umlaut_core.deadline import Deadline
from umlaut_core.exceptions import EncodingError, InvalidNameError

from ._errors import ApiError

__all__ = ["Batcher"]

Key = tuple[str, int | None, str | None]  # model name, version, stage as requested
Outcome = BaseException | None  # the request's error; None when its record holds an output


@dataclass
class Waiting:
    """One queued request: what ``run_batch`` needs of it, and where its outcome goes."""

    model_input: Any
    reference_id: str
    deadline: Deadline
    rows: int
    done: asyncio.Future[Outcome] = field(repr=False)


def _stopping() -> ApiError:
    return ApiError(503, "TEMPORARILY_UNAVAILABLE", "the server is shutting down")


class Batcher:
    """The queues of one worker process; lives on its event loop.

    :param umlaut: the facade whose ``run_batch`` answers the requests.
    :param pool: the model-call threads (shared with the rest of the server).
    :param rows: the most rows one call takes (``--batch-rows``).
    :param slots: how many calls may run at once (``--threads``).
    :param on_call: told ``(model, requests)`` for every call made, for ``/metrics``.
    """

    def __init__(
        self,
        umlaut: Umlaut,
        pool: concurrent.futures.ThreadPoolExecutor,
        rows: int,
        slots: int,
        on_call: Callable[[str, int], None] | None = None,
    ) -> None:
        self.umlaut = umlaut
        self.pool = pool
        self.rows = rows
        self.free = slots
        self.on_call = on_call
        self.queues: dict[Key, deque[Waiting]] = {}
        self.turns: deque[Key] = deque()  # keys with requests waiting, next first
        self.running: set[Key] = set()  # keys with a call in the pool
        self.closed = False
        self.pending = False  # a dispatch is scheduled on the loop

    def submit(
        self,
        name: str,
        version: int | None,
        stage: str | None,
        model_input: Any,
        reference_id: str,
        deadline: Deadline,
    ) -> asyncio.Future[Outcome]:
        """Queue one request; the future gets its outcome once its call has written
        its record (``deadline.record``)."""
        if self.closed:
            raise _stopping()
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        rows = len(model_input) if type(model_input) is list else 1
        waiting = Waiting(model_input, reference_id, deadline, max(rows, 1), done)
        key = (name, version, stage)
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = deque()
            self.turns.append(key)
        queue.append(waiting)
        if not self.pending:
            self.pending = True
            asyncio.get_running_loop().call_soon(self._dispatch_soon)
        return done

    def close(self) -> None:
        """Stop taking requests; any still queued (the graceful timeout passed before
        a thread freed up) is answered 503 without running, so it has no record."""
        self.closed = True
        for queue in self.queues.values():
            for waiting in queue:
                if not waiting.done.done():
                    waiting.done.set_result(_stopping())
        self.queues.clear()
        self.turns.clear()

    # -- on the event loop ------------------------------------------------------------

    def _dispatch_soon(self) -> None:
        self.pending = False
        self._dispatch()

    def _dispatch(self) -> None:
        for _ in range(len(self.turns)):
            if self.free == 0 or self.closed:
                return
            key = self.turns.popleft()
            if key in self.running:
                self.turns.append(key)  # its queue goes once its call has returned
                continue
            queue = self.queues[key]
            first = queue.popleft()
            batch, rows = [first], first.rows
            while queue and rows + queue[0].rows <= self.rows:
                waiting = queue.popleft()
                batch.append(waiting)
                rows += waiting.rows
            if queue:
                self.turns.append(key)  # the rest waits for its next turn
            else:
                del self.queues[key]
            self._start(key, batch)

    def _start(self, key: Key, batch: list[Waiting]) -> None:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self.pool, functools.partial(self._call, key, batch))
        except RuntimeError:  # the pool is shut down: the server is stopping
            self._settle(batch, [_stopping()] * len(batch))
            return
        self.free -= 1
        self.running.add(key)
        if self.on_call is not None:
            self.on_call(key[0], len(batch))
        future.add_done_callback(functools.partial(self._finished, key, batch))

    def _finished(
        self, key: Key, batch: list[Waiting], future: asyncio.Future[list[Outcome]]
    ) -> None:
        self.free += 1
        self.running.discard(key)
        if future.cancelled():  # cancelled in the pool's queue at shutdown: never ran
            self._settle(batch, [_stopping()] * len(batch))
        else:
            error = future.exception()
            self._settle(batch, future.result() if error is None else [error] * len(batch))
        self._dispatch()

    @staticmethod
    def _settle(batch: list[Waiting], outcomes: list[Outcome]) -> None:
        for waiting, outcome in zip(batch, outcomes, strict=True):
            if not waiting.done.done():
                waiting.done.set_result(outcome)

    # -- in a model thread -------------------------------------------------------------

    def _call(self, key: Key, batch: list[Waiting]) -> list[Outcome]:
        name, version, stage = key
        try:
            outputs = self.umlaut.run_batch(
                name,
                [w.model_input for w in batch],
                version=version,
                stage=stage,
                reference_ids=[w.reference_id for w in batch],
                on_error="continue",
                deadlines=[w.deadline for w in batch],
            )
        except (EncodingError, InvalidNameError) as exc:
            if len(batch) == 1 or any(w.deadline.record is not None for w in batch):
                return [_recorded(w, exc) for w in batch]
            # One input was refused and so, with it, the batch, before any model ran:
            # each request alone gets what it would have got unbatched.
            return [self._alone(key, w) for w in batch]
        except BaseException as exc:  # the registry, the bundle, the spool: all share it
            return [_recorded(w, exc) for w in batch]
        return [o if isinstance(o, BaseException) else None for o in outputs]

    def _alone(self, key: Key, waiting: Waiting) -> Outcome:
        name, version, stage = key
        try:
            self.umlaut.run_model(
                name,
                waiting.model_input,
                version=version,
                stage=stage,
                reference_id=waiting.reference_id,
                deadline=waiting.deadline,
            )
        except BaseException as exc:
            return exc
        return None


def _recorded(waiting: Waiting, error: BaseException) -> Outcome:
    """A request's outcome when ``run_batch`` raised: an input that ran before the
    batch stopped keeps its record's outcome, any other shares the error."""
    record = waiting.deadline.record
    return None if record is not None and record.status == "ok" else error
