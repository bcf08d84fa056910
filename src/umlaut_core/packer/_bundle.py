"""Object ⇄ bundle: a deterministic zip holding ``MANIFEST.json`` and a cloudpickle.

The digest covers what the model *is* (payload hash, flavor, entry, signature), not
when or where it was packed, so packing the same object twice gives the same digest
and the registry stores it once. The bundle file as a whole is identified by its own
sha256 (:attr:`Bundle.sha256`): stores key bundles by it, and loading can check it
before the zip is even opened.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.metadata
import io
import json
import platform
import sys
import types
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cloudpickle
import pluggy

from ..exceptions import (
    EnvironmentMismatchError,
    IntegrityError,
    PackingError,
    UnsupportedModelError,
)
from ._pickling import dumps, qualname
from .flavors import Flavor

__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "EnvPolicy",
    "LoadedModel",
    "UmlautEnvironmentWarning",
    "compute_digest",
    "pack",
    "read_manifest",
    "unpack",
]

BUNDLE_FORMAT = 1
MANIFEST = "MANIFEST.json"
PAYLOAD = "payload.pkl"
SIGNATURE = "SIGNATURE"
EnvPolicy = Literal["strict", "warn", "ignore"]
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_DIST_NAMES = {"sklearn": "scikit-learn", "PIL": "pillow", "yaml": "PyYAML"}


class UmlautEnvironmentWarning(UserWarning):
    """A bundle was packed with other versions of Python or key packages."""


@dataclass(frozen=True)
class Bundle:
    """Packed bytes with their manifest and digest."""

    data: bytes
    manifest: Mapping[str, Any]
    digest: str

    @property
    def flavor(self) -> str:
        return str(self.manifest["flavor"])

    @functools.cached_property
    def sha256(self) -> str:
        """Hex sha256 of the whole bundle file (:attr:`data`), zip container included.

        Unlike :attr:`digest` it changes with anything in the file (a signature, the
        packing environment, a byte of the zip directory): it is what stores key
        bundles by, and what ``unpack(..., expected_sha256=...)`` checks first.
        """
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class LoadedModel:
    """An unpacked model ready to run."""

    obj: Any
    run: Callable[[Any], Any]
    manifest: Mapping[str, Any]
    digest: str
    #: ``run`` over many inputs in one vectorized call, when the flavor has one.
    run_many: Callable[[Sequence[Any]], list[Any]] | None = None


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def compute_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 over the parts of a manifest that define the model's behaviour."""
    core = {
        k: manifest.get(k) for k in ("format", "flavor", "entry", "signature", "payload_sha256")
    }
    return "sha256:" + hashlib.sha256(_canonical(core)).hexdigest()


def pack(
    obj: Any,
    pm: pluggy.PluginManager,
    *,
    signature: Mapping[str, Any] | None = None,
    code_paths: Iterable[str] | None = None,
    signing_key: bytes | None = None,
) -> Bundle:
    """Pack ``obj`` into a bundle; ``pm`` supplies the flavors.

    :param signature: an optional description of the input, kept in the manifest.
    :param code_paths: folders or files whose already-imported modules are packed by
        value, for code a fresh process will not have (the object's own module is
        packed by value anyway when it is not an installed package).
    :param signing_key: when given, an HMAC-SHA256 of the manifest (which holds the
        payload's sha256) is stored beside it; loading with a key then refuses
        bundles that are unsigned or signed with another key. The digest is the same
        signed or not.
    """
    flavor: Flavor | None = pm.hook.umlaut_detect_flavor(obj=obj)
    if flavor is None:
        raise UnsupportedModelError(_unsupported_message(obj))
    payload = dumps(obj, code_paths)
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "flavor": flavor.name,
        "entry": flavor.entry,
        "object": qualname(obj),
        "python": platform.python_version(),
        "cloudpickle": cloudpickle.__version__,
        "packages": _key_packages(obj),
        "signature": dict(signature) if signature else None,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "payload_size": len(payload),
    }
    digest = compute_digest(manifest)
    manifest["digest"] = digest
    manifest_bytes = _canonical(manifest)
    mac = _hmac(signing_key, manifest_bytes) if signing_key else None
    return Bundle(_zip(manifest_bytes, payload, mac), manifest, digest)


def read_manifest(data: bytes) -> dict[str, Any]:
    """The manifest of a bundle, without unpickling anything."""
    with _open_zip(data) as zf:
        return _manifest_of(zf)


def unpack(
    data: bytes,
    pm: pluggy.PluginManager,
    *,
    expected_digest: str | None,
    expected_sha256: str | None = None,
    env_policy: EnvPolicy = "warn",
    signing_key: bytes | None = None,
) -> LoadedModel:
    """Verify, then unpickle. Nothing is unpickled unless every hash matches.

    :param expected_digest: the digest the model was registered with (``None``: not
        checked).
    :param expected_sha256: the hex sha256 of the whole bundle file as registered
        (:attr:`Bundle.sha256`); checked first, before the zip is opened, so any
        changed byte (the zip container included) is refused. ``None``: not checked,
        for versions registered before the whole-file checksum existed.
    """
    if expected_sha256 is not None:
        _check_file_sha256(data, expected_sha256)
    with _open_zip(data) as zf:
        manifest = _manifest_of(zf)
        if signing_key:
            _check_signature(zf, signing_key)
        try:
            payload = zf.read(PAYLOAD)
        except (KeyError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise IntegrityError(
                f"bundle payload is missing or corrupted ({exc}): the stored bytes were "
                f"changed. Nothing was loaded; restore the object or re-track the model."
            ) from None
    if hashlib.sha256(payload).hexdigest() != manifest.get("payload_sha256"):
        raise IntegrityError(
            "bundle payload does not match its manifest's sha256: the stored bytes were "
            "corrupted or changed. Nothing was loaded; restore the object or re-track the model."
        )
    digest = compute_digest(manifest)
    if expected_digest is not None and digest != expected_digest:
        raise IntegrityError(
            f"bundle digest {digest} differs from the registered {expected_digest}: the "
            f"bundle was swapped or tampered with. Nothing was loaded."
        )
    _check_environment(manifest, env_policy)
    flavor: Flavor | None = pm.hook.umlaut_get_flavor(name=manifest["flavor"])
    if flavor is None:
        raise PackingError(
            f"bundle flavor {manifest['flavor']!r} is not provided by any installed "
            f"plugin; install the plugin that packed it."
        )
    try:
        obj = cloudpickle.loads(payload)
    except Exception as exc:
        raise PackingError(
            f"could not unpickle {manifest.get('object')!r}: {exc!r}. A package it needs "
            f"may be missing here; the bundle was made with {manifest.get('packages')}."
        ) from exc
    return LoadedModel(obj, flavor.runner(obj), manifest, digest, flavor.batch_runner(obj))


def _check_file_sha256(data: bytes, expected: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    wanted = expected.split(":", 1)[-1].strip().lower()
    if not hmac.compare_digest(actual, wanted):
        raise IntegrityError(
            f"the bundle file changed since it was registered (sha256 {actual}, registered "
            f"{wanted}, {len(data)} bytes): it was corrupted, truncated or rewritten in the "
            f"store; nothing was loaded. Restore the object or re-track the model."
        )


# --- packing helpers -------------------------------------------------------------


def _key_packages(obj: Any) -> dict[str, str]:
    modules: set[str] = set()
    klass = obj if isinstance(obj, type) else type(obj)
    modules.update(k.__module__ for k in klass.__mro__)
    if isinstance(obj, types.FunctionType):
        modules.add(obj.__module__)
        for name in obj.__code__.co_names:
            value = obj.__globals__.get(name)
            if isinstance(value, types.ModuleType):
                modules.add(value.__name__)
            elif value is not None:
                modules.add(getattr(value, "__module__", None) or "")
    for value in getattr(obj, "__dict__", {}).values():
        modules.update(k.__module__ for k in type(value).__mro__)
    tops = {m.split(".", 1)[0] for m in modules if m}
    tops -= set(sys.stdlib_module_names) | {"__main__", "builtins"}
    found = {}
    for top in sorted(tops):
        version = _dist_version(_DIST_NAMES.get(top, top))
        if version is not None:
            found[_DIST_NAMES.get(top, top)] = version
    return found


@functools.lru_cache(maxsize=256)
def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _hmac(key: bytes, manifest: bytes) -> bytes:
    return hmac.new(key, manifest, hashlib.sha256).hexdigest().encode()


def _check_signature(zf: zipfile.ZipFile, key: bytes) -> None:
    try:
        stored = zf.read(SIGNATURE)
    except KeyError:
        raise IntegrityError(
            "bundle is not signed, and a signing key is configured: refused before "
            "loading. Re-track the model with the signing key set."
        ) from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise IntegrityError(f"bundle signature is unreadable ({exc}); refused") from None
    try:
        manifest = zf.read(MANIFEST)
    except (KeyError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise IntegrityError(f"bundle manifest is missing or corrupted ({exc})") from None
    if not hmac.compare_digest(stored, _hmac(key, manifest)):
        raise IntegrityError(
            "bundle signature does not match the configured signing key: it was signed "
            "with another key or changed after signing. Refused before loading."
        )


def _zip(manifest: bytes, payload: bytes, signature: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    entries = [(MANIFEST, manifest), (PAYLOAD, payload)]
    if signature is not None:
        entries.append((SIGNATURE, signature))
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, content)
    return buf.getvalue()


def _unsupported_message(obj: Any) -> str:
    if isinstance(obj, type):
        hint = (
            f" pass an instance, e.g. {obj.__qualname__}()"
            if callable(getattr(obj, "run", None))
            else ""
        )
        return f"got the class {obj.__qualname__} itself;{hint or ' pass an instance'}."
    return (
        f"cannot track a {type(obj).__qualname__}: give it a run(input) method, pass a "
        f"plain function, or a fitted scikit-learn estimator (with predict)."
    )


# --- loading helpers -------------------------------------------------------------


class _open_zip:
    def __init__(self, data: bytes) -> None:
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise IntegrityError(
                f"not a readable umlaut bundle ({len(data)} bytes): {exc}. The stored "
                f"object is truncated or corrupted; nothing was loaded."
            ) from None

    def __enter__(self) -> zipfile.ZipFile:
        return self.zf

    def __exit__(self, *exc: object) -> None:
        self.zf.close()


def _manifest_of(zf: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = json.loads(zf.read(MANIFEST))
    except (KeyError, ValueError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise IntegrityError(
            f"bundle manifest is missing or corrupted ({exc}); nothing was loaded. Restore "
            f"the object or re-track the model."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise IntegrityError(
            f"bundle format {manifest.get('format') if isinstance(manifest, dict) else '?'}"
            f" is not {BUNDLE_FORMAT}; upgrade umlaut-core to read it."
        )
    return manifest


def _check_environment(manifest: Mapping[str, Any], policy: EnvPolicy) -> None:
    if policy == "ignore":
        return
    problems = []
    here = ".".join(platform.python_version_tuple()[:2])
    there = ".".join(str(manifest.get("python", "")).split(".")[:2])
    if there != here:
        problems.append(f"Python {there} (here {here})")
    for dist, version in (manifest.get("packages") or {}).items():
        current = _dist_version(dist)
        if current != version:
            problems.append(f"{dist} {version} (here {current or 'not installed'})")
    if not problems:
        return
    message = f"bundle {manifest.get('object')} was packed with " + ", ".join(problems)
    if policy == "strict":
        raise EnvironmentMismatchError(
            message + ". Install those versions, or load with env_policy='warn'."
        )
    warnings.warn(message, UmlautEnvironmentWarning, stacklevel=4)
