"""What ``umlaut serve`` was asked for: one frozen, JSON-serialisable value.

The command line builds a :class:`ServeConfig`; with ``--workers N`` each worker
process rebuilds it from the environment variable ``UMLAUT_SERVE_CONFIG`` (JSON; it
holds token *hashes*, never tokens, and the tracking URI as given, so it is passed
through the environment rather than a command line that ``ps`` shows).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from umlaut_core.exceptions import ConfigurationError

from ._auth import TokenSet, parse_tokens

__all__ = ["ENV_CONFIG", "ModelSpec", "ServeConfig", "parse_model_spec"]

ENV_CONFIG = "UMLAUT_SERVE_CONFIG"


@dataclass(frozen=True)
class ModelSpec:
    """A served model and its default selector (``version`` wins, then ``stage``,
    else the latest version)."""

    name: str
    stage: str | None = None
    version: int | None = None

    @property
    def selector(self) -> str:
        if self.version is not None:
            return str(self.version)
        return self.stage if self.stage is not None else "latest"


def parse_model_spec(text: str) -> ModelSpec:
    """``NAME``, ``NAME@STAGE``, ``NAME@3`` (a version) or ``NAME@latest``.

    The last ``@`` separates the selector, so a name may hold ``@`` when a selector
    is given.
    """
    name, at, selector = text.rpartition("@")
    if not at:
        name, selector = text, ""
    name = name.strip()
    if not name:
        raise ConfigurationError(f"--model {text!r}: expected NAME[@STAGE|@VERSION|@latest]")
    selector = selector.strip()
    if not selector or selector == "latest":
        return ModelSpec(name)
    if selector.isdigit():
        return ModelSpec(name, version=int(selector))
    return ModelSpec(name, stage=selector)


@dataclass(frozen=True)
class ServeConfig:
    """Every option of ``umlaut serve`` (see the plugin's README for each)."""

    tracking_uri: str | None = None
    artifact_uri: str | None = None
    profile: str | None = None
    models: tuple[ModelSpec, ...] = ()
    all_models: bool = False
    default_stage: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    threads: int = 2
    tokens: TokenSet = field(default_factory=lambda: TokenSet(()))
    no_auth: bool = False
    max_body_size: int = 16 * 1024 * 1024
    max_batch: int = 10_000
    #: Dynamic batching (``--batch-rows``): concurrent requests for one model and
    #: selector answered by one ``run_batch`` call of at most this many rows; 0 is off.
    batch_rows: int = 0
    timeout: float = 60.0
    body_timeout: float = 30.0
    resolve_ttl: float | None = None
    graceful_timeout: float = 30.0
    access_log: str | None = "-"
    metrics_dir: str | None = None
    root_path: str = ""
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    #: Mount the web UI at /ui (``--ui``).
    ui: bool = False
    umlaut_options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> ServeConfig:
        if not self.models and not self.all_models:
            raise ConfigurationError(
                "say which models to serve: --model NAME@STAGE (repeatable) or --all-models"
            )
        if not self.tokens and not self.no_auth:
            raise ConfigurationError(
                "no tokens are configured: set UMLAUT_SERVE_TOKENS, the tokens key of "
                "[tool.umlaut.serve] or --tokens-file (make entries with `umlaut serve "
                "hash-token`), or serve without authentication with --no-auth"
            )
        for name, value in (
            ("workers", self.workers),
            ("threads", self.threads),
            ("max_body_size", self.max_body_size),
            ("max_batch", self.max_batch),
        ):
            if value < 1:
                raise ConfigurationError(f"--{name.replace('_', '-')} must be at least 1")
        if self.batch_rows < 0:
            raise ConfigurationError("--batch-rows must be 0 (off) or a positive number of rows")
        if self.timeout <= 0 or self.body_timeout <= 0:
            raise ConfigurationError("--timeout and --body-timeout must be positive")
        return self

    @property
    def invocations_model(self) -> ModelSpec | None:
        """The model ``POST /invocations`` runs: the first ``--model``."""
        return self.models[0] if self.models else None

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["models"] = [dataclasses.asdict(m) for m in self.models]
        data["tokens"] = self.tokens.to_text()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data = json.loads(text)
        data["models"] = tuple(ModelSpec(**m) for m in data["models"])
        data["tokens"] = parse_tokens([("the serve configuration", data["tokens"])])
        return cls(**data)

    @classmethod
    def from_environment(cls) -> ServeConfig:
        text = os.environ.get(ENV_CONFIG)
        if not text:
            raise ConfigurationError(f"{ENV_CONFIG} is not set: start workers with umlaut serve")
        return cls.from_json(text)
