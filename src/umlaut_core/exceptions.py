"""Every error umlaut raises on purpose.

One root, so ``except UmlautError`` catches everything the library means to raise;
where the meaning matches a builtin (``LookupError``, ``ValueError``, ``TypeError``)
the class subclasses it too, so both ``except`` styles work::

    UmlautError
    ├── ConfigurationError (ValueError)          bad URI, unknown profile or option
    ├── PluginError
    │   ├── PluginLoadError                      an entry point failed to import
    │   └── BackendConflictError                 two plugins claim one URI scheme
    ├── BackendNotFoundError (LookupError)       no plugin handles a URI scheme
    ├── InvalidNameError (ValueError)            model name, alias or tag refused
    ├── NotFoundError (LookupError)
    │   ├── ModelNotFoundError
    │   ├── VersionNotFoundError
    │   └── StageNotFoundError                   unknown stage / alias
    ├── EncodingError (ValueError)
    │   ├── InputEncodingError                   input is not JSON under our encoding
    │   └── OutputEncodingError                  a model returned something not JSON
    └── TrackingError
        ├── BackendError                         the store failed or is unreachable
        │   └── SchemaError                      a database is not ours, or too new
        ├── ArtifactError                        a bundle is missing or cannot be read
        │   └── IntegrityError                   a bundle's bytes do not match its digest
        └── PackingError
            ├── UnsupportedModelError (TypeError)  nothing in the object can be run
            └── EnvironmentMismatchError         strict policy and versions differ

Backends translate their native errors into this tree in one place each, always with
``raise ... from exc``. Messages name the model, URI (without its password) or key
involved and say what exists or what to do.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ArtifactError",
    "BackendConflictError",
    "BackendError",
    "BackendNotFoundError",
    "ConfigurationError",
    "EncodingError",
    "EnvironmentMismatchError",
    "InputEncodingError",
    "IntegrityError",
    "InvalidNameError",
    "ModelNotFoundError",
    "NotFoundError",
    "OutputEncodingError",
    "PackingError",
    "PluginError",
    "PluginLoadError",
    "SchemaError",
    "StageNotFoundError",
    "TrackingError",
    "UmlautError",
    "UnsupportedModelError",
    "VersionNotFoundError",
]


def _listing(items: Iterable[object], empty: str = "none") -> str:
    shown = [repr(i) if isinstance(i, str) else str(i) for i in items]
    if not shown:
        return empty
    if len(shown) > 20:
        return ", ".join(shown[:20]) + f", … ({len(shown) - 20} more)"
    return ", ".join(shown)


class UmlautError(Exception):
    """Root of every error umlaut raises on purpose."""


class ConfigurationError(UmlautError, ValueError):
    """A URI, profile or option cannot be used as given."""


class PluginError(UmlautError):
    """A plugin could not be loaded or registered."""


class PluginLoadError(PluginError):
    """An ``umlaut`` entry point failed to import or register."""


class BackendConflictError(PluginError):
    """Two plugins claim the same URI scheme."""

    def __init__(self, kind: str, scheme: str, first: str, second: str) -> None:
        self.kind, self.scheme, self.first, self.second = kind, scheme, first, second
        super().__init__(
            f"two plugins register the {kind} scheme {scheme!r}: {first} and {second}. "
            f"Uninstall one, or block one with UMLAUT_DISABLE_PLUGINS=<name>."
        )


class BackendNotFoundError(UmlautError, LookupError):
    """No installed plugin handles a URI's scheme."""

    def __init__(self, kind: str, scheme: str, installed: Iterable[str], hint: str | None) -> None:
        self.kind, self.scheme = kind, scheme
        self.installed = sorted(installed)
        advice = f" Install {hint!r} to add it." if hint else ""
        super().__init__(
            f"no {kind} is registered for the URI scheme {scheme!r}.{advice} "
            f"Installed {kind} schemes: {_listing(self.installed)}."
        )


class InvalidNameError(UmlautError, ValueError):
    """A model name, alias, tag or reference id is not acceptable."""


class NotFoundError(UmlautError, LookupError):
    """Something asked for by name does not exist."""


class ModelNotFoundError(NotFoundError):
    """No model has this name."""

    def __init__(self, name: str, existing: Iterable[str]) -> None:
        self.name = name
        self.existing = sorted(existing)
        super().__init__(
            f"no model named {name!r}. Existing models: {_listing(self.existing)}. "
            f"Track it first with track_model(model=..., model_name={name!r})."
        )


class VersionNotFoundError(NotFoundError):
    """The model exists but not with this version number."""

    def __init__(self, name: str, version: int, existing: Iterable[int]) -> None:
        self.name, self.version = name, version
        self.existing = sorted(existing)
        super().__init__(
            f"model {name!r} has no version {version}. "
            f"Existing versions: {_listing(self.existing)}."
        )


class StageNotFoundError(NotFoundError):
    """The model exists but no version carries this stage (alias)."""

    def __init__(self, name: str, stage: str, existing: Iterable[str]) -> None:
        self.name, self.stage = name, stage
        self.existing = sorted(existing)
        super().__init__(
            f"model {name!r} has no version in stage {stage!r}. Stages set: "
            f"{_listing(self.existing)}. Promote a version first with "
            f"promote({name!r}, version, {stage!r})."
        )


class EncodingError(UmlautError, ValueError):
    """A value cannot be stored as JSON under umlaut's documented encoding."""


class InputEncodingError(EncodingError):
    """An input cannot be encoded; raised before the model runs."""


class OutputEncodingError(EncodingError):
    """A model's output cannot be encoded for the audit record."""


class TrackingError(UmlautError):
    """Storing or reading tracked data failed."""


class BackendError(TrackingError):
    """A tracker or its server failed, refused or could not be reached."""


class SchemaError(BackendError):
    """A store's schema is not umlaut's, or is newer than this release."""


class ArtifactError(TrackingError):
    """A bundle could not be stored or read."""


class IntegrityError(ArtifactError):
    """A bundle's bytes do not match the digest it was registered with."""


class PackingError(TrackingError):
    """An object cannot be packed into a bundle, or a bundle cannot be loaded."""


class UnsupportedModelError(PackingError, TypeError):
    """No flavor knows how to run this object."""


class EnvironmentMismatchError(PackingError):
    """Under the ``strict`` policy, the bundle was made with other package versions."""
