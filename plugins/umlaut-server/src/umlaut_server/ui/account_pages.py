"""Signing in and out, and the page for a path that is none of the UI's."""

from __future__ import annotations

import logging

from starlette.responses import RedirectResponse, Response

from .access import TOKEN_COOKIE, clear_cookie, set_cookie
from .app import Page, PageRequest
from .errors import UiError

__all__ = ["login", "login_form", "logout", "no_such_page"]

log = logging.getLogger("umlaut.ui")


def _next(page: PageRequest, given: str | None) -> str:
    """Where to go after signing in: a path of this UI, else its home (never another
    site: ``//evil.example`` and ``https://…`` are refused)."""
    home = page.links.home()
    if not given or not given.startswith(page.base + "/") or given.startswith("//"):
        return home
    if "\\" in given or any(ord(c) < 0x20 for c in given):
        return home
    return given


def login_form(page: PageRequest) -> Page:
    context = {"message": None, "next": _next(page, page.query.get("next"))}
    return Page("login.html", context, title="Sign in")


def login(page: PageRequest) -> Page | Response:
    token = page.form.get("token", "").strip()
    target = _next(page, page.form.get("next"))
    scopes = page.settings.tokens.scopes_of(token) if token else None
    if scopes is None:
        client = page.request.client.host if page.request.client else "?"
        log.warning("refused a sign-in from %s: %s token", client, "an unknown" if token else "no")
        message = "That token is not known." if token else "Enter a token."
        return Page("login.html", {"message": message, "next": target}, title="Sign in", status=401)
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, page.request, TOKEN_COOKIE, token, page.base)
    return response


def logout(page: PageRequest) -> Response:
    response = RedirectResponse(page.links.login(), status_code=303)
    clear_cookie(response, page.request, TOKEN_COOKIE, page.base)
    return response


def no_such_page(page: PageRequest) -> Page:
    raise UiError(404, "Not found", f"There is no page at {page.request.url.path}.")
