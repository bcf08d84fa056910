"""Datasets and lineage at the store level, and through the facade.

The store tests drive a :class:`~umlaut_core.datasets.DatasetStore` with drafts
made here (no pandas needed); the facade tests track real data and need pandas and
pyarrow (skipped with the reason when they are missing).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ..._api import Umlaut
from ..._manager import get_plugin_manager
from ...datasets.records import ColumnProfile, DatasetDraft, DatasetLink
from ...exceptions import BackendNotFoundError, ConfigurationError, DatasetNotFoundError
from ...protocols import Capability, Tracker
from ...registry import BackendRegistry
from ..models import Threshold
from ._base import TrackerTestBase

__all__ = ["DatasetStoreTests", "DatasetTestBase", "LineageTests"]

#: Whole milliseconds, aware UTC: what every store keeps of a time.
T0 = dt.datetime(2025, 6, 1, 12, 0, 0, 123000, tzinfo=dt.UTC)

COLUMNS = (
    ColumnProfile(
        "sepal length", "float", "float64", "double", False, 0, 35, True,
        4.3, 7.9, 5.84, 0.83, (4.3, 4.8, 5.0, 5.27, 5.6, 5.8, 6.1, 6.3, 6.52, 6.9, 7.9),
    ),
    ColumnProfile(
        "species", "category", "category", "dictionary<values=string, indices=int8>",
        False, 0, 3, True, "setosa", "virginica", None, None, (),
        (("setosa", 50), ("versicolor", 50), ("virginica", 50)), "target",
        ("setosa", "versicolor", "virginica"),
    ),
    ColumnProfile("note", "string", "object", "string", True, 7, 140, True, "a", "zz"),
    ColumnProfile(
        "when", "datetime", "datetime64[ns, UTC]", "timestamp[ns, tz=UTC]", True, 1, 149,
        False, "2025-01-01T00:00:00+00:00", "2025-06-01T00:00:00+00:00",
    ),
)  # fmt: skip


class DatasetTestBase(TrackerTestBase):
    """The ``dataset_store`` fixture: opened from ``tracker`` through the plugins."""

    @pytest.fixture
    def dataset_store(self, tracker: Tracker) -> Iterator[Any]:
        registry = BackendRegistry.from_plugins(get_plugin_manager())
        try:
            store = registry.open_dataset_store(tracker)
        except BackendNotFoundError:
            pytest.skip(
                f"{type(tracker).__name__} has no dataset store registered "
                f"(registry.add_dataset_store)"
            )
        yield store
        store.close()

    @pytest.fixture
    def dataset_name(self) -> str:
        return f"conformance data {uuid.uuid4().hex[:12]}"

    @staticmethod
    def draft(name: str, n: int = 1, **changes: Any) -> DatasetDraft:
        digest = "sha256:" + hashlib.sha256(f"{name}/{n}".encode()).hexdigest()
        sha = hashlib.sha256(f"file {name}/{n}".encode()).hexdigest()
        base = DatasetDraft(
            name=name,
            digest=digest,
            rows=150 + n,
            columns=COLUMNS,
            artifact_uri=f"file:///tmp/datasets/{sha}.parquet",
            size_bytes=4096 + n,
            sha256=sha,
            created_at=T0,
            created_by="tester",
            description="iris, as measured",
            tags={"origin": "uci"},
            target="species",
            source="iris.csv",
        )
        return dataclasses.replace(base, **changes)


class DatasetStoreTests(DatasetTestBase):
    """What every dataset store does, driven directly."""

    def test_every_field_round_trips(self, dataset_store: Any, dataset_name: str) -> None:
        draft = self.draft(dataset_name)
        dv = dataset_store.register_dataset(draft)
        assert (dv.version, dv.created) == (1, True)
        got = dataset_store.get_dataset(dataset_name, 1)
        for f in dataclasses.fields(draft):
            assert getattr(got, f.name) == getattr(draft, f.name), f.name
        assert got.columns == COLUMNS  # tuples stay tuples, None stays None
        assert got.created is False

    def test_same_digest_returns_the_existing_version(
        self, dataset_store: Any, dataset_name: str
    ) -> None:
        first = dataset_store.register_dataset(self.draft(dataset_name))
        again = dataset_store.register_dataset(self.draft(dataset_name))
        assert (again.version, again.created) == (first.version, False)
        assert dataset_store.find_dataset(dataset_name, first.digest).version == 1
        assert dataset_store.find_dataset(dataset_name, "sha256:" + "0" * 64) is None

    def test_identity_is_per_name(self, dataset_store: Any, dataset_name: str) -> None:
        same = self.draft(dataset_name)
        dataset_store.register_dataset(same)
        other = dataset_store.register_dataset(dataclasses.replace(same, name=dataset_name + " b"))
        assert (other.name, other.version, other.created) == (dataset_name + " b", 1, True)

    def test_versions_are_gap_free_under_concurrent_writers(
        self, dataset_store: Any, dataset_name: str
    ) -> None:
        results: list[int] = []
        errors: list[BaseException] = []

        def register(n: int) -> None:
            try:
                results.append(dataset_store.register_dataset(self.draft(dataset_name, n)).version)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=register, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert sorted(results) == list(range(1, 9))
        listed = dataset_store.list_dataset_versions(dataset_name)
        assert [v.version for v in listed] == list(range(1, 9))

    def test_newest_and_unknowns(self, dataset_store: Any, dataset_name: str) -> None:
        dataset_store.register_dataset(self.draft(dataset_name, 1))
        dataset_store.register_dataset(self.draft(dataset_name, 2))
        assert dataset_store.get_dataset(dataset_name).version == 2
        with pytest.raises(DatasetNotFoundError, match="1, 2"):
            dataset_store.get_dataset(dataset_name, 3)
        with pytest.raises(DatasetNotFoundError):
            dataset_store.get_dataset(dataset_name + " missing")
        with pytest.raises(DatasetNotFoundError):
            dataset_store.list_dataset_versions(dataset_name + " missing")
        names = {d.name: d.latest_version for d in dataset_store.list_datasets()}
        assert names[dataset_name] == 2

    def test_links_are_idempotent_and_queried_both_ways(
        self, dataset_store: Any, dataset_name: str
    ) -> None:
        dataset_store.register_dataset(self.draft(dataset_name))
        model = f"model {uuid.uuid4().hex[:8]}"
        run_id = uuid.uuid4().hex
        links = [
            DatasetLink(dataset_name, 1, "model_version", "train", model, 3),
            DatasetLink(dataset_name, 1, "model_version", "eval", model, 3),
            DatasetLink(dataset_name, 1, "training_run", "training", run_id=run_id),
        ]
        assert dataset_store.add_links(links) == 3
        assert dataset_store.add_links(links) == 0
        of_data = dataset_store.links(dataset=(dataset_name, 1))
        assert {(x.kind, x.context) for x in of_data} == {
            ("model_version", "train"), ("model_version", "eval"), ("training_run", "training"),
        }  # fmt: skip
        assert len(dataset_store.links(dataset=(dataset_name, None))) == 3
        of_model = dataset_store.links(model=(model, 3))
        assert sorted(x.context for x in of_model) == ["eval", "train"]
        assert dataset_store.links(model=(model, 4)) == []
        assert [x.context for x in dataset_store.links(run_id=run_id)] == ["training"]
        assert all(x.created_at is not None for x in of_data)

    def test_a_link_to_an_unknown_dataset_adds_nothing(
        self, dataset_store: Any, dataset_name: str
    ) -> None:
        dataset_store.register_dataset(self.draft(dataset_name))
        model = f"model {uuid.uuid4().hex[:8]}"
        batch = [
            DatasetLink(dataset_name, 1, "model_version", "train", model, 1),
            DatasetLink(dataset_name, 9, "model_version", "eval", model, 1),
        ]
        with pytest.raises(DatasetNotFoundError):
            dataset_store.add_links(batch)
        assert dataset_store.links(model=(model, None)) == []

    def test_kept_bytes_round_trip(self, dataset_store: Any) -> None:
        if Capability.DATASET_BYTES not in getattr(dataset_store, "capabilities", ()):
            pytest.skip(f"{type(dataset_store).__name__} does not declare DATASET_BYTES")
        import io

        data = uuid.uuid4().bytes * 1000
        sha = hashlib.sha256(data).hexdigest()
        uri = dataset_store.put_data(sha, io.BytesIO(data))
        assert dataset_store.get_data(uri) == data
        assert dataset_store.put_data(sha, io.BytesIO(data)) == uri  # stored once


class LineageTests(DatasetTestBase):
    """Through the facade: real data tracked, loaded, and linked to versions and runs."""

    @pytest.fixture
    def frame(self) -> Any:
        pd = pytest.importorskip("pandas", reason="tracking data needs pandas")
        pytest.importorskip("pyarrow", reason="tracking data needs pyarrow")
        return pd.DataFrame(
            {
                "x": [0.5, 1.5, 2.5, 3.5],
                "n": pd.array([1, None, 3, 4], dtype="Int64"),
                "label": pd.Categorical(["a", "b", "a", "b"]),
                "flag": [True, False, True, True],
                "when": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03", None], utc=True),
            }
        )

    def test_track_load_and_lineage(
        self, umlaut: Umlaut, dataset_store: Any, frame: Any, dataset_name: str, model_name: str
    ) -> None:
        import pandas as pd

        ds = umlaut.track_dataset(frame, dataset_name, target="label")
        assert (ds.version, ds.rows, ds.created) == (1, 4, True)
        assert umlaut.track_dataset(frame.copy(), dataset_name).created is False
        pd.testing.assert_frame_equal(umlaut.load_dataset(dataset_name), frame)
        assert ds.column("n").null_count == 1 and ds.column("label").role == "target"
        with umlaut.start_run("lineage") as run:
            run.log_input(ds, context="training")
            mv = umlaut.track_model(
                Threshold(2), model_name, run=run, datasets={"train": ds}, stage="Production"
            )
        umlaut.run_model(
            model_name, {"x": 3.0, "n": 2, "flag": True, "when": "2025-01-02T00:00:00+00:00"},
            stage="Production", reference_id=f"ref-{model_name}",
        )  # fmt: skip
        trained = umlaut.dataset_links(dataset=ds)
        assert {(x.kind, x.model_name, x.run_id) for x in trained} == {
            ("model_version", model_name, None), ("training_run", None, run.run_id),
        }  # fmt: skip
        lineage = umlaut.lineage(reference_id=f"ref-{model_name}")
        assert lineage.version.version == mv.version
        assert lineage.training_run is not None and lineage.training_run.run_id == run.run_id
        assert {(x.dataset_name, x.context) for x in lineage.datasets} == {
            (dataset_name, "train"), (dataset_name, "training"),
        }  # fmt: skip

    def test_bad_datasets_argument_is_refused_before_anything_is_written(
        self, umlaut: Umlaut, dataset_store: Any, model_name: str
    ) -> None:
        with pytest.raises(ConfigurationError, match="DatasetVersion"):
            umlaut.track_model(Threshold(1), model_name, datasets={"train": "iris"})  # type: ignore[dict-item]
        assert model_name not in {m.name for m in umlaut.list_models()}
