"""What the tests hand to Dask itself (not through a bundle): Dask pickles these by
reference, so they live in a module the worker processes can import — conftest puts
this folder on ``sys.path``, which spawned workers inherit. (A class defined in a test
module is named after the test's path, e.g. ``plugins.umlaut-dask.tests.test_scoring``,
which a worker cannot import; under ``python -m pytest`` the working directory on
``sys.path`` hid that, under tox it made every task fail to deserialize.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class FailAfterWrite:
    """``after_partition``: fails each partition's first attempt, after its write."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __call__(self, number: int) -> None:
        marker = Path(self.folder) / f"partition-{number}"
        if not marker.exists():
            marker.touch()
            raise RuntimeError(f"injected failure after partition {number} was written")


class FailFrom:
    """``after_partition``: partitions from ``first`` on fail (an interrupted job)."""

    def __init__(self, first: int) -> None:
        self.first = first

    def __call__(self, number: int) -> None:
        if number >= self.first:
            raise RuntimeError(f"interrupted at partition {number}")


def executing(dask_worker: Any) -> int:
    return len(dask_worker.state.executing)


class Constant:
    """A second version's model: answers the same whatever the row."""

    def run(self, row: Any) -> dict[str, Any]:
        return {"band": -1, "score": -1.0}


class PromoteOnce:
    """``after_partition``: the first partition to finish tracks a new version of the
    model and moves the stage to it, from the worker (a stage move made elsewhere
    while the job runs)."""

    def __init__(self, uri: str, artifacts: str, name: str, marker: str) -> None:
        self.uri, self.artifacts, self.name, self.marker = uri, artifacts, name, marker

    def __call__(self, number: int) -> None:
        from umlaut_core import Umlaut

        try:
            Path(self.marker).touch(exist_ok=False)
        except FileExistsError:
            return
        with Umlaut(self.uri, self.artifacts, delivery="sync") as umlaut:
            umlaut.track_model(Constant(), self.name, stage="Production")
