"""Checks of the facade's plain arguments: version numbers, datetimes, params, metrics."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from .encoding import to_jsonable
from .exceptions import ConfigurationError, EncodingError, InvalidNameError

__all__ = ["as_utc", "check_metrics", "check_params", "version_number"]


def version_number(version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise InvalidNameError(f"version must be a positive integer, not {version!r}")
    try:
        number = int(version)
    except ValueError:
        raise InvalidNameError(f"version must be a positive integer, not {version!r}") from None
    if number < 1:
        raise InvalidNameError(f"version must be a positive integer, not {version!r}")
    return number


def as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    if not isinstance(moment, dt.datetime):
        raise ConfigurationError(f"expected a datetime, not {type(moment).__name__}")
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if not params:
        return {}
    try:
        plain = to_jsonable(dict(params))
    except Exception as exc:
        raise EncodingError(f"params cannot be stored as JSON: {exc}") from None
    return dict(plain)


def check_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise EncodingError(f"metric {key!r} must be a number, not {value!r}") from None
        if not math.isfinite(number):
            raise EncodingError(f"metric {key!r} must be finite, not {value!r}")
        out[str(key)] = number
    return out
