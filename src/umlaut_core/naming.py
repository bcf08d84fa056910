"""What a model name, a stage (alias), a tag or a reference id may look like.

Checked in the facade before anything is stored, so every backend sees only names it
can keep. Names never become file paths or object keys (keys are digests), so these
rules are about clarity and portability rather than the only line of defence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from .exceptions import InvalidNameError

__all__ = [
    "MAX_NAME_LENGTH",
    "WELL_KNOWN_STAGES",
    "check_alias",
    "check_model_name",
    "check_reference_id",
    "check_tags",
]

MAX_NAME_LENGTH = 200
MAX_TAG_LENGTH = 5000
#: The seed API's stages; any alias matching the pattern below works too.
WELL_KNOWN_STAGES = ("Staging", "Production", "Archived")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_VERSION_LIKE = re.compile(r"^[vV]\d+$")


def _control(text: str) -> str | None:
    for ch in text:
        if unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} and ch not in "\t":
            return ch
    return None


def check_model_name(name: Any) -> str:
    """Return ``name`` if it is an acceptable model name, else raise InvalidNameError."""
    if not isinstance(name, str):
        raise InvalidNameError(f"a model name must be a string, not {type(name).__name__}")
    if not name.strip():
        raise InvalidNameError("a model name must not be empty or blank")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"model name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    if name != name.strip():
        raise InvalidNameError(f"model name {name!r} starts or ends with whitespace")
    bad = _control(name)
    if bad is not None:
        raise InvalidNameError(f"model name {name!r} contains the control character {bad!r}")
    if ".." in name:
        raise InvalidNameError(f"model name {name!r} contains '..'")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", name):
        raise InvalidNameError(f"model name {name!r} starts with a path separator")
    return name


def check_alias(alias: Any) -> str:
    """Return ``alias`` if it can name a stage, else raise InvalidNameError."""
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidNameError(
            f"stage {alias!r} is not a valid stage name: use a letter then up to 63 "
            f"letters, digits, '_' or '-' (e.g. {', '.join(WELL_KNOWN_STAGES)})"
        )
    if alias.lower() == "latest" or _VERSION_LIKE.match(alias):
        raise InvalidNameError(
            f"stage {alias!r} is reserved: it would be confused with a version selector"
        )
    return alias


def check_reference_id(reference_id: Any) -> str | None:
    """Return the reference id if acceptable (any printable string up to 200 chars)."""
    if reference_id is None:
        return None
    if not isinstance(reference_id, str):
        raise InvalidNameError(f"reference_id must be a string, not {type(reference_id).__name__}")
    if len(reference_id) > MAX_NAME_LENGTH or _control(reference_id) is not None:
        raise InvalidNameError(
            f"reference_id must be at most {MAX_NAME_LENGTH} printable characters"
        )
    return reference_id


def check_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """Tags are str → str; keys follow the reference-id rules, values ≤ 5000 chars."""
    if not tags:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidNameError(f"tags must be a mapping, not {type(tags).__name__}")
    out: dict[str, str] = {}
    for key, value in tags.items():
        if (
            not isinstance(key, str)
            or not key
            or len(key) > MAX_NAME_LENGTH
            or _control(key) is not None
        ):
            shown = (
                repr(key) if not isinstance(key, str) or len(key) <= 60 else repr(key[:60]) + "…"
            )
            raise InvalidNameError(
                f"tag key {shown} must be a non-empty string of at most "
                f"{MAX_NAME_LENGTH} printable characters"
            )
        text = value if isinstance(value, str) else str(value)
        if len(text) > MAX_TAG_LENGTH or "\x00" in text:
            raise InvalidNameError(
                f"tag {key!r}: values are at most {MAX_TAG_LENGTH} characters, no NUL"
            )
        out[key] = text
    return out
