"""Bearer tokens: configured as sha256 hashes with scopes, checked in constant time.

A token list is text, ``sha256:<64 hex>=scope,scope;sha256:<hex>=scope`` (also one
entry per line; ``#`` starts a comment), read from ``UMLAUT_SERVE_TOKENS``, the
``tokens`` key of ``[tool.umlaut.serve]`` (or ``[tool.umlaut.serve.profiles.<name>]``)
in ``pyproject.toml``, or ``--tokens-file``; all given sources are merged. The
server never holds a token, only its hash, and never logs either.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from umlaut_core.exceptions import ConfigurationError

__all__ = ["SCOPES", "TokenSet", "hash_token", "parse_tokens"]

#: ``run``: call models; ``read``: list models, metadata, OpenAPI, metrics, the web
#: UI's pages; ``admin``: promote a version from the web UI.
SCOPES = ("run", "read", "admin")
_ENTRY = re.compile(r"^sha256:([0-9a-f]{64})=([a-z,\s]+)$")


def hash_token(token: str) -> str:
    """``sha256:<hex>`` of a token: what the server is configured with."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenSet:
    """Configured hashes (raw 32-byte digests) and their scopes."""

    entries: tuple[tuple[bytes, frozenset[str]], ...]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def scopes_of(self, token: str) -> frozenset[str] | None:
        """The scopes of ``token``, or None when no configured hash matches.

        Every configured hash is compared, each with ``hmac.compare_digest``, so the
        time taken does not depend on which entry (if any) matches, nor where.
        """
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found: frozenset[str] | None = None
        for expected, scopes in self.entries:
            if hmac.compare_digest(digest, expected):
                found = scopes
        return found

    def to_text(self) -> str:
        return ";".join(f"sha256:{h.hex()}={','.join(sorted(s))}" for h, s in self.entries)


def parse_tokens(texts: Iterable[tuple[str, str]]) -> TokenSet:
    """Merge token lists; each item is ``(where it came from, text)``.

    Raises ``ConfigurationError`` naming the source and entry number (never the
    entry itself) for an entry that is not ``sha256:<64 lowercase hex>=scopes`` or
    names an unknown scope.
    """
    entries: dict[bytes, frozenset[str]] = {}
    for where, text in texts:
        parts = [p.split("#", 1)[0].strip() for p in re.split(r"[;\n]", text)]
        for number, part in enumerate((p for p in parts if p), start=1):
            match = _ENTRY.match(part)
            if match is None:
                raise ConfigurationError(
                    f"token entry {number} of {where} is not 'sha256:<64 lowercase hex>="
                    f"scope[,scope]' (make one with: umlaut serve hash-token)"
                )
            scopes = frozenset(s.strip() for s in match.group(2).split(",") if s.strip())
            unknown = sorted(scopes - set(SCOPES))
            if unknown or not scopes:
                raise ConfigurationError(
                    f"token entry {number} of {where} has unknown or no scopes {unknown}; "
                    f"scopes are {', '.join(SCOPES)}"
                )
            digest = bytes.fromhex(match.group(1))
            entries[digest] = entries.get(digest, frozenset()) | scopes
    return TokenSet(tuple(entries.items()))


def tokens_from_table(table: Mapping[str, object], where: str) -> str | None:
    """The ``tokens`` value of a pyproject table: text or a list of entries."""
    value = table.get("tokens")
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ";".join(value)
    raise ConfigurationError(f"tokens in {where} must be a string or a list of strings")
