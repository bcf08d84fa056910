"""The UI's routes and the one wrapper every page goes through.

A page is a plain function ``(PageRequest) -> Page | Response`` that reads through
the facade; the wrapper (``Ui.route``) runs it in a worker thread (the facade
blocks), checks the credential and, for a POST, the form's CSRF token, turns
exceptions into error pages (never a traceback), renders the template, and adds the
``Server-Timing`` header (``app``: reading the store and preparing the page,
``render``: the template, ``total``: the whole request) and the security headers.

Pages live under one prefix (``/ui``), mounted in ``umlaut serve --ui`` or served
by ``umlaut ui``; links are built from the mount's ``root_path``, so a reverse
proxy's prefix carries through. The host app's lifespan calls :meth:`Ui.start` (the
warm-up, :mod:`.warm`) and :meth:`Ui.stop`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from umlaut_core import Umlaut
from umlaut_core.clock import utcnow
from umlaut_core.exceptions import BackendNotFoundError

from .._auth import TokenSet
from .access import CSRF_COOKIE, Access, Scope, check_csrf, identify, require, set_cookie
from .cache import Revalidating
from .errors import UiError, from_exception
from .templating import Links, environment
from .traffic import Traffic

__all__ = ["Page", "PageRequest", "Ui", "UiSettings", "create_ui_app", "ui_mount"]

log = logging.getLogger("umlaut.ui")

STATIC = Path(__file__).parent / "static"
#: Where the UI lives in both ``umlaut ui`` and ``umlaut serve --ui``.
PREFIX = "/ui"

_SECURITY_HEADERS = {
    # Pages show audit data: no cache keeps them after sign-out.
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # No script at all, styles from our own file only: injected markup can do nothing.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


@dataclass(frozen=True)
class UiSettings:
    """How the UI behaves (``umlaut ui`` and ``umlaut serve --ui`` build one).

    :param tokens: the server's token hashes with their scopes.
    :param no_auth: pages open without a token (promoting still needs ``admin``).
    :param page_size: rows per page of the audit trail and the training runs.
    :param export_page: records fetched per step of a CSV/JSONL export.
    :param traffic_ttl: seconds a settled hour's counts are reused (models page).
    :param traffic_live_ttl: seconds the current hour's counts are reused.
    :param traffic_cap: records paged per model on a tracker that cannot count.
    :param report_ttl: seconds a drift report is shown for the same model, selector
        and window before a view starts its refresh (the view still shows it, and
        the next ones until the refresh is done).
    :param warm_up: at startup (:meth:`Ui.start`), count the models page's traffic
        before taking requests, then compute each listed model's default drift
        report in the background, so no first view meets cold work.
    :param warm_up_timeout: seconds startup waits at most for the traffic counts.
    """

    tokens: TokenSet = field(default_factory=lambda: TokenSet(()))
    no_auth: bool = False
    page_size: int = 50
    export_page: int = 1000
    traffic_ttl: float = 900.0
    traffic_live_ttl: float = 10.0
    traffic_cap: int = 5000
    report_ttl: float = 60.0
    warm_up: bool = False
    warm_up_timeout: float = 10.0
    max_form_bytes: int = 64 * 1024


@dataclass
class Page:
    """What a page answers: a template, its values, the status, its title and the
    navigation item it belongs to."""

    template: str
    context: dict[str, Any]
    title: str
    nav: str = ""
    status: int = 200


class PageRequest:
    """One request as a page sees it: the request, the UI, the credential, the form."""

    def __init__(self, request: Request, ui: Ui, access: Access, form: dict[str, str]) -> None:
        self.request = request
        self.ui = ui
        self.access = access
        self.form = form
        self.base: str = request.scope.get("root_path", "")
        self.links = Links(self.base)
        self.query: dict[str, str] = dict(request.query_params)
        self.now = utcnow()

    @property
    def um(self) -> Umlaut:
        return self.ui.umlaut

    @property
    def settings(self) -> UiSettings:
        return self.ui.settings

    def path(self, name: str) -> Any:
        return self.request.path_params[name]

    def query_list(self, key: str) -> list[str]:
        return self.request.query_params.getlist(key)

    def here(self) -> str:
        """This page's path and query, for a sign-in form to come back to."""
        url = self.request.url
        return url.path + (f"?{url.query}" if url.query else "")


Handler = Callable[[PageRequest], "Page | Response"]


class Ui:
    """The UI over one facade: its routes, templates, traffic counts and drift
    reports; :meth:`start` and :meth:`stop` belong in the host app's lifespan."""

    def __init__(self, umlaut: Umlaut, settings: UiSettings | None = None) -> None:
        self.umlaut = umlaut
        self.settings = settings or UiSettings()
        self.env = environment()
        self.traffic = Traffic(
            umlaut,
            ttl=self.settings.traffic_ttl,
            live_ttl=self.settings.traffic_live_ttl,
            cap=self.settings.traffic_cap,
        )
        self.reports: Revalidating[Any] = Revalidating(self.settings.report_ttl)
        self.store = umlaut.tracker.uri  # safe to print by the Tracker contract
        from .. import __version__

        self.version = __version__

    async def start(self) -> None:
        """The lifespan's startup: the warm-up, when ``settings.warm_up``."""
        if self.settings.warm_up:
            from .warm import warm_up

            await warm_up(self)

    def stop(self) -> None:
        """The lifespan's shutdown: no more drift reports start."""
        self.reports.close()

    def mount(self) -> Mount:
        """These pages as a ``Mount`` at ``/ui`` for a Starlette app."""
        return Mount(PREFIX, routes=self.routes())

    def routes(self) -> list[BaseRoute]:
        """Every page's route, relative to the mount's prefix."""
        from . import (
            account_pages,
            audit_pages,
            data_pages,
            drift_pages,
            model_pages,
            training_pages,
        )

        r = self.route
        get, post = ["GET"], ["POST"]
        return [
            Route("/", r(model_pages.models), methods=get),
            Route("/models/{name:path}", r(model_pages.model), methods=get),
            Route("/versions/{version:int}/{name:path}", r(model_pages.version), methods=get),
            Route(
                "/versions/{version:int}/{name:path}",
                r(model_pages.promote, scope="admin"),
                methods=post,
            ),
            Route("/drift/{name:path}", r(drift_pages.drift, concern="datasets"), methods=get),
            Route("/records", r(audit_pages.records), methods=get),
            Route("/records.csv", r(audit_pages.export_csv), methods=get),
            Route("/records.jsonl", r(audit_pages.export_jsonl), methods=get),
            Route("/records/{record_id}.json", r(audit_pages.record_json), methods=get),
            Route("/records/{record_id}", r(audit_pages.record), methods=get),
            Route("/training-runs", r(training_pages.runs, concern="training runs"), methods=get),
            Route(
                "/training-runs/compare",
                r(training_pages.compare, concern="training runs"),
                methods=get,
            ),
            Route(
                "/training-runs/{run_id}",
                r(training_pages.run, concern="training runs"),
                methods=get,
            ),
            Route("/datasets", r(data_pages.datasets, concern="datasets"), methods=get),
            Route("/datasets/{name:path}", r(data_pages.dataset, concern="datasets"), methods=get),
            Route("/login", r(account_pages.login_form, scope="public"), methods=get),
            Route("/login", r(account_pages.login, scope="public"), methods=post),
            Route("/logout", r(account_pages.logout, scope="public"), methods=post),
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
            Route("/{rest:path}", r(account_pages.no_such_page, scope="public"), methods=get),
        ]

    # -- the wrapper ----------------------------------------------------------------

    def route(
        self, handler: Handler, *, scope: Scope = "read", concern: str | None = None
    ) -> Callable[[Request], Any]:
        """``handler`` as a Starlette endpoint, through the wrapper described above."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            form: dict[str, str] | UiError = {}
            if request.method == "POST":
                form = await self._read_form(request)
            response: Response = await run_in_threadpool(
                self._answer, handler, request, form, scope, concern
            )
            timing = response.headers.get("server-timing", "")
            total = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"{timing}, total;dur={total:.2f}".lstrip(", ")
            return response

        return endpoint

    async def _read_form(self, request: Request) -> dict[str, str] | UiError:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return UiError(415, "Unsupported form", "Send the form as the page does.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.settings.max_form_bytes:
                return UiError(413, "Form too large", "The form holds more than a page sends.")
        try:
            pairs = parse_qsl(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                max_num_fields=50,
            )  # fmt: skip
        except (UnicodeDecodeError, ValueError):
            return UiError(400, "Bad form", "The form could not be read.")
        return dict(pairs)

    def _answer(
        self,
        handler: Handler,
        request: Request,
        form: dict[str, str] | UiError,
        scope: Scope,
        concern: str | None,
    ) -> Response:
        started = time.perf_counter()
        access = identify(request, self.settings.tokens, self.settings.no_auth)
        page = PageRequest(request, self, access, form if isinstance(form, dict) else {})
        try:
            require(access, scope, request)  # first: a refused caller learns nothing more
            if isinstance(form, UiError):
                raise form
            if request.method == "POST":
                check_csrf(request, access, page.form)
            result = handler(page)
        except BackendNotFoundError as exc:
            result = (
                self.missing(concern, str(exc))
                if concern
                else self.error(from_exception(exc, _where(request)), page)
            )
        except Exception as exc:
            result = self.error(from_exception(exc, _where(request)), page)
        prepared = time.perf_counter()
        response = self.render(page, result) if isinstance(result, Page) else result
        rendered = time.perf_counter()
        for key, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if access.new_csrf and isinstance(result, Page):
            set_cookie(response, request, CSRF_COOKIE, access.csrf, page.base)
        response.headers["Server-Timing"] = (
            f"app;dur={(prepared - started) * 1000:.2f}, "
            f"render;dur={(rendered - prepared) * 1000:.2f}"
        )
        return response

    def render(self, page: PageRequest, result: Page) -> HTMLResponse:
        """A page's template rendered with its values and the ones every page has."""
        template = self.env.get_template(result.template)
        html = template.render(
            u=page.links,
            access=page.access,
            csrf=page.access.csrf,
            title=result.title,
            nav=result.nav,
            store=self.store,
            server_version=self.version,
            here=page.here(),
            **result.context,
        )
        response = HTMLResponse(html, status_code=result.status)
        if result.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="umlaut"'
        return response

    def error(self, error: UiError, page: PageRequest) -> Page:
        """The error page for ``error`` (the sign-in form for a 401)."""
        if error.status == 401:  # the sign-in form, coming back here after
            back = page.here() if page.request.method == "GET" else page.request.url.path
            return Page(
                "login.html", {"message": error.message, "next": back}, title="Sign in", status=401
            )
        context = {"heading": error.title, "message": error.message, "status": str(error.status)}
        return Page("error.html", context, title=error.title, status=error.status)

    def missing(self, concern: str, message: str) -> Page:
        """The page saying this backend keeps no ``concern`` (training runs, datasets)."""
        context = {"concern": concern, "message": message}
        nav = "training-runs" if concern == "training runs" else "datasets"
        return Page("missing.html", context, title=f"No {concern} here", nav=nav)


def _where(request: Request) -> str:
    return f"{request.method} {request.url.path}"


def ui_mount(umlaut: Umlaut, settings: UiSettings | None = None) -> Mount:
    """The UI as a ``Mount`` at ``/ui`` for another Starlette app, which keeps owning
    ``umlaut``. It warms nothing up: for that, build a :class:`Ui`, add its
    :meth:`~Ui.mount` and call :meth:`~Ui.start`/:meth:`~Ui.stop` in the app's
    lifespan (as ``umlaut serve --ui`` does)."""
    return Ui(umlaut, settings).mount()


def create_ui_app(
    umlaut: Umlaut, settings: UiSettings | None = None, *, close: bool = False
) -> Starlette:
    """The UI alone (``umlaut ui``): pages under ``/ui``, ``/`` redirecting there;
    its lifespan runs :meth:`Ui.start` (``app.state.ui``) and :meth:`Ui.stop`.

    :param close: close ``umlaut`` when the app shuts down (ASGI lifespan).
    """
    ui = Ui(umlaut, settings)

    async def home(request: Request) -> Response:
        return RedirectResponse(request.scope.get("root_path", "") + PREFIX + "/", 307)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await ui.start()
        try:
            yield
        finally:
            ui.stop()
            if close:
                umlaut.close()

    app = Starlette(routes=[Route("/", home, methods=["GET"]), ui.mount()], lifespan=lifespan)
    app.state.umlaut = umlaut
    app.state.ui = ui
    return app
