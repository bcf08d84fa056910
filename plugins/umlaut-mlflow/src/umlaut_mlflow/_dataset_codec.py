"""How dataset versions and their lineage links are laid out in MLflow, both ways.

All of it lives in one MLflow experiment per tracker, ``umlaut.datasets`` (see
``experiment_name``), in runs of two kinds (tag ``umlaut.kind``), plus links:

* ``dataset``: one run per dataset version, named ``<name> v<n>``, started at its
  ``created_at``. Searchable tags ``umlaut.dataset.name`` / ``.version`` /
  ``.digest`` (the full ``sha256:…``) / ``.sha256``; the whole record (every draft
  field, column profiles included) as JSON in ``umlaut.dataset.record``, split by
  ``_codec.split_text`` like audit records: 5,000-character chunks, and past 40,000
  characters a run artifact (the run is then created as ``dataset_pending`` and
  turns ``dataset`` only once the artifact is there).
* ``dataset_data``: one run per distinct Parquet file (by sha256), holding it as the
  artifact ``<sha256>.parquet``; ``put_data`` returns that artifact's URI, which every
  version with those bytes records. FINISHED means the upload completed.
* lineage links are tags of the dataset version's run: ``umlaut.link.<h>`` (JSON of
  the link; ``<h>`` hashes its identity, so adding it twice stores one), and the
  index tags ``umlaut.lm.<h(model)>`` / ``umlaut.lr.<h(run id)>`` = ``1`` that let
  one exact-key search find the datasets of a model or of a training run.

Audit records (``audit``, ``version``, ``promotion``) and training runs
(``training``, ``starting``) are other kinds; every search on either side filters
on its own kind, so none of these runs ever shows up there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from umlaut_core.datasets.records import ColumnProfile, DatasetDraft, DatasetLink, DatasetVersion
from umlaut_core.exceptions import ConfigurationError

from . import _codec as codec
from ._filters import quote
from ._run_values import key_hash

__all__ = [
    "DATA",
    "DATASET",
    "PENDING",
    "D",
    "data_tags",
    "dataset_input",
    "decode_version",
    "experiment_name",
    "link_key",
    "link_tags",
    "mirror_tag",
    "name_clause",
    "read_links",
    "version_from_draft",
    "version_tags",
]

DATASET = "dataset"
DATA = "dataset_data"
PENDING = "dataset_pending"

#: Native copies of user tags on a version run (for the UI; the JSON is the truth),
#: bounded so a create-run request stays well inside MLflow's limits.
_NATIVE_TAGS = 50
_HASH = re.compile(r"[0-9a-f]{16}")
#: The longest digest MLflow accepts in a dataset input (``MAX_DATASET_DIGEST_SIZE``).
_MLFLOW_DIGEST = 36
_MLFLOW_SCHEMA_MAX = 1_048_575
#: umlaut's logical types as MLflow column types (for the dataset input's schema).
_MLFLOW_TYPES = {
    "integer": "long", "float": "double", "boolean": "boolean", "string": "string",
    "category": "string", "datetime": "datetime", "date": "datetime", "binary": "binary",
}  # fmt: skip
_NARROW = {"int8": "integer", "int16": "integer", "int32": "integer", "uint8": "integer",
           "uint16": "integer", "float": "float", "halffloat": "float"}  # fmt: skip


class D:
    """Tag keys of dataset runs, links, model versions and dataset inputs."""

    KIND = codec.K.KIND
    NAME = "umlaut.dataset.name"
    VERSION = "umlaut.dataset.version"
    DIGEST = "umlaut.dataset.digest"
    SHA256 = "umlaut.dataset.sha256"
    ROWS = "umlaut.dataset.rows"
    SIZE = "umlaut.dataset.size_bytes"
    ARTIFACT_URI = "umlaut.dataset.artifact_uri"
    RECORD = "umlaut.dataset.record"
    LINK = "umlaut.link."
    BY_MODEL = "umlaut.lm."
    BY_RUN = "umlaut.lr."
    #: On the experiment, so a reader can tell what it is for.
    EXPERIMENT_TAG = "umlaut.datasets"
    #: On a registered model version: ``umlaut.dataset.<context>.<h8>`` = "name vN".
    MODEL_VERSION = "umlaut.dataset."
    #: MLflow's own input tag (``mlflow.utils.mlflow_tags.MLFLOW_DATASET_CONTEXT``).
    CONTEXT = "mlflow.data.context"


def experiment_name(prefix: str) -> str:
    """``umlaut.datasets`` for the default prefix ``umlaut/``.

    Not ``<prefix>datasets``: that is the experiment of a model named ``datasets``.
    A prefix keeps its own datasets (two teams with two prefixes share nothing).
    """
    return (prefix.rstrip("/") or "umlaut") + ".datasets"


def name_clause(name: str) -> str | None:
    """The filter for a dataset's name, or None when MLflow's grammar cannot say it
    (a name holding both quote kinds): the caller then compares names itself."""
    literal = quote(name)
    return None if literal is None else f"tags.`{D.NAME}` = {literal}"


# -- versions --------------------------------------------------------------------------


def _column(c: ColumnProfile) -> dict[str, Any]:
    return {f.name: getattr(c, f.name) for f in dataclasses.fields(ColumnProfile)}


_COLUMN_FIELDS = {f.name for f in dataclasses.fields(ColumnProfile)}


def _profile(d: Mapping[str, Any]) -> ColumnProfile:
    # JSON has only lists: the tuples of the record are rebuilt here.
    values = {k: v for k, v in d.items() if k in _COLUMN_FIELDS}
    values["quantiles"] = tuple(values.get("quantiles") or ())
    values["top"] = tuple(tuple(pair) for pair in values.get("top") or ())
    cats = values.get("categories")
    values["categories"] = None if cats is None else tuple(cats)
    return ColumnProfile(**values)


def _record(draft: DatasetDraft) -> str:
    return codec.dumps(
        {
            "name": draft.name,
            "digest": draft.digest,
            "rows": draft.rows,
            "columns": [_column(c) for c in draft.columns],
            "artifact_uri": draft.artifact_uri,
            "size_bytes": draft.size_bytes,
            "sha256": draft.sha256,
            "created_at": draft.created_at.isoformat(),
            "created_by": draft.created_by,
            "description": draft.description,
            "tags": dict(draft.tags),
            "target": draft.target,
            "source": draft.source,
        }
    )


def version_tags(draft: DatasetDraft, version: int) -> tuple[dict[str, str], dict[str, str]]:
    """The tags of a version's run (but ``umlaut.kind``), and the artifacts (path →
    text) that must land before the run counts as a version."""
    native = codec.native_user_tags(draft.tags, set())
    kept = [(k, v) for k, v in native.items() if not k.startswith("umlaut.")]
    tags = dict(kept[:_NATIVE_TAGS])
    tags.update(
        {
            D.NAME: draft.name,
            D.VERSION: str(version),
            D.DIGEST: draft.digest,
            D.SHA256: draft.sha256,
            D.ROWS: str(draft.rows),
            D.SIZE: str(draft.size_bytes),
        }
    )
    if len(draft.artifact_uri) <= codec.CHUNK:
        tags[D.ARTIFACT_URI] = draft.artifact_uri
    artifacts: dict[str, str] = {}
    spilled = codec.split_text(tags, D.RECORD, _record(draft))
    if spilled is not None:
        artifacts[tags[f"{D.RECORD}.artifact"]] = spilled
    return tags, artifacts


def decode_version(text: str, version: int) -> DatasetVersion:
    """The version a record (``umlaut.dataset.record``) describes."""
    d = json.loads(text)
    return DatasetVersion(
        name=d["name"],
        version=version,
        digest=d["digest"],
        rows=int(d["rows"]),
        columns=tuple(_profile(c) for c in d["columns"]),
        artifact_uri=d["artifact_uri"],
        size_bytes=int(d["size_bytes"]),
        sha256=d["sha256"],
        created_at=dt.datetime.fromisoformat(d["created_at"]),
        created_by=d.get("created_by"),
        description=d.get("description"),
        tags=dict(d.get("tags") or {}),
        target=d.get("target"),
        source=d.get("source"),
        created=False,
    )


def version_from_draft(draft: DatasetDraft, version: int) -> DatasetVersion:
    fields = {f.name: getattr(draft, f.name) for f in dataclasses.fields(DatasetDraft)}
    fields["tags"] = dict(draft.tags)
    return DatasetVersion(version=version, created=True, **fields)


def data_tags(sha256: str, size: int) -> dict[str, str]:
    """The tags of the run holding one Parquet file."""
    return {D.KIND: DATA, D.SHA256: sha256, D.SIZE: str(size)}


# -- links -----------------------------------------------------------------------------


def _identity_hash(link: DatasetLink) -> str:
    return key_hash(codec.dumps(list(link.identity)))


def link_tags(link: DatasetLink, at: dt.datetime, seq: int) -> dict[str, str]:
    """The tags that record a link: the index tags first, the link itself last (a
    link present means its index is too, whatever the order requests land in)."""
    body = {
        "kind": link.kind,
        "context": link.context,
        "model": link.model_name,
        "version": link.model_version,
        "run_id": link.run_id,
        "at": at.isoformat(),
        "seq": seq,
    }
    text = codec.dumps(body)
    if len(text) > codec.CHUNK:
        raise ConfigurationError(
            f"a lineage link of dataset {link.dataset_name!r} v{link.dataset_version} is "
            f"{len(text)} characters as JSON; MLflow keeps at most {codec.CHUNK} per tag"
        )
    tags: dict[str, str] = {}
    if link.model_name is not None:
        tags[D.BY_MODEL + key_hash(link.model_name)] = "1"
    if link.run_id is not None:
        tags[D.BY_RUN + key_hash(link.run_id)] = "1"
    tags[link_key(link)] = text
    return tags


def link_key(link: DatasetLink) -> str:
    return D.LINK + _identity_hash(link)


def read_links(
    name: str, version: int, tags: Mapping[str, str]
) -> list[tuple[dt.datetime, int, DatasetLink]]:
    """The links a version's run holds, each with its sort key (time, sequence)."""
    out = []
    for key, text in tags.items():
        if not (key.startswith(D.LINK) and _HASH.fullmatch(key[len(D.LINK) :])):
            continue
        d = json.loads(text)
        at = dt.datetime.fromisoformat(d["at"])
        link = DatasetLink(
            name,
            version,
            d["kind"],
            d["context"],
            model_name=d.get("model"),
            model_version=d.get("version"),
            run_id=d.get("run_id"),
            created_at=at,
        )
        out.append((at, int(d.get("seq") or 0), link))
    return out


def mirror_tag(link: DatasetLink) -> tuple[str, str]:
    """The tag a registered model version gets for a link (for the MLflow UI)."""
    return (
        f"{D.MODEL_VERSION}{link.context}.{_identity_hash(link)[:8]}",
        f"{link.dataset_name} v{link.dataset_version}",
    )


# -- MLflow's own dataset inputs ---------------------------------------------------------


def _schema(dv: DatasetVersion) -> str | None:
    """The columns in MLflow's ColSpec JSON (what ``mlflow.data`` logs for a frame)."""
    from mlflow.types import ColSpec, DataType, Schema

    specs: list[Any] = []
    for c in dv.columns:
        kind = _NARROW.get(c.stored_type) or _MLFLOW_TYPES.get(c.logical_type, "string")
        specs.append(ColSpec(DataType[kind], c.name, required=not c.nullable))
    if not specs:
        return None
    text = json.dumps({"mlflow_colspec": Schema(specs).to_dict()})
    return text if len(text) <= _MLFLOW_SCHEMA_MAX else None


def dataset_input(dv: DatasetVersion, context: str) -> Any:
    """An MLflow ``DatasetInput`` for a training run that used ``dv``.

    MLflow keeps a digest of at most 36 characters: the field holds the first 36 hex
    digits, the input tag ``umlaut.dataset.digest`` the whole digest.
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag

    source = {
        "dataset": dv.name,
        "version": dv.version,
        "digest": dv.digest,
        "artifact_uri": dv.artifact_uri,
        "source": (dv.source or "")[:2000] or None,
    }
    profile = {"num_rows": dv.rows, "num_elements": dv.rows * len(dv.columns)}
    dataset = Dataset(
        name=dv.name,
        digest=dv.digest.rpartition(":")[2][:_MLFLOW_DIGEST],
        source_type="umlaut",
        source=codec.dumps(source),
        schema=_schema(dv),
        profile=codec.dumps(profile),
    )
    tags = [
        InputTag(D.CONTEXT, context),
        InputTag(D.DIGEST, dv.digest),
        InputTag(D.VERSION, str(dv.version)),
    ]
    return DatasetInput(dataset, tags)
