"""A time limit on one ``run_model`` call, shared by the call and whoever waits for it.

Python cannot stop a thread, so a caller that waits for a model call with a timeout
(an HTTP server answering 504) cannot cancel the model; it can only stop waiting. A
:class:`Deadline` makes both sides agree on what happened, whatever the timing::

    deadline = Deadline(2.0)
    future = pool.submit(umlaut.run_model, "Iris", row, stage="Production", deadline=deadline)
    try:
        output = future.result(timeout=deadline.remaining())
    except concurrent.futures.TimeoutError:
        if deadline.expire():            # the call had not finished: it lost
            ...                          # answer "timed out"; the record will say so
        else:                            # it finished in the meantime: its result stands
            output = future.result()

* The model finished in time (and before ``expire()``): the call's record and result
  are the model's own.
* The caller expired the deadline first, or the model returned after ``seconds``:
  ``run_model`` discards the output, writes the record with ``status="error"`` and
  ``error_type="umlaut_core.exceptions.DeadlineExceededError"`` (its message says how
  long the model took), and raises :class:`~umlaut_core.exceptions.DeadlineExceededError`.
  The model itself runs to its end in its thread; its record is written then.
* The deadline had passed before the model could start (the call waited that long
  for a thread): the model does not run, and the record says so, as above.

Exactly one record is written either way, and ``Deadline.record`` holds it once
``run_model`` wrote it (so the waiter can learn the version that answered and the
record's id). A ``Deadline`` serves one call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigurationError, DeadlineExceededError

if TYPE_CHECKING:
    from .records import AuditRecord

__all__ = ["Deadline"]

_PENDING, _RUNNING, _FINISHED, _EXPIRED = 0, 1, 2, 3


class Deadline:
    """``seconds`` from now (``time.monotonic``), the limit of one model call.

    :param seconds: how long the model call may take, counted from this object's
        creation (time spent waiting for a thread counts): a positive number.
    """

    __slots__ = ("_lock", "_started", "_state", "at", "record", "seconds")

    def __init__(self, seconds: float) -> None:
        if not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ConfigurationError(
                f"a deadline needs a positive number of seconds, not {seconds!r}"
            )
        self.seconds = float(seconds)
        #: ``time.monotonic()`` value at which the call is late.
        self.at = time.monotonic() + self.seconds
        self._lock = threading.Lock()
        self._state = _PENDING
        self._started = 0.0
        #: The audit record ``run_model`` wrote for the call (None until then).
        self.record: AuditRecord | None = None

    def remaining(self) -> float:
        """Seconds left (0 when past)."""
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        """True once the call lost: expired by the waiter, or it overran."""
        return self._state == _EXPIRED

    def expire(self) -> bool:
        """The waiter stops waiting. True: the call had not finished and now counts as
        late (its record will be a ``DeadlineExceededError``); False: it finished
        first, and its result (or its own error) stands."""
        with self._lock:
            if self._state in (_PENDING, _RUNNING):
                self._state = _EXPIRED
            return self._state == _EXPIRED

    def guard(self, run: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``run`` wrapped for one call: refused when already late, and its outcome
        replaced by a ``DeadlineExceededError`` when it ends late (``run_model`` uses
        this; the error becomes the record's)."""

        def guarded(item: Any) -> Any:
            late = self.start()
            if late is not None:
                raise late
            try:
                output = run(item)
            except BaseException as exc:
                late = self.finish(exc)
                if late is not None:
                    raise late from exc
                raise
            late = self.finish()
            if late is not None:
                raise late
            return output

        return guarded

    def start(self) -> DeadlineExceededError | None:
        """The call starts now: None, or (when it is already late) the error to
        record instead; the model must then not run."""
        with self._lock:
            now = time.monotonic()
            if self._state == _PENDING and now <= self.at:
                self._state, self._started = _RUNNING, now
                return None
            self._state = _EXPIRED
        return DeadlineExceededError(
            f"the {self.seconds:g} s deadline passed before the model could start "
            f"(the call waited that long to start); the model did not run"
        )

    def finish(self, error: BaseException | None = None) -> DeadlineExceededError | None:
        """The started call ended (raising ``error``, or returning): None when it was
        in time, else the error to record instead of its own outcome."""
        if self._finish():
            return None
        if error is not None:
            return DeadlineExceededError(
                f"the model raised {type(error).__name__} after the {self.seconds:g} s "
                f"deadline ({self._took()}); the caller was told it timed out"
            )
        return DeadlineExceededError(
            f"the model returned after the {self.seconds:g} s deadline "
            f"({self._took()}); its output was discarded"
        )

    def _finish(self) -> bool:
        with self._lock:
            if self._state == _RUNNING:
                self._state = _FINISHED if time.monotonic() <= self.at else _EXPIRED
            return self._state == _FINISHED

    def _took(self) -> str:
        return f"it ran {time.monotonic() - self._started:.3f} s"

    def __repr__(self) -> str:
        state = ("pending", "running", "finished", "expired")[self._state]
        return f"Deadline({self.seconds:g} s, {state})"
