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
    ├── ClosedError (RuntimeError)               the Umlaut was closed
    ├── DeadlineExceededError (TimeoutError)     a model call overran its Deadline
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

from collections.abc import Iterable, Mapping

__all__ = [
    "ArtifactError",
    "BackendConflictError",
    "BackendError",
    "BackendNotFoundError",
    "ClosedError",
    "ConfigurationError",
    "DeadlineExceededError",
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
    "DatasetNotFoundError",
    "InputValidationError",
    "ParamConflictError",
    "SchemaError",
    "StageNotFoundError",
    "TrackingError",
    "TrainingRunNotFoundError",
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
    """No registered plugin handles a URI's scheme.

    The message lists the registered schemes with the distribution providing each,
    and then either names the installed-but-disabled plugin that would handle the
    scheme and how to enable it, or the distribution to install.

    :param kind: ``"tracker"`` or ``"artifact store"``.
    :param scheme: the scheme asked for (``mlflow+http``).
    :param installed: the registered schemes; a mapping also gives, per scheme, the
        distribution (or plugin) providing it.
    :param hint: the distribution that would add the scheme, if known.
    :param disabled: a sentence naming the installed plugin that registers the scheme
        but is disabled, and how to enable it; replaces the install hint.
    """

    def __init__(
        self,
        kind: str,
        scheme: str,
        installed: Iterable[str],
        hint: str | None,
        *,
        disabled: str | None = None,
    ) -> None:
        self.kind, self.scheme = kind, scheme
        self.installed = sorted(installed)
        #: Registered scheme → the distribution (or plugin name) that provides it.
        self.providers: dict[str, str] = (
            {str(s): str(who) for s, who in installed.items()}
            if isinstance(installed, Mapping)
            else {}
        )
        self.disabled = disabled
        if disabled:
            advice = f" {disabled}"
        elif hint:
            advice = f" Install {hint!r} to add it."
        else:
            advice = ""
        shown = [
            f"{s!r} from {self.providers[s]}" if s in self.providers else repr(s)
            for s in self.installed
        ]
        listing = ", ".join(shown) if shown else "none"
        super().__init__(
            f"no {kind} is registered for the URI scheme {scheme!r}.{advice} "
            f"Installed {kind} schemes: {listing}."
        )


class ClosedError(UmlautError, RuntimeError):
    """The ``Umlaut`` was closed: nothing runs or is stored through it any more."""


class DeadlineExceededError(UmlautError, TimeoutError):
    """A model call passed its :class:`~umlaut_core.deadline.Deadline`: its audit
    record is written as an error of this type and its output is discarded."""


class InvalidNameError(UmlautError, ValueError):
    """A model name, alias, tag or reference id is not acceptable."""


class NotFoundError(UmlautError, LookupError):
    """Something asked for by name does not exist."""


class TrainingRunNotFoundError(NotFoundError):
    """No training run has this id (in the store asked)."""


class DatasetNotFoundError(NotFoundError):
    """No dataset has this name, or it has no such version."""

    @classmethod
    def for_name(cls, name: str, existing: Iterable[str]) -> DatasetNotFoundError:
        return cls(f"no dataset named {name!r}; datasets: {_listing(existing)}")

    @classmethod
    def for_version(cls, name: str, version: int, existing: Iterable[int]) -> DatasetNotFoundError:
        return cls(f"dataset {name!r} has no version {version}; versions: {_listing(existing)}")


class InputValidationError(UmlautError, ValueError):
    """A model's input does not match its signature: every problem is listed, input
    values are left out unless the setting ``input_check_values`` is on. The call is audited (status
    ``error``, this error's type) and the model did not run."""

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        super().__init__(message)
        #: Each problem as one sentence (a missing column, a wrong type, …).
        self.problems: list[str] = list(problems)


class ParamConflictError(UmlautError, ValueError):
    """A training run's param was logged again with a different value: params are
    fixed once logged (log it under another name, or start a new run)."""


class ModelNotFoundError(NotFoundError):
    """No model has this name."""

    def __init__(self, name: str, existing: Iterable[str]) -> None:
        from .naming import looks_like  # naming imports this module

        self.name = name
        self.existing = sorted(existing)
        #: An existing name that looks like the one asked for, if any.
        self.suggestion = looks_like(name, self.existing)
        hint = (
            f" Did you mean {self.suggestion!r}? It looks alike but is spelled differently."
            if self.suggestion is not None
            else ""
        )
        super().__init__(
            f"no model named {name!r}.{hint} Existing models: {_listing(self.existing)}. "
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
