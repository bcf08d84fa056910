"""Lineage links of the MLflow dataset store, and their native copies in MLflow.

A link is a tag of the dataset version's run (``_dataset_codec``), which is what
umlaut reads, both ways: by dataset (the version's run), by model or by training run
(one exact-key search on the index tags). What people see in MLflow is written
first, so a link that is recorded has it:

* a training-run link → the MLflow run's dataset input (``log_inputs``), with
  MLflow's context tag ``mlflow.data.context`` and the full digest in the input tag
  ``umlaut.dataset.digest``;
* a model-version link → the registered model version's tag
  ``umlaut.dataset.<context>.<hash>`` = ``<name> v<n>``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from umlaut_core.clock import utcnow
from umlaut_core.datasets.memory import select_links
from umlaut_core.datasets.records import DatasetLink, DatasetVersion

from . import _codec as codec
from ._dataset_codec import (
    DATASET,
    D,
    dataset_input,
    link_key,
    link_tags,
    mirror_tag,
    name_clause,
    read_links,
)
from ._errors import error_code
from ._run_index import RunIndex
from ._run_values import MAX_PARAMS_TAGS, key_hash

if TYPE_CHECKING:
    from ._datasets import MlflowDatasetStore

__all__ = ["Lineage"]


class Lineage:
    """``add_links`` and ``links`` of one :class:`MlflowDatasetStore`."""

    def __init__(self, store: MlflowDatasetStore) -> None:
        self._s = store
        self._t = store._t
        self._index = RunIndex(store._t)
        # A link is added by reading, then writing a version's run: serialised per
        # run within the process (a fixed set of locks bounds the memory).
        self._locks = [threading.Lock() for _ in range(64)]

    def add(self, links: Sequence[DatasetLink]) -> int:
        """Every target is checked before anything is written. MLflow has no
        transactions, so a failure half-way leaves part of the batch, which a retry
        completes without doubling anything. Two processes adding one new link at
        the same moment both count it (it is stored once)."""
        batch = list(links)
        if not batch:
            return 0
        with self._t._errors("recording dataset links"):
            targets: dict[tuple[str, int], Any] = {}
            for link in batch:
                key = (link.dataset_name, link.dataset_version)
                if key not in targets:
                    runs = self._s._version_runs(*key)
                    if not runs:
                        raise self._s._missing(*key)
                    targets[key] = runs[key]
            added = 0
            seq = time.time_ns()  # orders links added at the same moment
            for key, run in targets.items():
                group = [x for x in batch if (x.dataset_name, x.dataset_version) == key]
                added += self._add_to(run, group, seq)
                seq += len(group)
        return added

    def _add_to(self, run: Any, group: list[DatasetLink], seq: int) -> int:
        run_id = str(run.info.run_id)
        client = self._t._client
        with self._locks[hash(run_id) % len(self._locks)]:
            held = set(client.get_run(run_id).data.tags)  # fresh: others may have added
            tags: dict[str, str] = {}
            new = 0
            at = utcnow()
            dv: DatasetVersion | None = None
            for i, link in enumerate(group):
                key = link_key(link)
                if key in held or key in tags:
                    continue
                if link.kind == "training_run" and link.run_id is not None:
                    dv = dv if dv is not None else self._s._decode(run)
                    self._log_input(dv, link)
                elif link.kind == "model_version":
                    self._mirror(link)
                tags.update(link_tags(link, link.created_at or at, seq + i))
                new += 1
            self._send_tags(run_id, tags)
        return new

    def _send_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        items = list(tags.items())  # in order: index tags before the links they find
        for start in range(0, len(items), MAX_PARAMS_TAGS):
            chunk = items[start : start + MAX_PARAMS_TAGS]
            self._t._client.log_batch(run_id, tags=[RunTag(k, v) for k, v in chunk])

    def _log_input(self, dv: DatasetVersion, link: DatasetLink) -> None:
        """A run id MLflow does not hold (a run that never reached it) gets no input;
        the link is kept all the same. MLflow keeps one input per dataset and run, so
        a second context for the same pair is in umlaut's links only."""
        mlflow_id = self._index.mlflow_id(link.run_id)
        if mlflow_id is None:
            return
        self._t._client.log_inputs(mlflow_id, datasets=[dataset_input(dv, link.context)])

    def _mirror(self, link: DatasetLink) -> None:
        """Tag the registered model version, when it exists and umlaut made it."""
        if link.model_name is None or link.model_version is None:
            return
        client = self._t._client
        try:
            mv = client.get_model_version(link.model_name, str(link.model_version))
        except Exception as exc:
            if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return
            raise
        if codec.K.DIGEST not in (mv.tags or {}):
            return  # a foreign version's tags read as its user tags: leave them be
        key, value = mirror_tag(link)
        client.set_model_version_tag(link.model_name, str(link.model_version), key, value)

    def query(
        self,
        *,
        dataset: tuple[str, int | None] | None = None,
        model: tuple[str, int | None] | None = None,
        run_id: str | None = None,
    ) -> list[DatasetLink]:
        """One search narrowed by every filter given; the exact match, and the order
        (oldest first), are made here."""
        parts: list[str | None] = [f"tags.`{D.KIND}` = '{DATASET}'"]
        if dataset is not None:
            parts.append(name_clause(dataset[0]))
            if dataset[1] is not None:
                parts.append(f"tags.`{D.VERSION}` = '{int(dataset[1])}'")
        if model is not None:
            parts.append(f"tags.`{D.BY_MODEL}{key_hash(model[0])}` = '1'")
        if run_id is not None:
            parts.append(f"tags.`{D.BY_RUN}{key_hash(run_id)}` = '1'")
        found = []
        with self._t._errors("reading dataset links"):
            for run in self._s._runs(parts):
                t = run.data.tags
                found += read_links(t.get(D.NAME, ""), int(t.get(D.VERSION, "0")), t)
        found.sort(key=lambda entry: (entry[0], entry[1]))
        ordered = [link for _, _, link in found]
        return select_links(ordered, dataset=dataset, model=model, run_id=run_id)
