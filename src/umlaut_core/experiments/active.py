"""``ActiveTrainingRun``: the explicit handle ``Umlaut.start_run`` returns.

Logging through the handle never talks to a store: each call checks its arguments in
the caller's thread and queues a write (see :mod:`.writer`), so a training loop pays
microseconds per metric and a store outage never interrupts it.
"""

from __future__ import annotations

import contextvars
import io
import json
import os
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError, InvalidNameError, ParamConflictError
from .context import _current
from .records import RunArtifact, RunStatus, TrainingRun
from .values import (
    check_key,
    check_metric_value,
    check_param,
    check_run_tags,
    check_step,
)
from .writes import ParamsLogged, RunEnded, TagsSet

if TYPE_CHECKING:
    from .._api import Umlaut
    from .runs import TrainingRuns

__all__ = ["ActiveTrainingRun"]

_keys: dict[str, str] = {}


def _timestamp_ms(timestamp: datetime | int | float | None) -> int:
    if timestamp is None:
        return time.time_ns() // 1_000_000
    if isinstance(timestamp, datetime):
        moment = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise ConfigurationError(
            f"timestamp must be a datetime or milliseconds since the epoch, not {timestamp!r:.60}"
        )
    return int(timestamp)


def _artifact_path(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 1000:
        raise InvalidNameError(
            f"an artifact name must be a non-empty relative path, not {name!r:.80}"
        )
    parts = name.replace("\\", "/").split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidNameError(
            f"artifact name {name!r:.80} must be a relative path without '.', '..' or empty parts"
        )
    for part in parts:
        check_key(part, "artifact path part")
    return "/".join(parts)


class ActiveTrainingRun:
    """One open training run: log params, metrics, tags and artifacts; open children.

    A context manager: leaving the block ends the run FINISHED, or FAILED when an
    ``Exception`` escapes (recorded as ``"Type: message"``, then re-raised unchanged),
    or KILLED for a ``KeyboardInterrupt``/``SystemExit`` and the like. Without ``with``,
    call :meth:`end`. The run is the current one of its context
    (:func:`~umlaut_core.experiments.context.current_run`) from ``start_run`` until it
    ends. Safe to use from several threads, with one caveat: automatic metric steps
    are counted per handle, so threads logging one key should pass ``step``.
    """

    def __init__(
        self,
        runs: TrainingRuns,
        run_id: str,
        experiment: str,
        name: str | None,
        parent_id: str | None,
        *,
        params: Mapping[str, Any] | None = None,
        steps: Mapping[str, int] | None = None,
    ) -> None:
        self._runs = runs
        self.run_id = run_id
        self.experiment = experiment
        self.name = name
        self.parent_id = parent_id
        self._params: dict[str, Any] = dict(params or {})
        self._steps: dict[str, int] = dict(steps or {})
        self._lock = threading.Lock()
        self._ended = False
        self._put = runs.writer.put
        self._point_id = runs.writer.point_id
        self._token: contextvars.Token[ActiveTrainingRun | None] | None = None
        self._previous: ActiveTrainingRun | None = None

    def __repr__(self) -> str:
        return (
            f"<ActiveTrainingRun {self.run_id} experiment={self.experiment!r} name={self.name!r}>"
        )

    @property
    def umlaut(self) -> Umlaut:
        """The facade this run writes through."""
        return self._runs.umlaut

    @property
    def ended(self) -> bool:
        return self._ended

    # -- context -----------------------------------------------------------------------

    def _make_current(self) -> None:
        self._previous = _current.get()
        self._token = _current.set(self)

    def __enter__(self) -> ActiveTrainingRun:
        if _current.get() is not self:  # e.g. ``run = start_run(...)`` in another context
            self._make_current()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is None:
            self.end()
        elif isinstance(exc, Exception):
            self.end(RunStatus.FAILED, error=exc)
        else:
            self.end(RunStatus.KILLED, error=exc)

    def _restore_context(self) -> None:
        if _current.get() is not self:
            return
        token, self._token = self._token, None
        try:
            if token is None:
                raise ValueError
            _current.reset(token)
        except ValueError:  # ended from another context than the one it started in
            _current.set(self._previous)

    # -- logging -----------------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Fix a param of this run. The same value again is a no-op; a different one
        raises :class:`~umlaut_core.ParamConflictError` (params never change)."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Fix several params at once (all checked before any is written)."""
        if not isinstance(params, Mapping):
            raise ConfigurationError(f"params must be a mapping, not {type(params).__name__}")
        fresh: dict[str, Any] = {}
        checked = {check_key(k, "param"): check_param(k, v) for k, v in params.items()}
        with self._lock:
            for key, value in checked.items():
                if key in self._params:
                    if self._params[key] != value:
                        raise ParamConflictError(
                            f"param {key!r} of training run {self.run_id} is already "
                            f"{_short(self._params[key])}, not {_short(value)}; params are "
                            f"fixed once logged: log it under another name, or start a new run"
                        )
                    continue
                fresh[key] = value
            self._params.update(fresh)
        if fresh:
            self._put(ParamsLogged(self.run_id, fresh))

    def log_metric(
        self,
        key: str,
        value: float,
        step: int | None = None,
        timestamp: datetime | int | None = None,
    ) -> None:
        """Record one value of a metric. ``step`` defaults to the key's previous step
        plus one (0 first); ``timestamp`` to now (a datetime, or ms since the epoch).
        NaN and ±inf are kept as they are."""
        clean = _keys.get(key) if type(key) is str else None
        if clean is None:
            clean = check_key(key, "metric")
            if len(_keys) < 100_000:
                _keys[key] = clean
        if type(value) is not float:
            value = check_metric_value(clean, value)
        if step is None:
            step = self._steps.get(clean, -1) + 1
        elif type(step) is not int:
            step = check_step(step)
        self._steps[clean] = step
        ms = time.time_ns() // 1_000_000 if timestamp is None else _timestamp_ms(timestamp)
        self._put((self.run_id, clean, value, step, ms, self._point_id()))

    def log_metrics(
        self,
        metrics: Mapping[str, float],
        step: int | None = None,
        timestamp: datetime | int | None = None,
    ) -> None:
        """Record several metrics at one step and time."""
        if not isinstance(metrics, Mapping):
            raise ConfigurationError(f"metrics must be a mapping, not {type(metrics).__name__}")
        ms = _timestamp_ms(timestamp)
        for key, value in metrics.items():
            self.log_metric(key, value, step, ms)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag (the last value set wins)."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        clean = check_run_tags(tags)
        if clean:
            self._put(TagsSet(self.run_id, clean))

    # -- artifacts ---------------------------------------------------------------------

    def log_artifact(
        self, data: bytes | str | os.PathLike[str], name: str | None = None
    ) -> RunArtifact:
        """Attach a file (a path) or bytes to the run under ``name`` (a relative path;
        a file's own name by default). Stored content-addressed in the artifact store,
        or by the experiment store itself when it keeps artifacts (MLflow)."""
        if isinstance(data, bytes | bytearray | memoryview):
            if name is None:
                raise InvalidNameError("log_artifact(bytes, name=...) needs a name")
            payload = bytes(data)
        else:
            path = Path(data)
            if not path.is_file():
                raise ConfigurationError(f"log_artifact: {str(path)!r} is not a file")
            payload = path.read_bytes()
            name = path.name if name is None else name
        return self._runs.put_artifact(self.run_id, _artifact_path(name), payload)

    def log_text(self, text: str, name: str) -> RunArtifact:
        """Attach text as a UTF-8 file."""
        if not isinstance(text, str):
            raise ConfigurationError(f"log_text takes a str, not {type(text).__name__}")
        return self.log_artifact(text.encode("utf-8", "surrogatepass"), name)

    def log_dict(self, obj: Any, name: str) -> RunArtifact:
        """Attach a JSON document (values encoded as umlaut encodes inputs)."""
        from ..encoding import to_jsonable

        body = json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, sort_keys=True)
        return self.log_artifact(body.encode(), name)

    def log_figure(self, figure: Any, name: str) -> RunArtifact:
        """Attach a matplotlib figure (as the name's format, PNG by default) or a
        plotly figure (as HTML)."""
        if hasattr(figure, "savefig"):
            buffer = io.BytesIO()
            suffix = Path(name).suffix.lstrip(".").lower() or "png"
            figure.savefig(buffer, format=suffix)
            return self.log_artifact(buffer.getvalue(), name)
        if hasattr(figure, "to_html"):
            return self.log_artifact(figure.to_html(include_plotlyjs="cdn").encode(), name)
        raise ConfigurationError(
            f"log_figure takes a matplotlib or plotly figure, not {type(figure).__name__}"
        )

    def log_input(self, dataset: Any, context: str = "training") -> None:
        """Record that this run used a dataset version (lineage; on MLflow it is the
        run's dataset input)."""
        from ..datasets.records import DatasetLink, DatasetVersion
        from ..naming import check_alias

        if not isinstance(dataset, DatasetVersion):
            raise ConfigurationError(
                f"log_input takes a DatasetVersion (from track_dataset or get_dataset), "
                f"not {type(dataset).__name__}"
            )
        link = DatasetLink(
            dataset.name, dataset.version, "training_run", check_alias(context),
            run_id=self.run_id,
        )  # fmt: skip
        self._runs.in_store()  # a store may file the link under the run (MLflow)
        self._runs.umlaut._datasets.add_links([link])

    # -- children, life ----------------------------------------------------------------

    def start_run(self, name: str | None = None, **options: Any) -> ActiveTrainingRun:
        """A child run of this one (same options as ``Umlaut.start_run``)."""
        options.setdefault("experiment", self.experiment)
        return self._runs.start(name=name, parent=self, **options)

    def end(
        self,
        status: RunStatus | str = RunStatus.FINISHED,
        error: BaseException | str | None = None,
        *,
        wait: bool = True,
    ) -> None:
        """End the run (once; later calls do nothing) and, with ``wait``, wait (up to
        ``exit_flush_timeout``) for its writes to be delivered."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        final = RunStatus(status)
        if not final.final:
            raise ConfigurationError("a run ends FINISHED, FAILED or KILLED, not RUNNING")
        text = _error_text(error)
        self._restore_context()
        self._put(RunEnded(self.run_id, final, datetime.now(UTC), text))
        self._runs.ended(self, wait=wait)

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything logged so far; False if it could not within ``timeout``."""
        return self._runs.flush(timeout)

    def info(self) -> TrainingRun:
        """The run as the store holds it now (after a flush)."""
        self.flush(self._runs.flush_timeout)
        return self._runs.get(self.run_id)

    def child_env(self) -> dict[str, str]:
        """Environment variables for a child process whose runs attach to this one:
        ``UMLAUT_PARENT_RUN_ID``, ``UMLAUT_EXPERIMENT`` and ``UMLAUT_TRACKING_URI``.
        The tracking URI is the real one (a password included), since the child must
        reach the store: pass the result to ``subprocess`` rather than printing it."""
        env = {"UMLAUT_PARENT_RUN_ID": self.run_id, "UMLAUT_EXPERIMENT": self.experiment}
        uri = self._runs.umlaut.settings.tracking_uri
        if uri:
            env["UMLAUT_TRACKING_URI"] = uri
        return env


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _error_text(error: BaseException | str | None) -> str | None:
    if error is None or isinstance(error, str):
        return error
    from .._calls import error_message, error_type

    # The same escaped, __str__-proof text an audit record keeps for a model's error.
    return f"{error_type(error)}: {error_message(error)}"
