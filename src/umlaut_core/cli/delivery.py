"""``umlaut pending`` and ``umlaut flush``: the local spool of audit records."""

from __future__ import annotations

import click

from .context import CliContext, CliError
from .output import emit_object, format_option, plain

__all__ = ["PENDING_FIELDS", "flush", "pending"]

#: Fields of ``pending``, in order.
PENDING_FIELDS = (
    "delivery",
    "shipper",
    "depth",
    "oldest_age_s",
    "dropped",
    "path",
    "last_error",
    "unreachable_since",
)


@click.command()
@format_option()
@click.pass_obj
def pending(state: CliContext, fmt: str) -> None:
    """How many audit records wait in the spool, and why (depth 0 under sync delivery)."""
    umlaut = state.umlaut()
    status = plain(umlaut.pending())
    obj = {"delivery": umlaut.delivery_mode, "shipper": umlaut.shipper, **status}
    emit_object({k: obj.get(k) for k in PENDING_FIELDS}, fmt)


@click.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for the spool to empty.",
)
@click.pass_obj
def flush(state: CliContext, timeout: float) -> None:
    """Ship every spooled audit record now; exit 1 if some are still waiting."""
    umlaut = state.umlaut()
    if not umlaut.flush(timeout):
        status = umlaut.pending()
        raise CliError(
            f"{status.depth} audit records still wait in {status.path} after {timeout:g} s "
            f"(last error: {status.last_error or 'none'}); check the tracker and run "
            f"`umlaut flush` again, or see `umlaut pending`",
            label="FlushTimeout",
        )
    click.echo("spool empty: every audit record is in the tracker", err=True)
