"""Copying datasets and their lineage between backends (an ``umlaut copy`` phase),
and checking the copy.

Per dataset, oldest version first: a version whose digest the destination already
holds under that name is not copied again; any other has its Parquet bytes read from
the source, checked against the sha256 recorded when it was tracked, stored at the
destination (content-addressed), and registered with its original times, author,
profile and tags. Into a destination without the dataset, versions keep their
numbers. Then every lineage link, with dataset and model version numbers mapped,
through the idempotent ``add_links``. A re-run therefore adds nothing twice.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .datasets.records import DatasetDraft, DatasetLink, DatasetVersion
from .exceptions import BackendNotFoundError, ConfigurationError

if TYPE_CHECKING:
    from ._api import Umlaut

__all__ = ["DatasetCopy", "copy_datasets", "has_datasets", "verify_datasets"]


@dataclass
class DatasetCopy:
    """What the dataset phase of a copy did (dry run: would do)."""

    versions: int = 0
    versions_added: int = 0
    links: int = 0
    links_added: int = 0
    #: Source (name, version) → destination version, for every version.
    mapping: dict[tuple[str, int], int] = field(default_factory=dict)
    skipped: str | None = None
    problems: list[str] = field(default_factory=list)


def has_datasets(umlaut: Umlaut) -> bool:
    """Whether the backend keeps datasets (a dataset store is registered for it)."""
    try:
        umlaut._datasets  # noqa: B018
    except (BackendNotFoundError, ConfigurationError):
        return False
    return True


def _draft(dv: DatasetVersion, uri: str) -> DatasetDraft:
    names = {f.name for f in dataclasses.fields(DatasetDraft)}
    values = {k: getattr(dv, k) for k in names if k != "artifact_uri"}
    return DatasetDraft(artifact_uri=uri, **values)


def copy_datasets(
    source: Umlaut,
    destination: Umlaut,
    *,
    model_mappings: Mapping[str, Mapping[int, int]] | None = None,
    dry_run: bool = False,
    on_progress: Callable[[str, int], None] | None = None,
) -> DatasetCopy:
    """Copy every dataset version and lineage link of ``source`` to ``destination``."""
    done = DatasetCopy()
    if not has_datasets(source):
        done.skipped = "the source keeps no datasets"
        return done
    infos = source._datasets.list_datasets()
    if not infos:
        return done
    if not has_datasets(destination):
        done.problems.append(
            f"the source has datasets but {destination.tracker.uri} keeps none (no "
            f"dataset store is registered for it); they were not copied"
        )
        return done
    src, dst = source._datasets, destination._datasets
    tick = on_progress or (lambda phase, n: None)
    links: list[DatasetLink] = []
    for info in infos:
        for dv in src.list_dataset_versions(info.name):
            done.versions += 1
            found = dst.find_dataset(dv.name, dv.digest)
            if found is not None:
                done.mapping[(dv.name, dv.version)] = found.version
            elif dry_run:
                done.versions_added += 1
            else:
                data = source._dataset_bytes(dv)  # checked against its sha256
                with tempfile.TemporaryDirectory(prefix="umlaut-copy-") as tmp:
                    path = Path(tmp) / "data.parquet"
                    path.write_bytes(data)
                    uri = destination._put_dataset_bytes(dv.sha256, path)
                copied = dst.register_dataset(_draft(dv, uri))
                done.mapping[(dv.name, dv.version)] = copied.version
                done.versions_added += int(copied.created)
            tick("datasets", 1)
        links += src.links(dataset=(info.name, None))
    done.links = len(links)
    if dry_run:
        return done
    mapped = [_mapped(link, done.mapping, model_mappings or {}) for link in links]
    done.links_added = dst.add_links(mapped) if mapped else 0
    return done


def _mapped(
    link: DatasetLink,
    datasets: Mapping[tuple[str, int], int],
    models: Mapping[str, Mapping[int, int]],
) -> DatasetLink:
    version = datasets.get((link.dataset_name, link.dataset_version), link.dataset_version)
    model_version = link.model_version
    if link.model_name is not None and model_version is not None:
        model_version = models.get(link.model_name, {}).get(model_version, model_version)
    return dataclasses.replace(link, dataset_version=version, model_version=model_version)


def verify_datasets(source: Umlaut, destination: Umlaut) -> list[str]:
    """Differences between the two sides' datasets (empty: none): every source
    version is at the destination under its name and digest, with the same rows,
    profile and file sha256, and every source link has its (mapped) counterpart."""
    if not has_datasets(source):
        return []
    infos = source._datasets.list_datasets()
    if not infos:
        return []
    if not has_datasets(destination):
        return ["the destination keeps no datasets"]
    src, dst = source._datasets, destination._datasets
    problems: list[str] = []
    mapping: dict[tuple[str, int], int] = {}
    held: set[tuple[Any, ...]] = set()
    for info in infos:
        for dv in src.list_dataset_versions(info.name):
            found = dst.find_dataset(dv.name, dv.digest)
            if found is None:
                problems.append(f"dataset {dv.name} v{dv.version} is missing at the destination")
                continue
            mapping[(dv.name, dv.version)] = found.version
            if (found.rows, found.columns, found.sha256) != (dv.rows, dv.columns, dv.sha256):
                problems.append(f"dataset {dv.name} v{dv.version} differs at the destination")
        held.update(x.identity for x in dst.links(dataset=(info.name, None)))
        for link in src.links(dataset=(info.name, None)):
            version = mapping.get((link.dataset_name, link.dataset_version))
            want = dataclasses.replace(link, dataset_version=version or link.dataset_version)
            # Model numbers may be renumbered by the copy: compare without them.
            if not any(_same_but_model_version(want.identity, h) for h in held):
                problems.append(
                    f"the link of dataset {link.dataset_name} v{link.dataset_version} to "
                    f"{link.model_name or link.run_id} ({link.context}) is missing"
                )
    return problems


def _same_but_model_version(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return a[:5] == b[:5] and a[6:] == b[6:]
