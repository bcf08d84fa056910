"""``MlflowTracker``: the Tracker contract on MLflow's model registry and runs.

Layout in MLflow (the README draws it for users):

* a version → a registered model version of the same name whose source is
  ``<run artifacts>/model``, an MLflow pyfunc model wrapping the umlaut bundle;
  the digest and manifest are version tags (``umlaut.digest`` …);
* a stage → a registered-model alias;
* every experiment ``umlaut/<model name>`` holds runs of three kinds (tag
  ``umlaut.kind``): ``version`` (the run that stored a version's artifacts),
  ``promotion`` (one per alias move: the ledger) and ``audit`` (one per call).

Only ``MlflowClient`` with explicit ids is used, never MLflow's fluent active-run
state, so threads and nested callers cannot mix records up.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import pickle
import shutil
import socket
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

from umlaut_core.exceptions import (
    ArtifactError,
    BackendError,
    ModelNotFoundError,
    StageNotFoundError,
    UmlautError,
    VersionNotFoundError,
)
from umlaut_core.packer import BUNDLE_FORMAT, compute_digest
from umlaut_core.protocols import Capability
from umlaut_core.records import (
    ModelInfo,
    ModelVersion,
    VersionDraft,
)
from umlaut_core.registry import redact

from . import _codec as codec
from ._audit import MlflowAuditRuns
from ._codec import K
from ._compat import import_mlflow, quiet_sqlalchemy_deprecations
from ._errors import error_code, mlflow_errors
from ._filters import PAGE, eq, safe
from ._flavor import FLAVOR_NAME, REF_TAG, remember_copy
from ._ledger import MlflowLedger
from ._rest import RestRunWriter
from ._uri import apply_http_limits, parse_uri

__all__ = ["LOCK_PREFIX", "MlflowTracker"]

#: Registered models with this prefix are short-lived registration locks.
LOCK_PREFIX = "umlaut.lock."
_INTERNAL_VERSION_TAGS = {
    K.DIGEST,
    K.FLAVOR,
    K.MANIFEST,
    K.PARAMS,
    K.METRICS,
    K.CREATED_AT,
    K.CREATED_BY,
    K.ARTIFACT_URI,
    K.TAGS,
}


class MlflowTracker(MlflowAuditRuns, MlflowLedger):
    """Tracker on an MLflow tracking server or database.

    :param uri: ``mlflow+http(s)://host:port``, ``mlflow+sqlite:///path.db`` (any
        MLflow store URI after ``mlflow+``), or ``mlflow:`` for ``MLFLOW_TRACKING_URI``.
    :param registry_uri: MLflow model-registry URI, when it differs from tracking.
    :param artifact_location: base URI for the artifacts of experiments umlaut
        creates; default: the server's choice, or ``mlartifacts/`` beside a SQLite
        file.
    :param experiment_prefix: experiments are named ``<prefix><model name>``.
    :param http_timeout: seconds per HTTP request (``MLFLOW_HTTP_REQUEST_TIMEOUT``).
    :param http_retries: retries per HTTP request (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``).
    :param lock_timeout: seconds to wait for another writer's registration lock.
    :param verify_ids_after: audit records that started less than this many seconds
        ago, and that this tracker has not tried to write before, are written without
        first asking MLflow whether a run with their id exists (see ``record_runs``).
        ``0`` checks every record.
    """

    default_artifact_uri: str | None = None

    def __init__(
        self,
        uri: str,
        *,
        registry_uri: str | None = None,
        artifact_location: str | None = None,
        experiment_prefix: str = "umlaut/",
        http_timeout: float | None = None,
        http_retries: int | None = None,
        lock_timeout: float = 60.0,
        verify_ids_after: float = 30.0,
        **_options: Any,
    ) -> None:
        target = parse_uri(uri)
        self.uri = redact(uri)
        self._target = target
        self._shown = redact(target.tracking_uri) if uri.startswith("mlflow:") else self.uri
        overrides = {}
        if http_timeout is not None:
            overrides["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(max(1, http_timeout)))
        if http_retries is not None:
            overrides["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(int(http_retries))
        self.http_settings = apply_http_limits(overrides)
        caps = {
            Capability.PERSISTENT,
            Capability.STORES_BUNDLES,
            Capability.IMPORT,
            Capability.SCAN_RUNS,
        }
        if not target.is_sqlite:
            # A tracking server: shared by processes, and audit records are spooled
            # by default so run_model never waits on it (issue 8).
            caps |= {Capability.MULTI_PROCESS, Capability.REMOTE}
        self.capabilities: frozenset[Capability] = frozenset(caps)
        self._prefix = experiment_prefix
        self._artifact_base = artifact_location or (
            target.local_artifact_root.as_uri() if target.local_artifact_root else None
        )
        self._lock_timeout = lock_timeout
        self._verify_after = dt.timedelta(seconds=max(0.0, verify_ids_after))
        self._written: OrderedDict[str, None] = OrderedDict()
        self._uncertain: set[str] = set()
        self._mlflow = import_mlflow()
        if not target.is_remote:
            quiet_sqlalchemy_deprecations()
        from mlflow import MlflowClient

        with self._errors("connecting"):
            self._client = MlflowClient(
                tracking_uri=target.tracking_uri, registry_uri=registry_uri or target.tracking_uri
            )
            # set_terminated() would first fetch the run to print its URL: one request
            # and a line on stdout per record. The store call does only the update.
            self._store = self._client._tracking_client.store
        # Audit runs (two requests each, on the hot path) skip MlflowClient's
        # per-request overhead where that is safe; see _rest.py.
        self._rest = (
            RestRunWriter.for_store(self._store, self.http_settings) if target.is_remote else None
        )
        self._experiments: dict[str, str] = {}
        self._name_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._downloads = Path(tempfile.mkdtemp(prefix="umlaut-mlflow-"))
        self._closed = False

    def __repr__(self) -> str:
        return f"MlflowTracker({self.uri!r})"

    # -- plumbing -----------------------------------------------------------------

    def _errors(self, doing: str, not_found: Callable[[], UmlautError] | None = None) -> Any:
        return mlflow_errors(self._shown, doing, not_found=not_found)

    def _experiment_name(self, model: str) -> str:
        return f"{self._prefix}{model}"

    def _experiment_id(self, model: str, *, create: bool) -> str | None:
        cached = self._experiments.get(model)
        if cached is not None:
            return cached
        name = self._experiment_name(model)
        with self._errors(f"looking up experiment {name!r}"):
            exp = self._client.get_experiment_by_name(name)
            if exp is None or exp.lifecycle_stage != "active":
                if not create or exp is not None:
                    return None
                location = None
                if self._artifact_base is not None:
                    key = hashlib.sha256(name.encode()).hexdigest()[:20]
                    location = f"{self._artifact_base.rstrip('/')}/{key}"
                try:
                    exp_id = self._client.create_experiment(
                        name, artifact_location=location, tags={K.MODEL: model}
                    )
                except Exception as exc:
                    if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                        raise
                    exp = self._client.get_experiment_by_name(name)
                    if exp is None:
                        raise
                    exp_id = exp.experiment_id
            else:
                exp_id = exp.experiment_id
        with self._guard:
            self._experiments[model] = exp_id
        return exp_id

    def _model_names(self) -> list[str]:
        names: list[str] = []
        token = None
        while True:
            page = self._client.search_registered_models(max_results=PAGE, page_token=token)
            names.extend(m.name for m in page if not m.name.startswith(LOCK_PREFIX))
            token = page.token
            if not token:
                return sorted(names)

    def _model_missing(self, name: str) -> ModelNotFoundError:
        with self._errors("listing registered models"):
            return ModelNotFoundError(name, self._model_names())

    def _versions_of(self, name: str) -> list[Any]:
        found: list[Any] = []
        flt = eq("name", name)
        token = None
        while True:
            page = self._client.search_model_versions(
                flt or None, max_results=PAGE, page_token=token
            )
            found.extend(mv for mv in page if mv.name == name)
            token = page.token
            if not token:
                return sorted(found, key=lambda mv: int(mv.version))

    def _require_model(self, name: str) -> Any:
        with self._errors(f"reading model {name!r}", not_found=lambda: self._model_missing(name)):
            return self._client.get_registered_model(name)

    # -- versions -----------------------------------------------------------------

    def find_version(self, name: str, digest: str) -> ModelVersion | None:
        flt = f"tags.`{K.DIGEST}` = '{safe(digest)}'"
        name_flt = eq("name", name)
        if name_flt:
            flt = f"{name_flt} and {flt}"
        with self._errors(f"looking up {name!r} by digest"):
            found = self._client.search_model_versions(flt, max_results=100)
        matches = [mv for mv in found if mv.name == name]
        if not matches:
            return None
        return self._to_version(min(matches, key=lambda mv: int(mv.version)))

    def register_version(self, draft: VersionDraft, bundle: bytes) -> ModelVersion:
        existing = self.find_version(draft.name, draft.digest)
        if existing is not None:
            return existing
        with self._registration_lock(draft.name):
            existing = self.find_version(draft.name, draft.digest)
            if existing is not None:
                return existing
            return dataclasses.replace(self._create_version(draft, bundle), created=True)

    def _create_version(self, draft: VersionDraft, bundle: bytes) -> ModelVersion:
        name = draft.name
        with self._errors(f"registering a version of {name!r}"):
            try:
                self._client.create_registered_model(name, description=draft.description or None)
            except Exception as exc:
                if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                    raise
            exp_id = self._experiment_id(name, create=True)
            assert exp_id is not None
            run = self._client.create_run(
                exp_id,
                start_time=codec.to_ms(draft.created_at),
                tags={K.KIND: "version", K.MODEL: name, K.DIGEST: draft.digest},
                run_name=f"track {draft.digest.split(':')[-1][:12]}",
            )
            run_id = run.info.run_id
            with tempfile.TemporaryDirectory(prefix="umlaut-mlflow-") as tmp:
                model_dir = Path(tmp) / "model"
                self._save_pyfunc(model_dir, draft, bundle)
                self._client.log_artifacts(run_id, str(model_dir), "model")
            self._finish(run_id, "FINISHED", None)
            tags = self._version_tags(draft)
            mv = self._client.create_model_version(
                name,
                source=f"{run.info.artifact_uri.rstrip('/')}/model",
                run_id=run_id,
                tags=tags,
                description=draft.description or None,
                await_creation_for=0,
            )
        return self._to_version(mv)

    def _save_pyfunc(self, path: Path, draft: VersionDraft, bundle: bytes) -> None:
        from ._pyfunc import BUNDLE_ARTIFACT, UmlautPythonModel

        bundle_file = path.parent / "bundle.zip"
        bundle_file.write_bytes(bundle)
        with warnings.catch_warnings():
            # MLflow asks for type hints on predict (see _pyfunc); nothing to act on.
            warnings.simplefilter("ignore", UserWarning)
            self._mlflow.pyfunc.save_model(
                str(path),
                python_model=UmlautPythonModel(),
                artifacts={BUNDLE_ARTIFACT: str(bundle_file)},
                pip_requirements=_requirements(draft.manifest),
                metadata={"umlaut_digest": draft.digest, "umlaut_flavor": draft.flavor},
            )

    def _version_tags(self, draft: VersionDraft) -> dict[str, str]:
        tags = codec.native_user_tags(draft.tags, _INTERNAL_VERSION_TAGS)
        tags.update(
            {
                K.DIGEST: draft.digest,
                K.FLAVOR: draft.flavor,
                K.MANIFEST: codec.dumps(dict(draft.manifest)),
                K.CREATED_AT: draft.created_at.isoformat(),
                K.PARAMS: codec.dumps(dict(draft.params)),
                K.METRICS: codec.dumps(dict(draft.metrics)),
                K.TAGS: codec.dumps(dict(draft.tags)),
            }
        )
        if draft.created_by is not None:
            tags[K.CREATED_BY] = draft.created_by
        if draft.artifact_uri is not None:
            tags[K.ARTIFACT_URI] = draft.artifact_uri
        return tags

    @contextmanager
    def _registration_lock(self, name: str) -> Iterator[None]:
        """Serialise registrations of one name across threads and processes.

        MLflow numbers versions safely under concurrency but has no unique
        constraint on a tag, so two writers could register one digest twice. The
        lock is a registered model whose creation is atomic (its name is unique);
        it is deleted afterwards, and one older than ``lock_timeout`` (a crashed
        writer) is broken.
        """
        with self._guard:
            local = self._name_locks.setdefault(name, threading.Lock())
        with local:
            lock_name = LOCK_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:40]
            deadline = time.monotonic() + self._lock_timeout
            pause = 0.01
            while True:
                with self._errors(f"locking {name!r} for registration"):
                    try:
                        self._client.create_registered_model(
                            lock_name,
                            tags={"umlaut.lock_for": name, "umlaut.lock_owner": _owner()},
                            description="umlaut registration lock; removed when done",
                        )
                        break
                    except Exception as exc:
                        # A server that finds the name taken looks the holder up to
                        # word its error; if the holder released the lock in between,
                        # it answers "does not exist". Either way the lock was taken.
                        if error_code(exc) not in (
                            "RESOURCE_ALREADY_EXISTS",
                            "RESOURCE_DOES_NOT_EXIST",
                        ):
                            raise
                    self._break_if_stale(lock_name)
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"MLflow at {self._shown}: another writer has held the registration "
                        f"lock for {name!r} ({lock_name}) for over {self._lock_timeout:.0f} "
                        f"s. If no writer is running, delete that registered model."
                    )
                time.sleep(pause)
                pause = min(pause * 2, 0.25)
            try:
                yield
            finally:
                with self._errors(f"unlocking {name!r}"):
                    try:
                        self._client.delete_registered_model(lock_name)
                    except Exception as exc:
                        if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                            raise

    def _break_if_stale(self, lock_name: str) -> None:
        try:
            held = self._client.get_registered_model(lock_name)
        except Exception as exc:
            if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return
            raise
        age = time.time() - (held.creation_timestamp or 0) / 1000
        if age > self._lock_timeout:
            try:
                self._client.delete_registered_model(lock_name)
            except Exception as exc:
                if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                    raise

    def get_version(
        self, name: str, *, version: int | None = None, alias: str | None = None
    ) -> ModelVersion:
        if version is not None:
            with self._errors(
                f"reading {name!r} version {version}",
                not_found=lambda: self._version_missing(name, version),
            ):
                mv = self._client.get_model_version(name, str(version))
            return self._to_version(mv)
        if alias is not None:
            with self._errors(
                f"reading {name!r} alias {alias!r}",
                not_found=lambda: self._alias_missing(name, alias),
            ):
                mv = self._client.get_model_version_by_alias(name, alias)
            return self._to_version(mv)
        with self._errors(f"reading the latest version of {name!r}"):
            flt = eq("name", name)
            found = (
                self._client.search_model_versions(
                    flt, max_results=1, order_by=["version_number DESC"]
                )
                if flt
                else [mv for mv in self._versions_of(name)[-1:]]
            )
        if not found or found[0].name != name:
            raise self._model_missing(name)
        return self._to_version(found[0])

    def _version_missing(self, name: str, version: int) -> UmlautError:
        self._require_model(name)
        with self._errors(f"listing versions of {name!r}"):
            existing = [int(v.version) for v in self._versions_of(name)]
        return VersionNotFoundError(name, version, existing)

    def _alias_missing(self, name: str, alias: str) -> UmlautError:
        model = self._require_model(name)
        return StageNotFoundError(name, alias, dict(model.aliases or {}))

    def _to_version(self, mv: Any) -> ModelVersion:
        tags: dict[str, str] = dict(mv.tags or {})
        name, number = mv.name, int(mv.version)
        created_at = (
            dt.datetime.fromisoformat(tags[K.CREATED_AT])
            if K.CREATED_AT in tags
            else codec.from_ms(mv.creation_timestamp)
        )
        if K.DIGEST in tags:
            manifest = json.loads(tags.get(K.MANIFEST, "{}"))
            return ModelVersion(
                name=name,
                version=number,
                digest=tags[K.DIGEST],
                flavor=tags.get(K.FLAVOR, str(manifest.get("flavor", ""))),
                artifact_uri=tags.get(K.ARTIFACT_URI) or f"models:/{name}/{number}",
                created_at=created_at,
                manifest=manifest,
                created_by=tags.get(K.CREATED_BY) or mv.user_id or None,
                description=mv.description or None,
                params=json.loads(tags.get(K.PARAMS, "{}")),
                metrics=json.loads(tags.get(K.METRICS, "{}")),
                tags=json.loads(tags[K.TAGS]) if K.TAGS in tags else {},
            )
        manifest, _payload = _foreign_bundle_parts(mv.source or "", mv.run_id or "")
        return ModelVersion(
            name=name,
            version=number,
            digest=manifest["digest"],
            flavor=FLAVOR_NAME,
            artifact_uri=f"models:/{name}/{number}",
            created_at=created_at,
            manifest=manifest,
            created_by=mv.user_id or None,
            description=mv.description or None,
            tags={k: v for k, v in tags.items() if not k.startswith("mlflow.")},
        )

    def load_bundle(self, version: ModelVersion) -> bytes:
        name, number = version.name, version.version
        with self._errors(
            f"reading {name!r} version {number}",
            not_found=lambda: self._version_missing(name, number),
        ):
            mv = self._client.get_model_version(name, str(number))
        if K.DIGEST not in (mv.tags or {}):
            return self._foreign_bundle(mv)
        source = mv.source.rstrip("/")
        dest = Path(tempfile.mkdtemp(dir=self._downloads))
        try:
            with self._errors(
                f"downloading the bundle of {name!r} version {number}",
                not_found=lambda: ArtifactError(
                    f"the bundle of {name!r} version {number} is missing from {source}"
                ),
            ):
                local = self._mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{source}/artifacts/bundle.zip",
                    dst_path=str(dest),
                    tracking_uri=self._target.tracking_uri,
                )
            try:
                return Path(local).read_bytes()
            except OSError as exc:
                raise ArtifactError(
                    f"the bundle of {name!r} version {number} at {source} is unreadable: {exc}"
                ) from exc
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def _foreign_bundle(self, mv: Any) -> bytes:
        """A bundle for a pyfunc registered outside umlaut; see ``_flavor``."""
        from umlaut_core.packer._bundle import _zip

        manifest, payload = _foreign_bundle_parts(mv.source or "", mv.run_id or "")
        with self._errors(f"reading where {mv.name!r} version {mv.version} is stored"):
            where = self._client.get_model_version_download_uri(mv.name, mv.version)
        dest = Path(tempfile.mkdtemp(dir=self._downloads))
        with self._errors(
            f"downloading {mv.name!r} version {mv.version}",
            not_found=lambda: ArtifactError(f"the model files at {where} are missing"),
        ):
            local = self._mlflow.artifacts.download_artifacts(
                artifact_uri=where, dst_path=str(dest), tracking_uri=self._target.tracking_uri
            )
        remember_copy(mv.source or "", mv.run_id or "", local)
        # Not part of the digest, so it may be filled in now: the environment check
        # then compares against the Python the model was saved with.
        manifest["python"] = _saved_python(local)
        return _zip(codec.dumps(manifest).encode(), payload)

    def list_models(self) -> list[ModelInfo]:
        infos: list[ModelInfo] = []
        token = None
        with self._errors("listing registered models"):
            while True:
                page = self._client.search_registered_models(max_results=PAGE, page_token=token)
                for rm in page:
                    if rm.name.startswith(LOCK_PREFIX):
                        continue
                    latest = [int(v.version) for v in rm.latest_versions or []]
                    if not latest:
                        continue
                    infos.append(
                        ModelInfo(
                            name=rm.name,
                            latest_version=max(latest),
                            aliases={a: int(v) for a, v in (rm.aliases or {}).items()},
                            description=rm.description or None,
                        )
                    )
                token = page.token
                if not token:
                    break
        return sorted(infos, key=lambda i: i.name)

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self._errors(f"listing versions of {name!r}"):
            found = self._versions_of(name)
        if not found:
            raise self._model_missing(name)
        return [self._to_version(mv) for mv in found]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._rest is not None:
                self._rest.close()
            shutil.rmtree(self._downloads, ignore_errors=True)


# -- helpers -----------------------------------------------------------------------


def _foreign_bundle_parts(source: str, run_id: str) -> tuple[dict[str, Any], bytes]:
    payload = pickle.dumps((REF_TAG, source, run_id), protocol=5)
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "flavor": FLAVOR_NAME,
        "entry": "predict",
        "object": f"mlflow:{source}",
        "python": None,
        "cloudpickle": None,
        "packages": {},
        "signature": None,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "payload_size": len(payload),
        "mlflow_source": source,
        "mlflow_run_id": run_id or None,
    }
    manifest["digest"] = compute_digest(manifest)
    return manifest, payload


def _saved_python(model_dir: str) -> str | None:
    try:
        from mlflow.models import Model

        flavor = Model.load(model_dir).flavors.get("python_function", {})
    except Exception:  # an unreadable MLmodel fails later, where it is loaded
        return None
    version = flavor.get("python_version")
    return str(version) if version else None


def _requirements(manifest: Mapping[str, Any]) -> list[str]:
    """Pinned pip requirements, so MLflow never runs its inference subprocess."""
    pins = {dist: ver for dist, ver in (manifest.get("packages") or {}).items()}
    if manifest.get("cloudpickle"):
        pins["cloudpickle"] = str(manifest["cloudpickle"])
    for dist in ("umlaut-core", "umlaut-mlflow"):
        try:
            pins[dist] = dist_version(dist)
        except PackageNotFoundError:
            continue
    return [f"{dist}=={ver}" for dist, ver in sorted(pins.items())]


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
