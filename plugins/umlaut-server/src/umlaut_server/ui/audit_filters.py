"""The audit trail's filters: read from a query string, checked, turned into the
arguments of ``Umlaut.history`` and back into links (paging, export).

A stage filter is resolved to the version the stage points at *now*, through the
facade; it needs a model. Times are UTC: ``2026-03-01``, ``2026-03-01T14:30``
(what ``<input type="datetime-local">`` sends) or full ISO 8601 with an offset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from umlaut_core.ids import is_id

from .errors import UiError

if TYPE_CHECKING:
    from umlaut_core import Umlaut

__all__ = ["AuditFilter", "parse_time"]

_STATUSES = ("ok", "error")


def parse_time(text: str, what: str) -> dt.datetime:
    """A moment from a form field; naive means UTC. ``UiError`` (400) if unreadable."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UiError(
            400, "Bad filter", f"{what} {text!r:.40} is not a date or time like 2026-03-01T14:30"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _text(params: Mapping[str, str], key: str) -> str | None:
    value = params.get(key, "").strip()
    return value or None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What the audit trail is filtered by; every field optional."""

    model: str | None = None
    version: int | None = None
    stage: str | None = None
    status: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    reference_id: str | None = None
    before: str | None = None

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> AuditFilter:
        version_text = _text(params, "version")
        version = None
        if version_text is not None:
            if not version_text.isdigit() or int(version_text) < 1:
                raise UiError(400, "Bad filter", "version must be a whole number from 1")
            version = int(version_text)
        status = _text(params, "status")
        if status is not None and status not in _STATUSES:
            raise UiError(400, "Bad filter", "status must be ok or error")
        before = _text(params, "before")
        if before is not None and not is_id(before):
            raise UiError(400, "Bad cursor", "before must be an audit record id")
        since_text, until_text = _text(params, "since"), _text(params, "until")
        found = cls(
            model=_text(params, "model"),
            version=version,
            stage=_text(params, "stage"),
            status=status,
            since=parse_time(since_text, "since") if since_text else None,
            until=parse_time(until_text, "until") if until_text else None,
            reference_id=_text(params, "reference_id"),
            before=before,
        )
        if found.stage is not None and found.model is None:
            raise UiError(400, "Bad filter", "a stage filter needs a model")
        return found

    @property
    def active(self) -> bool:
        """True when anything but the cursor is set."""
        return replace(self, before=None) != AuditFilter()

    def resolved_version(self, umlaut: Umlaut) -> int | None:
        """The version filter, or the version the stage filter points at now."""
        if self.stage is None or self.model is None:
            return self.version
        pointed = umlaut.get_version(self.model, stage=self.stage).version
        if self.version is not None and self.version != pointed:
            raise UiError(
                400,
                "Bad filter",
                f"{self.stage} is version {pointed}, not {self.version}; give one of them",
            )
        return pointed

    def history_kwargs(self, umlaut: Umlaut) -> dict[str, Any]:
        """Keyword arguments of ``Umlaut.history`` (without ``limit``/``before``)."""
        return {
            "model_name": self.model,
            "version": self.resolved_version(umlaut),
            "since": self.since,
            "until": self.until,
            "status": self.status,
            "reference_id": self.reference_id,
            "include_pending": False,
        }

    def params(self, *, before: str | None = None) -> dict[str, Any]:
        """The filter as query parameters (times as ISO text), with a cursor."""
        return {
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "status": self.status,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "reference_id": self.reference_id,
            "before": before,
        }

    def form_value(self, key: str) -> str:
        """A field's value as its form control shows it."""
        value = getattr(self, key)
        if value is None:
            return ""
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")
        return str(value)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
