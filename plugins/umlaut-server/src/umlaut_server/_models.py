"""The served models and the one way the server calls them: the ``Umlaut`` facade.

Every model call is ``Umlaut.run_model`` (or ``run_batch``) in a thread of a fixed
pool, never on the event loop, with a :class:`~umlaut_core.deadline.Deadline` of
``--timeout`` seconds: when it passes the request is answered 504 at once and the
call, still running in its thread, is recorded as a ``DeadlineExceededError`` when
it ends (Python cannot stop a thread; a model that never returns holds its thread
for good, so the pool shrinks by one until the server restarts). The facade spools
each record (``delivery="spooled"``), so no response waits on a remote store, and a
stage resolution is reused for ``resolve_ttl`` seconds, so a stage move made
anywhere reaches every worker within that time without a restart. With
``--batch-rows`` concurrent calls of one model and selector go through
:mod:`~umlaut_server._batching` instead: one ``run_batch``, a ``Deadline`` each.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from umlaut_core import Umlaut
from umlaut_core.deadline import Deadline
from umlaut_core.encoding import to_jsonable
from umlaut_core.exceptions import (
    ArtifactError,
    BackendError,
    ClosedError,
    DeadlineExceededError,
    EncodingError,
    InvalidNameError,
    NotFoundError,
    PackingError,
    UmlautError,
)

from ._batching import Batcher
from ._config import ModelSpec, ServeConfig
from ._errors import ApiError, bad_request, not_found

__all__ = ["CallResult", "ModelService"]

T = TypeVar("T")
log = logging.getLogger("umlaut.serve")


@dataclass(frozen=True)
class CallResult:
    """What a model call answered: its output as the audit record holds it (JSON
    text), the version that ran and the record's id."""

    output_json: str
    version: int
    record_id: str


class ModelService:
    """Served models, one facade, one thread pool (per worker process)."""

    def __init__(
        self,
        config: ServeConfig,
        umlaut: Umlaut | None = None,
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        self.config = config
        options: dict[str, Any] = {"delivery": "spooled", **config.umlaut_options}
        if config.resolve_ttl is not None:
            options["resolve_ttl"] = config.resolve_ttl
        self.umlaut = umlaut or Umlaut(
            config.tracking_uri, config.artifact_uri, profile=config.profile, **options
        )
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=config.threads, thread_name_prefix="umlaut-serve"
        )
        self.specs = {spec.name: spec for spec in config.models}
        self.batcher = (
            Batcher(self.umlaut, self.pool, config.batch_rows, config.threads, on_batch)
            if config.batch_rows
            else None
        )

    def close(self, timeout: float) -> None:
        """Within ``timeout`` seconds, wait for running model calls, then ship the
        spool; then close the facade (which tries ``exit_flush_timeout`` more if records
        are left, e.g. the store is down; the rest stays in the spool file for the next
        process). A call still running after that (a model that hangs) cannot write its
        record any more: its client was answered 504 long before."""
        if self.batcher is not None:
            self.batcher.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        end = time.monotonic() + timeout
        for thread in list(getattr(self.pool, "_threads", ())):
            thread.join(max(0.0, end - time.monotonic()))
            if thread.is_alive():
                log.warning("a model call is still running at shutdown; its record is lost")
        left = end - time.monotonic()
        if left > 0 and not self.umlaut.flush(left):
            log.warning("the spool was not shipped within --graceful-timeout; it stays queued")
        self.umlaut.close()

    # -- which model ----------------------------------------------------------------

    def spec(self, name: str) -> ModelSpec:
        spec = self.specs.get(name)
        if spec is not None:
            return spec
        if self.config.all_models:
            return ModelSpec(name, stage=self.config.default_stage)
        raise not_found(f"the model {name!r} is not served here; GET /v1/models lists them")

    def selector(
        self, name: str, version: int | None, stage: str | None
    ) -> tuple[int | None, str | None]:
        """The request's selector, else the served model's default."""
        if version is not None or stage is not None:
            self.spec(name)  # refuse unserved models first
            return version, stage
        spec = self.spec(name)
        return spec.version, spec.stage

    # -- calls ----------------------------------------------------------------------

    async def run(
        self,
        name: str,
        model_input: Any,
        *,
        version: int | None,
        stage: str | None,
        reference_id: str,
    ) -> CallResult:
        version, stage = self.selector(name, version, stage)
        deadline = Deadline(self.config.timeout)
        if self.batcher is not None:
            queued = self.batcher.submit(name, version, stage, model_input, reference_id, deadline)
            return self._result(await self._until(queued, deadline), deadline, name)
        run_model = self.umlaut.run_model

        def call() -> BaseException | None:
            try:
                run_model(
                    name,
                    model_input,
                    version=version,
                    stage=stage,
                    reference_id=reference_id,
                    deadline=deadline,
                )
            except BaseException as exc:
                return exc
            return None

        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self.pool, call)
        except RuntimeError:  # the pool is shut down: the server is stopping
            raise ApiError(503, "TEMPORARILY_UNAVAILABLE", "the server is shutting down") from None
        return self._result(await self._until(future, deadline), deadline, name)

    def _result(self, error: BaseException | None, deadline: Deadline, name: str) -> CallResult:
        """The call's answer, from the record it wrote (``deadline.record``)."""
        record = deadline.record
        if error is None and record is not None and record.output_json is not None:
            return CallResult(record.output_json, record.version, record.id)
        raise self._api_error(error, record.version if record is not None else None, name)

    async def _until(self, future: asyncio.Future[T], *deadlines: Deadline) -> T:
        """The call's outcome, or a 504 the moment its deadlines pass first (a call
        that had not finished then records itself as a ``DeadlineExceededError``; the
        inputs of a batch that finished in time keep their records)."""
        if not deadlines:
            return await future
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()

        def settle(f: asyncio.Future[T]) -> None:
            if not done.done():
                if f.cancelled():
                    done.cancel()
                else:
                    done.set_result(f.result())

        def expire() -> None:
            late = [d.expire() for d in deadlines]  # every one: each input is told
            if not done.done() and any(late):
                done.set_exception(
                    ApiError(
                        504,
                        "DEADLINE_EXCEEDED",
                        f"the model did not answer within {self.config.timeout:g} s; the "
                        f"call is recorded as an error (DeadlineExceededError)",
                    )
                )

        future.add_done_callback(settle)
        timer = loop.call_later(min(d.remaining() for d in deadlines), expire)
        try:
            return await done
        finally:
            timer.cancel()

    async def run_batch(
        self,
        name: str,
        inputs: list[Any],
        *,
        version: int | None,
        stage: str | None,
        reference_id: str,
    ) -> tuple[int, list[tuple[bool, Any]]]:
        """Every input through one version (resolved once; the records name it as
        ``version=N`` with the tag ``serve.selector`` giving the request's selector),
        all records in one transaction; ``(version, [(ok, output or error type)])``."""
        version, stage = self.selector(name, version, stage)
        selector = f"version={version}" if version is not None else (
            f"stage={stage}" if stage is not None else "latest"
        )  # fmt: skip
        umlaut = self.umlaut
        # One deadline per input, all ending --timeout from now: an input still
        # running or waiting when it passes is recorded as a DeadlineExceededError.
        deadlines = [Deadline(self.config.timeout) for _ in inputs]

        def call() -> tuple[int, list[Any]] | BaseException:
            try:
                mv = umlaut.get_version(name, version=version, stage=stage)
                outputs = umlaut.run_batch(
                    name,
                    inputs,
                    version=mv.version,
                    reference_ids=[reference_id] * len(inputs),
                    tags={"serve.selector": selector},
                    on_error="continue",
                    deadlines=deadlines,
                )
                return mv.version, outputs
            except BaseException as exc:
                return exc

        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self.pool, call)
        except RuntimeError:
            raise ApiError(503, "TEMPORARILY_UNAVAILABLE", "the server is shutting down") from None
        result = await self._until(future, *deadlines)
        if isinstance(result, BaseException):
            raise self._api_error(result, None, name)
        number, outputs = result
        items: list[tuple[bool, Any]] = []
        for output in outputs:
            if isinstance(output, BaseException):
                items.append((False, _type_name(output)))
            else:
                items.append((True, to_jsonable(output)))
        return number, items

    async def in_thread(self, function: Callable[[], Any]) -> Any:
        """A facade read (listing, metadata) in the pool, its errors mapped."""
        loop = asyncio.get_running_loop()

        def call() -> Any:
            try:
                return function(), None
            except BaseException as exc:
                return None, exc

        value, error = await loop.run_in_executor(self.pool, call)
        if error is not None:
            raise self._api_error(error, None, None)
        return value

    # -- errors ---------------------------------------------------------------------

    def _api_error(
        self, error: BaseException | None, version: int | None, name: str | None
    ) -> ApiError:
        if isinstance(error, ApiError):
            return error
        if isinstance(error, DeadlineExceededError):
            return ApiError(
                504,
                "DEADLINE_EXCEEDED",
                f"the model did not answer within {self.config.timeout:g} s; the call is "
                f"recorded as an error (DeadlineExceededError)",
                version=version,
            )
        if version is not None:  # the model ran and raised: its record holds the message
            error_type = _type_name(error) if error is not None else "an output that is not JSON"
            failure = ApiError(
                400,
                "BAD_REQUEST",
                f"the model raised {error_type}; its message is in the audit record "
                f"(query it by this response's X-Request-ID)",
                version=version,
            )
            return failure
        if isinstance(error, NotFoundError):
            return not_found(str(error))
        if isinstance(error, (EncodingError, InvalidNameError)):
            return bad_request(
                f"the input or a name was refused before the model ran ({type(error).__name__}); "
                f"inputs must be JSON values under umlaut's encoding"
            )
        if isinstance(error, ClosedError):
            return ApiError(503, "TEMPORARILY_UNAVAILABLE", "the server is shutting down")
        if isinstance(error, BackendError):
            log.warning("the registry or the spool failed: %s", error)
            return ApiError(
                503,
                "TEMPORARILY_UNAVAILABLE",
                f"the model registry or the audit spool is unavailable ({type(error).__name__}); "
                f"retry later",
            )
        if isinstance(error, (ArtifactError, PackingError)):
            log.error("model %r cannot be loaded: %s", name, error)
            return ApiError(
                500,
                "INTERNAL_ERROR",
                f"the model's bundle cannot be loaded ({type(error).__name__}); see the server log",
            )
        if isinstance(error, UmlautError):
            log.error("umlaut error: %s", error)
        else:
            log.error("unexpected error", exc_info=error)
        return ApiError(500, "INTERNAL_ERROR", "internal error; see the server log")


def _type_name(error: BaseException) -> str:
    kind = type(error)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
