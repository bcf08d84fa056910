"""``Umlaut``: the facade users call. No backend-specific code lives here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, overload

import pluggy

from . import naming
from ._arguments import as_utc, check_metrics, check_params, version_number
from ._buffer import RecordBuffer
from ._calls import call_model, encode_item, selector_text
from ._manager import get_plugin_manager
from .clock import current_user, utcnow
from .config import Settings, resolve_settings
from .delivery import Delivery
from .encoding import encode_input
from .exceptions import (
    BackendError,
    ConfigurationError,
    InvalidNameError,
    StageNotFoundError,
)
from .keys import bundle_key
from .packer import LoadedModel, pack, unpack
from .protocols import ArtifactStore, Capability, Tracker
from .records import (
    AuditRecord,
    ModelInfo,
    ModelVersion,
    RunQuery,
    StageChange,
    VersionDraft,
    audit_record,
)
from .registry import BackendRegistry, redact
from .spool import SpoolStatus
from .stores.memory import select_runs

__all__ = ["Umlaut"]

OnError = Literal["raise", "continue"]
#: After a failed stage lookup under spooled delivery, serve the last known version
#: this long before asking the tracker again.
_OUTAGE_BACKOFF_S = 1.0
_HOOKS = ("umlaut_before_run", "umlaut_after_run", "umlaut_on_run_error")


class Umlaut:
    """Track models as immutable versions and run them with an audit record per call.

    :param tracking_uri: where metadata lives (``sqlite:///…``,
        ``postgresql+psycopg://…``, ``mlflow+http://…``, ``memory:``).
    :param artifact_uri: where bundles live (a folder, ``s3://bucket/prefix``, …).
    :param profile: a ``[tool.umlaut.profiles.<name>]`` table of ``pyproject.toml``.
    :param tracker: a ready tracker instance (overrides ``tracking_uri``).
    :param artifact_store: a ready artifact store (overrides ``artifact_uri``).
    :param plugin_manager: from :func:`get_plugin_manager`; one is made if omitted.
    :param options: ``env_policy`` (``strict``/``warn``/``ignore``), ``cache_size``
        (loaded models kept per process), ``tracker_options``, ``artifact_options``.
        ``tracking_server`` is accepted as the original API's name for
        ``tracking_uri``; ``folder_name`` is accepted and ignored.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        artifact_uri: str | None = None,
        *,
        profile: str | None = None,
        tracker: Tracker | None = None,
        artifact_store: ArtifactStore | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
        **options: Any,
    ) -> None:
        tracking_uri = tracking_uri or options.pop("tracking_server", None)
        options.pop("folder_name", None)
        if tracker is not None:
            tracking_uri = tracker.uri
        self.settings: Settings = resolve_settings(
            tracking_uri, artifact_uri, profile=profile, options=options
        )
        self._pm = plugin_manager or get_plugin_manager()
        registry: BackendRegistry | None = None

        def reg() -> BackendRegistry:
            nonlocal registry
            registry = registry or BackendRegistry.from_plugins(self._pm)
            return registry

        self._tracker: Tracker = tracker or reg().open_tracker(
            self.settings.tracking_uri, **self.settings.tracker_options
        )
        try:
            self._store = self._open_store(artifact_store, reg)
        except BaseException:
            if tracker is None:  # ours to close: it was opened above
                self._tracker.close()
            raise
        self._cache: OrderedDict[str, LoadedModel] = OrderedDict()
        self._pinned: dict[tuple[str, int], ModelVersion] = {}
        self._recent: dict[tuple[str, str | None], tuple[float, ModelVersion]] = {}
        self._tracker_down_until = 0.0
        self._lock = threading.Lock()
        self._names: set[str] = set()
        self._observed = any(getattr(self._pm.hook, h).get_hookimpls() for h in _HOOKS)
        self._delivery = Delivery.from_settings(
            self._tracker,
            self.settings,
            # Only a tracker opened from the settings through the installed plugins
            # can be opened again, the same way, by a shipper process.
            reopenable=tracker is None and plugin_manager is None,
        )
        # A stage/latest lookup on a remote store is a round trip per call (on an MLflow
        # server, as long as writing the audit run itself), and spooled delivery
        # promises run_model never waits on the store at all: both reuse a resolution
        # for 1 s. A local file answers in microseconds, so it is asked every call.
        remote = Capability.REMOTE in self._tracker.capabilities
        self._resolve_ttl = (
            self.settings.resolve_ttl
            if self.settings.resolve_ttl is not None
            else (1.0 if remote or self._delivery.mode == "spooled" else 0.0)
        )

    def _open_store(
        self, given: ArtifactStore | None, reg: Callable[[], BackendRegistry]
    ) -> ArtifactStore | None:
        if given is not None:
            return given
        store_uri = self.settings.artifact_uri
        if store_uri is None and Capability.STORES_BUNDLES not in self._tracker.capabilities:
            store_uri = self._tracker.default_artifact_uri
            if store_uri is None:
                raise ConfigurationError(
                    f"the tracker {self._tracker.uri} keeps no bundles itself; set "
                    f"artifact_uri (or UMLAUT_ARTIFACT_URI) to a folder or s3:// URI"
                )
        if store_uri is None:
            return None
        return reg().open_artifact_store(store_uri, **self.settings.artifact_options)

    # -- plumbing -----------------------------------------------------------------

    @property
    def tracker(self) -> Tracker:
        return self._tracker

    @property
    def artifact_store(self) -> ArtifactStore | None:
        return self._store

    def __repr__(self) -> str:
        store = self._store.uri if self._store is not None else "(tracker)"
        return f"Umlaut(tracking_uri={redact(self._tracker.uri)!r}, artifact_uri={redact(store)!r})"

    def __enter__(self) -> Umlaut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ship spooled records (waiting up to ``exit_flush_timeout``), then release
        the tracker's connections."""
        self._delivery.close()
        self._tracker.close()

    @property
    def resolve_ttl(self) -> float:
        """Seconds a ``stage=``/latest resolution is reused: by default 1 s for a
        remote tracker or spooled delivery, else 0 (every call asks the tracker)."""
        return self._resolve_ttl

    @property
    def delivery_mode(self) -> str:
        """``sync``, ``spooled`` or ``off``: how audit records reach the tracker."""
        return self._delivery.mode

    @property
    def shipper(self) -> str | None:
        """``process`` or ``thread``: where spooled records are shipped from (None
        unless spooled)."""
        return self._delivery.shipper

    def flush(self, timeout: float | None = None) -> bool:
        """Ship every spooled audit record; True if the spool emptied in time."""
        return self._delivery.flush(timeout)

    def pending(self) -> SpoolStatus:
        """Spool depth, age of the oldest waiting record, records dropped, last error."""
        return self._delivery.status()

    def _name(self, name: Any) -> str:
        if name in self._names:
            return str(name)
        checked = naming.check_model_name(name)
        with self._lock:
            self._names.add(checked)
        return checked

    # -- tracking -----------------------------------------------------------------

    def track_model(
        self,
        model: Any,
        model_name: str | None = None,
        run_name: str | None = None,
        code_path: Sequence[str] | None = None,
        *,
        stage: str | None = None,
        description: str | None = None,
        tags: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        signature: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> ModelVersion:
        """Store ``model`` as a new immutable version of ``model_name``.

        An unchanged model (same digest) returns the existing version with
        ``created=False``. ``stage`` then points that stage at the version.
        ``run_name`` (kept as the tag ``umlaut.run_name``) and ``code_path`` come from
        the original API: modules under ``code_path`` are packed by value, so the
        bundle runs where those files are absent.
        """
        if model_name is None:
            raise InvalidNameError("model_name is required, e.g. model_name='Revenue Forecast'")
        name = naming.check_model_name(model_name)
        alias = naming.check_alias(stage) if stage is not None else None
        clean_tags = naming.check_tags(tags)
        if run_name is not None:
            clean_tags["umlaut.run_name"] = str(run_name)
        clean_params, clean_metrics = check_params(params), check_metrics(metrics)
        self._pm.hook.umlaut_before_track(model_name=name, model=model)
        try:
            bundle = pack(
                model,
                self._pm,
                signature=signature,
                code_paths=code_path,
                signing_key=self.settings.signing_key,
            )
            mv = self._tracker.find_version(name, bundle.digest)
            if mv is None:
                artifact_uri = (
                    self._store.put(bundle_key(bundle.digest), bundle.data)
                    if self._store is not None
                    else None
                )
                draft = VersionDraft(
                    name=name,
                    digest=bundle.digest,
                    flavor=bundle.flavor,
                    manifest=bundle.manifest,
                    artifact_uri=artifact_uri,
                    created_at=utcnow(),
                    created_by=current_user(),
                    description=description,
                    params=clean_params,
                    metrics=clean_metrics,
                    tags=clean_tags,
                )
                mv = self._tracker.register_version(draft, bundle.data)
                self._recent.pop((name, None), None)  # "latest" just changed
            if alias is not None:
                self._move_alias(name, alias, mv.version, reason)
        except BaseException as exc:
            self._pm.hook.umlaut_on_track_error(model_name=name, error=exc)
            raise
        self._pm.hook.umlaut_after_track(version=mv)
        return mv

    def promote(
        self, model_name: str, version: int, stage: str, *, reason: str | None = None
    ) -> StageChange:
        """Point ``stage`` at ``version`` and write the move to the ledger.

        Promoting to the version the stage already points at writes nothing and
        returns a change with ``from_version == to_version``.
        """
        name = self._name(model_name)
        alias = naming.check_alias(stage)
        number = version_number(version)
        self._tracker.get_version(name, version=number)
        return self._move_alias(name, alias, number, reason)

    def _move_alias(self, name: str, alias: str, version: int, reason: str | None) -> StageChange:
        try:
            current: int | None = self._tracker.get_version(name, alias=alias).version
        except StageNotFoundError:
            current = None
        if current == version:
            # Already there: the ledger records moves, not repeated requests.
            return StageChange(name, alias, version, version, utcnow(), current_user(), reason)
        change = self._tracker.set_alias(
            name, alias, version, changed_by=current_user(), reason=reason
        )
        self._recent.pop((name, alias), None)  # this process sees its own move at once
        return change

    # -- reading ------------------------------------------------------------------

    def get_version(
        self, model_name: str, *, version: int | None = None, stage: str | None = None
    ) -> ModelVersion:
        """The version a selector names: ``version`` first, then ``stage``, else latest."""
        return self._resolve(self._name(model_name), version, stage)

    def list_models(self) -> list[ModelInfo]:
        return self._tracker.list_models()

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        return self._tracker.list_versions(self._name(model_name))

    def stage_history(self, model_name: str, stage: str | None = None) -> list[StageChange]:
        """The promotion ledger for a model (optionally one stage), oldest first."""
        alias = naming.check_alias(stage) if stage is not None else None
        return self._tracker.stage_history(self._name(model_name), alias)

    def history(
        self,
        model_name: str | None = None,
        *,
        version: int | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        status: Literal["ok", "error"] | None = None,
        reference_id: str | None = None,
        limit: int = 100,
        before: str | None = None,
        include_pending: bool = True,
    ) -> list[AuditRecord]:
        """Audit records, newest first. Page with ``before=records[-1].id``.

        Naive datetimes are taken as UTC. ``until`` is exclusive. With spooled
        delivery, records still waiting in the local spool are included, marked
        ``pending=True``; ``include_pending=False`` shows only what the tracker holds.
        """
        if status not in (None, "ok", "error"):
            raise ConfigurationError(f"status must be 'ok' or 'error', not {status!r}")
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ConfigurationError(f"limit must be an integer from 1 to 10000, not {limit!r}")
        query = RunQuery(
            model_name=self._name(model_name) if model_name is not None else None,
            version=version_number(version) if version is not None else None,
            since=as_utc(since),
            until=as_utc(until),
            status=status,
            reference_id=naming.check_reference_id(reference_id),
            limit=limit,
            before=before,
        )
        stored = self._tracker.query_runs(query)
        if not include_pending or self._delivery.spool is None:
            return stored
        waiting = [dataclasses.replace(r, pending=True) for r in self._delivery.spool.pending()]
        seen = {r.id for r in stored}
        merged = stored + [r for r in select_runs(waiting, query) if r.id not in seen]
        return select_runs(merged, dataclasses.replace(query, before=None))

    def load_model(
        self, model_name: str, *, version: int | None = None, stage: str | None = None
    ) -> Any:
        """The unpacked object of a stored version (verified like ``run_model``)."""
        return self._load(self.get_version(model_name, version=version, stage=stage)).obj

    def _resolve(self, name: str, version: int | None, stage: str | None) -> ModelVersion:
        if version is not None:
            number = version_number(version)
            pinned = self._pinned.get((name, number))
            if pinned is None:
                # Versions are immutable, so a pinned lookup can be kept for good.
                pinned = self._tracker.get_version(name, version=number)
                self._pinned[(name, number)] = pinned
            return pinned
        alias = naming.check_alias(stage) if stage is not None else None
        key = (name, alias)
        now = time.monotonic()
        recent = self._recent.get(key)
        ttl = self._resolve_ttl
        if recent is not None and (
            (ttl > 0 and now - recent[0] < ttl) or now < self._tracker_down_until
        ):
            return recent[1]
        try:
            mv = self._tracker.get_version(name, alias=alias)
        except BackendError:
            # Spooled delivery promises to keep serving through an outage: fall back to
            # what this selector resolved to when the tracker last answered, and do not
            # ask again for a second (a client's retries can take seconds per call).
            if recent is None or self._delivery.mode != "spooled":
                raise
            self._tracker_down_until = time.monotonic() + _OUTAGE_BACKOFF_S
            return recent[1]
        self._recent[key] = (now, mv)
        return mv

    def _load(self, mv: ModelVersion) -> LoadedModel:
        loaded = self._cache.get(mv.digest)
        if loaded is not None:
            return loaded
        bundles_in_tracker = Capability.STORES_BUNDLES in self._tracker.capabilities
        # A tracker that keeps bundles may also hold versions made without our store
        # (e.g. registered straight in MLflow): ask the store only for what it has.
        if self._store is not None and (
            not bundles_in_tracker or self._store.exists(mv.artifact_uri)
        ):
            data = self._store.get(mv.artifact_uri)
        else:
            data = self._tracker.load_bundle(mv)
        loaded = unpack(
            data,
            self._pm,
            expected_digest=mv.digest,
            env_policy=self.settings.env_policy,  # type: ignore[arg-type]
            signing_key=self.settings.signing_key,
        )
        with self._lock:
            self._cache[mv.digest] = loaded
            while len(self._cache) > max(self.settings.cache_size, 1):
                self._cache.popitem(last=False)
        return loaded

    # -- running ------------------------------------------------------------------

    def run_model(
        self,
        model_name: str,
        input_config: Any = None,
        *,
        stage: str | None = None,
        version: int | None = None,
        reference_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        result_keys: Sequence[str] | None = None,
        nested_run: bool = False,
    ) -> Any:
        """Run a stored version on ``input_config`` and write one audit record.

        The version is chosen by ``version``, else ``stage``, else the latest. The
        input must be JSON under the documented encoding; it is checked before the
        model runs. A model's own exception reaches the caller unchanged and is
        recorded with ``status="error"``. ``result_keys`` keeps only those keys of a
        dict result (original API); ``nested_run`` is accepted and ignored.
        """
        name = self._name(model_name)
        ref = naming.check_reference_id(reference_id)
        clean_tags = naming.check_tags(tags) if tags else {}
        inputs_json = encode_input(input_config)
        mv = self._resolve(name, version, stage)
        loaded = self._load(mv)
        selector = selector_text(version, stage)
        if self._observed:
            self._pm.hook.umlaut_before_run(version=mv, inputs=input_config)
        ((fields, output, error),) = call_model(
            loaded.run, mv, selector, [(input_config, inputs_json, ref)], clean_tags, result_keys
        )
        record = audit_record(*fields)
        self._delivery.deliver((record,))
        if self._observed:
            self._notify(record, error)
        if error is not None:
            raise error
        return output

    @overload
    def run_batch(
        self,
        model_name: str,
        inputs: Iterable[Any],
        *,
        stage: str | None = ...,
        version: int | None = ...,
        reference_ids: Sequence[str | None] | None = ...,
        tags: Mapping[str, Any] | None = ...,
        on_error: OnError = ...,
        return_outputs: Literal[True] = ...,
    ) -> list[Any]: ...

    @overload
    def run_batch(
        self,
        model_name: str,
        inputs: Iterable[Any],
        *,
        stage: str | None = ...,
        version: int | None = ...,
        reference_ids: Sequence[str | None] | None = ...,
        tags: Mapping[str, Any] | None = ...,
        on_error: OnError = ...,
        return_outputs: Literal[False],
    ) -> int: ...

    def run_batch(
        self,
        model_name: str,
        inputs: Iterable[Any],
        *,
        stage: str | None = None,
        version: int | None = None,
        reference_ids: Sequence[str | None] | None = None,
        tags: Mapping[str, Any] | None = None,
        on_error: OnError = "raise",
        return_outputs: bool = True,
    ) -> list[Any] | int:
        """Run one version on many inputs; all audit records go in one transaction.

        The selector is resolved once, so every item runs the same version. Inputs
        given as a sequence are all checked before any model runs. With
        ``on_error="raise"`` the batch stops at the first model error, the records so
        far (that one included) are written and the error is raised; with
        ``"continue"`` every input runs and a failed item's place in the returned list
        holds its exception. For batches streamed from a generator, pass
        ``return_outputs=False``: the outputs are then only in the audit records and
        the call returns how many items ran, so memory stays bounded however long the
        stream.
        """
        if on_error not in ("raise", "continue"):
            raise ConfigurationError(f"on_error must be 'raise' or 'continue', not {on_error!r}")
        name = self._name(model_name)
        clean_tags = naming.check_tags(tags) if tags else {}
        ref_list: list[str | None] = []
        if reference_ids is not None:
            ref_list = [naming.check_reference_id(r) for r in reference_ids]
        # Items past the end of reference_ids (a generator's) get no reference id.
        refs = itertools.chain(ref_list, itertools.repeat(None))
        items: Iterable[tuple[Any, str, str | None]]
        numbered = enumerate(zip(inputs, refs, strict=False))
        if isinstance(inputs, Sequence) and not isinstance(inputs, (str, bytes)):
            if reference_ids is not None and len(ref_list) != len(inputs):
                raise ConfigurationError(
                    f"reference_ids has {len(ref_list)} entries for {len(inputs)} inputs"
                )
            items = [(item, encode_item(item, i), ref) for i, (item, ref) in numbered]
        else:
            items = ((item, encode_item(item, i), ref) for i, (item, ref) in numbered)
        mv = self._resolve(name, version, stage)
        loaded = self._load(mv)
        selector = selector_text(version, stage)
        outputs: list[Any] = []
        first_error: BaseException | None = None
        before = None
        if self._observed:
            hook = self._pm.hook.umlaut_before_run

            def before(item: Any) -> None:
                hook(version=mv, inputs=item)

        with RecordBuffer() as buffer:
            keep, add = buffer.append, outputs.append
            for fields, output, error in call_model(
                loaded.run, mv, selector, items, clean_tags, None, before
            ):
                keep(fields)
                if error is not None:
                    if return_outputs:
                        add(error)
                    if on_error == "raise":
                        first_error = error
                        break
                elif return_outputs:
                    add(output)
            self._delivery.deliver(buffer)
            if self._observed:
                for record in buffer:
                    self._notify(record, None)
        if first_error is not None:
            raise first_error
        return outputs if return_outputs else len(buffer)

    def _notify(self, record: AuditRecord, error: BaseException | None) -> None:
        if record.status == "ok":
            self._pm.hook.umlaut_after_run(record=record)
        else:
            self._pm.hook.umlaut_on_run_error(
                record=record, error=error or RuntimeError(record.error)
            )
