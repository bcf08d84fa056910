"""Datasets: the list, and one version's profile with the models and training runs
that used it (a model's drift report is in :mod:`.drift_pages`)."""

from __future__ import annotations

from .app import Page, PageRequest
from .errors import UiError

__all__ = ["dataset", "datasets"]

#: Versions listed on a dataset's page (newest first).
MAX_VERSIONS = 50


def datasets(page: PageRequest) -> Page:
    found = page.um.list_datasets()
    return Page("datasets.html", {"datasets": found}, title="Datasets", nav="datasets")


def dataset(page: PageRequest) -> Page:
    name = page.path("name")
    text = page.query.get("version", "").strip()
    if text and (not text.isdigit() or int(text) < 1):
        raise UiError(400, "Bad request", "version must be a whole number from 1")
    dv = page.um.get_dataset(name, int(text) if text else None)
    versions = page.um.list_dataset_versions(dv.name)[::-1][:MAX_VERSIONS]
    links = page.um.dataset_links(dataset=(dv.name, dv.version))
    context = {
        "dv": dv,
        "versions": versions,
        "models": [link for link in links if link.kind == "model_version"],
        "training_runs": [link for link in links if link.kind == "training_run"],
        "tags": sorted(dv.tags.items()),
    }
    return Page("dataset.html", context, title=f"{dv.name} v{dv.version}", nav="datasets")
