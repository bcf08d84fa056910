"""How umlaut records are laid out in MLflow tags.

MLflow caps a run tag at 8000 characters (5000 on older servers) and a param at a
few hundred to 6000, so long text is split: ``<key>`` holds the first 5000 characters
(a readable preview in the UI), ``<key>.1`` … the rest, ``<key>.chunks`` the count.
Past ``MAX_CHUNKS`` chunks the full JSON goes to a run artifact named by
``<key>.artifact``, and ``<key>`` keeps a preview. Nothing is ever truncated.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CHUNK",
    "MAX_CHUNKS",
    "K",
    "from_ms",
    "join_text",
    "native_user_tags",
    "split_text",
    "to_ms",
    "dumps",
]

CHUNK = 5000
MAX_CHUNKS = 8
PREVIEW = 1000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class K:
    """Tag keys umlaut owns (run and model-version tags)."""

    KIND = "umlaut.kind"  # audit | version | promotion
    ID = "umlaut.id"
    MODEL = "umlaut.model"
    VERSION = "umlaut.version"
    SELECTOR = "umlaut.selector"
    STATUS = "umlaut.status"
    STARTED = "umlaut.started_at"
    DURATION = "umlaut.duration_ms"
    REFERENCE = "umlaut.reference_id"
    ERROR_TYPE = "umlaut.error_type"
    ERROR_MESSAGE = "umlaut.error_message"
    INPUTS = "umlaut.inputs"
    OUTPUT = "umlaut.output"
    TAGS = "umlaut.tags"
    # model versions
    DIGEST = "umlaut.digest"
    FLAVOR = "umlaut.flavor"
    MANIFEST = "umlaut.manifest"
    PARAMS = "umlaut.params"
    METRICS = "umlaut.metrics"
    CREATED_AT = "umlaut.created_at"
    CREATED_BY = "umlaut.created_by"
    ARTIFACT_URI = "umlaut.artifact_uri"
    # promotion ledger
    STAGE = "umlaut.stage"
    FROM = "umlaut.from_version"
    TO = "umlaut.to_version"
    CHANGED_AT = "umlaut.changed_at"
    CHANGED_BY = "umlaut.changed_by"
    REASON = "umlaut.reason"


_NATIVE_KEY = re.compile(r"^[A-Za-z0-9_\-. /]{1,250}$")


def split_text(tags: dict[str, str], key: str, text: str) -> str | None:
    """Put ``text`` into ``tags`` under ``key``; return it if it must be an artifact."""
    if len(text) <= CHUNK:
        tags[key] = text
        return None
    chunks = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]
    if len(chunks) > MAX_CHUNKS:
        tags[key] = text[:PREVIEW] + "…"
        tags[f"{key}.artifact"] = f"umlaut/{key.removeprefix('umlaut.')}.json"
        return text
    tags[key] = chunks[0]
    for i, chunk in enumerate(chunks[1:], start=1):
        tags[f"{key}.{i}"] = chunk
    tags[f"{key}.chunks"] = str(len(chunks))
    return None


def join_text(tags: Mapping[str, str], key: str) -> str | None:
    """Reassemble what ``split_text`` stored in tags (None if it is in an artifact)."""
    if key not in tags or f"{key}.artifact" in tags:
        return None
    count = int(tags.get(f"{key}.chunks", "1"))
    return "".join([tags[key], *(tags[f"{key}.{i}"] for i in range(1, count))])


def native_user_tags(user_tags: Mapping[str, str], reserved: set[str]) -> dict[str, str]:
    """User tags MLflow accepts as tag keys, for the UI (the JSON copy is the truth)."""
    return {
        k: v
        for k, v in user_tags.items()
        if _NATIVE_KEY.match(k)
        and not k.startswith("mlflow.")
        and k not in reserved
        and len(v) <= CHUNK
    }


def to_ms(moment: dt.datetime) -> int:
    """Milliseconds since the epoch, rounded down (MLflow's time unit)."""
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)


def from_ms(ms: int | None) -> dt.datetime:
    return dt.datetime.fromtimestamp((ms or 0) / 1000, dt.UTC)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
