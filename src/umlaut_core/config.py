"""Where an ``Umlaut`` finds its tracker and artifact store.

Each setting is taken from the first place that has it:

1. arguments to ``Umlaut(...)``;
2. environment: ``UMLAUT_TRACKING_URI``, ``UMLAUT_ARTIFACT_URI``, ``UMLAUT_ENV_POLICY``,
   ``UMLAUT_SIGNING_KEY``, ``UMLAUT_TRACKING`` (``off``/``0``/``false``/``no`` turns
   the step decorator into a pass-through; ``tracking = false`` in a profile);
3. the profile named by ``profile=`` or ``UMLAUT_PROFILE``, read from
   ``[tool.umlaut.profiles.<name>]`` in the nearest ``pyproject.toml`` (searched from
   the working directory upwards); ``${VAR}`` in a profile value is replaced from the
   environment, so passwords need not live in the file; a relative path in a
   profile's ``tracking_uri`` (``sqlite:///rel.db``, ``mlflow+sqlite:///rel.db``),
   ``artifact_uri`` (``rel/folder``, ``file:rel``) or ``spool_path`` is read from the
   folder of that ``pyproject.toml``, so every subfolder opens the same store;
4. the embedded default: ``sqlite:///$UMLAUT_HOME/umlaut.db`` and the folder
   ``$UMLAUT_HOME/artifacts``, where ``UMLAUT_HOME`` defaults to ``./.umlaut``
   (relative paths from arguments, the environment and the default are read from the
   working directory, as everywhere else).

``Settings.sources`` names where each value came from, and says so when a profile's
relative path was resolved. ``repr(Settings)`` shows URIs through
:func:`umlaut_core.registry.redact` and masks every option whose name looks secret.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .exceptions import ConfigurationError
from .redaction import looks_secret, redact

__all__ = [
    "Settings",
    "anchor_path",
    "check_folder",
    "default_home",
    "find_pyproject",
    "load_profiles",
    "resolve_settings",
]

#: Keys a profile (or ``Umlaut(**options)``) may set.
KNOWN_KEYS = frozenset(
    {
        "tracking_uri",
        "artifact_uri",
        "env_policy",
        "cache_size",
        "tracker_options",
        "artifact_options",
        "signing_key",
        "delivery",
        "spool_path",
        "spool_limit",
        "spool_full",
        "spool_warn_after",
        "exit_flush_timeout",
        "spool_durable",
        "resolve_ttl",
        "shipper",
        "tracking",
        "input_checks",
        "input_check_values",
    }
)
DELIVERY_MODES = ("sync", "spooled", "off")
SHIPPERS = ("process", "thread")
SPOOL_FULL_POLICIES = ("block", "drop_oldest", "raise")
#: A signing key shorter than this is refused: HMAC is only as strong as its key.
MIN_SIGNING_KEY = 16
ENV_POLICIES = ("strict", "warn", "ignore")
INPUT_CHECKS = ("strict", "warn", "off")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; ``sources`` says where each value came from."""

    tracking_uri: str
    artifact_uri: str | None
    env_policy: str = "warn"
    cache_size: int = 64
    profile: str | None = None
    tracker_options: Mapping[str, Any] = field(default_factory=dict)
    artifact_options: Mapping[str, Any] = field(default_factory=dict)
    signing_key: bytes | None = field(default=None, repr=False)
    delivery: str | None = None
    spool_path: str | None = None
    spool_limit: int = 1_000_000
    spool_full: str = "block"
    spool_warn_after: float = 60.0
    exit_flush_timeout: float = 5.0
    spool_durable: bool = False
    #: None: 1 s for a remote tracker or spooled delivery, else 0 (see Umlaut.resolve_ttl).
    resolve_ttl: float | None = None
    #: None: a child process when the tracker can be reopened there, else a thread.
    shipper: str | None = None
    #: False: ``@step``-decorated functions run untracked (see experiments.decorator).
    tracking: bool = True
    #: How run_model treats an input that does not match the version's signature:
    #: ``strict`` refuses it (InputValidationError, audited, the model never runs),
    #: ``warn`` logs and records the findings and runs the model, ``off`` checks nothing.
    input_checks: str = "strict"
    #: Whether input-check messages may quote the offending values (off: never).
    input_check_values: bool = False
    sources: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # URIs may hold a password and options may hold credentials (S3 keys,
        # connect_args): a repr ends up in logs and tracebacks, so both are masked.
        shown = ", ".join(
            f"{f.name}={_masked(getattr(self, f.name))!r}" for f in fields(self) if f.repr
        )
        return f"Settings({shown})"


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: "***" if looks_secret(str(k)) else _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_masked(v) for v in value)
    return value


_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _ON or text in _OFF:
        return text in _ON
    raise ConfigurationError(f"{name} {value!r} is not a switch; use one of {_ON + _OFF}")


def default_home(environ: Mapping[str, str] | None = None, *, check: bool = True) -> Path:
    """``$UMLAUT_HOME`` or ``./.umlaut``; with ``check``, refuse one that cannot be a folder.

    The check only looks (nothing is created): the home, or the first of its parents
    that exists, must be a folder, else a ConfigurationError names the variable.
    """
    env = os.environ if environ is None else environ
    home = Path(env.get("UMLAUT_HOME") or ".umlaut")
    if check:
        check_folder(home, "UMLAUT_HOME" if env.get("UMLAUT_HOME") else None)
    return home


def check_folder(path: Path, variable: str | None = None, what: str = "umlaut home") -> None:
    """Raise ConfigurationError unless ``path`` is, or could be created as, a folder."""
    for candidate in (path, *path.parents):
        try:
            if not candidate.exists():
                continue
        except OSError:  # pragma: no cover - e.g. a name too long
            continue
        if candidate.is_dir():
            return
        name = f"{variable}={str(path)!r}" if variable else f"the {what} {str(path)!r}"
        blocker = "is a file" if candidate == path else f"is inside {str(candidate)!r}, a file"
        fix = f"point {variable} at a folder" if variable else "set UMLAUT_HOME to a folder"
        raise ConfigurationError(
            f"{name} {blocker}, not a folder; {fix} (umlaut keeps umlaut.db, artifacts/ "
            f"and spool/ there)"
        )


#: Profile keys whose relative paths are read from the folder of the pyproject.toml.
_PATH_KEYS = ("tracking_uri", "artifact_uri", "spool_path")
_SQLITE_PREFIX = re.compile(r"^(?:mlflow\+)?sqlite(?:\+[a-z]+)?:///", re.IGNORECASE)


def anchor_path(value: Any, base: Path) -> str | None:
    """``value`` with a relative path made absolute against ``base``; None if unchanged.

    Handles ``sqlite:///rel`` (and ``mlflow+sqlite:///rel``), ``file:rel`` and plain
    paths; absolute paths, ``~`` paths and other schemes are left alone.
    """
    from .registry import scheme_of

    if not isinstance(value, str) or not value.strip():
        return None
    sqlite = _SQLITE_PREFIX.match(value)
    if sqlite:
        path, sep, query = value[sqlite.end() :].partition("?")
        if not path or _absolute(path) or path.startswith("file:") or path == ":memory:":
            return None
        return f"{sqlite.group(0)}{base / path}{sep}{query}"
    try:
        if scheme_of(value) != "file":
            return None
    except ConfigurationError:
        return None  # reported, with the right words, by whoever opens it
    if value.startswith("file:"):
        parts = urlsplit(value)
        path = unquote(parts.path)
        if parts.netloc or not path or _absolute(path):
            return None
        return (base / path).as_uri()
    return None if _absolute(value) else str(base / value)


def _absolute(path: str) -> bool:
    return os.path.isabs(path) or path.startswith("~") or bool(re.match(r"^[A-Za-z]:[\\/]", path))


def find_pyproject(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_profiles(pyproject: Path | None) -> dict[str, dict[str, Any]]:
    if pyproject is None:
        return {}
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read profiles from {pyproject}: {exc}") from exc
    profiles = data.get("tool", {}).get("umlaut", {}).get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigurationError(f"[tool.umlaut.profiles] in {pyproject} must be a table")
    return profiles


def _expand(value: Any, environ: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConfigurationError(f"{where} uses ${{{name}}}, which is not set")
            return environ[name]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, environ, where) for k, v in value.items()}
    return value


def resolve_settings(
    tracking_uri: str | None = None,
    artifact_uri: str | None = None,
    *,
    profile: str | None = None,
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Merge arguments, environment, profile and default (strongest first)."""
    env = os.environ if environ is None else environ
    args: dict[str, Any] = dict(options or {})
    unknown = set(args) - KNOWN_KEYS
    if unknown:
        raise ConfigurationError(
            f"unknown option(s) {sorted(unknown)}; known: {sorted(KNOWN_KEYS)}"
        )
    if tracking_uri is not None:
        args["tracking_uri"] = tracking_uri
    if artifact_uri is not None:
        args["artifact_uri"] = artifact_uri

    from_env = {
        key: env[var]
        for key, var in (
            ("tracking_uri", "UMLAUT_TRACKING_URI"),
            ("artifact_uri", "UMLAUT_ARTIFACT_URI"),
            ("env_policy", "UMLAUT_ENV_POLICY"),
            ("signing_key", "UMLAUT_SIGNING_KEY"),
            ("delivery", "UMLAUT_DELIVERY"),
            ("spool_path", "UMLAUT_SPOOL_PATH"),
            ("shipper", "UMLAUT_SHIPPER"),
            ("tracking", "UMLAUT_TRACKING"),
            ("input_checks", "UMLAUT_INPUT_CHECKS"),
        )
        if env.get(var)
    }

    profile_name = profile or env.get("UMLAUT_PROFILE") or None
    from_profile: dict[str, Any] = {}
    anchored_keys: dict[str, str] = {}
    if profile_name:
        pyproject = find_pyproject(cwd)
        profiles = load_profiles(pyproject)
        if profile_name not in profiles:
            raise ConfigurationError(
                f"profile {profile_name!r} is not defined in "
                f"{pyproject or 'any pyproject.toml above ' + str(cwd or Path.cwd())}; "
                f"defined profiles: {sorted(profiles) or 'none'}. Add a "
                f"[tool.umlaut.profiles.{profile_name}] table."
            )
        where = f"profile {profile_name!r} in {pyproject}"
        raw = profiles[profile_name]
        bad = set(raw) - KNOWN_KEYS
        if bad:
            raise ConfigurationError(f"{where} has unknown keys {sorted(bad)}")
        from_profile = _expand(raw, env, where)
        # Relative paths mean "next to the pyproject.toml that says so", not "wherever
        # the process happens to start": a notebook in a subfolder opens the same store.
        if pyproject is not None:
            base = pyproject.parent
            for key in _PATH_KEYS:
                anchored = anchor_path(from_profile.get(key), base)
                if anchored is not None:
                    from_profile[key] = anchored
                    anchored_keys[key] = str(base)

    home = default_home(env, check=False)
    defaults: dict[str, Any] = {
        "tracking_uri": f"sqlite:///{home / 'umlaut.db'}",
        "artifact_uri": None,
        "env_policy": "warn",
        "cache_size": 64,
        "tracker_options": {},
        "artifact_options": {},
        "signing_key": None,
        "delivery": None,
        "spool_path": None,
        "spool_limit": 1_000_000,
        "spool_full": "block",
        "spool_warn_after": 60.0,
        "exit_flush_timeout": 5.0,
        "spool_durable": False,
        "resolve_ttl": None,
        "shipper": None,
        "tracking": True,
        "input_checks": "strict",
        "input_check_values": False,
    }
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in KNOWN_KEYS:
        for source, table in (
            ("argument", args),
            ("environment", from_env),
            (f"profile {profile_name}", from_profile),
            ("default", defaults),
        ):
            if key in table and table[key] is not None:
                merged[key] = table[key]
                sources[key] = source
                if table is from_profile and key in anchored_keys:
                    sources[key] += f" (relative path resolved against {anchored_keys[key]})"
                break
        else:
            merged[key] = None
    if sources.get("tracking_uri") == "default":
        default_home(env)  # refuse a home that is a file before anything is created
    if sources.get("tracking_uri") == "default" and merged["artifact_uri"] is None:
        merged["artifact_uri"] = str(home / "artifacts")
        sources["artifact_uri"] = "default"
    if merged["env_policy"] not in ENV_POLICIES:
        raise ConfigurationError(
            f"env_policy {merged['env_policy']!r} is not one of {ENV_POLICIES}"
        )
    try:
        cache_size = int(merged["cache_size"])
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"cache_size must be an integer, not {merged['cache_size']!r}"
        ) from None
    if merged["delivery"] not in (None, *DELIVERY_MODES):
        raise ConfigurationError(f"delivery {merged['delivery']!r} is not one of {DELIVERY_MODES}")
    if merged["input_checks"] not in INPUT_CHECKS:
        raise ConfigurationError(
            f"input_checks {merged['input_checks']!r} is not one of {INPUT_CHECKS}"
        )
    if merged["shipper"] not in (None, *SHIPPERS):
        raise ConfigurationError(f"shipper {merged['shipper']!r} is not one of {SHIPPERS}")
    if merged["spool_full"] not in SPOOL_FULL_POLICIES:
        raise ConfigurationError(
            f"spool_full {merged['spool_full']!r} is not one of {SPOOL_FULL_POLICIES}"
        )
    raw_key = merged["signing_key"]
    signing_key: bytes | None = None
    if raw_key is not None:
        signing_key = raw_key.encode() if isinstance(raw_key, str) else bytes(raw_key)
        if len(signing_key) < MIN_SIGNING_KEY:
            raise ConfigurationError(
                f"the signing key is {len(signing_key)} bytes; use at least {MIN_SIGNING_KEY} "
                f"(e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
            )
    return Settings(
        tracking_uri=str(merged["tracking_uri"]),
        artifact_uri=merged["artifact_uri"],
        env_policy=merged["env_policy"],
        cache_size=cache_size,
        profile=profile_name,
        tracker_options=dict(merged["tracker_options"] or {}),
        artifact_options=dict(merged["artifact_options"] or {}),
        signing_key=signing_key,
        delivery=merged["delivery"],
        spool_path=merged["spool_path"],
        spool_limit=int(merged["spool_limit"]),
        spool_full=merged["spool_full"],
        spool_warn_after=float(merged["spool_warn_after"]),
        exit_flush_timeout=float(merged["exit_flush_timeout"]),
        spool_durable=bool(merged["spool_durable"]),
        resolve_ttl=None if merged["resolve_ttl"] is None else float(merged["resolve_ttl"]),
        shipper=merged["shipper"],
        tracking=_flag(merged["tracking"], "tracking"),
        input_checks=merged["input_checks"],
        input_check_values=_flag(merged["input_check_values"], "input_check_values"),
        sources=sources,
    )
