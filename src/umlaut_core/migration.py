"""Moving a registry between backends: :func:`copy_registry` and :func:`verify_copy`.

A copy goes through the protocols only, so any two backends pair up (SQLite →
PostgreSQL + S3, SQLite → MLflow, MLflow → SQLite, …). Per model, oldest first:

1. **Versions.** A version whose digest the destination already has is not copied
   again (that is how a re-run finds its place). Any other is read from the source
   (its artifact store, or the tracker for ``STORES_BUNDLES`` trackers), checked — the
   manifest's digest recomputed, the payload's sha256, and the whole file's sha256
   when it was recorded; nothing is ever unpickled — stored in the destination's
   artifact store under its content key, and registered with its original
   ``created_at``, ``created_by``, tags, params and metrics. Numbers stay gap-free:
   into a destination without the model, versions keep their numbers; otherwise (or
   for a source with gaps) they get the next numbers, and the copy reports the
   mapping.
2. **The ledger.** Every entry, with its original time, author and reason, versions
   mapped, through ``import_ledger`` (entries already present are skipped); then each
   alias is pointed where it points in the source, without a new entry.
3. **Audit records.** Streamed oldest first (``scan_runs``; ``query_runs`` pages for a
   source without ``Capability.SCAN_RUNS``), ``chunk_size`` at a time, with their ids,
   through ``import_runs``; the destination skips ids it holds. Only the chunk being
   written and the one being read are in memory. A record of a mapped version gets
   the destination's number (``version=N`` selectors too).

4. **Training runs** (when both backends keep them, and no ``models`` selection
   narrows the copy): every run replayed with its id, params, tags, metric history,
   artifacts and linked versions (mapped), by :mod:`umlaut_core.migration_runs`.
5. **Datasets** (likewise): every version with its bytes (checked) and profile, then
   every lineage link, numbers mapped, by :mod:`umlaut_core.migration_datasets`.

Re-running the same copy after a crash, Ctrl-C or SIGKILL therefore finishes it,
with nothing lost or doubled. :func:`verify_copy` then compares both sides.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .datasets.trail import scan_records
from .exceptions import ConfigurationError, IntegrityError, ModelNotFoundError
from .keys import bundle_key
from .migration_datasets import DatasetCopy, copy_datasets, verify_datasets
from .migration_runs import TrainingCopy, copy_training_runs, verify_training_runs
from .protocols import Capability, ImportingTracker, ScanningTracker, Tracker
from .records import AuditRecord, ModelVersion, RunQuery, StageChange, VersionDraft, fields_of
from .redaction import redact

if TYPE_CHECKING:
    from ._api import Umlaut

__all__ = [
    "CopyReport",
    "ModelCheck",
    "ModelCopy",
    "Verification",
    "copy_registry",
    "verify_copy",
]

#: ``on_progress(phase, n)``: ``n`` more items of ``phase`` (``versions``/``records``).
Progress = Callable[[str, int], None]
_SAMPLE = 10


@dataclass
class ModelCopy:
    """What a copy did (or, dry, would do) for one model."""

    name: str
    #: Versions in the source.
    versions: int
    #: Versions registered in the destination by this run (dry run: that would be).
    versions_copied: int = 0
    #: Source number → destination number, for every version.
    mapping: dict[int, int] = field(default_factory=dict)
    #: Ledger entries in the source, and entries added (dry run: missing) at the
    #: destination.
    ledger: int = 0
    ledger_added: int = 0

    @property
    def renumbered(self) -> dict[int, int]:
        """The versions whose number differs at the destination."""
        return {s: d for s, d in self.mapping.items() if s != d}


@dataclass
class CopyReport:
    """What :func:`copy_registry` did: per model, and the audit records overall."""

    source: str
    destination: str
    dry_run: bool
    models: list[ModelCopy] = field(default_factory=list)
    #: Records read from the source, and new at the destination (dry run: 0).
    records: int = 0
    records_added: int = 0
    #: The training-run phase (None when a ``models`` selection skipped it).
    training: TrainingCopy | None = None
    #: The dataset phase (None when a ``models`` selection skipped it).
    datasets: DatasetCopy | None = None

    @property
    def mappings(self) -> dict[str, dict[int, int]]:
        """Model → the versions renumbered at the destination (empty: none were)."""
        return {m.name: m.renumbered for m in self.models if m.renumbered}


@dataclass
class ModelCheck:
    """One row of :func:`verify_copy`: a model's counts on both sides, and problems."""

    name: str
    versions: tuple[int, int] = (0, 0)
    mapping: dict[int, int] = field(default_factory=dict)
    aliases: tuple[int, int] = (0, 0)
    ledger: tuple[int, int] = (0, 0)
    records: tuple[int, int] = (0, 0)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Verification:
    """The closing check of a copy: ``ok`` is False on any difference."""

    checks: list[ModelCheck] = field(default_factory=list)
    #: Differences found in training runs and datasets (``verify_training_runs``,
    #: ``verify_datasets``).
    training_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and not self.training_problems

    @property
    def problems(self) -> list[str]:
        return [f"{c.name}: {p}" for c in self.checks for p in c.problems] + list(
            self.training_problems
        )


# -- the copy ----------------------------------------------------------------------


def copy_registry(
    source: Umlaut,
    destination: Umlaut,
    *,
    models: Sequence[str] | None = None,
    since: dt.datetime | None = None,
    dry_run: bool = False,
    chunk_size: int = 10_000,
    on_progress: Progress | None = None,
) -> CopyReport:
    """Copy versions (with their bundles), the ledger, aliases and audit records from
    ``source`` to ``destination``; safe to run again, and a re-run resumes.

    :param source: the registry to read (any tracker; only read).
    :param destination: the registry to write: its tracker must declare
        ``Capability.IMPORT`` (``ConfigurationError`` otherwise, before anything is
        written), and it needs an artifact store unless the tracker keeps bundles.
    :param models: only these models (default: every model, and every audit record,
        also of models without versions).
    :param since: only audit records that started at or after this moment (versions,
        ledger and aliases are always copied whole: records refer to them).
    :param dry_run: read both sides and report what would be copied; write nothing.
    :param chunk_size: audit records per ``import_runs`` call.
    :param on_progress: called with (``"versions"``, ``"records"`` or ``"training
        runs"``, count) as work is done.
    """
    src, dst = source.tracker, destination.tracker
    if Capability.IMPORT not in dst.capabilities and not dry_run:
        raise ConfigurationError(
            f"{redact(dst.uri)} cannot be the destination of a copy: its tracker "
            f"({type(dst).__name__}) does not declare Capability.IMPORT (import_ledger, "
            f"import_runs). It can still be a copy's source."
        )
    if chunk_size < 1:
        raise ConfigurationError(f"chunk_size must be at least 1, not {chunk_size}")
    tick = on_progress or (lambda phase, n: None)
    report = CopyReport(redact(src.uri), redact(dst.uri), dry_run)
    src_infos = {m.name: m for m in src.list_models()}
    names = _selected(src_infos, models)
    dst_infos = {m.name: m for m in dst.list_models()}
    mappings: dict[str, dict[int, int]] = {}
    for name in names:
        versions = src.list_versions(name)
        done = ModelCopy(name, len(versions))
        next_number = dst_infos[name].latest_version + 1 if name in dst_infos else 1
        for mv in versions:
            found = dst.find_version(name, mv.digest)
            if found is not None:
                done.mapping[mv.version] = found.version
            elif dry_run:
                done.mapping[mv.version] = next_number
                next_number += 1
                done.versions_copied += 1
            else:
                copied = _copy_version(source, destination, mv)
                done.mapping[mv.version] = copied.version
                done.versions_copied += int(copied.created)
            tick("versions", 1)
        changes = [_mapped_change(c, name, done.mapping) for c in src.stage_history(name)]
        aliases = {a: done.mapping.get(v, v) for a, v in src_infos[name].aliases.items()}
        done.ledger = len(changes)
        if dry_run:
            held = _identities(dst.stage_history(name)) if name in dst_infos else set()
            done.ledger_added = sum(_identity(c) not in held for c in changes)
        else:
            importer = cast(ImportingTracker, dst)
            done.ledger_added = importer.import_ledger(name, changes, aliases)
        mappings[name] = done.mapping
        report.models.append(done)
    queries = (
        [RunQuery(since=since)]
        if models is None
        else [RunQuery(model_name=n, since=since) for n in names]
    )
    renumber = {n: {s: d for s, d in m.items() if s != d} for n, m in mappings.items()}
    renumber = {n: m for n, m in renumber.items() if m}
    importer = cast(ImportingTracker, dst)
    for query in queries:
        if dry_run:
            report.records += _count(src, query)
            continue
        for chunk in _read_ahead(_chunks(scan_records(src, query), chunk_size)):
            if renumber:
                chunk = [_renumbered(r, renumber) for r in chunk]
            report.records += len(chunk)
            report.records_added += importer.import_runs(_Batch(chunk))
            tick("records", len(chunk))
    if models is None:
        report.training = copy_training_runs(
            source, destination, mappings=mappings, dry_run=dry_run, on_progress=tick
        )
        # After the runs: a backend may file a run's dataset input under the run.
        report.datasets = copy_datasets(
            source, destination, model_mappings=mappings, dry_run=dry_run, on_progress=tick
        )
    return report


def _selected(infos: Mapping[str, Any], models: Sequence[str] | None) -> list[str]:
    if models is None:
        return sorted(infos)
    missing = [m for m in models if m not in infos]
    if missing:
        raise ModelNotFoundError(missing[0], infos)
    return list(dict.fromkeys(models))


def _copy_version(source: Umlaut, destination: Umlaut, mv: ModelVersion) -> ModelVersion:
    data = source.fetch_bundle(mv)
    sha256 = check_bundle_bytes(data, mv)
    store = destination.artifact_store
    uri = store.put(bundle_key(sha256), data) if store is not None else None
    draft = VersionDraft(
        name=mv.name,
        digest=mv.digest,
        flavor=mv.flavor,
        manifest=mv.manifest,
        artifact_uri=uri,
        created_at=mv.created_at,
        created_by=mv.created_by,
        description=mv.description,
        params=mv.params,
        metrics=mv.metrics,
        tags=mv.tags,
    )
    return destination.tracker.register_version(draft, data)


def check_bundle_bytes(data: bytes, mv: ModelVersion) -> str:
    """Check a bundle against its version without unpickling; return its hex sha256.

    The whole file's sha256 (when the version recorded it), the manifest's digest
    recomputed and compared with the registered one, and the payload's sha256.
    Raises :class:`~umlaut_core.IntegrityError` naming the version.
    """
    from .packer import compute_digest, read_manifest

    where = f"{mv.name!r} version {mv.version}"
    sha256 = hashlib.sha256(data).hexdigest()
    recorded = mv.bundle_sha256
    if recorded is not None and recorded.split(":", 1)[-1].lower() != sha256:
        raise IntegrityError(
            f"the bundle of {where} at {redact(mv.artifact_uri)} does not match the sha256 "
            f"recorded when it was registered: it was changed or damaged. Nothing of it was "
            f"copied; restore it (or re-track the model) and copy again."
        )
    manifest = read_manifest(data)
    if compute_digest(manifest) != mv.digest or manifest.get("digest") != mv.digest:
        raise IntegrityError(
            f"the bundle of {where} does not have the registered digest {mv.digest}; "
            f"nothing of it was copied"
        )
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        payload = zf.read("payload.pkl") if "payload.pkl" in zf.namelist() else b""
    if hashlib.sha256(payload).hexdigest() != manifest.get("payload_sha256"):
        raise IntegrityError(
            f"the payload of {where}'s bundle does not match its manifest; nothing of it was copied"
        )
    return sha256


def _mapped_change(c: StageChange, name: str, mapping: Mapping[int, int]) -> StageChange:
    return dataclasses.replace(
        c,
        model_name=name,
        from_version=None
        if c.from_version is None
        else mapping.get(c.from_version, c.from_version),
        to_version=mapping.get(c.to_version, c.to_version),
    )


def _identity(c: StageChange) -> tuple[Any, ...]:
    return (c.stage, c.changed_at, c.from_version, c.to_version)


def _identities(changes: Iterable[StageChange]) -> set[tuple[Any, ...]]:
    return {_identity(c) for c in changes}


def _renumbered(r: AuditRecord, renumber: Mapping[str, Mapping[int, int]]) -> AuditRecord:
    moved = renumber.get(r.model_name, {}).get(r.version)
    if moved is None:
        return r
    selector = f"version={moved}" if r.selector == f"version={r.version}" else r.selector
    return dataclasses.replace(r, version=moved, selector=selector)


class _Batch(list[AuditRecord]):
    """A chunk of records that also offers ``field_tuples()`` (see ``record_runs``)."""

    def field_tuples(self) -> Iterator[Any]:
        return map(fields_of, self)


def _count(tracker: Tracker, query: RunQuery) -> int:
    if Capability.SCAN_RUNS in tracker.capabilities:
        return cast(ScanningTracker, tracker).count_runs(query)
    return sum(1 for _ in scan_records(tracker, query))


def _chunks(records: Iterator[AuditRecord], size: int) -> Iterator[list[AuditRecord]]:
    while True:
        chunk = [r for _, r in zip(range(size), records, strict=False)]
        if not chunk:
            return
        yield chunk


def _read_ahead(chunks: Iterator[list[AuditRecord]]) -> Iterator[list[AuditRecord]]:
    """The next chunk is read on a worker thread while the caller writes this one:
    both databases do their work without the GIL, so reading and writing overlap."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="umlaut-copy") as pool:
        ahead: Future[list[AuditRecord] | None] = pool.submit(next, chunks, None)
        while True:
            chunk = ahead.result()
            if chunk is None:
                return
            ahead = pool.submit(next, chunks, None)
            yield chunk


# -- the closing verification ------------------------------------------------------


def verify_copy(
    source: Umlaut,
    destination: Umlaut,
    *,
    models: Sequence[str] | None = None,
    since: dt.datetime | None = None,
) -> Verification:
    """Compare both sides of a copy, reading each afresh (nothing is taken from the
    copy's own report).

    Per model: every source version is at the destination (found by digest) with the
    same bundle sha256, and its bundle is in the destination's store; every source
    alias points at the (mapped) same version; every source ledger entry is present;
    the destination holds at least as many audit records as the source (the same
    number when it was empty before), and the source's oldest and newest records are
    there with the same content. With ``models`` None, the records of all models are
    also counted together (row ``(all records)``).
    """
    src, dst = source.tracker, destination.tracker
    src_infos = {m.name: m for m in src.list_models()}
    dst_infos = {m.name: m for m in dst.list_models()}
    names = _selected(src_infos, models)
    result = Verification()
    dst_store = destination.artifact_store
    check_store = dst_store is not None and Capability.STORES_BUNDLES not in dst.capabilities
    for name in names:
        check = ModelCheck(name)
        result.checks.append(check)
        versions = src.list_versions(name)
        dst_count = len(dst.list_versions(name)) if name in dst_infos else 0
        check.versions = (len(versions), dst_count)
        for mv in versions:
            found = dst.find_version(name, mv.digest)
            if found is None:
                check.problems.append(f"version {mv.version} ({mv.digest[:19]}…) is missing")
                continue
            check.mapping[mv.version] = found.version
            if mv.bundle_sha256 != found.bundle_sha256:
                check.problems.append(
                    f"version {mv.version}: bundle sha256 {mv.bundle_sha256} at the source, "
                    f"{found.bundle_sha256} at the destination"
                )
            if check_store and not dst_store.exists(found.artifact_uri):  # type: ignore[union-attr]
                check.problems.append(
                    f"version {mv.version}: its bundle {redact(found.artifact_uri)} is "
                    f"missing from the destination's store"
                )
        src_aliases = dict(src_infos[name].aliases)
        dst_aliases = dict(dst_infos[name].aliases) if name in dst_infos else {}
        check.aliases = (len(src_aliases), len(dst_aliases))
        for alias, number in sorted(src_aliases.items()):
            want = check.mapping.get(number, number)
            if dst_aliases.get(alias) != want:
                check.problems.append(
                    f"stage {alias!r} points at {dst_aliases.get(alias)} at the destination, "
                    f"not {want}"
                )
        src_ledger = [_mapped_change(c, name, check.mapping) for c in src.stage_history(name)]
        dst_ledger = dst.stage_history(name) if name in dst_infos else []
        check.ledger = (len(src_ledger), len(dst_ledger))
        held = _identities(dst_ledger)
        missing = [c for c in src_ledger if _identity(c) not in held]
        if missing:
            check.problems.append(
                f"{len(missing)} ledger entr{'y is' if len(missing) == 1 else 'ies are'} "
                f"missing (first: {missing[0].stage} → v{missing[0].to_version} at "
                f"{missing[0].changed_at.isoformat()})"
            )
        _check_records(check, src, dst, RunQuery(model_name=name, since=since), check.mapping)
    if models is None:
        total = ModelCheck("(all records)")
        renumber = {c.name: c.mapping for c in result.checks}
        _check_records(total, src, dst, RunQuery(since=since), None, renumber)
        result.checks.append(total)
        result.training_problems = verify_training_runs(source, destination)
        result.training_problems += verify_datasets(source, destination)
    return result


def _check_records(
    check: ModelCheck,
    src: Tracker,
    dst: Tracker,
    query: RunQuery,
    mapping: Mapping[int, int] | None,
    renumber: Mapping[str, Mapping[int, int]] | None = None,
) -> None:
    counts = (_count(src, query), _count(dst, query))
    check.records = counts
    if counts[1] < counts[0]:
        check.problems.append(
            f"{counts[0] - counts[1]:,} audit record(s) missing ({counts[0]:,} at the source, "
            f"{counts[1]:,} at the destination)"
        )
        return
    maps = renumber if renumber is not None else {query.model_name or "": mapping or {}}
    sample = src.query_runs(dataclasses.replace(query, limit=_SAMPLE))
    oldest = scan_records(src, query) if Capability.SCAN_RUNS in src.capabilities else iter(())
    sample += [r for _, r in zip(range(_SAMPLE), oldest, strict=False)]
    for r in sample:
        want = _renumbered(r, {k: {s: d for s, d in m.items() if s != d} for k, m in maps.items()})
        probe = dataclasses.replace(query, before=r.id + "0", limit=1)
        got = dst.query_runs(probe)
        if not got or got[0].id != r.id:
            check.problems.append(f"audit record {r.id} is missing at the destination")
        elif dataclasses.replace(got[0], pending=False) != want:
            check.problems.append(f"audit record {r.id} differs at the destination")
