"""Who may see and change what: bearer tokens (the server's, with their scopes),
the sign-in cookie, and the CSRF check of every form that changes something.

A token comes in an ``Authorization: Bearer`` header (a proxy or a script) or in the
cookie the sign-in form sets: ``HttpOnly`` (no script reads it), ``SameSite=Strict``
(no other site's page sends it), ``Secure`` over HTTPS, scoped to the UI's path and
ending with the browser session. Pages need the ``read`` scope (``admin`` implies
it), or nothing with ``--no-auth``; promoting needs ``admin`` in every case, so
``--no-auth`` never opens a write.

Forms that change something (promote, sign in, sign out) carry a CSRF token: a
random value the UI sets in its own cookie and repeats in a hidden field (the
double-submit pattern, so several workers need no shared secret); the POST must
bring both, equal, and an ``Origin`` header, when the browser sends one, must be
this host.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from .._auth import TokenSet
from .errors import UiError

__all__ = ["CSRF_COOKIE", "TOKEN_COOKIE", "Access", "check_csrf", "identify", "require"]

log = logging.getLogger("umlaut.ui")

TOKEN_COOKIE = "umlaut_ui_token"
CSRF_COOKIE = "umlaut_ui_csrf"
_CSRF = re.compile(r"^[0-9a-f]{64}$")

Source = Literal["header", "cookie", "none"]
Scope = Literal["public", "read", "admin"]


@dataclass(frozen=True, slots=True)
class Access:
    """What the request's credential allows, and its CSRF token."""

    scopes: frozenset[str]
    source: Source
    #: ``ok``, ``missing`` (no token), ``unknown`` (a token no hash matches).
    state: str
    csrf: str
    #: The CSRF cookie is new: the response sets it.
    new_csrf: bool
    no_auth: bool
    #: Any token is configured at all (else signing in is impossible).
    tokens: bool

    @property
    def can_read(self) -> bool:
        return self.no_auth or bool(self.scopes & {"read", "admin"})

    @property
    def can_promote(self) -> bool:
        return "admin" in self.scopes

    @property
    def signed_in(self) -> bool:
        return self.source == "cookie" and self.state == "ok"


def identify(request: Request, tokens: TokenSet, no_auth: bool) -> Access:
    """The request's credential (the header wins over the cookie) and its scopes."""
    header = request.headers.get("authorization", "")
    kind, _, value = header.partition(" ")
    source: Source = "none"
    token = ""
    if kind.lower() == "bearer" and value.strip():
        source, token = "header", value.strip()
    elif request.cookies.get(TOKEN_COOKIE):
        source, token = "cookie", request.cookies[TOKEN_COOKIE]
    scopes: frozenset[str] = frozenset()
    state = "missing"
    if token:
        found = tokens.scopes_of(token)
        state = "unknown" if found is None else "ok"
        scopes = found or frozenset()
    csrf = request.cookies.get(CSRF_COOKIE, "")
    new_csrf = _CSRF.match(csrf) is None
    if new_csrf:
        csrf = secrets.token_hex(32)
    return Access(scopes, source, state, csrf, new_csrf, no_auth, bool(tokens))


def require(access: Access, scope: Scope, request: Request) -> None:
    """Refuse the request unless ``access`` holds ``scope``: 401 without a known
    token, 403 with one lacking the scope. Refusals are logged without the token."""
    if scope == "public":
        return
    if scope == "read" and access.can_read:
        return
    if scope == "admin" and access.can_promote:
        return
    if access.state != "ok":
        _refused(request, "no" if access.state == "missing" else "an unknown")
        if access.state == "unknown":
            raise UiError(401, "Sign in", "That token is not known; sign in with another.")
        what = "promote" if scope == "admin" else "see this page"
        raise UiError(401, "Sign in", f"Sign in with a token to {what}.")
    _refused(request, "an out-of-scope")
    needed = "admin" if scope == "admin" else "read"
    raise UiError(403, "Not allowed", f"This needs a token with the {needed} scope.")


def _refused(request: Request, what: str) -> None:
    client = request.client.host if request.client else "?"
    log.warning("refused %s %s from %s: %s token", request.method, request.url.path, client, what)


def check_csrf(request: Request, access: Access, form: Mapping[str, str]) -> None:
    """403 unless the form repeats the CSRF cookie and the origin is this host."""
    given = form.get("csrf", "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not given or not cookie or not hmac.compare_digest(given.encode(), cookie.encode()):
        raise UiError(
            403, "Form expired", "The form's security token did not match; reload the page."
        )
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        if urlsplit(origin).netloc != host:
            raise UiError(403, "Not allowed", "The form was sent from another site.")


def set_cookie(response: Response, request: Request, name: str, value: str, path: str) -> None:
    response.set_cookie(
        name,
        value,
        path=path or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request, name: str, path: str) -> None:
    response.delete_cookie(
        name,
        path=path or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
