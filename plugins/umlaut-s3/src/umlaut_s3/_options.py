"""Reading ``s3://bucket/prefix?option=value`` and the store's options.

Options come from three places, strongest first: keyword arguments
(``artifact_options`` or a profile's ``artifact_options`` table), the URI's query
string, then boto3's own resolution (environment, ``~/.aws/config``). Credentials are
accepted only as keyword arguments: a URI is printed in logs, reprs and records.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from umlaut_core.exceptions import ArtifactError, ConfigurationError
from umlaut_core.registry import redact

__all__ = ["S3Location", "S3Options", "parse_s3_uri", "split_object_uri", "validate_key"]

#: Options that may also appear on the URI (nothing secret).
PUBLIC_OPTIONS = (
    "endpoint_url",
    "region_name",
    "profile_name",
    "addressing_style",
    "verify",
    "connect_timeout",
    "read_timeout",
    "max_attempts",
    "retry_mode",
    "multipart_threshold",
    "multipart_chunksize",
    "max_concurrency",
    "use_threads",
)
#: Options accepted only as keyword arguments, never shown anywhere.
SECRET_OPTIONS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._=+-]+$")
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_UNITS = {
    None: 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}
_ADDRESSING = ("auto", "virtual", "path")
_RETRY_MODES = ("standard", "adaptive", "legacy")


@dataclass(frozen=True)
class S3Options:
    """Everything the store needs to build its boto3 client and transfers."""

    endpoint_url: str | None = None
    region_name: str | None = None
    profile_name: str | None = None
    addressing_style: str | None = None
    verify: bool | str | None = None
    #: Seconds; small so a dead endpoint fails fast instead of after botocore's 60 s.
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    #: Total attempts per request (first try included), botocore "standard" retries.
    max_attempts: int = 3
    retry_mode: str = "standard"
    multipart_threshold: int = 8 * 1024 * 1024
    multipart_chunksize: int = 8 * 1024 * 1024
    max_concurrency: int = 10
    use_threads: bool = True
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def public(self) -> dict[str, str]:
        """Options that differ from the defaults, as URI query values (no secrets)."""
        defaults = S3Options()
        out: dict[str, str] = {}
        for name in PUBLIC_OPTIONS:
            value = getattr(self, name)
            if value != getattr(defaults, name):
                out[name] = _text(value)
        return out


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or "a/b" (no leading or trailing slash)

    def key_for(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def uri_for(self, relative: str) -> str:
        return f"s3://{self.bucket}/{quote(self.key_for(relative), safe='/')}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _size(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ConfigurationError(
                f"S3 option {name}={value!r} is not a size; use bytes or e.g. '16MiB'"
            )
        number = int(match.group(1)) * _UNITS[(match.group(2) or "b").lower()]
    if number < 1:
        raise ConfigurationError(f"S3 option {name} must be positive, not {value!r}")
    return number


def _number(name: str, value: Any, kind: type[int] | type[float]) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"S3 option {name}={value!r} is not a number") from None
    if number <= 0:
        raise ConfigurationError(f"S3 option {name} must be positive, not {value!r}")
    return number


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"S3 option {name}={value!r} must be true or false")


def _verify(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return _flag("verify", text)
    return text  # a CA bundle path


def build_options(raw: Mapping[str, Any]) -> S3Options:
    unknown = set(raw) - set(PUBLIC_OPTIONS) - set(SECRET_OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"unknown S3 option(s) {sorted(unknown)}; known: "
            f"{sorted((*PUBLIC_OPTIONS, *SECRET_OPTIONS))}"
        )
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None or name in SECRET_OPTIONS:
            continue
        if name in ("multipart_threshold", "multipart_chunksize"):
            values[name] = _size(name, value)
        elif name in ("connect_timeout", "read_timeout"):
            values[name] = _number(name, value, float)
        elif name in ("max_attempts", "max_concurrency"):
            values[name] = _number(name, value, int)
        elif name == "use_threads":
            values[name] = _flag(name, value)
        elif name == "verify":
            values[name] = _verify(value)
        elif name == "addressing_style" and value not in _ADDRESSING:
            raise ConfigurationError(
                f"S3 option addressing_style={value!r} must be one of {_ADDRESSING}"
            )
        elif name == "retry_mode" and value not in _RETRY_MODES:
            raise ConfigurationError(
                f"S3 option retry_mode={value!r} must be one of {_RETRY_MODES}"
            )
        else:
            values[name] = str(value)
    if values.get("multipart_chunksize", S3Options.multipart_chunksize) < 5 * 1024 * 1024:
        raise ConfigurationError(
            "S3 option multipart_chunksize must be at least 5 MiB (S3's minimum part size)"
        )
    secrets = {k: str(raw[k]) for k in SECRET_OPTIONS if raw.get(k)}
    return S3Options(**values, secrets=secrets)


def parse_s3_uri(uri: str, options: Mapping[str, Any]) -> tuple[S3Location, S3Options]:
    """Split ``s3://bucket/prefix?opt=v`` and merge keyword options over the query."""
    if not isinstance(uri, str) or "\x00" in uri:
        raise ConfigurationError("an S3 URI must be text without NUL bytes")
    parts = urlsplit(uri)
    if parts.scheme.lower() != "s3":
        raise ConfigurationError(f"not an S3 URI: {redact(uri)!r}; use s3://bucket/prefix")
    # Not only the netloc: an unencoded "/" or "#" in a password ends urlsplit's netloc
    # early, and bucket names and prefix segments never hold "@".
    if "@" in uri.split("?", 1)[0] or parts.fragment:
        raise ConfigurationError(
            f"S3 URI {redact(uri)!r} must not hold credentials or a #fragment; give keys "
            f"through the environment, an AWS profile, or artifact_options"
        )
    bucket = parts.netloc
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ConfigurationError(
            f"{bucket!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, "
            f"dots and hyphens), in {redact(uri)!r}"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
    leaked = sorted(set(query) & set(SECRET_OPTIONS))
    if leaked:
        raise ConfigurationError(
            f"S3 URI for bucket {bucket!r} carries credentials ({', '.join(leaked)}); "
            f"URIs are printed and stored, so pass them via the environment, an AWS profile "
            f"or artifact_options instead"
        )
    prefix = unquote(parts.path).strip("/")
    if prefix:
        _check_segments(prefix, f"prefix of {redact(uri)!r}", ConfigurationError)
    merged = {**query, **{k: v for k, v in options.items() if v is not None}}
    return S3Location(bucket, prefix), build_options(merged)


def _check_segments(path: str, what: str, error: type[Exception]) -> None:
    for segment in path.split("/"):
        if segment in ("", ".", "..") or not _SEGMENT.match(segment):
            raise error(
                f"{what} {path!r} is refused: use '/'-separated segments of letters, digits "
                f"and . _ - = + (no empty, '.' or '..' segments)"
            )


def validate_key(key: str) -> str:
    """A relative object key chosen by the core; refuse anything that could escape."""
    if not isinstance(key, str) or not key or "\x00" in key or "\\" in key or key.startswith("/"):
        raise ArtifactError(f"artifact key {key!r} is refused: it must be a relative path")
    _check_segments(key, "artifact key", ArtifactError)
    return key


def split_object_uri(location: S3Location, uri_or_key: str) -> str:
    """The key (relative to the prefix) named by an ``s3://`` URI or a relative key."""
    if not isinstance(uri_or_key, str) or "\x00" in uri_or_key:
        raise ArtifactError(f"artifact URI {uri_or_key!r} is refused (not text, or NUL byte)")
    if not uri_or_key.lower().startswith("s3://"):
        return validate_key(uri_or_key)
    parts = urlsplit(uri_or_key)
    where = f"s3://{location.bucket}/{location.prefix}".rstrip("/")
    if parts.netloc != location.bucket:
        raise ArtifactError(
            f"{redact(uri_or_key)!r} is not in this store's bucket {location.bucket!r}; "
            f"open an artifact store for that bucket instead"
        )
    full = unquote(parts.path).lstrip("/")
    head = f"{location.prefix}/" if location.prefix else ""
    if not full.startswith(head):
        raise ArtifactError(f"{redact(uri_or_key)!r} is outside this store's prefix {where}")
    return validate_key(full[len(head) :])


def store_uri(location: S3Location, opts: S3Options) -> str:
    base = (
        f"s3://{location.bucket}/{location.prefix}"
        if location.prefix
        else f"s3://{location.bucket}"
    )
    public = opts.public()
    # Redacted before encoding (urlencode turns "@" into %40) and after, so an endpoint
    # with user:password in it cannot leak through ``uri``.
    shown = {k: redact(v) if k == "endpoint_url" else v for k, v in public.items()}
    return redact(f"{base}?{urlencode(sorted(shown.items()), safe=':/*@')}") if public else base
