"""What a model name, a stage (alias), a tag or a reference id may look like.

Checked in the facade before anything is stored, so every backend sees only names it
can keep. Names never become file paths or object keys (keys are digests), so these
rules are about clarity and portability rather than the only line of defence.

Model names are normalised to Unicode NFC, so the composed and decomposed spellings
of ``Café`` are one model, and characters a reader cannot see (format and control
characters, fillers, blank patterns, variation selectors, line and paragraph
separators, any space other than U+0020) are refused: two names that look identical
must be the same name.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from .exceptions import InvalidNameError

__all__ = [
    "MAX_NAME_LENGTH",
    "WELL_KNOWN_STAGES",
    "check_alias",
    "check_model_name",
    "check_reference_id",
    "check_tags",
    "check_text",
    "looks_like",
]

MAX_NAME_LENGTH = 200
MAX_TAG_LENGTH = 5000
#: Descriptions and promotion reasons.
MAX_TEXT_LENGTH = 10_000
#: The seed API's stages; any alias matching the pattern below works too.
WELL_KNOWN_STAGES = ("Staging", "Production", "Archived")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_VERSION_LIKE = re.compile(r"^[vV]\d+$")


def _control(text: str) -> str | None:
    for ch in text:
        if unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} and ch not in "\t":
            return ch
    return None


# Unicode's Default_Ignorable_Code_Point set (rendered as nothing) plus the blank
# Braille pattern; Python's unicodedata has no property lookup, so the ranges are here.
_INVISIBLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)  # fmt: skip


#: Control, format, surrogate, private, unassigned, and every separator but U+0020.
_UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})


def _invisible(ch: str) -> bool:
    point = ord(ch)
    return any(low <= point <= high for low, high in _INVISIBLE)


def _unseen(text: str) -> str | None:
    """The first character of ``text`` a reader cannot see or tell from a space."""
    for ch in text:
        if ch == " ":
            continue
        if unicodedata.category(ch) in _UNSEEN_CATEGORIES or _invisible(ch):
            return ch
    return None


def _skeleton(name: str) -> str:
    """What a name looks like to a hurried reader: no accents, case, spaces or dashes."""
    folded = unicodedata.normalize("NFKD", name).casefold()
    return "".join(
        ch
        for ch in folded
        if not unicodedata.category(ch).startswith("M")
        and not ch.isspace()
        and ch not in "-_."
        and not _invisible(ch)
    )


def looks_like(name: str, existing: Iterable[str]) -> str | None:
    """An existing name that a reader could mistake for ``name`` (for not-found
    messages): one that differs only in accents, case, spacing or invisible
    characters, else the closest by spelling."""
    candidates = [e for e in existing if isinstance(e, str) and e != name]
    if not candidates:
        return None
    target = _skeleton(name)
    for candidate in candidates:
        if _skeleton(candidate) == target:
            return candidate
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.85)
    return str(close[0]) if close else None


def check_model_name(name: Any) -> str:
    """Return ``name`` in NFC if it is an acceptable model name, else raise
    InvalidNameError."""
    if not isinstance(name, str):
        raise InvalidNameError(f"a model name must be a string, not {type(name).__name__}")
    bad = _control(name)
    if bad is not None:
        raise InvalidNameError(f"model name {name!r} contains the control character {bad!r}")
    name = unicodedata.normalize("NFC", name)
    if not name.strip():
        raise InvalidNameError("a model name must not be empty or blank")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"model name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    if name != name.strip():
        raise InvalidNameError(f"model name {name!r} starts or ends with whitespace")
    bad = _unseen(name)
    if bad is not None:
        raise InvalidNameError(
            f"model name {name!r} contains {bad!r} ({unicodedata.name(bad, 'unnamed')}), "
            f"which a reader cannot see or tell from a space; use visible characters "
            f"and plain spaces"
        )
    if unicodedata.category(name[0]).startswith("M"):
        raise InvalidNameError(f"model name {name!r} starts with a combining mark")
    if ".." in name:
        raise InvalidNameError(f"model name {name!r} contains '..'")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", name):
        raise InvalidNameError(f"model name {name!r} starts with a path separator")
    return str(name)


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
        out[key] = tag_value(key, value, MAX_TAG_LENGTH)
    return out


def tag_value(key: str, value: Any, limit: int) -> str:
    """A tag's value as text every store can keep: at most ``limit`` characters, no
    NUL, no lone surrogate (version tags and training-run tags share this rule)."""
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:
        raise InvalidNameError(
            f"tag {key!r}: its value cannot be turned into text; pass a string"
        ) from None
    if len(text) > limit or not _storable(text):
        raise InvalidNameError(
            f"tag {key!r}: values are text of at most {limit} characters, "
            f"with no NUL and no lone surrogate"
        )
    return text


def check_text(value: Any, what: str, limit: int = MAX_TEXT_LENGTH) -> str | None:
    """A free text (a description, a promotion's reason): None, or a string every store
    can keep — no NUL (PostgreSQL text cannot hold it), no lone surrogate (not UTF-8)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidNameError(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidNameError(f"{what} is {len(value)} characters long; the limit is {limit}")
    if not _storable(value):
        raise InvalidNameError(
            f"{what} holds a NUL character or a lone surrogate, which no store can keep"
        )
    return value


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
