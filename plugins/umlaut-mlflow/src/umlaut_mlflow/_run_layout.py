"""Where each part of a training run lives in its MLflow run, both ways.

A training run is a native MLflow run (tag ``umlaut.kind = training``) in the
native experiment of the same name (experiment tag ``umlaut.training = 1``):

* name → the run name; parent → ``mlflow.parentRunId`` (MLflow's id, so the UI
  nests children) and ``umlaut.parent_id`` (umlaut's); user → ``mlflow.user``;
  source file and git commit from ``environment`` → ``mlflow.source.name`` and
  ``mlflow.source.git.commit``; status and end time → MLflow's own;
* umlaut's exact values: ``umlaut.run_id``, ``umlaut.started_at``/``ended_at``
  (ISO, microseconds), ``umlaut.heartbeat_at``, ``umlaut.user``/``host``, and the
  slots ``umlaut.environment`` (JSON) and ``umlaut.error`` (JSON string or null);
* params, tags, metrics → MLflow's (keys and oversize values per ``_run_values``),
  metric summaries → ``umlaut.metric.<key>`` (``_run_metrics``);
* each recorded artifact → slot ``umlaut.artifact.<h>``, each linked model version
  → slot ``umlaut.linked.<h>`` (JSON).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from umlaut_core.experiments.records import (
    LinkedVersion,
    MetricSummary,
    RunArtifact,
    RunStatus,
    TrainingRun,
)
from umlaut_core.experiments.writes import RunStarted

from ._codec import dumps, from_ms
from ._run_metrics import SUMMARY, Summary, load_summary
from ._run_values import (
    PARAM_LIMIT,
    STR_MARK,
    TAG_LIMIT,
    decode_key,
    encode_key,
    full_text,
    key_hash,
    param_key,
    param_text,
    param_value,
    preview,
    put_slot,
    read_slot,
    slot_artifact,
)

__all__ = ["T", "decode_run", "param_entries", "start_tags", "summaries", "tag_entries"]

Loader = Callable[[str], str]


class T:
    """Tag keys of training runs (MLflow's own where MLflow has one)."""

    KIND = "umlaut.kind"
    RUN_ID = "umlaut.run_id"
    EXPERIMENT = "umlaut.experiment"
    UNNAMED = "umlaut.unnamed"
    STARTED = "umlaut.started_at"
    ENDED = "umlaut.ended_at"
    PARENT = "umlaut.parent_id"
    USER = "umlaut.user"
    HOST = "umlaut.host"
    HEARTBEAT = "umlaut.heartbeat_at"
    ENVIRONMENT = "umlaut.environment"
    ERROR = "umlaut.error"
    ARTIFACT = "umlaut.artifact."
    LINKED = "umlaut.linked."
    PARAM_SLOT = "umlaut.p."
    TAG_SLOT = "umlaut.t."
    #: On the experiment: it holds training runs (what ``list_experiments`` lists).
    EXPERIMENT_TAG = "umlaut.training"
    PARENT_RUN = "mlflow.parentRunId"
    MLFLOW_USER = "mlflow.user"
    SOURCE_NAME = "mlflow.source.name"
    SOURCE_TYPE = "mlflow.source.type"
    GIT_COMMIT = "mlflow.source.git.commit"


TRAINING = "training"
#: ``umlaut.kind`` of a run whose RunStarted did not fit one request and is not yet
#: complete: invisible to searches; a replay of RunStarted completes it.
STARTING = "starting"
_SLOT_KEY = re.compile(r"[0-9a-f]{16}")


def _slot(tags: dict[str, str], artifacts: dict[str, str], slot: str, text: str) -> None:
    spilled = put_slot(tags, slot, text)
    if spilled is not None:
        artifacts[slot_artifact(slot)] = spilled


def tag_entries(user_tags: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """MLflow tags for user tags (key-name and value slots first, then the tags),
    and the artifacts to write before them."""
    support: dict[str, str] = {}
    native: dict[str, str] = {}
    artifacts: dict[str, str] = {}
    for key, value in user_tags.items():
        mlflow_key = encode_key(key, support)
        if len(value) > TAG_LIMIT:
            _slot(support, artifacts, T.TAG_SLOT + key_hash(key), value)
        native[mlflow_key] = preview(value, TAG_LIMIT)
    return {**support, **native}, artifacts


def param_entries(
    params: Mapping[str, Any],
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """``(support tags, MLflow params, artifacts)`` for params; the support tags and
    artifacts must land before the params (a param present means complete)."""
    support: dict[str, str] = {}
    native: dict[str, str] = {}
    artifacts: dict[str, str] = {}
    for key, value in params.items():
        mlflow_key = encode_key(key, support)
        text, marked = param_text(value)
        h = key_hash(key)
        if marked:
            support[STR_MARK + h] = "1"
        if len(text) > PARAM_LIMIT:
            _slot(support, artifacts, T.PARAM_SLOT + h, text)
        native[mlflow_key] = preview(text, PARAM_LIMIT)
    return support, native, artifacts


def _env_text(env: Mapping[str, Any], *paths: str) -> str | None:
    for path in paths:
        value: Any = env
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str) and value and len(value) <= TAG_LIMIT:
            return value
    return None


def start_tags(
    w: RunStarted, parent_mlflow_id: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """Every tag a new run gets (but ``umlaut.kind``), and artifacts for slots."""
    tags: dict[str, str] = {
        T.RUN_ID: w.run_id,
        T.EXPERIMENT: w.experiment,
        T.STARTED: w.started_at.isoformat(),
        T.HEARTBEAT: w.started_at.isoformat(),
    }
    artifacts: dict[str, str] = {}
    if w.name is None:
        tags[T.UNNAMED] = "1"  # MLflow makes up a name for the UI; umlaut has none
    if w.parent_id is not None:
        tags[T.PARENT] = w.parent_id
        if parent_mlflow_id is not None:
            tags[T.PARENT_RUN] = parent_mlflow_id
    if w.user is not None:
        tags[T.USER] = w.user
        tags[T.MLFLOW_USER] = preview(w.user, TAG_LIMIT)
    if w.host is not None:
        tags[T.HOST] = w.host
    env = w.environment
    if env:
        _slot(tags, artifacts, T.ENVIRONMENT, dumps(dict(env)))
    source = _env_text(env, "source", "source_file", "source.file", "source.name", "script")
    if source is not None:
        tags[T.SOURCE_NAME] = source
        tags[T.SOURCE_TYPE] = "LOCAL"
    commit = _env_text(env, "git_commit", "git.commit", "commit")
    if commit is not None:
        tags[T.GIT_COMMIT] = commit
    user_tags, user_artifacts = tag_entries(w.tags)
    tags.update(user_tags)
    artifacts.update(user_artifacts)
    return tags, artifacts


# -- reading -------------------------------------------------------------------------


def _moment(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def summaries(tags: Mapping[str, str]) -> dict[str, Summary]:
    """umlaut metric key → summary, from a run's tags."""
    out: dict[str, Summary] = {}
    for tag, text in tags.items():
        if tag.startswith(SUMMARY):
            key = decode_key(tag[len(SUMMARY) :], tags)
            s = load_summary(key, text) if key is not None else None
            if key is not None and s is not None:
                out[key] = s
    return out


def _slots(tags: Mapping[str, str], prefix: str, load: Loader) -> list[Any]:
    out = []
    for tag in tags:
        if tag.startswith(prefix) and _SLOT_KEY.fullmatch(tag[len(prefix) :]):
            text = read_slot(tags, tag, load)
            if text is not None:
                out.append(json.loads(text))
    return out


def user_params(
    params: Mapping[str, str], tags: Mapping[str, str], load: Loader | None
) -> dict[str, Any]:
    """umlaut params from MLflow's (``load`` None: values in artifacts stay previews)."""
    out: dict[str, Any] = {}
    for mlflow_key, native in params.items():
        key = param_key(mlflow_key, tags)
        h = key_hash(key)
        text = full_text(native, tags, T.PARAM_SLOT + h, PARAM_LIMIT, load)
        out[key] = param_value(text, STR_MARK + h in tags)
    return out


def decode_run(run: Any, load: Loader) -> TrainingRun:
    """The training run an MLflow run holds; ``load(path)`` reads a run artifact."""
    info, tags = run.info, dict(run.data.tags)
    status = RunStatus(info.status) if info.status in RunStatus.__members__ else RunStatus.RUNNING
    ended = None
    if status.final:
        ended = _moment(tags.get(T.ENDED)) or (from_ms(info.end_time) if info.end_time else None)
    user_tags: dict[str, str] = {}
    for mlflow_key, native in tags.items():
        key = decode_key(mlflow_key, tags)
        if key is not None:
            slot = T.TAG_SLOT + key_hash(key)
            user_tags[key] = full_text(native, tags, slot, TAG_LIMIT, load)
    metrics: dict[str, MetricSummary] = {k: s.summary for k, s in summaries(tags).items()}
    env_text = read_slot(tags, T.ENVIRONMENT, load)
    error_text = read_slot(tags, T.ERROR, load)
    artifacts = sorted(
        (RunArtifact(a["path"], a["uri"], int(a["size"]), a["sha256"])
         for a in _slots(tags, T.ARTIFACT, load)),
        key=lambda a: a.path,
    )  # fmt: skip
    links = sorted(_slots(tags, T.LINKED, load), key=lambda v: (v["at"], v["model"], v["version"]))
    return TrainingRun(
        run_id=tags[T.RUN_ID],
        experiment=tags.get(T.EXPERIMENT, ""),
        name=None if tags.get(T.UNNAMED) == "1" else info.run_name,
        status=status,
        started_at=_moment(tags.get(T.STARTED)) or from_ms(info.start_time),
        ended_at=ended,
        parent_id=tags.get(T.PARENT),
        user=tags.get(T.USER),
        host=tags.get(T.HOST),
        params=user_params(dict(run.data.params), tags, load),
        tags=user_tags,
        metrics=metrics,
        environment=json.loads(env_text) if env_text else {},
        artifacts=tuple(artifacts),
        versions=tuple(LinkedVersion(v["model"], int(v["version"])) for v in links),
        error=json.loads(error_text) if error_text else None,
        heartbeat_at=_moment(tags.get(T.HEARTBEAT)),
    )
