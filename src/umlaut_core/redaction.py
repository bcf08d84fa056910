"""Credentials out of everything umlaut shows: URIs, option tables, error text.

:func:`redact` reads each form the database and HTTP drivers accept rather than
matching one pattern, because a password may hold any character (an unencoded ``/``,
``#``, ``?`` or ``@`` among them) and credentials also travel in query strings and
libpq ``key=value`` DSNs. Over-masking is preferred to leaking.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_plus

__all__ = ["looks_secret", "redact"]

_MASK = "***"

#: A name that looks like it holds a secret: an option, a query key, a libpq keyword.
_SECRET_NAME = re.compile(
    r"pass|pwd|secret|token|key|credential|signature|auth|^sig$|session", re.IGNORECASE
)
#: Where a URI starts inside free text (an error message, a log line).
_URI_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: ``+`` schemes written without ``//``: ``mlflow+user:pass@host`` keeps ``mlflow+``.
_PLUS_PREFIX = re.compile(r"^(?:[A-Za-z][A-Za-z0-9.-]*\+)+")
#: ``key=value`` (query string, libpq DSN) or ``'key': value`` (a dict's repr).
_PAIR = re.compile(
    r"(?P<lead>^|[?&;,\s(\[{])(?P<q>['\"]?)(?P<key>[\w.%+-]+)(?P=q)(?P<eq>\s*[=:]\s*)"
)
#: Schemes whose bare ``x:y@z`` is a path, never a credential (``file:a:b@c``).
_PATH_SCHEMES = ("file", "sqlite")


def looks_secret(name: str) -> bool:
    """True when an option or query-parameter ``name`` looks like it holds a secret."""
    return bool(_SECRET_NAME.search(unquote_plus(str(name))))


def redact(uri: str) -> str:
    """Return ``uri`` (or a text with URIs in it) with every credential replaced by ``***``.

    Recognised, in any combination: the password of a ``scheme://user:password@host``
    user-info, up to the *last* ``@``, so an unencoded ``/ # ? @ : +`` cannot end it
    early (``http(s)`` user-info without a colon is a token and is masked whole);
    ``user:password@host`` after a ``+`` scheme with no ``//``; any query parameter or
    libpq ``key=value`` whose key looks secret (``password``, ``pwd``, ``sslpassword``,
    ``secret``, ``token``, ``access_key``, ``api_key`` …), quoted or not; URIs inside
    query values; ``'password': …`` in a printed dict. A whole string that starts with a
    scheme is one URI; anything else is read as text, where a URI ends at whitespace
    or at the quote that opened it. Over-masking is preferred to leaking: a ``@`` in a
    query value hides what precedes it. Idempotent, and never raises.
    """
    try:
        text = uri if isinstance(uri, str) else str(uri)
        return _redact(text)
    except Exception:  # pragma: no cover - a bug here must not turn into a leak or a crash
        return _MASK


def _redact(text: str) -> str:
    stripped = text.lstrip()
    if _URI_START.match(stripped):
        return text[: len(text) - len(stripped)] + _redact_uri(stripped)
    if "@" in text and not any(c.isspace() for c in text):
        bare = _mask_bare(text)
        if bare != text:  # one ``user:pass@host`` token, however odd its password
            return _scrub_pairs(bare, in_uri=True)
    # Pairs first: a quoted libpq value may hold "://" and must be masked whole.
    text = _scrub_pairs(text, in_uri=False)
    out: list[str] = []
    pos = 0
    for match in _URI_START.finditer(text):
        start = match.start()
        if start < pos:
            continue
        quote = text[start - 1] if start and text[start - 1] in "'\"" else ""
        end = _token_end(text, match.end(), quote)
        out.append(text[pos:start])
        out.append(_redact_uri(text[start:end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _token_end(text: str, start: int, quote: str) -> int:
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote or c == "\n":
                return i
        elif c.isspace():
            return i
        i += 1
    return len(text)


def _redact_uri(uri: str) -> str:
    match = _URI_START.match(uri)
    assert match is not None
    head, rest = uri[: match.end()], uri[match.end() :]
    scheme = head[:-3].lower()
    # A path (``sqlite:////a:b@c.db``) starts with "/", which no user name holds.
    rest = _mask_userinfo(rest, lone_is_secret=scheme.rsplit("+", 1)[-1] in ("http", "https"))
    return head + _scrub_pairs(rest, in_uri=True)


def _mask_userinfo(rest: str, *, lone_is_secret: bool) -> str:
    """``user:password@host…`` → ``user:***@host…``; the user-info ends at the last ``@``."""
    at = rest.rfind("@")
    if at < 0:
        return rest
    userinfo = rest[:at]
    colon = userinfo.find(":")
    if colon >= 0 and "/" not in userinfo[:colon]:
        return f"{userinfo[: colon + 1]}{_MASK}{rest[at:]}"
    if colon < 0 and lone_is_secret and userinfo and "/" not in userinfo:
        return _MASK + rest[at:]
    return rest


def _mask_bare(text: str) -> str:
    """``user:pass@host`` or ``mlflow+user:pass@host`` (no ``//``)."""
    prefix = _PLUS_PREFIX.match(text)
    head = prefix.group(0) if prefix else ""
    rest = text[len(head) :]
    scheme = rest.split(":", 1)[0].lower() if not head else head.split("+", 1)[0].lower()
    if scheme in _PATH_SCHEMES:
        return text
    return head + _mask_userinfo(rest, lone_is_secret=False)


def _scrub_pairs(text: str, *, in_uri: bool) -> str:
    """Mask the value of every ``key=value`` whose key looks secret.

    In a URI a value ends at ``&`` (as ``parse_qsl`` reads it); in text also at
    whitespace. A quoted value (libpq ``'a b'``, backslash escapes) ends at its quote.
    """
    if not text:
        return text
    out: list[str] = []
    pos = 0
    for match in _PAIR.finditer(text):
        if match.start() < pos:
            continue
        key = match.group("key")
        value_start = match.end()
        quoted_key = bool(match.group("q"))
        if not quoted_key and "=" not in match.group("eq"):
            continue  # ``word: text`` in a message is not a pair
        end = _value_end(text, value_start, in_uri=in_uri, quoted_key=quoted_key)
        value = text[value_start:end]
        if looks_secret(key):
            if value in ("", _MASK) or value == f"'{_MASK}'" or value == f'"{_MASK}"':
                continue
            q = value[0] if value[0] in "'\"" and quoted_key else ""
            out.append(text[pos:value_start] + f"{q}{_MASK}{q}")
            pos = end
        elif in_uri and value:
            nested = _nested(value)
            if nested != value:
                out.append(text[pos:value_start] + nested)
                pos = end
    out.append(text[pos:])
    return "".join(out)


def _value_end(text: str, start: int, *, in_uri: bool, quoted_key: bool) -> int:
    if start < len(text) and text[start] in "'\"":
        quote = text[start]
        i = start + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == quote:
                return i + 1
            i += 1
        return len(text)
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\" and not in_uri:
            i += 2  # libpq: a backslash escapes the next character, even a space
            continue
        if in_uri:
            if c == "&":
                return i
        elif c.isspace() or (quoted_key and c in ",)]}"):
            return i
        i += 1
    return min(i, len(text))


def _nested(value: str) -> str:
    """A URI inside a query value (``?endpoint_url=http://u:p%40h``), re-encoded."""
    plain = unquote_plus(value)
    if "://" not in plain and "@" not in plain:
        return value
    masked = _redact(plain)
    return value if masked == plain else quote(masked, safe=":/*@")
