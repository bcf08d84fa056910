"""``umlaut ui``: the web UI on its own, added through ``umlaut_register_commands``
beside ``umlaut serve``; imported only when the command line is built.

It reads the registry the global options name (``--tracking-uri`` …) through one
``Umlaut`` opened with synchronous delivery (the UI runs no model, so it needs no
spool nor shipper), and takes its tokens exactly as ``umlaut serve`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from umlaut_core.cli import CliContext
from umlaut_core.exceptions import ConfigurationError

from ._auth import parse_tokens
from ._cli import configure_logging, token_sources

__all__ = ["DEFAULT_PORT", "ui"]

#: Beside ``umlaut serve``'s 8080, so both run on one host with their defaults.
DEFAULT_PORT = 8081


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 for every interface.")  # fmt: skip
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--tokens-file", type=click.Path(dir_okay=False, path_type=Path),
              help="A file of token hashes: sha256:<hex>=scope[,scope], one per line.")  # fmt: skip
@click.option("--no-auth", is_flag=True,
              help="Open the pages to anyone who reaches them (promoting still needs a "
                   "token with the admin scope). Never on a network others reach.")  # fmt: skip
@click.option("--root-path", default="", help="The path prefix a reverse proxy serves us under.")
@click.option("--proxy-headers", is_flag=True,
              help="Trust X-Forwarded-For/-Proto from --forwarded-allow-ips.")  # fmt: skip
@click.option("--forwarded-allow-ips", default="127.0.0.1", show_default=True)
@click.pass_obj
def ui(state: CliContext, /, **options: Any) -> None:
    """The web UI: models, stages, the audit trail, training runs, datasets and
    drift, at http://HOST:PORT/ui/.

    Pages need a token with the read scope (sign in with it, or send it as
    Authorization: Bearer); promoting a version needs the admin scope and a reason.
    Tokens are configured as for `umlaut serve` (UMLAUT_SERVE_TOKENS,
    [tool.umlaut.serve] tokens, --tokens-file).
    """
    app = build_app(state, options)
    import uvicorn

    configure_logging()
    root = options["root_path"].rstrip("/")
    click.echo(f"umlaut ui: http://{options['host']}:{options['port']}{root}/ui/", err=True)
    uvicorn.run(
        app,
        host=options["host"],
        port=options["port"],
        root_path=options["root_path"],
        proxy_headers=options["proxy_headers"],
        forwarded_allow_ips=options["forwarded_allow_ips"],
        server_header=False,
        log_level="info",
        lifespan="on",
    )


def build_app(state: CliContext, options: dict[str, Any]) -> Any:
    """The UI's ASGI app for the command's options (checked before anything opens)."""
    tokens = parse_tokens(token_sources(state, options["tokens_file"]))
    if not tokens and not options["no_auth"]:
        raise ConfigurationError(
            "no tokens are configured: set UMLAUT_SERVE_TOKENS, the tokens key of "
            "[tool.umlaut.serve] or --tokens-file (make entries with `umlaut serve "
            "hash-token`; scopes read, admin), or open the pages with --no-auth"
        )
    from umlaut_core import Umlaut

    from .ui import UiSettings, create_ui_app

    umlaut = Umlaut(state.tracking_uri, state.artifact_uri, profile=state.profile, delivery="sync")
    settings = UiSettings(tokens, no_auth=options["no_auth"], warm_up=True)
    return create_ui_app(umlaut, settings, close=True)
