"""Object ⇄ bundle: a deterministic zip holding ``MANIFEST.json`` and a cloudpickle.

The digest covers what the model *is* (payload hash, flavor, entry, signature), not
when or where it was packed, so packing the same object twice gives the same digest
and the registry stores it once.
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
import threading
import types
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cloudpickle
import pluggy

from ..exceptions import (
    EnvironmentMismatchError,
    IntegrityError,
    PackingError,
    UnsupportedModelError,
)
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
# cloudpickle's by-value registry is process-global; serialise our use of it.
_BY_VALUE_LOCK = threading.Lock()
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


@dataclass(frozen=True)
class LoadedModel:
    """An unpacked model ready to run."""

    obj: Any
    run: Callable[[Any], Any]
    manifest: Mapping[str, Any]
    digest: str


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
    payload = _dumps(obj, code_paths)
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "flavor": flavor.name,
        "entry": flavor.entry,
        "object": _qualname(obj),
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
    env_policy: EnvPolicy = "warn",
    signing_key: bytes | None = None,
) -> LoadedModel:
    """Verify, then unpickle. Nothing is unpickled unless every hash matches."""
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
    return LoadedModel(obj, flavor.runner(obj), manifest, digest)


# --- packing helpers -------------------------------------------------------------


def _dumps(obj: Any, code_paths: Iterable[str] | None) -> bytes:
    """cloudpickle ``obj``, by value for code that lives in the user's own files."""
    modules = _user_modules(obj) | _modules_under(code_paths or ())
    with _BY_VALUE_LOCK:
        registered = []
        for module in modules:
            try:
                cloudpickle.register_pickle_by_value(module)
                registered.append(module)
            except ValueError:
                pass
        try:
            payload: bytes = cloudpickle.dumps(obj, protocol=5)
            return _stable_class_ids(payload)
        except Exception as exc:
            raise PackingError(f"cannot pickle {_qualname(obj)}: {exc!r}") from exc
        finally:
            for module in registered:
                cloudpickle.unregister_pickle_by_value(module)


def _stable_class_ids(payload: bytes) -> bytes:
    """Replace cloudpickle's random class-tracker ids with ids derived from content.

    cloudpickle tags each class it pickles by value with a random uuid4, so the same
    class gives different bytes in every process and re-running a script would track
    a "new" version each time. The ids are swapped for hashes of the payload with the
    ids blanked: equal content gives equal bytes, different content different ids (so
    two versions of a class never merge when loaded into one process).
    """
    tracker = getattr(cloudpickle.cloudpickle, "_DYNAMIC_CLASS_TRACKER_BY_ID", None)
    if not tracker:
        return payload
    found = sorted(
        {i for i in list(tracker) if i.encode() in payload},
        key=lambda i: payload.index(i.encode()),
    )
    if not found:
        return payload
    blank = payload
    for tid in found:
        blank = blank.replace(tid.encode(), b"0" * len(tid))
    content = hashlib.sha256(blank).hexdigest()
    for n, tid in enumerate(found):
        derived = hashlib.sha256(f"{content}:{n}".encode()).hexdigest()[: len(tid)]
        payload = payload.replace(tid.encode(), derived.encode())
    return payload


def _modules_under(paths: Iterable[str]) -> set[types.ModuleType]:
    roots = [Path(p).resolve() for p in paths]
    found: set[types.ModuleType] = set()
    if not roots:
        return found
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if file and module.__name__ != "__main__":
            where = Path(file).resolve()
            if any(where == r or where.is_relative_to(r) for r in roots):
                found.add(module)
    return found


def _user_modules(obj: Any) -> set[types.ModuleType]:
    """Modules of the object's own code that a fresh process may not have."""
    names = {getattr(obj, "__module__", None), type(obj).__module__}
    found: set[types.ModuleType] = set()
    for name in names:
        if not name or name == "__main__" or name in sys.builtin_module_names:
            continue
        module = sys.modules.get(name)
        if module is not None and _is_user_file(getattr(module, "__file__", None)):
            found.add(module)
    return found


def _is_user_file(path: str | None) -> bool:
    if not path:
        return False
    lowered = path.replace("\\", "/")
    if "/site-packages/" in lowered or "/dist-packages/" in lowered:
        return False
    stdlib = sys.base_prefix.replace("\\", "/")
    return not lowered.startswith(stdlib + "/lib")


def _qualname(obj: Any) -> str:
    target = obj if isinstance(obj, (type, types.FunctionType)) else type(obj)
    return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', '?')}"


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
