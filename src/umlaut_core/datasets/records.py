"""The typed records of datasets: versions, column profiles, lineage links.

A dataset version is immutable and identified per name: ``(name, version)``, with a
content ``digest`` (sha256 over every row, the column names and logical types,
under the canonical encoding of :mod:`umlaut_core.datasets.canonical`). The same
content under two names is two datasets (sharing stored bytes), never one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "LOGICAL_TYPES",
    "ColumnProfile",
    "DatasetDraft",
    "DatasetInfo",
    "DatasetLink",
    "DatasetVersion",
    "LinkKind",
]

#: The logical types a column can have, whatever the library that held it.
LOGICAL_TYPES = (
    "integer", "float", "boolean", "string", "category", "datetime", "date",
    "duration", "binary", "other",
)  # fmt: skip

LinkKind = Literal["model_version", "training_run"]


def _empty() -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class ColumnProfile:
    """One column of a dataset version, as profiled when it was tracked.

    ``dtype`` is the type as given (``int64``, ``Int64``, ``category``,
    ``datetime64[ns, UTC]``…), ``stored_type`` the Arrow type it is stored as.
    ``min``/``max`` are JSON values (numbers, ISO strings for times, strings);
    ``quantiles`` are the deciles (11 edges, min to max) of a numeric or time column
    (times as epoch seconds); ``top`` the most frequent values with their counts.
    ``distinct_count`` is exact when ``distinct_exact`` (up to 100,000 distinct
    values), else a HyperLogLog estimate (relative standard error about 0.8%).
    """

    name: str
    logical_type: str
    dtype: str
    stored_type: str
    nullable: bool
    null_count: int
    distinct_count: int
    distinct_exact: bool = True
    min: Any = None
    max: Any = None
    mean: float | None = None
    std: float | None = None
    quantiles: tuple[float, ...] = ()
    top: tuple[tuple[Any, int], ...] = ()
    #: ``feature``, ``target``, or a role given with ``roles=`` (``id``, ``weight``…).
    role: str = "feature"
    #: Every category of a ``category`` column (or of a string column with at most
    #: 1,000 distinct values): what input checks call known categories.
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class DatasetDraft:
    """What the facade asks a store to register; the store assigns the number."""

    name: str
    digest: str
    rows: int
    columns: tuple[ColumnProfile, ...]
    artifact_uri: str
    size_bytes: int
    #: The sha256 of the stored Parquet file (checked on every load).
    sha256: str
    created_at: datetime
    created_by: str | None = None
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=_empty)
    #: The column a model learns to predict, when there is one.
    target: str | None = None
    #: Where the data came from (a path, "pandas.DataFrame", …), for people.
    source: str | None = None


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One immutable, numbered version of a dataset.

    ``created`` is True when the call that returned it registered it, False when the
    name already had a version with this digest. ``load()`` reads the data back as a
    pandas DataFrame with the dtypes it was tracked with (pandas needed).
    """

    name: str
    version: int
    digest: str
    rows: int
    columns: tuple[ColumnProfile, ...]
    artifact_uri: str
    size_bytes: int
    sha256: str
    created_at: datetime
    created_by: str | None = None
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=_empty)
    target: str | None = None
    source: str | None = None
    created: bool = True
    loader: Callable[[DatasetVersion], Any] | None = field(default=None, compare=False, repr=False)

    def load(self) -> Any:
        """The data as a pandas DataFrame (bytes checked against the digest)."""
        if self.loader is None:
            from ..exceptions import ConfigurationError

            raise ConfigurationError(
                f"dataset {self.name} v{self.version} was not read through an Umlaut; "
                f"use umlaut.load_dataset(...)"
            )
        return self.loader(self)

    def column(self, name: str) -> ColumnProfile:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def features(self) -> tuple[ColumnProfile, ...]:
        """The columns a model is fed: every column whose role is ``feature``."""
        return tuple(c for c in self.columns if c.role == "feature")

    def profile_table(self) -> str:
        """The per-column table (mlops-lite's README layout) as Markdown."""
        from .report import profile_table

        return profile_table(self)


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """A dataset name with its newest version number."""

    name: str
    latest_version: int
    description: str | None = None


@dataclass(frozen=True, slots=True)
class DatasetLink:
    """Lineage: a dataset version used by a model version or a training run.

    ``context`` says how (``train``, ``eval``, ``training``, ``validation``…). The
    identity of a link is every field but ``created_at``: adding it twice stores one.
    """

    dataset_name: str
    dataset_version: int
    kind: LinkKind
    context: str
    model_name: str | None = None
    model_version: int | None = None
    run_id: str | None = None
    created_at: datetime | None = field(default=None, compare=False)

    @property
    def identity(self) -> tuple[Any, ...]:
        return (
            self.dataset_name, self.dataset_version, self.kind, self.context,
            self.model_name, self.model_version, self.run_id,
        )  # fmt: skip
