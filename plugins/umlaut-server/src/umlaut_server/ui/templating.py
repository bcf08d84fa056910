"""Jinja2 for the UI: one environment per process, the filters its templates use, and
the links between pages.

Autoescaping is on for every template, so a model named ``<script>`` is text
wherever it appears; markup built in Python (the SVG charts) is escaped where it is
built and handed over as :class:`markupsafe.Markup`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from typing import Any
from urllib.parse import quote, urlencode

import jinja2

__all__ = ["PRETTY_LIMIT", "Links", "environment", "pretty_json"]

#: Characters of one pretty-printed value shown on a page; the raw JSON link has all.
PRETTY_LIMIT = 256 * 1024


class Links:
    """URLs of the UI's pages under ``base`` (the mount path, a proxy's prefix
    included). Names go into paths percent-encoded except ``/``, which the
    ``{name:path}`` routes take back whole."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def _q(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = self.base + path
        if params:
            kept = {k: v for k, v in params.items() if v is not None and v != ""}
            if kept:
                url += "?" + urlencode(kept, doseq=True)
        return url

    def home(self) -> str:
        return self.base + "/"

    def static(self, path: str) -> str:
        return f"{self.base}/static/{path}"

    def model(self, name: str, **params: Any) -> str:
        return self._q("/models/" + quote(name, safe="/"), params)

    def version(self, name: str, version: int, **params: Any) -> str:
        return self._q(f"/versions/{int(version)}/" + quote(name, safe="/"), params)

    def drift(self, name: str, **params: Any) -> str:
        return self._q("/drift/" + quote(name, safe="/"), params)

    def records(self, **params: Any) -> str:
        return self._q("/records", params)

    def export(self, fmt: str, params: dict[str, Any]) -> str:
        return self._q(f"/records.{fmt}", params)

    def record(self, record_id: str) -> str:
        return self.base + "/records/" + quote(record_id, safe="")

    def record_json(self, record_id: str) -> str:
        return self.base + "/records/" + quote(record_id, safe="") + ".json"

    def training_runs(self, **params: Any) -> str:
        return self._q("/training-runs", params)

    def training_run(self, run_id: str) -> str:
        return self.base + "/training-runs/" + quote(run_id, safe="")

    def compare(self, run_ids: list[str]) -> str:
        return self._q("/training-runs/compare", {"run": run_ids})

    def datasets(self) -> str:
        return self.base + "/datasets"

    def dataset(self, name: str, version: int | None = None) -> str:
        return self._q("/datasets/" + quote(name, safe="/"), {"version": version})

    def login(self, next_url: str | None = None) -> str:
        return self._q("/login", {"next": next_url})

    def logout(self) -> str:
        return self.base + "/logout"


def pretty_json(value: Any, limit: int = PRETTY_LIMIT) -> tuple[str, bool]:
    """``value`` as indented JSON, cut at ``limit`` characters; True when cut."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    if len(text) > limit:
        return text[:limit], True
    return text, False


def _utc(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def _iso(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


def _num(value: Any) -> str:
    """Integers with thousands separators, floats to 4 significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    return str(value)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def _bytes(value: int | None) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)  # pragma: no cover - the loop always returns


def _digest(value: str | None) -> str:
    """``sha256:0123456789ab`` (12 hex digits): enough to tell versions apart."""
    if not value:
        return ""
    algo, _, hexdigest = value.partition(":")
    return f"{algo}:{hexdigest[:12]}" if hexdigest else value[:12]


def _param(value: Any) -> str:
    """A param or tag value in a table cell: strings as they are, the rest as JSON."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:79] + "…"


def _preview(text: str | None, limit: int = 100) -> str:
    if text is None:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = (end - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@functools.cache
def environment() -> jinja2.Environment:
    """The templates shipped in the package, with the UI's filters: one environment
    per process (it is never changed after this, and renders from any thread), so
    every template is compiled once however many apps are built."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("umlaut_server.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        utc=_utc,
        iso=_iso,
        num=_num,
        pct=_pct,
        ms=_ms,
        bytes=_bytes,
        digest=_digest,
        param=_param,
        preview=_preview,
        duration=_duration,
    )
    for name in env.list_templates():  # compiled now, not on a user's first visit
        env.get_template(name)
    return env
