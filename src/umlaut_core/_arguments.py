"""Checks of the facade's plain arguments: version numbers, datetimes, params, metrics."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from .encoding import to_jsonable
from .exceptions import ConfigurationError, EncodingError, InvalidNameError
from .naming import check_reference_id


def naming_problem(key: str) -> bool:
    """True when ``key`` cannot name a metric (the reference-id rules: printable, ≤ 200)."""
    try:
        check_reference_id(key)
    except InvalidNameError:
        return True
    return False


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
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        # datetime.min/max with an offset: the instant lies outside what datetime can
        # hold in UTC, which only an open-ended bound can mean.
        return (dt.datetime.min if moment.year == dt.MINYEAR else dt.datetime.max).replace(
            tzinfo=dt.UTC
        )


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
        if not isinstance(key, str) or not key or naming_problem(key):
            raise EncodingError(f"metric name {key!r} must be a non-empty, printable string")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise EncodingError(f"metric {key!r} must be a number, not {value!r}") from None
        if not math.isfinite(number):
            raise EncodingError(f"metric {key!r} must be finite, not {value!r}")
        out[str(key)] = number
    return out
