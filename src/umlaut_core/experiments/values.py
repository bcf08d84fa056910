"""Checks of what a training run is given: keys, params, tags, metric values.

Everything is checked in the caller's thread, before it is queued: a bad value is a
typed error at the line that logged it, never a failure in the flusher later.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from typing import Any

from ..encoding import to_jsonable
from ..exceptions import EncodingError, InvalidNameError
from ..naming import _control, tag_value

__all__ = ["check_key", "check_metric_value", "check_param", "check_run_tags", "check_step"]

#: Keys of params, metrics and tags: MLflow's limit, so keys carry over both ways.
MAX_KEY_LENGTH = 250
#: Tag values of training runs (stores without such room keep them losslessly).
MAX_RUN_TAG_LENGTH = 1_000_000
_keys: dict[str, str] = {}


def check_key(key: Any, what: str) -> str:
    """A key as stored: a non-empty, printable string of at most 250 characters, NFC."""
    known = _keys.get(key) if type(key) is str else None
    if known is not None:
        return known  # the hot path: a metric logged in a loop checks its key once
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or _control(key):
        shown = repr(key)[:80]
        raise InvalidNameError(
            f"{what} name {shown} must be a non-empty string of at most {MAX_KEY_LENGTH} "
            f"printable characters"
        )
    if key != key.strip():
        raise InvalidNameError(f"{what} name {key!r} starts or ends with white space")
    clean = unicodedata.normalize("NFC", key)
    if len(_keys) < 100_000:
        _keys[key] = clean
    return clean


def check_param(key: str, value: Any) -> Any:
    """The param as a plain JSON value (numpy, datetimes … per the documented encoding)."""
    try:
        plain = to_jsonable(value)
        json.dumps(plain, allow_nan=False)
    except ValueError:
        raise EncodingError(
            f"param {key!r} holds NaN or infinity, which JSON cannot; log it as a metric "
            f"or as a string"
        ) from None
    except Exception as exc:
        raise EncodingError(f"param {key!r} cannot be stored as JSON: {exc}") from None
    return plain


def check_run_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    if not tags:
        return {}
    if not isinstance(tags, Mapping):
        raise InvalidNameError(f"tags must be a mapping, not {type(tags).__name__}")
    out: dict[str, str] = {}
    for key, value in tags.items():
        clean = check_key(key, "tag")
        out[clean] = tag_value(clean, value, MAX_RUN_TAG_LENGTH)
    return out


def check_metric_value(key: str, value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, bool):
        raise EncodingError(f"metric {key!r} must be a number, not a bool")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise EncodingError(f"metric {key!r} must be a number, not {value!r:.80}") from None


def check_step(step: Any) -> int:
    if type(step) is int:
        return step
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise EncodingError(f"a metric step must be an integer, not {step!r:.80}")
    return int(step)
