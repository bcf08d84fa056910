"""Artifact keys: where the core puts bundles inside any artifact store.

Keys are chosen by the core from the bundle file's sha256, never from user input,
and every store checks them with :func:`check_key` so a key can never leave the
store's root or prefix, whatever a future caller passes.
"""

from __future__ import annotations

import re

from .exceptions import ArtifactError

__all__ = ["BUNDLE_PREFIX", "bundle_key", "check_key", "check_prefix"]

#: Where bundles live inside every artifact store (what ``umlaut gc`` lists).
BUNDLE_PREFIX = "bundles/"

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def bundle_key(sha256_hex: str) -> str:
    """The key of a bundle file: by its content, never by model name.

    :param sha256_hex: the hex sha256 of the whole bundle file
        (:attr:`umlaut_core.packer.Bundle.sha256`; a ``sha256:`` prefix is allowed).
        Equal bytes share one key and are stored once; different bytes (the same
        model signed and unsigned, or packed in two environments, has one digest but
        other bytes) never share a key, so a store that keeps the first object put
        under a key never hands back other bytes than those registered.
    """
    hexdigest = sha256_hex.split(":", 1)[-1].lower() if isinstance(sha256_hex, str) else ""
    if not _SHA256.match(hexdigest):
        raise ArtifactError(
            f"bundle key needs the hex sha256 of the bundle file (64 hex digits), got "
            f"{sha256_hex!r}"
        )
    return f"bundles/{hexdigest[:2]}/{hexdigest}.zip"


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise ArtifactError."""
    segments = key.split("/") if isinstance(key, str) else []
    if not segments or not all(_SEGMENT.match(s) and s not in (".", "..") for s in segments):
        raise ArtifactError(
            f"artifact key {key!r} is not a relative path of [A-Za-z0-9._-] segments; refused"
        )
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is ``""`` or a safe key prefix (``bundles/``), else raise
    ArtifactError (for :meth:`ListingArtifactStore.list`)."""
    if prefix == "":
        return prefix
    if not isinstance(prefix, str):
        raise ArtifactError(f"a key prefix must be a string, not {type(prefix).__name__}")
    check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix
