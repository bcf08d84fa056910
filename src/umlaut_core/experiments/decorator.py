"""``@step`` and ``@pipeline``: each call of a decorated function is a training run.

    @step
    def reduce(X, n_components: int = 2) -> np.ndarray: ...

The run is a child of the run current where the call is made (a ``with
um.start_run()`` block, or the call of another decorated function), else a root run
(or a child of ``UMLAUT_PARENT_RUN_ID``, for a process a parent started). It records
the bound arguments as bounded params (:mod:`.summaries`), ``duration_s``, the
outcome and a bounded summary of the return value; the numbers of a returned mapping
become metrics. While the body runs, the step's run is the current one, so
``current_run().log_metric(...)`` and nested decorated calls land in it.

Behaviour never changes: the same value or the same exception object comes back,
the signature is the function's own, and no keyword is added. Tracking that fails
(no store, a store that refuses writes, a value that cannot be summarised) is logged
once per kind of failure and the function runs untracked: tracking never breaks a
training job. ``UMLAUT_TRACKING=off`` (or ``tracking = false`` in the profile, or
:func:`set_tracking_enabled`) turns every decorated function into a pass-through
costing a fraction of a microsecond.

The decorator keeps no state per call: everything a call needs lives in its frame,
so decorated functions are reentrant (recursion nests runs) and thread-safe, and the
current run flows through ``contextvars`` like the rest of experiment tracking.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ..exceptions import ConfigurationError
from .step_calls import (
    CLOSED_TAG,
    DURATION_METRIC,
    RETURN_TAG,
    set_tracking_enabled,
    tracking_enabled,
    warn_once,
    wrap,
)
from .summaries import summarise

if TYPE_CHECKING:
    from .._api import Umlaut
    from .active import ActiveTrainingRun

__all__ = [
    "CLOSED_TAG",
    "DURATION_METRIC",
    "FUNCTION_TAG",
    "KIND_TAG",
    "RETURN_TAG",
    "pipeline",
    "set_default_umlaut",
    "set_tracking_enabled",
    "step",
    "tracking_enabled",
]

#: Tags every step run carries: ``module.qualname`` of the function, and its kind.
FUNCTION_TAG = "umlaut.step.function"
KIND_TAG = "umlaut.step.kind"
_SELF_NAMES = ("self", "cls")
#: After the default ``Umlaut()`` failed to open, calls run untracked this long.
_DEFAULT_RETRY_S = 30.0

F = TypeVar("F", bound="Callable[..., Any] | staticmethod[Any, Any] | classmethod[Any, Any, Any]")

# -- which facade ------------------------------------------------------------------

_default: Umlaut | None = None
_default_failed_at: float | None = None
_default_lock = threading.Lock()


def set_default_umlaut(umlaut: Umlaut | None) -> None:
    """The facade of steps called outside any run and without ``umlaut=``; None goes
    back to a ``Umlaut()`` on the configured default, made on first use."""
    global _default, _default_failed_at
    with _default_lock:
        _default, _default_failed_at = umlaut, None


def _default_umlaut() -> Umlaut | None:
    global _default, _default_failed_at
    if _default is not None:
        return _default
    with _default_lock:
        if _default is not None:
            return _default
        if (
            _default_failed_at is not None
            and time.monotonic() - _default_failed_at < _DEFAULT_RETRY_S
        ):
            return None  # opening a store can take seconds to fail: not on every call
        from .._api import Umlaut

        try:
            _default, _default_failed_at = Umlaut(), None
        except Exception as exc:
            _default_failed_at = time.monotonic()
            warn_once("open the default Umlaut()", "-", exc)
            return None
        return _default


# -- one decorated function: its configuration -------------------------------------


class _Step:
    """What the decorator was told; read-only after decoration."""

    __slots__ = ("exclude", "experiment", "fn", "include", "log_return", "name", "root",
                 "signature", "tags", "umlaut")  # fmt: skip

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        kind: str,
        name: str | None,
        experiment: str | None,
        include: Iterable[str] | None,
        exclude: Iterable[str],
        root: bool,
        log_return: bool,
        umlaut: Umlaut | None,
    ) -> None:
        self.fn = fn
        qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        module = getattr(fn, "__module__", None) or "?"
        self.name = name or qualname.rpartition("<locals>.")[2]
        self.experiment = experiment
        self.root = root
        self.log_return = log_return
        self.umlaut = umlaut
        self.tags = {FUNCTION_TAG: f"{module}.{qualname}", KIND_TAG: kind}
        try:
            self.signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # some builtins have none: no params, then
            self.signature = None
        self.include = None if include is None else _names(include, "include")
        self.exclude = _names(exclude, "exclude")
        self._check_names()

    def _check_names(self) -> None:
        if self.signature is None:
            return
        params = self.signature.parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return  # any name may arrive through **kwargs
        unknown = (set(self.include or ()) | set(self.exclude)) - set(params)
        if unknown:
            raise ConfigurationError(
                f"step {self.name}: include/exclude name {sorted(unknown)}, which are not "
                f"parameters of it; its parameters are {list(params)}"
            )

    def facade(self, enclosing: ActiveTrainingRun | None) -> Umlaut | None:
        # A child must live in its parent's store, so the enclosing run decides.
        if enclosing is not None and not self.root:
            return enclosing.umlaut
        if self.umlaut is not None:
            return self.umlaut
        if enclosing is not None:
            return enclosing.umlaut
        return _default_umlaut()

    def params(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.signature is None:
            return {}
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        out: dict[str, Any] = {}
        parameters = self.signature.parameters
        for position, (name, value) in enumerate(bound.arguments.items()):
            kind = parameters[name].kind
            if position == 0 and name in _SELF_NAMES and kind is not kind.VAR_POSITIONAL:
                continue
            if kind is kind.VAR_KEYWORD:
                out.update((k, summarise(v)) for k, v in value.items() if self._wanted(k))
            elif self._wanted(name):
                out[name] = summarise(value)
        return out

    def _wanted(self, name: str) -> bool:
        return name not in self.exclude and (self.include is None or name in self.include)


def _names(names: Iterable[str], what: str) -> frozenset[str]:
    if isinstance(names, str):
        return frozenset((names,))
    out = frozenset(names)
    if not all(isinstance(n, str) for n in out):
        raise ConfigurationError(
            f"{what} takes parameter names (strings), not {sorted(out, key=repr)}"
        )
    return out


# -- the decorators ----------------------------------------------------------------


@overload
def step(fn: F, /) -> F: ...
@overload
def step(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    experiment: str | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    root: bool = False,
    log_return: bool = True,
    umlaut: Umlaut | None = None,
) -> Callable[[F], F]: ...
def step(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    experiment: str | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    root: bool = False,
    log_return: bool = True,
    umlaut: Umlaut | None = None,
) -> Any:
    """Track each call of a function or method as a training run: a child of the
    enclosing run, else a root run (see the module docs). Use it bare (``@step``)
    or with options (``@step(name="fit", exclude=["data"])``).

    :param name: the runs' name (default: the function's name, with its class for a
        method: ``Model.fit``).
    :param experiment: default: the enclosing run's, else ``UMLAUT_EXPERIMENT``,
        else ``"Default"``.
    :param include: record only these arguments as params (default: all; a first
        parameter named ``self`` or ``cls`` never is).
    :param exclude: never record these arguments.
    :param root: start a root run even inside another run.
    :param log_return: summarise the return value (a tag) and log the numbers of a
        returned mapping as metrics; False leaves the return value unread.
    :param umlaut: the facade of runs that have no enclosing run (default: the one
        given to :func:`set_default_umlaut`, else ``Umlaut()``). A child always
        goes to its parent's facade.
    """
    options = dict(name=name, experiment=experiment, include=include, exclude=exclude,
                   root=root, log_return=log_return, umlaut=umlaut)  # fmt: skip
    return _decorator(fn, "step", options)


@overload
def pipeline(fn: F, /) -> F: ...
@overload
def pipeline(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    experiment: str | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    root: bool = False,
    log_return: bool = True,
    umlaut: Umlaut | None = None,
) -> Callable[[F], F]: ...
def pipeline(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    experiment: str | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    root: bool = False,
    log_return: bool = True,
    umlaut: Umlaut | None = None,
) -> Any:
    """:func:`step` for the function that calls the steps: the same runs (the steps
    it calls become its children), tagged ``umlaut.step.kind = pipeline`` so a search
    finds the executions of a pipeline apart from their steps."""
    options = dict(name=name, experiment=experiment, include=include, exclude=exclude,
                   root=root, log_return=log_return, umlaut=umlaut)  # fmt: skip
    return _decorator(fn, "pipeline", options)


def _decorator(fn: Any, kind: str, options: dict[str, Any]) -> Any:
    if fn is None:
        return functools.partial(_decorate, kind=kind, options=options)
    return _decorate(fn, kind=kind, options=options)


def _decorate(target: Any, *, kind: str, options: dict[str, Any]) -> Any:
    if isinstance(target, (staticmethod, classmethod)):
        # Under the descriptor, so either order of the two decorators works.
        return type(target)(_decorate(target.__func__, kind=kind, options=options))
    if not callable(target) or inspect.isclass(target):
        raise TypeError(
            f"@{kind} decorates a function or method, not {target!r:.60}; pass options "
            f"by keyword (@{kind}(name=...)), and decorate a class's methods, not the class"
        )
    umlaut = options["umlaut"]
    if umlaut is not None and not callable(getattr(umlaut, "start_run", None)):
        raise ConfigurationError(f"@{kind}(umlaut=...) takes an Umlaut, not {umlaut!r:.60}")
    return wrap(_Step(target, kind=kind, **options))
