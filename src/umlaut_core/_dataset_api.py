"""The facade's dataset methods (``Umlaut.track_dataset`` and friends).

A mixin of :class:`~umlaut_core.Umlaut` holding argument handling and composition;
profiling, digests and Parquet live in :mod:`umlaut_core.datasets` (pandas and
pyarrow imported there, only when a dataset is tracked or loaded).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import naming
from .clock import current_user, utcnow
from .exceptions import ConfigurationError, IntegrityError
from .protocols import ArtifactStore, Capability, Tracker
from .records import ModelVersion

if TYPE_CHECKING:
    from ._api import Umlaut
    from .datasets.drift import DriftReport
    from .datasets.records import DatasetInfo, DatasetLink, DatasetVersion
    from .registry import BackendRegistry

__all__ = ["DatasetApi", "dataset_key"]


def dataset_key(sha256: str) -> str:
    """Where a dataset's Parquet file lives in an artifact store: keyed by the file's
    sha256, so the same data under two names is stored once, and a stored file is
    never replaced by different bytes."""
    return f"datasets/{sha256[:2]}/{sha256}.parquet"


class DatasetApi:
    """Datasets: versioned, profiled, content-addressed data with lineage."""

    _tracker: Tracker
    _store: ArtifactStore | None
    _registry: Any
    _checkers: dict[str, Any]
    settings: Any

    def _check_open(self) -> None:  # provided by Umlaut
        raise NotImplementedError

    # -- the store ---------------------------------------------------------------------

    @property
    def _datasets(self) -> Any:
        store = getattr(self, "_dataset_store", None)
        if store is None:
            lock: threading.Lock = self._concern_lock  # type: ignore[attr-defined]
            with lock:
                store = getattr(self, "_dataset_store", None)
                if store is None:
                    registry: BackendRegistry = self._registry()
                    store = registry.open_dataset_store(self._tracker)
                    self._dataset_store = store
        return store

    def _close_datasets(self) -> None:
        store = getattr(self, "_dataset_store", None)
        if store is not None:
            store.close()

    def _loader(self, dv: DatasetVersion) -> Any:
        import dataclasses

        return dataclasses.replace(dv, loader=self._load_frame)

    # -- tracking ----------------------------------------------------------------------

    def track_dataset(
        self,
        data: Any,
        name: str,
        *,
        target: str | None = None,
        roles: Mapping[str, str] | None = None,
        description: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> DatasetVersion:
        """Store ``data`` as a new immutable, profiled version of dataset ``name``.

        ``data`` is a pandas DataFrame, a pyarrow Table, a list of dicts, or the path
        of a CSV or Parquet file (streamed: a file larger than memory is fine). The
        digest covers every row, the column names and their logical types; the same
        content under the same name returns the existing version with
        ``created=False`` (under another name it is a new dataset, sharing the bytes).
        ``target`` names the column a model predicts; ``roles`` gives other columns a
        role (``{"id": "id"}``): only ``feature`` columns enter a model's signature.
        """
        self._check_open()
        from .datasets.ingest import ingest
        from .datasets.records import DatasetDraft

        clean = naming.check_model_name(name)
        description = naming.check_text(description, "description")
        clean_tags = naming.check_tags(tags)
        store = self._datasets
        workdir = Path(tempfile.mkdtemp(prefix="umlaut-dataset-"))
        try:
            got = ingest(data, target=target, roles=roles, workdir=workdir)
            found = store.find_dataset(clean, got.digest)
            if found is not None:
                return self._loader(found)  # type: ignore[no-any-return]
            uri = self._put_dataset_bytes(got.sha256, got.path)
            draft = DatasetDraft(
                name=clean,
                digest=got.digest,
                rows=got.rows,
                columns=got.columns,
                artifact_uri=uri,
                size_bytes=got.size_bytes,
                sha256=got.sha256,
                created_at=utcnow(),
                created_by=current_user(),
                description=description,
                tags=clean_tags,
                target=target,
                source=got.source,
            )
            return self._loader(store.register_dataset(draft))  # type: ignore[no-any-return]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _put_dataset_bytes(self, sha256: str, path: Path) -> str:
        store = self._datasets
        if Capability.DATASET_BYTES in getattr(store, "capabilities", frozenset()):
            with path.open("rb") as fh:
                return store.put_data(sha256, fh)  # type: ignore[no-any-return]
        if self._store is None:
            raise ConfigurationError(
                f"the dataset store {store.uri} keeps no data and no artifact store is "
                f"configured; set artifact_uri"
            )
        with path.open("rb") as fh:  # streamed: a dataset may not fit in memory
            return self._store.put(dataset_key(sha256), fh)

    def _dataset_bytes(self, dv: DatasetVersion) -> bytes:
        store = self._datasets
        if Capability.DATASET_BYTES in getattr(store, "capabilities", frozenset()):
            data: bytes = store.get_data(dv.artifact_uri)
        else:
            assert self._store is not None
            data = self._store.get(dv.artifact_uri)
        if hashlib.sha256(data).hexdigest() != dv.sha256:
            raise IntegrityError(
                f"the stored data of dataset {dv.name} v{dv.version} ({dv.artifact_uri}) "
                f"does not match the checksum recorded when it was tracked"
            )
        return data

    def _load_frame(self, dv: DatasetVersion) -> Any:
        from .datasets.ingest import read_frame

        return read_frame(self._dataset_bytes(dv), dv)

    # -- reading -----------------------------------------------------------------------

    def get_dataset(self, name: str, version: int | None = None) -> DatasetVersion:
        """One dataset version (the newest when ``version`` is None)."""
        self._check_open()
        return self._loader(self._datasets.get_dataset(naming.check_model_name(name), version))  # type: ignore[no-any-return]

    def list_datasets(self) -> list[DatasetInfo]:
        """Every dataset with its newest version number, by name."""
        self._check_open()
        return list(self._datasets.list_datasets())

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        """Every version of a dataset, oldest first."""
        self._check_open()
        versions = self._datasets.list_dataset_versions(naming.check_model_name(name))
        return [self._loader(v) for v in versions]

    def load_dataset(self, name: str, version: int | None = None) -> Any:
        """The data of a dataset version as a pandas DataFrame, dtypes as tracked."""
        return self.get_dataset(name, version).load()

    # -- lineage -----------------------------------------------------------------------

    def dataset_links(
        self,
        *,
        dataset: DatasetVersion | tuple[str, int | None] | str | None = None,
        model: tuple[str, int | None] | str | None = None,
        run_id: str | None = None,
    ) -> list[DatasetLink]:
        """Lineage both ways: the models and training runs that used a dataset
        (``dataset=``), or the datasets a model version or a training run used."""
        self._check_open()
        return list(self._datasets.links(dataset=_pair(dataset), model=_pair(model), run_id=run_id))

    def _link_version(
        self, model_name: str, version: int, datasets: Mapping[str, DatasetVersion]
    ) -> None:
        from .datasets.records import DatasetLink

        links = [
            DatasetLink(dv.name, dv.version, "model_version", context, model_name, version)
            for context, dv in datasets.items()
        ]
        if links:
            self._datasets.add_links(links)

    def _check_datasets(
        self, datasets: Mapping[str, DatasetVersion] | None
    ) -> dict[str, DatasetVersion]:
        from .datasets.records import DatasetVersion

        if not datasets:
            return {}
        if not isinstance(datasets, Mapping):
            raise ConfigurationError(
                f"datasets must map a context to a dataset version, e.g. "
                f"{{'train': ds}}, not {type(datasets).__name__}"
            )
        out: dict[str, DatasetVersion] = {}
        for context, dv in datasets.items():
            if not isinstance(dv, DatasetVersion):
                raise ConfigurationError(
                    f"datasets[{context!r}] must be a DatasetVersion (from track_dataset "
                    f"or get_dataset), not {type(dv).__name__}"
                )
            out[naming.check_alias(context)] = dv
        return out

    def _derived_signature(
        self, model: Any, datasets: Mapping[str, DatasetVersion]
    ) -> dict[str, Any] | None:
        """The input signature a version gets when none is given: the training
        dataset's feature columns, else a fitted estimator's ``feature_names_in_``."""
        train = datasets.get("train")
        if (
            train is None
            and not hasattr(model, "feature_names_in_")
            and not hasattr(model, "best_estimator_")
        ):
            return None  # the common case: nothing to derive, nothing imported
        from .datasets.signature import signature_from_dataset, signature_from_estimator

        if train is not None:
            return signature_from_dataset(train)
        return signature_from_estimator(model)

    # -- input checks ------------------------------------------------------------------

    def _checker(self, mv: ModelVersion) -> Any:
        """The input checks of a version (None: nothing to check), made once per
        digest: the signature is part of the digest, so the checks never go stale."""
        try:
            return self._checkers[mv.digest]
        except KeyError:
            pass
        signature = mv.manifest.get("signature")
        checker = None
        if signature and self.settings.input_checks != "off":
            from .datasets.validation import make_checker

            checker = make_checker(
                signature,
                self.settings.input_checks,
                self.settings.input_check_values,
                label=f"model {mv.name!r} v{mv.version}",
            )
        if len(self._checkers) > 1_000:
            self._checkers.clear()
        self._checkers[mv.digest] = checker
        return checker

    # -- drift -------------------------------------------------------------------------

    def drift_report(
        self,
        model_name: str,
        *,
        stage: str | None = None,
        version: int | None = None,
        since: Any = None,
        until: Any = None,
        dataset: DatasetVersion | None = None,
        thresholds: Any = None,
    ) -> DriftReport:
        """Compare a model's audited inputs and outputs in a time window with the
        dataset it was trained on: see :mod:`umlaut_core.datasets.drift`
        (``thresholds``: a :class:`~umlaut_core.datasets.drift.Thresholds`, default the
        documented ones)."""
        self._check_open()
        from .datasets.monitor import build_drift_report

        umlaut = cast("Umlaut", self)  # a mixin of Umlaut: self is one
        return build_drift_report(
            umlaut, model_name, stage=stage, version=version, since=since, until=until,
            dataset=dataset, thresholds=thresholds,
        )  # fmt: skip


def _pair(value: Any) -> tuple[str, int | None] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value, None)
    if isinstance(value, tuple):
        return (value[0], value[1])
    name, version = getattr(value, "name", None), getattr(value, "version", None)
    if isinstance(name, str) and isinstance(version, int):
        return (name, version)
    raise ConfigurationError(
        f"expected a dataset version or a (name, version) pair, not {value!r:.60}"
    )


_ = Sequence
