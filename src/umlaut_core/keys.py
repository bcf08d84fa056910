"""Artifact keys: where the core puts bundles inside any artifact store.

Keys are chosen by the core from digests, never from user input, and every store
checks them with :func:`check_key` so a key can never leave the store's root or
prefix, whatever a future caller passes.
"""

from __future__ import annotations

import re

from .exceptions import ArtifactError

__all__ = ["bundle_key", "check_key"]

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def bundle_key(digest: str) -> str:
    """The key of a bundle: by digest, never by model name."""
    hexdigest = digest.split(":", 1)[-1]
    return f"bundles/{hexdigest[:2]}/{hexdigest}.zip"


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise ArtifactError."""
    segments = key.split("/") if isinstance(key, str) else []
    if not segments or not all(_SEGMENT.match(s) and s not in (".", "..") for s in segments):
        raise ArtifactError(
            f"artifact key {key!r} is not a relative path of [A-Za-z0-9._-] segments; refused"
        )
    return key
