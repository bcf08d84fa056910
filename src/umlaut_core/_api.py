"""``Umlaut``: the facade users call. No backend-specific code lives here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, overload

import pluggy

from . import naming
from ._arguments import as_utc, check_metrics, check_params, version_number
from ._batch_calls import call_chunks
from ._batch_inputs import batch_source, record_ids_for, reference_list
from ._buffer import RecordBuffer
from ._calls import call_model, check_item, encode_item, selector_text
from ._dataset_api import DatasetApi
from ._loading import VersionLoading
from ._manager import get_plugin_manager
from ._training_api import TRAINING_RUN_TAG, TrainingApi
from .clock import current_user, utcnow
from .config import Settings, resolve_settings
from .datasets.records import DatasetVersion
from .deadline import Deadline
from .delivery import Delivery
from .encoding import encode_input
from .exceptions import (
    ClosedError,
    ConfigurationError,
    InvalidNameError,
    StageNotFoundError,
)
from .experiments.active import ActiveTrainingRun
from .experiments.records import TrainingRun
from .keys import bundle_key
from .packer import LoadedModel, pack
from .protocols import ArtifactStore, Capability, Tracker
from .records import (
    BUNDLE_SHA256_TAG,
    RESERVED_TAG_PREFIX,
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
_HOOKS = ("umlaut_before_run", "umlaut_after_run", "umlaut_on_run_error")


class Umlaut(VersionLoading, TrainingApi, DatasetApi):
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
        from .experiments.runs import TrainingRuns  # light: no store is opened here

        self._registry = reg
        self._checkers: dict[str, Any] = {}
        self._concern_lock = threading.Lock()
        self._training = TrainingRuns(self, lambda: reg().open_experiment_store(self._tracker))
        self._tracker_down_until = 0.0
        self._lock = threading.Lock()
        #: Names as given → checked and NFC-normalised (see naming.check_model_name).
        self._names: dict[str, str] = {}
        self._closed = False
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
        """The :class:`~umlaut_core.Tracker` this facade writes to."""
        return self._tracker

    @property
    def artifact_store(self) -> ArtifactStore | None:
        """Where bundles go; None when the tracker keeps them (``STORES_BUNDLES``)."""
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
        the tracker's connections. Every later call raises ``ClosedError`` before
        anything runs; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        self._training.close()  # ends open runs; their writes reach the store or spool
        self._close_datasets()
        self._delivery.close()
        self._tracker.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(
                f"{self!r} was closed; nothing runs or is stored through it any more. "
                f"Open a new Umlaut(...)."
            )

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
        """Deliver buffered training-run writes and ship every spooled record; True
        if everything was delivered in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._training.flush(timeout):
            return False
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._delivery.flush(left)

    def pending(self) -> SpoolStatus:
        """Spool depth, age of the oldest waiting record, records dropped, last error."""
        return self._delivery.status()

    def _name(self, name: Any) -> str:
        """The checked, NFC-normalised model name; also refuses a closed facade (every
        call that names a model passes here first, before anything runs)."""
        if self._closed:
            self._check_open()
        checked = self._names.get(name) if type(name) is str else None
        if checked is None:
            checked = naming.check_model_name(name)
            if len(self._names) > 10_000:
                self._names.clear()
            self._names[name] = checked
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
        run: ActiveTrainingRun | TrainingRun | str | None = None,
        datasets: Mapping[str, DatasetVersion] | None = None,
    ) -> ModelVersion:
        """Store ``model`` as a new immutable version of ``model_name``.

        An unchanged model (same digest) returns the existing version with
        ``created=False``. ``stage`` then points that stage at the version.
        ``run`` (a training run or its id) links a new version to the run that
        produced it: the version's tag ``umlaut.training_run_id`` names the run, and
        the run lists the version. ``datasets`` (``{"train": ds, "eval": ds2}``) links
        the version to the data it learned from; without an explicit ``signature``,
        the ``train`` dataset's feature columns become the input signature (else a
        fitted estimator's ``feature_names_in_``), which ``run_model`` checks.
        ``run_name`` (kept as the tag ``umlaut.run_name``) and ``code_path`` come from
        the original API: modules under ``code_path`` are packed by value, so the
        bundle runs where those files are absent.
        """
        if model_name is None:
            raise InvalidNameError("model_name is required, e.g. model_name='Revenue Forecast'")
        name = self._name(model_name)
        alias = naming.check_alias(stage) if stage is not None else None
        description = naming.check_text(description, "description")
        reason = naming.check_text(reason, "reason")
        clean_tags = naming.check_tags(tags)
        reserved = sorted(k for k in clean_tags if k.startswith(RESERVED_TAG_PREFIX))
        if reserved:
            raise InvalidNameError(
                f"version tags {reserved} use the prefix {RESERVED_TAG_PREFIX!r}, which "
                f"umlaut keeps for its own tags; choose another prefix"
            )
        if run_name is not None:
            clean_tags[RESERVED_TAG_PREFIX + "run_name"] = str(run_name)
        run_id = self._training_run_id(run)
        if run_id is not None:
            clean_tags[TRAINING_RUN_TAG] = run_id
        clean_params, clean_metrics = check_params(params), check_metrics(metrics)
        linked = self._check_datasets(datasets)
        if signature is None:
            signature = self._derived_signature(model, linked)
        else:
            from .datasets.signature import check_signature

            signature = check_signature(signature)  # a free-form dict is kept as it is
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
                # The whole file's checksum, kept by the tracker, is checked on every
                # load: the digest covers the model, not the zip around it.
                clean_tags[BUNDLE_SHA256_TAG] = bundle.sha256
                artifact_uri = (
                    self._store.put(bundle_key(bundle.sha256), bundle.data)
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
                if run_id is not None:
                    self._training.link_version(run_id, mv.name, mv.version)
            if linked:
                self._link_version(mv.name, mv.version, linked)
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
        reason = naming.check_text(reason, "reason")
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
        """Every model, sorted by name, with its latest version and stages."""
        self._check_open()
        return self._tracker.list_models()

    def list_versions(self, model_name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first; ``ModelNotFoundError`` if none."""
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
        self._check_open()
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
        deadline: Deadline | None = None,
    ) -> Any:
        """Run a stored version on ``input_config`` and write one audit record.

        The version is chosen by ``version``, else ``stage``, else the latest. The
        input must be JSON under the documented encoding; it is checked before the
        model runs. A model's own exception reaches the caller unchanged and is
        recorded with ``status="error"``. ``result_keys`` keeps only those keys of a
        dict result (original API); ``nested_run`` is accepted and ignored.

        ``deadline`` (a :class:`~umlaut_core.deadline.Deadline`, shared with a caller
        that waits with a timeout): a call that ends after it, or that its waiter gave
        up on, is recorded as an error ``DeadlineExceededError`` with its output
        discarded, and raises that error; ``deadline.record`` is then the call's record.
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
        run = loaded.run if deadline is None else deadline.guard(loaded.run)
        ((fields, output, error),) = call_model(
            run, mv, selector, [(input_config, inputs_json, ref)], clean_tags, result_keys,
            check=self._checker(mv),
        )  # fmt: skip
        record = audit_record(*fields)
        try:
            self._delivery.deliver((record,))
        except BaseException as exc:
            # The store failed after the model ran: that is what the caller must hear
            # (the call is not audited), with the model's own error kept beside it.
            if error is not None and exc.__context__ is None:
                exc.__context__ = error
            raise
        if deadline is not None:
            deadline.record = record
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
        record_ids: Iterable[str] | None = ...,
        deliver_to: Callable[[Collection[AuditRecord]], object] | None = ...,
        deadlines: Sequence[Deadline] | None = ...,
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
        record_ids: Iterable[str] | None = ...,
        deliver_to: Callable[[Collection[AuditRecord]], object] | None = ...,
        deadlines: Sequence[Deadline] | None = ...,
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
        record_ids: Iterable[str] | None = None,
        deliver_to: Callable[[Collection[AuditRecord]], object] | None = None,
        deadlines: Sequence[Deadline] | None = None,
        return_outputs: bool = True,
    ) -> list[Any] | int:
        """Run one version on many inputs; all audit records go in one transaction.

        The selector is resolved once, so every item runs the same version. Inputs
        given as a collection (a list, a pandas DataFrame: one item per row, as a
        dict of column → value, the index left out) are all checked before any model
        runs; each item is encoded again just before its model runs, so its record
        shows what the model received. A string or a mapping is refused (it would
        run once per character or key). With ``on_error="raise"`` the batch stops at
        the first model error, the records so far (that one included) are written
        and the error is raised; with ``"continue"`` every input runs and a failed
        item's place in the returned list holds its exception — except
        ``KeyboardInterrupt``, ``SystemExit`` and other ``BaseException``s that are
        not ``Exception``s, which always stop the batch. If the input stream itself
        raises (a generator, an item that cannot be encoded), the records of the
        items that ran are written, then its error is raised. For batches streamed
        from a generator, pass ``return_outputs=False``: the outputs are then only in
        the audit records and the call returns how many items ran, so memory stays
        bounded however long the stream.

        ``record_ids`` gives each input's audit record id (one per input, in order,
        no repeats; ids as :func:`umlaut_core.ids.derived_id` makes them, so that the
        same input of the same job always gets the same id). Trackers skip ids they
        already hold, so running a batch again with the same ids writes nothing
        twice: that is what makes a retried task on a cluster safe. Without it each
        record gets a new id.

        ``deliver_to`` receives the batch's records (once, as a sized collection that
        may be iterated several times, valid during the call only) *instead of* this
        facade's delivery: nothing is written here. A cluster worker uses it to send
        its records back to a client that writes them (``Tracker.record_runs``, one
        transaction), e.g. to a single-writer SQLite file. Observer hooks run as usual.

        ``deadlines`` gives each input a :class:`~umlaut_core.deadline.Deadline` (one
        per input, in order), with ``run_model``'s meaning per input: an input whose
        deadline passed before it ran, or that finished late, is recorded as a
        ``DeadlineExceededError`` (its place in the returned list holds it) and each
        ``deadline.record`` is its input's record once written. A server batching
        concurrent requests uses it.

        A flavor that can run many inputs in one vectorized call (scikit-learn:
        ``Flavor.make_batch_runner``) does, in chunks of 1,024 inputs: one ``predict``
        for all their rows instead of one per input, typically a hundred times
        faster. Each record still holds its own input and output; the chunk's
        records share its start time and split its duration. A chunk the vectorized
        call refuses runs input by input, so errors stay per input; with
        ``on_error="raise"`` the inputs of the chunk that ran together with a
        failing one keep their records too (they ran). Outputs may differ from
        ``run_model``'s in the last floating-point bits (numerical libraries choose
        kernels by array shape).
        """
        if on_error not in ("raise", "continue"):
            raise ConfigurationError(f"on_error must be 'raise' or 'continue', not {on_error!r}")
        name = self._name(model_name)
        clean_tags = naming.check_tags(tags) if tags else {}
        source, count = batch_source(inputs)
        ref_list = reference_list(reference_ids, count)
        ids: Iterator[str] | None = None
        id_count = 0
        if record_ids is not None:
            ids, id_count = record_ids_for(record_ids, count)
        if deadlines is not None and (count is None or len(deadlines) != count):
            raise ConfigurationError(
                "deadlines needs one Deadline per input, and the inputs as a collection"
            )
        if count is not None:
            for i, item in enumerate(source):
                check_item(item, i)  # a bad item refuses the batch before any model runs
        # Items past the end of reference_ids (a generator's) get no reference id.
        refs = itertools.chain(ref_list, itertools.repeat(None))
        # Each item is encoded just before its model runs, so its record shows what the
        # model received even if an earlier item's model changed an object they share.
        items = (
            (item, encode_item(item, i), ref)
            for i, (item, ref) in enumerate(zip(source, refs, strict=False))
        )
        mv = self._resolve(name, version, stage)
        loaded = self._load(mv)
        selector = selector_text(version, stage)
        outputs: list[Any] = []
        stop: BaseException | None = None
        before = None
        if self._observed:
            hook = self._pm.hook.umlaut_before_run

            def before(item: Any) -> None:
                hook(version=mv, inputs=item)

        with RecordBuffer() as buffer:
            keep, add = buffer.append, outputs.append
            try:
                for outcomes in call_chunks(
                    loaded.run, loaded.run_many, mv, selector, items, clean_tags,
                    stop_at_error=on_error == "raise", before=before, ids=ids,
                    check=self._checker(mv), deadlines=deadlines,
                ):  # fmt: skip
                    # Every outcome of a list ran: all keep their records.
                    for fields, output, error in outcomes:
                        keep(fields)
                        if error is not None:
                            if return_outputs:
                                add(error)
                            # KeyboardInterrupt, SystemExit…: never swallowed into the list.
                            if on_error == "raise" or not isinstance(error, Exception):
                                stop = stop or error
                        elif return_outputs:
                            add(output)
                    if stop is not None:
                        break
            except BaseException as exc:
                # The input stream (a generator, an item that cannot be encoded) or an
                # observer failed between items: the items that ran keep their records.
                stop = exc
            if deliver_to is None:
                self._delivery.deliver(buffer)
            else:
                deliver_to(buffer)  # type: ignore[arg-type]  # sized and re-iterable
            if deadlines is not None:
                for deadline, record in zip(deadlines, buffer, strict=False):
                    deadline.record = record
            if self._observed:
                for record in buffer:
                    self._notify(record, None)
        if stop is not None:
            raise stop
        if ids is not None and id_count != len(buffer):  # an input stream ran short
            raise ConfigurationError(
                f"record_ids has {id_count} ids for {len(buffer)} inputs (their records "
                f"were written with the first {len(buffer)} ids)"
            )
        return outputs if return_outputs else len(buffer)

    def _notify(self, record: AuditRecord, error: BaseException | None) -> None:
        if record.status == "ok":
            self._pm.hook.umlaut_after_run(record=record)
        else:
            self._pm.hook.umlaut_on_run_error(
                record=record, error=error or RuntimeError(record.error)
            )
