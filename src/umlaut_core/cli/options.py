"""Option types and options more than one command takes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["INSTANT", "Instant", "check_selector", "selector_options"]


_F = TypeVar("_F", bound=Callable[..., Any])


class Instant(click.ParamType):  # type: ignore[type-arg]
    """An ISO 8601 date or datetime; without an offset it is UTC; a bare date is 00:00."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        try:
            parsed = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(
                f"{value!r} is not an ISO 8601 date or datetime (e.g. 2026-03-01 or "
                f"2026-03-01T09:30:00+01:00)",
                param,
                ctx,
            )
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


INSTANT = Instant()


def selector_options(fn: _F) -> _F:
    """``--stage S`` / ``--version N`` (at most one; neither: the latest version)."""
    fn = click.option(
        "--version", "version", type=click.IntRange(min=1), help="Run this version number."
    )(fn)
    return click.option("--stage", help="Run the version this stage points at.")(fn)


def check_selector(stage: str | None, version: int | None) -> None:
    if stage is not None and version is not None:
        raise click.UsageError("give --stage or --version, not both")
