"""``umlaut serve`` and ``umlaut serve hash-token``, added through
``umlaut_register_commands``; imported only when the command line is built."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from umlaut_core.cli import CliContext
from umlaut_core.config import find_pyproject
from umlaut_core.exceptions import ConfigurationError

from ._auth import hash_token, parse_tokens, tokens_from_table
from ._config import ServeConfig, parse_model_spec

__all__ = ["configure_logging", "serve", "token_sources"]

TOKENS_ENV = "UMLAUT_SERVE_TOKENS"


def configure_logging() -> None:
    """umlaut's own loggers to stderr, one line each (uvicorn configures its own)."""
    logger = logging.getLogger("umlaut")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter(f"umlaut-serve[{os.getpid()}] %(levelname)s %(message)s")
        )
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _pyproject_tokens(profile: str | None) -> list[tuple[str, str]]:
    """``tokens`` of ``[tool.umlaut.serve]`` and of ``[tool.umlaut.serve.profiles.<p>]``."""
    import tomllib

    pyproject = find_pyproject()
    if pyproject is None:
        return []
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read {pyproject}: {exc}") from exc
    table = data.get("tool", {}).get("umlaut", {}).get("serve", {})
    found = []
    where = f"[tool.umlaut.serve] in {pyproject}"
    text = tokens_from_table(table, where)
    if text:
        found.append((where, os.path.expandvars(text)))
    if profile:
        sub = table.get("profiles", {}).get(profile, {})
        where = f"[tool.umlaut.serve.profiles.{profile}] in {pyproject}"
        text = tokens_from_table(sub, where)
        if text:
            found.append((where, os.path.expandvars(text)))
    return found


@click.group(invoke_without_command=True)
@click.option("--model", "models", multiple=True, metavar="NAME[@STAGE|@VERSION]",
              help="A model to serve, with its default selector (repeatable); the first one "
                   "answers POST /invocations.")  # fmt: skip
@click.option("--all-models", is_flag=True, help="Serve every model of the registry.")
@click.option("--default-stage", metavar="STAGE",
              help="With --all-models: the selector of models not named by --model "
                   "(default: the latest version).")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 for every interface.")  # fmt: skip
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="Worker processes (each opens its Umlaut; all share one spool).")  # fmt: skip
@click.option("--threads", default=2, show_default=True, type=int,
              help="Model-call threads per worker (more for models that wait on I/O).")  # fmt: skip
@click.option("--tokens-file", type=click.Path(dir_okay=False, path_type=Path),
              help="A file of token hashes: sha256:<hex>=scope[,scope], one per line.")  # fmt: skip
@click.option("--no-auth", is_flag=True,
              help="Serve without authentication (every route open). Never on a network "
                   "others reach.")  # fmt: skip
@click.option("--max-body-size", default=16 * 1024 * 1024, show_default=True, type=int,
              help="Largest request body, bytes (413 above).")  # fmt: skip
@click.option("--max-batch", default=10_000, show_default=True, type=int,
              help="Most inputs in one /v1/…/batch request (413 above).")  # fmt: skip
@click.option("--batch-rows", default=0, show_default=True, type=int, metavar="N",
              help="Dynamic batching: concurrent requests for the same model and selector "
                   "are answered by one model call of up to N rows (0: off).")  # fmt: skip
@click.option("--timeout", default=60.0, show_default=True, type=float,
              help="Seconds a model call may take (504 after; audited as an error).")  # fmt: skip
@click.option("--body-timeout", default=30.0, show_default=True, type=float,
              help="Seconds to receive a request body (408 after).")  # fmt: skip
@click.option("--resolve-ttl", type=float, default=None,
              help="Seconds a stage resolution is reused (default: the facade's, 1 s when "
                   "spooled). A stage move reaches the server within this time.")  # fmt: skip
@click.option("--graceful-timeout", default=30.0, show_default=True, type=float,
              help="On SIGTERM/SIGINT, seconds to let in-flight requests finish.")  # fmt: skip
@click.option("--access-log", default="-", show_default=True, metavar="PATH|-|off",
              help="JSON-lines access log: a file, - for stdout, off for none.")  # fmt: skip
@click.option("--root-path", default="", help="The path prefix a reverse proxy serves us under.")
@click.option("--proxy-headers", is_flag=True,
              help="Trust X-Forwarded-For/-Proto from --forwarded-allow-ips.")  # fmt: skip
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True)
@click.option("--ui", is_flag=True,
              help="Also serve the web UI at /ui (pages need the read scope; promoting, "
                   "admin).")  # fmt: skip
@click.pass_context
def serve(ctx: click.Context, /, **options: Any) -> None:
    """An audited HTTP scoring server: MLflow's scoring protocol (/invocations),
    KServe V2 (/v2) and umlaut's own (/v1). Every model call writes one audit record
    through the spool; X-Request-ID is its reference id.

    Tokens are given as sha256 hashes with scopes (run, read) through
    UMLAUT_SERVE_TOKENS, [tool.umlaut.serve] tokens in pyproject.toml, or
    --tokens-file; make an entry with `umlaut serve hash-token`.
    """
    if ctx.invoked_subcommand is not None:
        return
    state: CliContext = ctx.obj
    config = build_config(state, options)
    from ._runner import run_server

    configure_logging()
    run_server(config)


def token_sources(state: CliContext, tokens_file: Path | None) -> list[tuple[str, str]]:
    """Every configured token list, as ``(where, text)``: the environment, pyproject
    (and the profile's table), ``--tokens-file``."""
    sources: list[tuple[str, str]] = []
    if os.environ.get(TOKENS_ENV):
        sources.append((TOKENS_ENV, os.environ[TOKENS_ENV]))
    sources += _pyproject_tokens(state.profile or os.environ.get("UMLAUT_PROFILE"))
    if tokens_file is not None:
        try:
            sources.append((str(tokens_file), tokens_file.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read --tokens-file {tokens_file}: {exc.strerror}"
            ) from None
    return sources


def build_config(state: CliContext, options: dict[str, Any]) -> ServeConfig:
    sources = token_sources(state, options["tokens_file"])
    access_log = options["access_log"]
    return ServeConfig(
        tracking_uri=state.tracking_uri,
        artifact_uri=state.artifact_uri,
        profile=state.profile,
        models=tuple(parse_model_spec(m) for m in options["models"]),
        all_models=options["all_models"],
        default_stage=options["default_stage"],
        host=options["host"],
        port=options["port"],
        workers=options["workers"],
        threads=options["threads"],
        tokens=parse_tokens(sources),
        no_auth=options["no_auth"],
        max_body_size=options["max_body_size"],
        max_batch=options["max_batch"],
        batch_rows=options["batch_rows"],
        timeout=options["timeout"],
        body_timeout=options["body_timeout"],
        resolve_ttl=options["resolve_ttl"],
        graceful_timeout=options["graceful_timeout"],
        access_log=None if access_log == "off" else access_log,
        root_path=options["root_path"],
        proxy_headers=options["proxy_headers"],
        forwarded_allow_ips=options["forwarded_allow_ips"],
        ui=options.get("ui", False),
    ).check()


@serve.command("hash-token")
def hash_token_command() -> None:
    """Read a token on stdin; print the sha256:<hex> entry to configure (add
    =run,read or the scopes it should have)."""
    token = sys.stdin.readline().strip()
    if not token:
        raise click.UsageError("give the token on stdin, e.g.: umlaut serve hash-token < token.txt")
    click.echo(hash_token(token))
