"""``mlflow+…`` URIs → MLflow's own tracking URI, and the HTTP limits MLflow reads.

``mlflow+http://host:5000`` → ``http://host:5000``; ``mlflow+sqlite:///m.db`` →
``sqlite:///m.db`` (any MLflow store URI works after the ``mlflow+`` prefix);
``mlflow:`` → whatever ``MLFLOW_TRACKING_URI`` says, read when the tracker is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from umlaut_core.exceptions import ConfigurationError
from umlaut_core.registry import redact

__all__ = ["HTTP_DEFAULTS", "MlflowTarget", "apply_http_limits", "parse_uri"]

#: MLflow's own defaults retry 7 times with a backoff factor of 2 and a 120 s timeout,
#: so an unreachable server blocks a call for minutes. These bound it to seconds.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


@dataclass(frozen=True)
class MlflowTarget:
    """Where MLflow lives, as MLflow itself spells it."""

    tracking_uri: str
    #: Local folder for artifacts when MLflow's store is a local database file.
    local_artifact_root: Path | None

    @property
    def is_remote(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://"))

    @property
    def is_sqlite(self) -> bool:
        return self.tracking_uri.startswith("sqlite:")


def parse_uri(uri: str) -> MlflowTarget:
    """Translate an umlaut ``mlflow…`` URI; ConfigurationError when it cannot be used."""
    scheme, _, rest = uri.partition(":")
    scheme = scheme.lower()
    if scheme == "mlflow":
        if rest.strip("/"):
            raise ConfigurationError(
                f"cannot read {redact(uri)!r}: write 'mlflow:' to use MLFLOW_TRACKING_URI, "
                f"or 'mlflow+http://host:5000' / 'mlflow+sqlite:///path/mlflow.db'"
            )
        target = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
        if not target:
            raise ConfigurationError(
                "the tracking URI 'mlflow:' defers to MLFLOW_TRACKING_URI, which is not "
                "set; set it, or write 'mlflow+http://host:5000'"
            )
    elif scheme.startswith("mlflow+") and len(scheme) > len("mlflow+"):
        target = scheme[len("mlflow+") :] + ":" + rest
    else:
        raise ConfigurationError(f"{redact(uri)!r} is not an mlflow URI (mlflow+http://…)")
    if target.startswith(("mlflow:", "mlflow+")):
        raise ConfigurationError(
            f"MLFLOW_TRACKING_URI must be MLflow's own URI, not {redact(target)!r}"
        )
    root = None
    if target.startswith("sqlite:"):
        path = unquote(urlsplit(target).path)
        if target.startswith("sqlite:///") and path and path != "/:memory:":
            # sqlite:///rel/x.db has path "/rel/x.db"; sqlite:////abs/x.db has "//abs/x.db".
            root = Path(path[1:]).expanduser().resolve().parent / "mlartifacts"
    return MlflowTarget(target, root)


def apply_http_limits(overrides: dict[str, str]) -> dict[str, str]:
    """Bound MLflow's HTTP retries and timeout, process-wide.

    MLflow reads these variables from ``os.environ`` on every request and offers no
    per-client setting, so they are set in the process environment: values the user
    already set are kept; ``overrides`` (from tracker options) replace them.
    Returns what is in effect.
    """
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    for key, value in overrides.items():
        os.environ[key] = value
    return {key: os.environ[key] for key in HTTP_DEFAULTS}
