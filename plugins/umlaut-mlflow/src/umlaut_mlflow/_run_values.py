"""How training-run keys and values fit MLflow's limits, losslessly.

MLflow refuses keys outside ``[/\\w.\\- :]`` (and ones that are not a normalised
path) or over 250 characters, params over 6,000 characters and tags over 5,000 on
older servers; umlaut params are JSON of any size and keys are any text.

* **Keys.** A key of plain characters (``[A-Za-z0-9_\\-. /]``, at most 200, not
  ``umlaut.…``/``mlflow.…``, a normalised path, no outer spaces) is MLflow's key as
  it is. Any other is stored as ``umlaut.x.<h>.<readable>``, where ``<h>`` is 16 hex
  digits of its SHA-256, and the key itself is kept in the slot ``umlaut.key.<h>``.
  The 200 (not 250) leaves room for the summary tag ``umlaut.metric.<key>``.
* **Param values.** A string is stored as itself, anything else as JSON, so the UI
  shows ``adam`` and ``0.1``; a string that would read back as JSON (``"3"``,
  ``"null"``) gets the marker tag ``umlaut.s.<h>``.
* **Oversize values.** The param or tag holds a preview (the limit, ending in
  ``…``) and the full text goes to a *slot*: ``umlaut.p.<h>`` (params) or
  ``umlaut.t.<h>`` (tags). A slot is like the audit records' chunked tags
  (``_codec``): 5,000-character chunks ``<slot>``, ``<slot>.1`` …, and past
  ``MAX_CHUNKS`` a JSON run artifact ``umlaut/<slot>.json``; its header
  ``<slot>.chunks`` (a count, or ``artifact``) is rewritten on every write, so a
  stale chunk never reads as current. A reader uses a slot only while the native
  value is still the slot's preview: a later short value of the same tag wins.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._codec import CHUNK, MAX_CHUNKS, PREVIEW

__all__ = [
    "MAX_FLOAT",
    "PARAM_LIMIT",
    "STR_MARK",
    "TAG_LIMIT",
    "Batch",
    "batch_body",
    "decode_key",
    "encode_key",
    "float_in",
    "float_out",
    "full_text",
    "key_hash",
    "param_key",
    "param_text",
    "param_value",
    "plan_batches",
    "preview",
    "put_slot",
    "read_slot",
    "slot_artifact",
]

PARAM_LIMIT = 6000
TAG_LIMIT = CHUNK
ENCODED = "umlaut.x."
KEY_SLOT = "umlaut.key."
STR_MARK = "umlaut.s."
#: MLflow's per-request caps (``mlflow.utils.validation``), with room for the body.
MAX_METRICS = 1000
MAX_PARAMS_TAGS = 100
MAX_ENTRIES = 1000
MAX_BYTES = 800_000

_NATIVE = re.compile(r"[A-Za-z0-9_\-. /]{1,200}")
_READABLE = re.compile(r"[^A-Za-z0-9_\-]+")
#: What MLflow's SQL store keeps for ±inf (SQL has no infinity).
MAX_FLOAT = 1.7976931348623157e308


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _native(key: str) -> bool:
    return (
        _NATIVE.fullmatch(key) is not None
        and not key.startswith(("umlaut.", "mlflow."))
        and key == key.strip()
        # MLflow refuses names that are not their own normalised path ("a//b", "./a").
        and posixpath.normpath(key) == key
        and not key.startswith(("/", ".."))
        and key != "."
    )


def encode_key(key: str, support: dict[str, str]) -> str:
    """MLflow's key for an umlaut key; an encoded one adds its name slot to
    ``support`` (written before, or with, the entry that uses the key)."""
    if _native(key):
        return key
    h = key_hash(key)
    readable = _READABLE.sub("_", key).strip("_")[:48]
    # Never an artifact: the key must be readable wherever the entry is (the facade
    # keeps keys to 250 characters; a store written to directly may not).
    put_slot(support, KEY_SLOT + h, key, max_chunks=len(key) // CHUNK + 1)
    return f"{ENCODED}{h}.{readable}" if readable else f"{ENCODED}{h}"


def decode_key(mlflow_key: str, tags: Mapping[str, str]) -> str | None:
    """The umlaut key of an MLflow key, None for an MLflow key that is umlaut's own
    bookkeeping (``umlaut.*`` other than encoded keys) or MLflow's (``mlflow.*``)."""
    if mlflow_key.startswith(ENCODED):
        h = mlflow_key[len(ENCODED) : len(ENCODED) + 16]
        key = read_slot(tags, KEY_SLOT + h)
        return mlflow_key if key is None else key  # a lost name slot: still visible
    if mlflow_key.startswith(("umlaut.", "mlflow.")):
        return None
    return mlflow_key


def param_key(mlflow_key: str, tags: Mapping[str, str]) -> str:
    """The umlaut key of an MLflow param (params hold no bookkeeping keys)."""
    key = decode_key(mlflow_key, tags)
    return mlflow_key if key is None else key


def preview(text: str, limit: int) -> str:
    """What a param or tag of at most ``limit`` characters shows of ``text``."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(name)

    return json.loads(text, parse_constant=refuse)


def _reads_as_json(text: str) -> bool:
    try:
        _strict_json(text)
    except ValueError:
        return False
    return True


def param_text(value: Any) -> tuple[str, bool]:
    """``(text, needs_str_marker)`` for a param value."""
    if isinstance(value, str):
        return value, _reads_as_json(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False), False


def param_value(text: str, marked_str: bool) -> Any:
    if marked_str:
        return text
    try:
        return _strict_json(text)
    except ValueError:
        return text


def float_out(value: float) -> float | str:
    """A float as proto3 JSON spells it (MLflow's REST API and our summary tags)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def float_in(value: float | str) -> float:
    """Back from :func:`float_out`, and MLflow's stand-in for ±inf back to ±inf: a
    point of exactly ±1.7976931348623157e308 therefore reads as ±inf."""
    number = float(value)
    if abs(number) == MAX_FLOAT:
        return math.copysign(math.inf, number)
    return number


# -- slots ---------------------------------------------------------------------------


def slot_artifact(slot: str) -> str:
    return f"umlaut/{slot.removeprefix('umlaut.')}.json"


def put_slot(
    tags: dict[str, str], slot: str, text: str, *, max_chunks: int = MAX_CHUNKS
) -> str | None:
    """Lay ``text`` out under ``slot`` in ``tags``; return it when it must be written
    as the artifact :func:`slot_artifact` instead (before the tags are)."""
    chunks = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
    if len(chunks) > max_chunks:
        tags[slot] = text[:PREVIEW] + "…"
        tags[f"{slot}.chunks"] = "artifact"
        return text
    tags[slot] = chunks[0]
    for i, chunk in enumerate(chunks[1:], start=1):
        tags[f"{slot}.{i}"] = chunk
    tags[f"{slot}.chunks"] = str(len(chunks))
    return None


def read_slot(
    tags: Mapping[str, str], slot: str, load: Callable[[str], str] | None = None
) -> str | None:
    """The text under ``slot`` (None: no such slot, or it is an artifact and there is
    no ``load`` to fetch it with)."""
    header = tags.get(f"{slot}.chunks")
    if header is None or slot not in tags:
        return None
    if header == "artifact":
        return None if load is None else load(slot_artifact(slot))
    count = int(header)
    parts = [tags[slot], *(tags.get(f"{slot}.{i}") for i in range(1, count))]
    if any(p is None for p in parts):
        return None  # written half-way; the replay that completes it is on its way
    return "".join(p for p in parts if p is not None)


def full_text(
    native: str,
    tags: Mapping[str, str],
    slot: str,
    limit: int,
    load: Callable[[str], str] | None,
) -> str:
    """The value behind a native param/tag that may be a preview of a slot."""
    if len(native) != limit or not native.endswith("…"):
        return native
    text = read_slot(tags, slot, load)
    return text if text is not None and preview(text, limit) == native else native


# -- request batches ---------------------------------------------------------------


@dataclass
class Batch:
    """One ``log-batch`` request's worth of entries, within MLflow's caps."""

    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)
    params: list[tuple[str, str]] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)
    size: int = 0

    def fits(self, size: int) -> bool:
        """Whether one more param or tag of ``size`` bytes fits."""
        if self.size + size > MAX_BYTES:
            return not (self.metrics or self.params or self.tags)
        if len(self.metrics) + len(self.params) + len(self.tags) >= MAX_ENTRIES:
            return False
        return len(self.params) + len(self.tags) < MAX_PARAMS_TAGS


def _size(*parts: Any) -> int:
    # What the JSON body spends on an entry (json.dumps escapes non-ASCII).
    return len(json.dumps(parts)) + 40


#: What a metric entry spends in a body besides its key: the field names and
#: separators, a float (at most 24 characters, or "-Infinity" quoted), a timestamp
#: and a step (at most 20 characters each), with room to spare.
_METRIC_BYTES = 120


def plan_batches(
    metrics: Iterable[tuple[str, float, int, int]] = (),
    params: Iterable[tuple[str, str]] = (),
    tags: Iterable[tuple[str, str]] = (),
) -> list[Batch]:
    """Split entries into requests, keeping their order. MLflow applies one
    request's params, then metrics, then tags, so a tag (a summary) planned after
    metrics never lands before them."""
    out = [Batch()]
    _plan_metrics(out, metrics)
    for kind, entries in (("param", params), ("tag", tags)):
        for entry in entries:
            size = _size(*entry)
            if not out[-1].fits(size):
                out.append(Batch())
            batch = out[-1]
            batch.size += size
            (batch.params if kind == "param" else batch.tags).append(entry)
    return [b for b in out if b.metrics or b.params or b.tags]


def _plan_metrics(out: list[Batch], metrics: Iterable[tuple[str, float, int, int]]) -> None:
    """Metrics into ``out`` (one empty batch so far), by count and size: a shipper
    plans tens of thousands per round, so a size is worked out once per key rather
    than per entry."""
    sizes: dict[str, int] = {}
    batch = out[-1]
    for entry in metrics:
        size = sizes.get(entry[0])
        if size is None:
            size = sizes[entry[0]] = len(json.dumps(entry[0])) + _METRIC_BYTES
        if len(batch.metrics) >= MAX_METRICS or (batch.size + size > MAX_BYTES and batch.metrics):
            batch = Batch()
            out.append(batch)
        batch.metrics.append(entry)
        batch.size += size


#: The floats proto3 JSON spells as strings (by their repr), and how it spells them.
_SPECIAL = {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'}


def batch_body(run_id: str, batch: Batch) -> str:
    """The ``log-batch`` request body for ``batch`` as JSON text, written out point by
    point: half the time of a dict per point through ``json.dumps``, which counts when
    a shipper sends tens of thousands of points a second. NaN and ±inf are spelled as
    proto3 JSON spells them."""
    heads: dict[str, str] = {}
    metrics = []
    for key, value, timestamp, step in batch.metrics:
        head = heads.get(key)
        if head is None:
            head = heads[key] = '{"key":' + json.dumps(key) + ',"value":'
        # repr of a finite float is a JSON number and ends in a digit; float() also
        # turns an int or a float subclass into what json.dumps would write.
        number = repr(value) if type(value) is float else repr(float(value))
        if number[-1] > "9":
            number = _SPECIAL[number]
        metrics.append(f'{head}{number},"timestamp":{timestamp},"step":{step}}}')
    params = [{"key": k, "value": v} for k, v in batch.params]
    tags = [{"key": k, "value": v} for k, v in batch.tags]
    return (
        f'{{"run_id":{json.dumps(run_id)},"metrics":[{",".join(metrics)}],'
        f'"params":{json.dumps(params)},"tags":{json.dumps(tags)}}}'
    )
