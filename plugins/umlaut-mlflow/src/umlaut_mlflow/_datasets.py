"""``MlflowDatasetStore``: dataset versions, their Parquet bytes and lineage on MLflow.

MLflow has no dataset registry, so the layout (``_dataset_codec``) is runs in one
experiment. Numbers are allocated under the tracker's registration lock (the one
model versions use: a registered model whose creation is atomic), so versions stay
1, 2, 3 … per name with several processes registering at once. A training-run link
is also logged as the MLflow run's native dataset input (context in
``mlflow.data.context``), so the MLflow UI shows what the run trained on; a model
version link also tags the registered model version. umlaut reads lineage only from
the dataset runs: the native copies are for people.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from umlaut_core.datasets.records import DatasetDraft, DatasetInfo, DatasetLink, DatasetVersion
from umlaut_core.exceptions import (
    BackendError,
    ConfigurationError,
    DatasetNotFoundError,
)
from umlaut_core.protocols import Capability

from . import _codec as codec
from ._dataset_bytes import DataFiles
from ._dataset_codec import (
    DATASET,
    PENDING,
    D,
    decode_version,
    experiment_name,
    name_clause,
    version_from_draft,
    version_tags,
)
from ._dataset_links import Lineage
from ._errors import error_code
from ._filters import PAGE, quote
from ._run_values import key_hash
from ._tracker import MlflowTracker

__all__ = ["MlflowDatasetStore"]

#: Decoded versions kept per store (they are immutable; a big record is an artifact).
_CACHE = 1_000


class MlflowDatasetStore:
    """The ``DatasetStore`` of an :class:`MlflowTracker` (``mlflow+…`` URIs).

    It keeps the Parquet bytes too (``DATASET_BYTES``): the MLflow tracker has no
    separate artifact store.
    """

    capabilities: frozenset[Capability] = frozenset({Capability.DATASET_BYTES})

    def __init__(self, tracker: Any) -> None:
        if not isinstance(tracker, MlflowTracker):
            raise ConfigurationError(
                f"the MLflow dataset store needs an MlflowTracker, not {type(tracker).__name__}"
            )
        self._t = tracker
        self.uri = tracker.uri
        self._experiment_name = experiment_name(tracker._prefix)
        self._experiment_id: str | None = None
        self._guard = threading.Lock()
        self._versions: OrderedDict[str, DatasetVersion] = OrderedDict()
        self._tmp: Path | None = None
        self._lineage = Lineage(self)
        self._files = DataFiles(self)

    def __repr__(self) -> str:
        return f"MlflowDatasetStore({self.uri!r})"

    # -- the experiment and its runs ------------------------------------------------

    def _experiment(self, *, create: bool) -> str | None:
        with self._guard:
            if self._experiment_id is not None:
                return self._experiment_id
        client, name = self._t._client, self._experiment_name
        exp = client.get_experiment_by_name(name)
        if exp is not None and exp.lifecycle_stage != "active":
            raise BackendError(
                f"MLflow at {self._t._shown}: the dataset experiment {name!r} is deleted; "
                f"restore it (mlflow experiments restore) or delete it for good (mlflow gc)"
            )
        if exp is None:
            if not create:
                return None
            base = self._t._artifact_base
            location = None
            if base is not None:  # as the tracker places its experiments
                location = f"{base.rstrip('/')}/{key_hash(name)}"
            try:
                exp_id = str(
                    client.create_experiment(
                        name, artifact_location=location, tags={D.EXPERIMENT_TAG: "1"}
                    )
                )
            except Exception as exc:
                if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                    raise
                return self._experiment(create=create)  # another writer made it just now
        else:
            exp_id = str(exp.experiment_id)
        with self._guard:
            self._experiment_id = exp_id
        return exp_id

    def _runs(self, parts: Sequence[str | None], *, deleted_too: bool = False) -> Iterator[Any]:
        """Runs of the dataset experiment matching every clause (None: cannot be said
        to MLflow; the caller checks it)."""
        exp_id = self._experiment(create=False)
        if exp_id is None:
            return
        from mlflow.entities import ViewType

        view = ViewType.ALL if deleted_too else ViewType.ACTIVE_ONLY
        flt = " and ".join(p for p in parts if p is not None)
        token = None
        while True:
            page = self._t._client.search_runs(
                [exp_id], flt, run_view_type=view, max_results=PAGE, page_token=token
            )
            yield from page
            token = page.token
            if not token:
                return

    def _version_runs(
        self, name: str | None = None, version: int | None = None, *, deleted_too: bool = False
    ) -> dict[tuple[str, int], Any]:
        """(name, version) → its run. Should a broken lock ever have let two runs
        claim one number, the one started first (then the lower id) is the version."""
        parts: list[str | None] = [f"tags.`{D.KIND}` = '{DATASET}'"]
        if name is not None:
            parts.append(name_clause(name))
        if version is not None:
            parts.append(f"tags.`{D.VERSION}` = '{int(version)}'")
        found: dict[tuple[str, int], Any] = {}
        runs = sorted(
            self._runs(parts, deleted_too=deleted_too),
            key=lambda r: (r.info.start_time or 0, r.info.run_id),
        )
        for run in runs:
            t = run.data.tags
            key = (t.get(D.NAME, ""), int(t.get(D.VERSION, "0")))
            if (name is None or key[0] == name) and (version is None or key[1] == version):
                found.setdefault(key, run)
        return found

    def _decode(self, run: Any) -> DatasetVersion:
        run_id = str(run.info.run_id)
        with self._guard:
            cached = self._versions.get(run_id)
        if cached is not None:
            return cached
        tags = run.data.tags
        text = codec.join_text(tags, D.RECORD)
        if text is None:
            text = self._download(run_id, tags[f"{D.RECORD}.artifact"]).decode("utf-8")
        dv = decode_version(text, int(tags[D.VERSION]))
        with self._guard:
            self._versions[run_id] = dv
            while len(self._versions) > _CACHE:
                self._versions.popitem(last=False)
        return dv

    def _scratch(self) -> Path:
        """A fresh folder for one download or upload. The store's own folder is made
        on first use: most stores (one per facade) never need one."""
        with self._guard:
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="umlaut-mlflow-datasets-"))
            return Path(tempfile.mkdtemp(dir=self._tmp))

    def _download(self, run_id: str, path: str) -> bytes:
        dest = self._scratch()
        try:
            local = self._t._client.download_artifacts(run_id, path, str(dest))
            return Path(local).read_bytes()
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def _names(self) -> list[str]:
        return sorted({name for name, _ in self._version_runs()})

    def _missing(self, name: str, version: int | None) -> DatasetNotFoundError:
        numbers = sorted(v for _, v in self._version_runs(name))
        if version is None or not numbers:
            return DatasetNotFoundError.for_name(name, self._names())
        return DatasetNotFoundError.for_version(name, version, numbers)

    # -- bytes (``_dataset_bytes``) -----------------------------------------------------

    def put_data(self, sha256: str, data: BinaryIO) -> str:
        return self._files.put(sha256, data)

    def get_data(self, uri: str) -> bytes:
        return self._files.get(uri)

    # -- versions -------------------------------------------------------------------

    def find_dataset(self, name: str, digest: str) -> DatasetVersion | None:
        digest_literal = quote(digest)
        parts = [
            f"tags.`{D.KIND}` = '{DATASET}'",
            name_clause(name),
            None if digest_literal is None else f"tags.`{D.DIGEST}` = {digest_literal}",
        ]
        with self._t._errors(f"looking up dataset {name!r} by digest"):
            runs = [
                r
                for r in self._runs(parts)
                if r.data.tags.get(D.NAME) == name and r.data.tags.get(D.DIGEST) == digest
            ]
            if not runs:
                return None
            return self._decode(min(runs, key=lambda r: int(r.data.tags[D.VERSION])))

    def register_dataset(self, draft: DatasetDraft) -> DatasetVersion:
        found = self.find_dataset(draft.name, draft.digest)
        if found is not None:
            return found
        name = draft.name
        # Keyed apart from the model of the same name (a shared key would only make
        # the two wait for each other).
        with (
            self._t._registration_lock(f"dataset:{name}"),
            self._t._errors(f"registering a version of dataset {name!r}"),
        ):
            exp_id = self._experiment(create=True)
            assert exp_id is not None
            # Deleted versions keep their numbers, as MLflow's own registry does:
            # a number never names two different datasets.
            runs = self._version_runs(name, deleted_too=True)
            for run in runs.values():
                if (
                    run.info.lifecycle_stage == "active"
                    and run.data.tags.get(D.DIGEST) == draft.digest
                ):
                    return self._decode(run)
            number = max((v for _, v in runs), default=0) + 1
            self._create_version(exp_id, draft, number)
        return version_from_draft(draft, number)

    def _create_version(self, exp_id: str, draft: DatasetDraft, number: int) -> None:
        """One create-run request when the record fits in tags. A record that needs
        an artifact is written as ``dataset_pending`` first: a writer that fails or
        dies half-way leaves a run no reader counts, and the number is used again.
        Such a run is not deleted: if the kind did land before the error, it is a
        whole version, and deleting it would leave a gap (deleted runs keep their
        numbers)."""
        tags, artifacts = version_tags(draft, number)
        client = self._t._client
        run = client.create_run(
            exp_id,
            start_time=codec.to_ms(draft.created_at),
            tags={**tags, D.KIND: PENDING if artifacts else DATASET},
            run_name=f"{draft.name} v{number}",
        )
        run_id = str(run.info.run_id)
        if artifacts:
            for path, text in artifacts.items():
                client.log_text(run_id, text, path)
            client.set_tag(run_id, D.KIND, DATASET)
        self._t._finish(run_id, "FINISHED", None)

    def get_dataset(self, name: str, version: int | None = None) -> DatasetVersion:
        with self._t._errors(f"reading dataset {name!r}"):
            runs = self._version_runs(name, version)
            if not runs:
                raise self._missing(name, version)
            return self._decode(runs[max(runs, key=lambda k: k[1])])

    def list_datasets(self) -> list[DatasetInfo]:
        with self._t._errors("listing datasets"):
            newest: dict[str, tuple[int, Any]] = {}
            for (name, number), run in self._version_runs().items():
                if name not in newest or number > newest[name][0]:
                    newest[name] = (number, run)
            return [
                DatasetInfo(name, number, self._decode(run).description)
                for name, (number, run) in sorted(newest.items())
            ]

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        with self._t._errors(f"listing the versions of dataset {name!r}"):
            runs = self._version_runs(name)
            if not runs:
                raise self._missing(name, None)
            return [self._decode(runs[key]) for key in sorted(runs, key=lambda k: k[1])]

    # -- lineage (``_dataset_links``) ----------------------------------------------------

    def add_links(self, links: Sequence[DatasetLink]) -> int:
        return self._lineage.add(links)

    def links(
        self,
        *,
        dataset: tuple[str, int | None] | None = None,
        model: tuple[str, int | None] | None = None,
        run_id: str | None = None,
    ) -> list[DatasetLink]:
        return self._lineage.query(dataset=dataset, model=model, run_id=run_id)

    def close(self) -> None:
        with self._guard:
            tmp, self._tmp = self._tmp, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
