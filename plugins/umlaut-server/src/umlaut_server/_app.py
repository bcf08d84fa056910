"""The ASGI application: routes of every protocol, each wrapped once for request ids,
authentication, errors, metrics and the access log (no middleware stack: a wrapper
per route costs less per request)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from umlaut_core import Umlaut

from . import _mlflow, _native, _openapi, _v2
from ._accesslog import AccessLog
from ._config import ServeConfig
from ._errors import ApiError, invalid
from ._http import Ctx, error_response
from ._metrics import Metrics
from ._models import ModelService

__all__ = ["Server", "app_from_environment", "create_app"]

log = logging.getLogger("umlaut.serve")
_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,200}$")

Handler = Callable[[Request, Ctx], Awaitable[Response]]


def _version() -> str:
    try:
        return version("umlaut-server")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


class Server:
    """One worker's state: configuration, models, metrics, access log."""

    def __init__(self, config: ServeConfig, umlaut: Umlaut | None = None) -> None:
        self.config = config
        self.metrics = Metrics(config.metrics_dir)
        self.service = ModelService(config, umlaut, on_batch=self.metrics.count_batch)
        self.access = AccessLog(config.access_log)
        self.version = _version()
        self.stopping = False

    def close(self) -> None:
        self.stopping = True
        try:
            self.service.close(self.config.graceful_timeout)
        finally:
            self.metrics.maybe_dump(force=True)
            self.access.close()

    def spool(self) -> tuple[int | None, float | None]:
        try:
            status = self.service.umlaut.pending()
        except Exception:  # a metrics scrape must not fail on a spool error
            return None, None
        return status.depth, status.oldest_age_s

    # -- the per-route wrapper ---------------------------------------------------------

    def endpoint(self, protocol: str, scope: str | None, handler: Handler) -> Any:
        metrics, access, tokens = self.metrics, self.access, self.config.tokens
        need_auth = scope is not None and not self.config.no_auth

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            given = request.headers.get("x-request-id")
            bad_id = given is not None and _REQUEST_ID.match(given) is None
            ctx = Ctx(self, given if given and not bad_id else _new_id(), protocol)
            metrics.in_flight += 1
            try:
                if bad_id:
                    raise invalid("X-Request-ID must be 1 to 200 visible ASCII characters")
                if need_auth:
                    self._authorize(request, scope or "", tokens, ctx)
                elif scope is not None:
                    ctx.auth = "off"
                response = await handler(request, ctx)
            except ApiError as error:
                ctx.error_code = error.error_code
                if error.version is not None:
                    ctx.version = error.version
                elif error.status == 404:
                    ctx.model = ""  # only models that exist become metric labels
                response = error_response(error, protocol)
            except Exception:
                log.exception("unexpected error in %s %s", request.method, request.url.path)
                ctx.error_code = "INTERNAL_ERROR"
                response = error_response(
                    ApiError(500, "INTERNAL_ERROR", "internal error; see the server log"),
                    protocol,
                )
            finally:
                metrics.in_flight -= 1
            headers = response.headers
            headers["X-Request-ID"] = ctx.request_id
            if ctx.model and ctx.version is not None:
                headers["X-Umlaut-Model"] = _header_safe(ctx.model)
                headers["X-Umlaut-Version"] = str(ctx.version)
            if ctx.record_id is not None:
                headers["X-Umlaut-Record-ID"] = ctx.record_id
            elapsed = time.perf_counter() - started
            status = response.status_code
            metrics.count_http(status)
            if ctx.model:
                version = "" if ctx.version is None else str(ctx.version)
                metrics.observe(ctx.model, version, protocol, status, elapsed)
            if not access.enabled:  # request.url alone costs ~10 µs a request
                return response
            access.write(
                request_id=ctx.request_id,
                method=request.method,
                path=request.url.path,
                status=status,
                duration_ms=round(elapsed * 1000, 3),
                protocol=protocol,
                model=ctx.model or None,
                version=ctx.version,
                bytes_in=int(request.headers.get("content-length") or 0),
                bytes_out=len(response.body),
                client=request.client.host if request.client else None,
                error_code=ctx.error_code,
                auth=ctx.auth,
            )
            return response

        return endpoint

    def _authorize(self, request: Request, scope: str, tokens: Any, ctx: Ctx) -> None:
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            self._refuse("missing", request, ctx)
            raise ApiError(401, "UNAUTHENTICATED", "send Authorization: Bearer <token>")
        scopes = tokens.scopes_of(token.strip())
        if scopes is None:
            self._refuse("unknown", request, ctx)
            raise ApiError(401, "UNAUTHENTICATED", "the bearer token is not known")
        if scope not in scopes:
            self._refuse("scope", request, ctx)
            raise ApiError(403, "PERMISSION_DENIED", f"the token lacks the scope {scope!r}")
        ctx.auth = "ok"

    def _refuse(self, reason: str, request: Request, ctx: Ctx) -> None:
        ctx.auth = reason
        self.metrics.count_refused(reason)
        log.warning(
            "refused %s %s from %s: %s token",
            request.method,
            request.url.path,
            request.client.host if request.client else "?",
            {"missing": "no", "unknown": "an unknown", "scope": "an out-of-scope"}[reason],
        )

    # -- operations routes --------------------------------------------------------------

    async def ping(self, request: Request, ctx: Ctx) -> Response:
        if self.stopping:
            raise ApiError(503, "TEMPORARILY_UNAVAILABLE", "the server is shutting down")
        return Response("\n", media_type="application/json")

    async def server_version(self, request: Request, ctx: Ctx) -> Response:
        return Response(self.version, media_type="text/plain")

    async def metrics_text(self, request: Request, ctx: Ctx) -> Response:
        depth, oldest = self.spool()
        return Response(self.metrics.render(depth, oldest), media_type="text/plain; version=0.0.4")

    async def not_found(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        message = (
            f"no route {request.method} {request.url.path}"
            if status != 405
            else f"{request.method} is not allowed on {request.url.path}"
        )
        error = ApiError(status, "ENDPOINT_NOT_FOUND", message)
        path = request.url.path
        protocol = "v2" if path.startswith("/v2") else "v1" if path.startswith("/v1") else "ops"
        response = error_response(error, protocol)
        rid = request.headers.get("x-request-id")
        response.headers["X-Request-ID"] = rid if rid and _REQUEST_ID.match(rid) else _new_id()
        self.metrics.count_http(status)
        self.access.write(
            request_id=response.headers["X-Request-ID"],
            method=request.method,
            path=path,
            status=status,
            duration_ms=0.0,
            protocol=protocol,
            model=None,
            version=None,
            bytes_in=int(request.headers.get("content-length") or 0),
            bytes_out=len(response.body),
            client=request.client.host if request.client else None,
            error_code="ENDPOINT_NOT_FOUND",
            auth="none",
        )
        return response


_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count(1)


def _new_id() -> str:
    """A request id for a request that brought none: 16 random hex digits per process
    (fresh after a fork), then a counter; unique without a system call per request."""
    return f"{_PREFIX}{next(_COUNTER):08x}"


def _header_safe(text: str) -> str:
    """A model name as an HTTP header value (latin-1, no line breaks)."""
    safe = text.encode("latin-1", "backslashreplace").decode("latin-1")
    return safe.replace("\r", " ").replace("\n", " ")


def create_app(config: ServeConfig, umlaut: Umlaut | None = None) -> Starlette:
    """The ASGI app for ``config`` (checked), opening its own ``Umlaut`` unless given
    one; closing it (ASGI lifespan shutdown) drains the model threads and closes the
    facade, which ships what it can of the spool."""
    config.check()
    server = Server(config, umlaut)
    e = server.endpoint
    routes: list[BaseRoute] = [
        Route("/ping", e("ops", None, server.ping), methods=["GET"]),
        Route("/health", e("ops", None, server.ping), methods=["GET"]),
        Route("/version", e("ops", None, server.server_version), methods=["GET"]),
        Route("/metrics", e("ops", "read", server.metrics_text), methods=["GET"]),
        Route("/openapi.json", e("ops", "read", _openapi.document), methods=["GET"]),
        Route("/docs", e("ops", "read", _openapi.docs_page), methods=["GET"]),
        *_mlflow.routes(e),
        *_native.routes(e),
        *_v2.routes(e),
    ]
    ui = None
    if config.ui:  # imported only when asked for: jinja2 stays off the scoring path
        from .ui import Ui, UiSettings

        settings = UiSettings(config.tokens, no_auth=config.no_auth, warm_up=True)
        ui = Ui(server.service.umlaut, settings)
        routes.append(ui.mount())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await _native.warm_up(server)
        if ui is not None:
            await ui.start()
        dumper = None
        if config.metrics_dir:  # several workers: publish this one's counters twice a second
            dumper = asyncio.get_running_loop().create_task(_publish(server.metrics))
        try:
            yield
        finally:
            if dumper is not None:
                dumper.cancel()
            if ui is not None:
                ui.stop()
            server.close()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: server.not_found, 405: server.not_found},
    )
    app.state.server = server
    return app


async def _publish(metrics: Metrics) -> None:
    while True:
        await asyncio.sleep(0.5)
        metrics.maybe_dump(force=True)


def app_from_environment() -> Starlette:
    """uvicorn's factory for worker processes: the config from ``UMLAUT_SERVE_CONFIG``."""
    from ._cli import configure_logging

    configure_logging()
    return create_app(ServeConfig.from_environment())
