"""How one call of a ``@step``-decorated function is tracked, for each kind of
function: plain, generator, coroutine and async generator.

Each call's run is started and ended in a private copy of the caller's context, so
whatever tracking does or fails to do, the caller's current run is left as it was.
The function's body sees the run as the current one for exactly as long as it runs:
the whole call of a function or coroutine, each resumption of a generator (between
two ``next()``, the consumer sees its own current run, and decorated functions it
calls are not children of the generator's run). Every other context variable
behaves as without the decorator.

This module also holds the off switch, read on every call, so that a pass-through
costs one global lookup.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import numbers
import os
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from .context import _current
from .records import RunStatus
from .summaries import summary_text

if TYPE_CHECKING:
    from .active import ActiveTrainingRun
    from .decorator import _Step

__all__ = [
    "CLOSED_TAG",
    "DURATION_METRIC",
    "RETURN_TAG",
    "returned_metrics",
    "set_tracking_enabled",
    "tracking_enabled",
    "wrap",
]

log = logging.getLogger("umlaut.experiments")

#: The bounded JSON summary of the return value.
RETURN_TAG = "umlaut.step.return"
#: ``"true"`` on the run of a generator its consumer closed before the end.
CLOSED_TAG = "umlaut.step.closed"
DURATION_METRIC = "duration_s"
#: A returned mapping with more items than this is not taken for metrics.
MAX_RETURNED_METRICS = 100
_NOTHING: Any = object()
_Token = contextvars.Token["ActiveTrainingRun | None"]

# -- the off switch: decided once, read on every call ------------------------------

_enabled: bool | None = None  # None: not decided yet


def set_tracking_enabled(enabled: bool | None) -> None:
    """Turn step tracking on or off in this process (for tests, or a program that
    knows better than its environment); None decides again from the settings."""
    global _enabled
    _enabled = enabled


def tracking_enabled() -> bool:
    """Whether decorated functions are tracked: :func:`set_tracking_enabled`, else
    ``UMLAUT_TRACKING``, else the profile's ``tracking`` key, else on."""
    return _decide() if _enabled is None else _enabled


def _decide() -> bool:
    global _enabled
    try:
        from ..config import resolve_settings

        decided = resolve_settings().tracking
    except Exception:  # a broken profile is reported by the facade; here, env alone
        raw = os.environ.get("UMLAUT_TRACKING", "").strip().lower()
        decided = raw not in ("off", "0", "false", "no")
    _enabled = decided
    return decided


_warned: set[str] = set()


def warn_once(doing: str, step_name: str, exc: BaseException) -> None:
    """Log a tracking failure: a warning the first time for each kind, then debug."""
    key = f"{doing}/{type(exc).__module__}.{type(exc).__qualname__}"
    if key in _warned:
        log.debug("step %s: could not %s: %r", step_name, doing, exc)
        return
    _warned.add(key)
    log.warning(
        "step %s: could not %s (%s: %s); the step runs on, and this is logged once",
        step_name,
        doing,
        type(exc).__name__,
        exc,
        exc_info=exc,
    )


# -- one call's run ----------------------------------------------------------------


class _Call:
    """The run of one call, with the private context it was started in."""

    __slots__ = ("ctx", "run", "started", "step")

    def __init__(self, step: _Step, ctx: contextvars.Context, run: ActiveTrainingRun) -> None:
        self.step, self.ctx, self.run = step, ctx, run
        self.started = time.perf_counter()

    @classmethod
    def open(cls, step: _Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call | None:
        """The call's run, started; None (logged) when it cannot be."""
        try:
            enclosing = _current.get()
            um = step.facade(enclosing)
            if um is None or not um.settings.tracking:
                return None
            params = step.params(args, kwargs)
        except TypeError:
            return None  # arguments the function refuses: its own call will say so
        except Exception as exc:
            warn_once("choose its store", step.name, exc)
            return None
        parent: ActiveTrainingRun | Literal["auto"] | None = "auto"
        if step.root:
            parent = None
        elif enclosing is not None:
            parent = enclosing
        ctx = contextvars.copy_context()
        try:
            run = ctx.run(
                um.start_run, step.experiment, name=step.name, tags=step.tags, parent=parent
            )
        except Exception as exc:
            warn_once("start a training run", step.name, exc)
            return None
        call = cls(step, ctx, run)
        if params:
            try:
                run.log_params(params)
            except Exception as exc:
                warn_once("log its arguments", step.name, exc)
        return call

    def enter(self) -> _Token:
        return _current.set(self.run)

    def leave(self, token: _Token | None) -> None:
        if token is None:
            return
        # ValueError: resumed in another context than the one it paused in.
        with contextlib.suppress(ValueError):
            _current.reset(token)

    def finish(
        self, error: BaseException | None, result: Any = _NOTHING, *, closed: bool = False
    ) -> None:
        run, step = self.run, self.step
        try:
            run.log_metric(DURATION_METRIC, time.perf_counter() - self.started)
            if closed:
                run.set_tag(CLOSED_TAG, "true")
            if step.log_return and result is not _NOTHING and result is not None:
                metrics = returned_metrics(result)
                if metrics:
                    run.log_metrics(metrics)
                run.set_tag(RETURN_TAG, summary_text(result))
        except Exception as exc:
            warn_once("log its result", step.name, exc)
        if error is None:
            status = RunStatus.FINISHED
        else:
            status = RunStatus.FAILED if isinstance(error, Exception) else RunStatus.KILLED
        try:
            # Steps do not wait for the store: a training loop calling a decorated
            # function thousands of times must not pay a commit each time. The writer
            # delivers within its interval; flush(), close() and exit wait.
            self.ctx.run(run.end, status, error, wait=False)
        except Exception as exc:
            warn_once("end its training run", step.name, exc)


class _NoCall:
    """A call that is not tracked (off, or its run could not start)."""

    def enter(self) -> None:
        return None

    def leave(self, token: _Token | None) -> None:
        pass

    def finish(
        self, error: BaseException | None, result: Any = None, *, closed: bool = False
    ) -> None:
        pass


_NO_CALL = _NoCall()


def returned_metrics(result: Any) -> dict[str, float]:
    """The numbers (bools excepted) under string keys of a returned mapping."""
    if not isinstance(result, Mapping) or len(result) > MAX_RETURNED_METRICS:
        return {}
    return {
        k: float(v)
        for k, v in result.items()
        if isinstance(k, str) and isinstance(v, numbers.Real) and not isinstance(v, bool)
    }


# -- the wrappers ------------------------------------------------------------------


def wrap(step: _Step) -> Callable[..., Any]:
    """The tracked stand-in for ``step.fn``, of the same kind (``inspect`` says the
    same of both: a generator function stays one, a coroutine function too)."""
    fn = step.fn
    if inspect.isasyncgenfunction(fn):
        return _async_generator(step)
    if inspect.iscoroutinefunction(fn):
        return _coroutine(step)
    if inspect.isgeneratorfunction(fn):
        return _generator(step)
    return _function(step)


def _function(step: _Step) -> Callable[..., Any]:
    fn = step.fn

    @functools.wraps(fn)
    def tracked(*args: Any, **kwargs: Any) -> Any:
        if not (_enabled if _enabled is not None else _decide()):
            return fn(*args, **kwargs)
        call = _Call.open(step, args, kwargs)
        if call is None:
            return fn(*args, **kwargs)
        token = call.enter()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            call.leave(token)
            call.finish(exc)
            raise
        call.leave(token)
        call.finish(None, result)
        return result

    return tracked


def _generator(step: _Step) -> Callable[..., Any]:
    fn = step.fn

    @functools.wraps(fn)
    def tracked(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        if not (_enabled if _enabled is not None else _decide()):
            return (yield from fn(*args, **kwargs))
        inner = fn(*args, **kwargs)
        call = _Call.open(step, args, kwargs)
        if call is None:
            return (yield from inner)
        # ``yield from`` by hand: the run is current only while the body runs.
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            token = call.enter()
            try:
                item = inner.send(sent) if thrown is None else inner.throw(thrown)
            except StopIteration as stop:
                call.leave(token)
                call.finish(None, stop.value)
                return stop.value
            except BaseException as exc:
                call.leave(token)
                call.finish(exc)
                raise
            call.leave(token)
            sent = thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                token = call.enter()
                try:
                    inner.close()
                except BaseException as exc:
                    call.leave(token)
                    call.finish(exc)
                    raise
                call.leave(token)
                call.finish(None, closed=True)
                raise
            except BaseException as exc:
                thrown = exc

    return tracked


def _coroutine(step: _Step) -> Callable[..., Any]:
    fn = step.fn

    @functools.wraps(fn)
    async def tracked(*args: Any, **kwargs: Any) -> Any:
        if not (_enabled if _enabled is not None else _decide()):
            return await fn(*args, **kwargs)
        awaitable = fn(*args, **kwargs)
        call = _Call.open(step, args, kwargs)
        if call is None:
            return await awaitable
        token = call.enter()
        try:
            result = await awaitable
        except BaseException as exc:
            call.leave(token)
            call.finish(exc)
            raise
        call.leave(token)
        call.finish(None, result)
        return result

    return tracked


def _async_generator(step: _Step) -> Callable[..., Any]:
    fn = step.fn

    @functools.wraps(fn)
    async def tracked(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        inner = fn(*args, **kwargs)
        call: _Call | _NoCall = _NO_CALL
        if _enabled if _enabled is not None else _decide():
            call = _Call.open(step, args, kwargs) or _NO_CALL
        # No ``yield from`` for async generators: asend/athrow/aclose passed by hand.
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            token = call.enter()
            try:
                item = await (inner.asend(sent) if thrown is None else inner.athrow(thrown))
            except StopAsyncIteration:
                call.leave(token)
                call.finish(None)
                return
            except BaseException as exc:
                call.leave(token)
                call.finish(exc)
                raise
            call.leave(token)
            sent = thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                token = call.enter()
                try:
                    await inner.aclose()
                except BaseException as exc:
                    call.leave(token)
                    call.finish(exc)
                    raise
                call.leave(token)
                call.finish(None, closed=True)
                raise
            except BaseException as exc:
                thrown = exc

    return tracked
