"""``umlaut run`` and ``umlaut run-batch``: run a stored version, audited as usual.

Batch input is JSON lines (one JSON value per line; blank lines are skipped) or CSV
(a header row, then one input per row as a dict of column → cell). CSV cells are
text, so each is typed by one rule: **a cell that parses as JSON is that value,
any other cell is the text as written** — ``3`` → 3, ``2.5`` → 2.5, ``true`` → True,
``null`` → None, ``"3"`` → the string 3, ``[1, 2]`` → a list, while ``abc``,
``01234``, ``NaN`` and an empty cell stay strings (``NaN`` and ``Infinity`` are not
JSON).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

import click

from .context import CliContext, CliError
from .options import check_selector, selector_options
from .output import Progress, pages_of

__all__ = ["csv_cell", "read_inputs", "run", "run_batch"]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_refuse_constant)


def csv_cell(cell: str) -> Any:
    """A CSV cell typed by the rule above: its JSON value if it parses, else the text."""
    try:
        return _loads(cell)
    except ValueError:
        return cell


def _input_value(value: str) -> Any:
    """``--input`` of ``run``: JSON text, ``@path`` to a JSON file, or ``-`` for stdin."""
    if value == "-":
        text, where = sys.stdin.read(), "stdin"
    elif value.startswith("@"):
        path = Path(value[1:])
        try:
            text, where = path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}") from None
    else:
        text, where = value, "the value"
    try:
        return _loads(text)
    except ValueError as exc:
        raise click.BadParameter(
            f"{where} is not JSON ({exc}); pass JSON, @file.json or - for stdin"
        ) from None


@click.command()
@click.argument("name")
@selector_options
@click.option(
    "--input",
    "input_",
    required=True,
    metavar="JSON|@FILE|-",
    help="The input: JSON text, @path to a JSON file, or - to read JSON from stdin.",
)
@click.option("--reference-id", help="Your id for this call, kept in its audit record.")
@click.pass_obj
def run(
    state: CliContext,
    name: str,
    stage: str | None,
    version: int | None,
    input_: str,
    reference_id: str | None,
) -> None:
    """Run NAME on one input and print its output as JSON (audited like run_model).

    Without --stage or --version the latest version runs. A model's own exception
    exits with status 1 and one line, ModelError: <type>: <message>; its call is
    audited as usual.
    """
    from ..exceptions import UmlautError

    check_selector(stage, version)
    value = _input_value(input_)
    umlaut = state.umlaut()
    try:
        output = umlaut.run_model(
            name, value, stage=stage, version=version, reference_id=reference_id
        )
    except UmlautError:
        raise
    except Exception as exc:  # the model's own exception, already audited
        raise CliError.from_exception(exc, label="ModelError") from exc
    click.echo(json.dumps(output, ensure_ascii=False))


def read_inputs(stream: IO[str], fmt: str, where: str) -> Iterator[Any]:
    """Inputs one at a time from JSON lines or CSV (see the module docstring)."""
    if fmt == "jsonl":
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                yield _loads(line)
            except ValueError as exc:
                raise CliError(f"line {number} of {where} is not JSON: {exc}") from None
        return
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        return
    for number, cells in enumerate(reader, 2):
        if not cells:
            continue
        if len(cells) != len(header):
            raise CliError(
                f"row {number} of {where} has {len(cells)} cells for {len(header)} columns "
                f"({', '.join(header)})"
            )
        yield {column: csv_cell(cell) for column, cell in zip(header, cells, strict=True)}


@contextmanager
def _open_input(path: str) -> Iterator[IO[str]]:
    """The batch input as text with universal newlines left to the csv module; stdin
    is wrapped, never closed."""
    if path == "-":
        wrapper = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        try:
            yield wrapper
        finally:
            wrapper.detach()
        return
    with open(path, encoding="utf-8-sig", newline="") as text:
        yield text


@click.command("run-batch")
@click.argument("name")
@selector_options
@click.option(
    "--input",
    "input_",
    required=True,
    metavar="FILE|-",
    help="JSON lines (.jsonl) or CSV (.csv) file, or - for stdin.",
)
@click.option(
    "--input-format",
    type=click.Choice(["jsonl", "csv"]),
    help="Default: csv for a .csv file, else jsonl.",
)
@click.option(
    "--output",
    default="-",
    show_default=True,
    metavar="FILE|-",
    help="Where the outputs go, one JSON line per input, as they come.",
)
@click.option(
    "--on-error",
    type=click.Choice(["raise", "continue"]),
    default="raise",
    show_default=True,
    help="raise: stop at the first model error (exit 1); continue: run every input.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(1, 50_000),
    default=1000,
    show_default=True,
    help="Inputs per run_batch call (one transaction of audit records each).",
)
@click.pass_obj
def run_batch(
    state: CliContext,
    name: str,
    stage: str | None,
    version: int | None,
    input_: str,
    input_format: str | None,
    output: str,
    on_error: str,
    chunk_size: int,
) -> None:
    """Run NAME on every input of a file, streaming: memory holds one chunk.

    Each output line is {"index": i, "status": "ok", "output": ...} or, with
    --on-error continue, {"index": i, "status": "error", "error_type": ...,
    "error_message": ...}; i counts inputs from 0. Every input that ran is audited.
    With --on-error raise, the outputs of the chunk that failed are not written
    (its records are); a model's error exits with status 1 and one line. Each chunk
    resolves --stage anew, so a stage moved during a long batch applies from the next
    chunk on (every record names the version that ran).
    """
    from ..exceptions import UmlautError

    check_selector(stage, version)
    policy: Literal["raise", "continue"] = "continue" if on_error == "continue" else "raise"
    fmt = input_format or ("csv" if input_.lower().endswith(".csv") else "jsonl")
    where = "stdin" if input_ == "-" else input_
    if input_ != "-" and not os.access(input_, os.R_OK):
        raise click.BadParameter(f"cannot read {input_}", param_hint="--input")
    umlaut = state.umlaut()
    failed = index = 0
    with (
        _open_input(input_) as source,
        click.open_file(output, "w", encoding="utf-8") as out,
        Progress("inputs") as bar,
    ):
        for chunk in pages_of(read_inputs(source, fmt, where), chunk_size):
            try:
                outputs = umlaut.run_batch(
                    name,
                    chunk,
                    stage=stage,
                    version=version,
                    on_error=policy,
                )
            except UmlautError:
                raise
            except Exception as exc:  # a model's own exception (--on-error raise)
                raise CliError.from_exception(exc, label="ModelError") from exc
            lines = []
            for result in outputs:
                if isinstance(result, BaseException):
                    failed += 1
                    item = {
                        "index": index,
                        "status": "error",
                        "error_type": type(result).__name__,
                        "error_message": str(result),
                    }
                else:
                    item = {"index": index, "status": "ok", "output": result}
                lines.append(json.dumps(item, ensure_ascii=False))
                index += 1
            out.write("\n".join(lines) + "\n")
            out.flush()
            bar.advance(len(chunk))
    if failed:
        click.echo(f"{failed} of {index} inputs failed (see their lines and records)", err=True)
