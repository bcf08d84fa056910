"""``umlaut copy SRC DST``: move a registry to another backend, verified."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from .context import CliContext, CliError, one_line
from .options import INSTANT
from .output import Progress, emit_rows, format_option, plain

if TYPE_CHECKING:
    from .._api import Umlaut
    from ..migration import CopyReport, Verification

__all__ = ["copy"]

_COLUMNS = (
    "model",
    "versions_source",
    "versions_destination",
    "versions_copied",
    "mapping",
    "aliases_source",
    "aliases_destination",
    "ledger_source",
    "ledger_destination",
    "ledger_added",
    "records_source",
    "records_destination",
    "ok",
    "problems",
)
_TABLE = ("model", "versions", "copied", "mapping", "aliases", "ledger", "records", "ok")
_PLAN = ("model", "versions_source", "versions_to_copy", "mapping", "ledger_source",
         "ledger_to_add", "records_source")  # fmt: skip


@click.command("copy")
@click.argument("src", required=False, metavar="SRC")
@click.argument("dst", required=False, metavar="DST")
@click.option("--src-artifact-uri", metavar="URI", help="Where the source keeps bundles.")
@click.option("--dst-artifact-uri", metavar="URI", help="Where the copy puts bundles.")
@click.option("--src-profile", metavar="NAME", help="The source as a pyproject.toml profile.")
@click.option("--dst-profile", metavar="NAME", help="The destination as a profile.")
@click.option("--model", "models", multiple=True, help="Only this model (repeatable).")
@click.option("--since", type=INSTANT, help="Only audit records started at or after (ISO 8601).")
@click.option("--dry-run", is_flag=True, help="Show what would be copied; write nothing.")
@click.option(
    "--chunk-size",
    type=click.IntRange(1, 1_000_000),
    default=10_000,
    show_default=True,
    help="Audit records written per call.",
)
@format_option()
@click.pass_obj
def copy(
    state: CliContext,
    src: str | None,
    dst: str | None,
    src_artifact_uri: str | None,
    dst_artifact_uri: str | None,
    src_profile: str | None,
    dst_profile: str | None,
    models: tuple[str, ...],
    since: dt.datetime | None,
    dry_run: bool,
    chunk_size: int,
    fmt: str,
) -> None:
    """Copy a registry from SRC to DST: every version with its bundle (checked by
    digest and sha256 on the way), aliases, the whole promotion ledger and the audit
    records, with their ids and original times; then verify both sides.

    SRC and DST are tracking URIs (sqlite:///…, postgresql+psycopg://…,
    mlflow+http://…), each with its artifact URI option, or profiles. Running the
    same command again is safe: it resumes an interrupted copy and copies nothing
    twice. Versions keep their numbers in a destination that lacks the model; else
    they are renumbered and the mapping is reported. Exits 1 when the closing
    verification finds any difference.
    """
    from ..migration import copy_registry, verify_copy

    if src is None and src_profile is None:
        raise click.UsageError("name the source: SRC (a tracking URI) or --src-profile")
    if dst is None and dst_profile is None:
        raise click.UsageError("name the destination: DST (a tracking URI) or --dst-profile")
    selected = list(models) or None
    with contextlib.ExitStack() as stack:
        source = _open(state, stack, src, src_artifact_uri, src_profile)
        destination = _open(state, stack, dst, dst_artifact_uri, dst_profile)
        if _same(source, destination):
            raise CliError(
                f"SRC and DST are the same registry ({one_line(source.tracker.uri)})",
                label="ConfigurationError",
            )
        what = "Planning a copy of" if dry_run else "Copying"
        click.echo(f"{what} {_where(source)} → {_where(destination)}", err=True)
        with _progress() as tick:
            try:
                report = copy_registry(
                    source,
                    destination,
                    models=selected,
                    since=since,
                    dry_run=dry_run,
                    chunk_size=chunk_size,
                    on_progress=tick,
                )
            except KeyboardInterrupt:
                click.echo(
                    "Interrupted: nothing copied so far is lost; run the same command again "
                    "to finish the copy.",
                    err=True,
                )
                raise SystemExit(130) from None
        _summary(report)
        if dry_run:
            emit_rows(_plan_rows(report), fmt, _PLAN)
            return
        verification = verify_copy(source, destination, models=selected, since=since)
        emit_rows(_check_rows(report, verification), fmt, _COLUMNS, table_columns=_TABLE)
        if not verification.ok:
            problems = verification.problems
            raise CliError(
                f"the copy differs from its source in {len(problems)} place(s); first: "
                f"{problems[0]}. Run the same command again to complete it.",
                label="VerificationError",
            )
        click.echo("Verified: both sides hold the same versions, stages, ledger, "
                   "records, training runs and datasets.", err=True)  # fmt: skip


def _open(
    state: CliContext,
    stack: contextlib.ExitStack,
    uri: str | None,
    artifact_uri: str | None,
    profile: str | None,
) -> Umlaut:
    # sync: the copy writes through the tracker itself, never through a spool.
    umlaut = state.open_registry(uri, artifact_uri, profile=profile, delivery="sync")
    stack.callback(umlaut.close)
    return umlaut


def _same(a: Umlaut, b: Umlaut) -> bool:
    store_a = a.artifact_store.uri if a.artifact_store is not None else None
    store_b = b.artifact_store.uri if b.artifact_store is not None else None
    return a.tracker.uri == b.tracker.uri and store_a == store_b


def _where(umlaut: Umlaut) -> str:
    store = umlaut.artifact_store
    shown = one_line(umlaut.tracker.uri)
    return shown if store is None else f"{shown} (bundles in {one_line(store.uri)})"


@contextlib.contextmanager
def _progress() -> Iterator[Any]:
    """One progress count per phase on stderr (a terminal only)."""
    bars: dict[str, Progress] = {}
    current: list[str] = []

    def tick(phase: str, n: int) -> None:
        if phase not in bars:
            if current:
                bars[current[-1]].__exit__(None, None, None)
            bars[phase] = Progress(phase).__enter__()
            current.append(phase)
        bars[phase].advance(n)

    try:
        yield tick
    finally:
        if current:
            bars[current[-1]].__exit__(None, None, None)


def _summary(report: CopyReport) -> None:
    verb = "would copy" if report.dry_run else "copied"
    versions = sum(m.versions_copied for m in report.models)
    ledger = sum(m.ledger_added for m in report.models)
    line = (
        f"{len(report.models)} model(s): {verb} {versions} version(s), "
        f"{ledger} ledger entr{'y' if ledger == 1 else 'ies'}; "
        f"{report.records:,} audit record(s) "
    )
    if report.dry_run:
        line += "in the source"
    else:
        line += f"read, {report.records_added:,} new at the destination"
    click.echo(line, err=True)
    training = report.training
    if training is not None and training.skipped is None:
        runs = f"{training.runs:,} training run(s) "
        if report.dry_run:
            runs += f"in the source, {training.runs_added:,} missing at the destination"
        else:
            runs += (
                f"read, {training.runs_added:,} new at the destination "
                f"({training.points:,} metric points, {training.artifacts:,} artifacts)"
            )
        click.echo(runs, err=True)
        for problem in training.problems:
            click.echo(f"warning: {problem}", err=True)
    data = report.datasets
    if data is not None and data.skipped is None and (data.versions or data.problems):
        verb = "missing at" if report.dry_run else "new at"
        click.echo(
            f"{data.versions:,} dataset version(s) read, {data.versions_added:,} {verb} "
            f"the destination; {data.links:,} lineage link(s)",
            err=True,
        )
        for problem in data.problems:
            click.echo(f"warning: {problem}", err=True)
    for name, mapping in report.mappings.items():
        moved = ", ".join(f"{s}→{d}" for s, d in sorted(mapping.items()))
        click.echo(f"renumbered at the destination: {name}: {moved}", err=True)


def _mapping_text(mapping: dict[int, int]) -> str:
    moved = {s: d for s, d in sorted(mapping.items()) if s != d}
    if not mapping:
        return ""
    return "same" if not moved else ", ".join(f"{s}→{d}" for s, d in moved.items())


def _plan_rows(report: CopyReport) -> list[dict[str, Any]]:
    rows = [
        {
            "model": m.name,
            "versions_source": m.versions,
            "versions_to_copy": m.versions_copied,
            "mapping": _mapping_text(m.mapping),
            "ledger_source": m.ledger,
            "ledger_to_add": m.ledger_added,
            "records_source": None,
        }
        for m in report.models
    ]
    rows.append({"model": "(all records)", "records_source": report.records})
    return [plain(r) for r in rows]


def _check_rows(report: CopyReport, verification: Verification) -> list[dict[str, Any]]:
    copied = {m.name: m for m in report.models}
    rows = []
    for c in verification.checks:
        done = copied.get(c.name)
        if done is None:  # the row of all records together
            rows.append(
                {
                    "model": c.name,
                    "records_source": c.records[0],
                    "records_destination": c.records[1],
                    "ok": c.ok,
                    "problems": c.problems,
                    "records": f"{c.records[0]:,}/{c.records[1]:,}",
                }
            )
            continue
        rows.append(
            {
                "model": c.name,
                "versions_source": c.versions[0],
                "versions_destination": c.versions[1],
                "versions_copied": done.versions_copied,
                "mapping": _mapping_text(c.mapping),
                "aliases_source": c.aliases[0],
                "aliases_destination": c.aliases[1],
                "ledger_source": c.ledger[0],
                "ledger_destination": c.ledger[1],
                "ledger_added": done.ledger_added,
                "records_source": c.records[0],
                "records_destination": c.records[1],
                "ok": c.ok,
                "problems": c.problems,
                # table only
                "versions": f"{c.versions[0]}/{c.versions[1]}",
                "copied": done.versions_copied,
                "aliases": f"{c.aliases[0]}/{c.aliases[1]}",
                "ledger": f"{c.ledger[0]}/{c.ledger[1]}",
                "records": f"{c.records[0]:,}/{c.records[1]:,}",
            }
        )
    return [plain(r) for r in rows]
