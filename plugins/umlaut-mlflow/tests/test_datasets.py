"""Datasets in MLflow: what MLflow's own client sees, gap-free numbers with two
writers, the wall between dataset runs and the rest, and the layout's edge cases.

The conformance suite (``test_conformance.py``: ``DatasetStoreTests``,
``LineageTests``) checks the contract; these tests check what is particular to
MLflow, mostly by looking with ``MlflowClient``, on a server and on SQLite.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from umlaut_core import Umlaut, get_plugin_manager
from umlaut_core.datasets.records import ColumnProfile, DatasetLink
from umlaut_core.exceptions import ArtifactError, ConfigurationError
from umlaut_core.records import RunQuery
from umlaut_core.registry import BackendRegistry
from umlaut_core.stores.memory import MemoryTracker
from umlaut_core.testing import DatasetStoreTests
from umlaut_core.testing.models import Threshold

pytest.importorskip("mlflow")

from umlaut_mlflow._compat import quiet_sqlalchemy_deprecations
from umlaut_mlflow._dataset_codec import (
    D,
    _record,
    dataset_input,
    decode_version,
    experiment_name,
    version_from_draft,
)
from umlaut_mlflow._datasets import MlflowDatasetStore
from umlaut_mlflow._tracker import MlflowTracker

pytestmark = pytest.mark.mlflow

draft = DatasetStoreTests.draft
EXPERIMENT = "umlaut.datasets"


@pytest.fixture(params=["server", "sqlite"])
def uri(request: pytest.FixtureRequest) -> str:
    if request.param == "server":
        return f"mlflow+{request.getfixturevalue('mlflow_server')}"
    return str(request.getfixturevalue("mlflow_sqlite_uri"))


@pytest.fixture
def tracker(uri: str) -> Iterator[MlflowTracker]:
    tracker = MlflowTracker(uri)
    yield tracker
    tracker.close()


@pytest.fixture
def store(tracker: MlflowTracker) -> Iterator[MlflowDatasetStore]:
    store = MlflowDatasetStore(tracker)
    yield store
    store.close()


@pytest.fixture
def client(uri: str) -> Any:
    from mlflow import MlflowClient

    quiet_sqlalchemy_deprecations()  # as the tracker does: MLflow's own store warns
    return MlflowClient(tracking_uri=uri.removeprefix("mlflow+"))


@pytest.fixture
def name() -> str:
    return f"mlflow data {uuid.uuid4().hex[:10]}"


@pytest.fixture
def frame() -> Any:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    return pd.DataFrame(
        {
            "x": [0.5, 1.5, 2.5, 3.5],
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "label": pd.Categorical(["a", "b", "a", "b"]),
            "flag": [True, False, True, True],
        }
    )


def runs_of(client: Any, flt: str) -> list[Any]:
    exp = client.get_experiment_by_name(EXPERIMENT)
    return list(client.search_runs([exp.experiment_id], flt, max_results=1000))


def mlflow_run(client: Any, experiment: str, run_id: str) -> Any:
    """The MLflow run of an umlaut training run."""
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], f"tags.`umlaut.run_id` = '{run_id}'")
    return run


class TestNativeCopies:
    """MLflow's own client shows a training run's dataset and a version's datasets."""

    def test_the_training_run_has_the_dataset_as_its_mlflow_input(
        self, uri: str, client: Any, frame: Any, name: str
    ) -> None:
        model = f"mlflow data model {uuid.uuid4().hex[:8]}"
        with Umlaut(uri, delivery="sync", plugin_manager=get_plugin_manager()) as u:
            ds = u.track_dataset(frame, name, target="label")
            with u.start_run("mlflow data", name="fit") as run:
                run.log_input(ds, context="training")
                run.log_input(ds, context="training")  # once is kept
                run.log_input(ds, context="validation")
                mv = u.track_model(Threshold(1), model, run=run, datasets={"train": ds})
            links = u.dataset_links(run_id=run.run_id)
            by_model = u.dataset_links(model=(model, mv.version))
        assert sorted(x.context for x in links) == ["training", "validation"]
        assert [(x.dataset_name, x.context) for x in by_model] == [(name, "train")]

        native = mlflow_run(client, "mlflow data", run.run_id)
        (given,) = native.inputs.dataset_inputs  # MLflow keeps one per dataset and run
        dataset, tags = given.dataset, {t.key: t.value for t in given.tags}
        assert tags == {
            "mlflow.data.context": "training",
            "umlaut.dataset.digest": ds.digest,
            "umlaut.dataset.version": "1",
        }
        assert (dataset.name, dataset.source_type) == (name, "umlaut")
        assert dataset.digest == ds.digest.removeprefix("sha256:")[:36]
        assert json.loads(dataset.source)["digest"] == ds.digest
        columns = json.loads(dataset.schema)["mlflow_colspec"]
        assert [(c["name"], c["type"], c["required"]) for c in columns] == [
            ("x", "double", True), ("n", "long", False),
            ("label", "string", True), ("flag", "boolean", True),
        ]  # fmt: skip
        assert json.loads(dataset.profile) == {"num_rows": 4, "num_elements": 16}
        found = client.search_runs(
            [native.info.experiment_id], f"dataset.name = '{name}' and dataset.context = 'training'"
        )
        assert [r.info.run_id for r in found] == [native.info.run_id]

        version_tags = client.get_model_version(model, str(mv.version)).tags
        mirrored = {k: v for k, v in version_tags.items() if k.startswith("umlaut.dataset.train.")}
        assert list(mirrored.values()) == [f"{name} v1"]

    def test_a_link_to_a_run_mlflow_does_not_hold_is_kept_without_an_input(
        self, store: MlflowDatasetStore, name: str
    ) -> None:
        store.register_dataset(draft(name))
        link = DatasetLink(name, 1, "training_run", "training", run_id="never-started")
        assert store.add_links([link, link]) == 1
        assert store.links(run_id="never-started") == [link]


class TestLayout:
    """Versions, data files and links sit where the docs say."""

    def test_a_version_is_one_finished_run_and_its_data_another(
        self, uri: str, client: Any, frame: Any, name: str
    ) -> None:
        with Umlaut(uri, delivery="sync", plugin_manager=get_plugin_manager()) as u:
            ds = u.track_dataset(frame, name)
            again = u.track_dataset(frame, f"{name} copy")
        (run,) = runs_of(client, f"tags.`{D.NAME}` = '{name}'")
        t = run.data.tags
        assert (t["umlaut.kind"], t[D.VERSION], t[D.DIGEST]) == ("dataset", "1", ds.digest)
        assert (run.info.run_name, run.info.status) == (f"{name} v1", "FINISHED")
        assert json.loads(t[D.RECORD])["columns"][0]["name"] == "x"
        # The same bytes under another name: a new dataset, the same stored file.
        assert (again.version, again.artifact_uri) == (1, ds.artifact_uri)
        kind = "tags.`umlaut.kind` = 'dataset_data'"
        (data,) = runs_of(client, f"{kind} and tags.`{D.SHA256}` = '{ds.sha256}'")
        assert data.info.status == "FINISHED"
        assert [a.path for a in client.list_artifacts(data.info.run_id)] == [f"{ds.sha256}.parquet"]
        assert ds.artifact_uri.endswith(f"{ds.sha256}.parquet")

    def test_a_record_past_the_tag_limit_is_an_artifact(
        self, tracker: MlflowTracker, client: Any, name: str
    ) -> None:
        cats = tuple(f"category {i:04d}" for i in range(300))
        wide = tuple(
            ColumnProfile(f"c{i}", "category", "category", "string", False, 0, 300, categories=cats)
            for i in range(20)
        )
        big = draft(name, columns=wide)
        first = MlflowDatasetStore(tracker)
        assert first.register_dataset(big).columns == wide
        (run,) = runs_of(client, f"tags.`{D.NAME}` = '{name}'")
        assert run.data.tags["umlaut.kind"] == "dataset"
        assert f"{D.RECORD}.artifact" in run.data.tags
        fresh = MlflowDatasetStore(tracker)  # nothing cached
        got = fresh.get_dataset(name, 1)
        assert got.columns == wide and got.columns[0].categories == cats
        first.close()
        fresh.close()

    def test_a_half_written_version_is_invisible_and_its_number_reused(
        self, store: MlflowDatasetStore, client: Any, name: str
    ) -> None:
        store.register_dataset(draft(name, 1))  # creates the experiment
        exp = client.get_experiment_by_name(EXPERIMENT)
        client.create_run(
            exp.experiment_id,
            tags={"umlaut.kind": "dataset_pending", D.NAME: name, D.VERSION: "2"},
        )
        assert [v.version for v in store.list_dataset_versions(name)] == [1]
        assert store.register_dataset(draft(name, 2)).version == 2
        assert [v.version for v in store.list_dataset_versions(name)] == [1, 2]

    def test_a_deleted_version_keeps_its_number(
        self, store: MlflowDatasetStore, client: Any, name: str
    ) -> None:
        for n in (1, 2):
            store.register_dataset(draft(name, n))
        (second,) = runs_of(client, f"tags.`{D.NAME}` = '{name}' and tags.`{D.VERSION}` = '2'")
        client.delete_run(second.info.run_id)
        assert store.register_dataset(draft(name, 3)).version == 3
        assert [v.version for v in store.list_dataset_versions(name)] == [1, 3]
        assert store.get_dataset(name).version == 3

    def test_a_name_mlflows_filters_cannot_quote_still_works(
        self, store: MlflowDatasetStore, name: str
    ) -> None:
        odd = name + ' it\'s "quoted"'
        store.register_dataset(draft(odd))
        assert store.find_dataset(odd, draft(odd).digest) is not None
        assert store.get_dataset(odd).name == odd
        model = f"{name} model"
        link = DatasetLink(odd, 1, "model_version", "train", model, 1)
        assert store.add_links([link]) == 1
        assert store.links(dataset=(odd, None)) == [link] == store.links(model=(model, 1))


class TestConcurrency:
    """Two trackers (as two processes would) registering one name stay gap-free."""

    def test_two_writers_number_without_gaps_or_doubles(self, uri: str, name: str) -> None:
        trackers = [MlflowTracker(uri), MlflowTracker(uri)]
        stores = [MlflowDatasetStore(t) for t in trackers]
        results: list[tuple[int, int, bool]] = []
        errors: list[BaseException] = []

        def register(i: int) -> None:
            # Draft 0 comes three times: one version, the others get it back.
            n = max(0, i - 2)
            try:
                dv = stores[i % 2].register_dataset(draft(name, n))
                results.append((n, dv.version, dv.created))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=register, args=(i,)) for i in range(10)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        try:
            assert not errors, errors
            assert sorted(v for n, v, created in results if created) == list(range(1, 9))
            assert len({v for n, v, _ in results if n == 0}) == 1
            assert [v.version for v in stores[0].list_dataset_versions(name)] == list(range(1, 9))
        finally:
            for s, t in zip(stores, trackers, strict=True):
                s.close()
                t.close()


class TestSeparation:
    """Dataset runs never show up in training-run searches or audit history."""

    def test_training_searches_and_audit_history_see_none_of_them(
        self, uri: str, client: Any, frame: Any, name: str
    ) -> None:
        model = f"separation {uuid.uuid4().hex[:8]}"
        # No prefix: the audit side then searches every experiment, this one included.
        tracker = MlflowTracker(uri, experiment_prefix="")
        with Umlaut(tracker=tracker, delivery="sync", plugin_manager=get_plugin_manager()) as u:
            ds = u.track_dataset(frame, name, target="label")
            with u.start_run("separation", name="fit") as run:
                run.log_input(ds)
                u.track_model(Threshold(1), model, run=run, datasets={"train": ds})
            row = {"x": 3.0, "n": 2, "flag": True}
            u.run_model(model, row, reference_id=f"ref {name}")
            history = u.history(model, limit=100)
            training = u.search_training_runs(limit=1000).runs
            in_datasets = u.search_training_runs(EXPERIMENT).runs
            experiments = {e.name for e in u.list_experiments()}
            counted = tracker.count_runs(RunQuery(limit=10_000))
        tracker.close()
        assert [r.reference_id for r in history] == [f"ref {name}"]
        assert in_datasets == [] and EXPERIMENT not in experiments
        assert run.run_id in {r.run_id for r in training}
        exps = [e.experiment_id for e in client.search_experiments(max_results=1000)]
        audit = client.search_runs(exps, "tags.`umlaut.kind` = 'audit'", max_results=50_000)
        assert counted == len(audit)  # every audit run, and nothing else
        dataset_runs = runs_of(client, f"tags.`{D.NAME}` = '{name}'")
        assert {r.data.tags["umlaut.kind"] for r in dataset_runs} == {"dataset"}


class TestBytes:
    """Parquet files are kept once per sha256 and read back whole."""

    def test_put_twice_stores_once(
        self, store: MlflowDatasetStore, client: Any, tmp_path: Path
    ) -> None:
        data = uuid.uuid4().bytes * 5000
        sha = hashlib.sha256(data).hexdigest()
        path = tmp_path / "data.parquet"
        path.write_bytes(data)
        with path.open("rb") as fh:  # a whole file on disk: linked, not copied
            uri = store.put_data(sha, fh)
        assert store.put_data(sha, io.BytesIO(data)) == uri
        assert store.get_data(uri) == data
        assert len(runs_of(client, f"tags.`{D.SHA256}` = '{sha}'")) == 1

    def test_bad_sha_and_missing_file(self, store: MlflowDatasetStore) -> None:
        with pytest.raises(ConfigurationError, match="sha256"):
            store.put_data("not-a-sha", io.BytesIO(b""))
        data = b"some bytes"
        uri = store.put_data(hashlib.sha256(data).hexdigest(), io.BytesIO(data))
        with pytest.raises(ArtifactError):
            store.get_data(uri.rsplit("/", 1)[0] + "/" + "0" * 64 + ".parquet")


class TestRegistration:
    """The plugin opens this store for every ``mlflow…`` tracker, and only for one."""

    def test_the_plugin_registers_the_store(self, tracker: MlflowTracker) -> None:
        registry = BackendRegistry.from_plugins(get_plugin_manager())
        store = registry.open_dataset_store(tracker)
        try:
            assert isinstance(store, MlflowDatasetStore) and store.uri == tracker.uri
        finally:
            store.close()

    def test_a_foreign_tracker_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="MlflowTracker"):
            MlflowDatasetStore(MemoryTracker())


class TestCodec:
    """The record and the native input are laid out losslessly (no server needed)."""

    @pytest.mark.parametrize(
        ("prefix", "expected"),
        [("umlaut/", "umlaut.datasets"), ("team-a/", "team-a.datasets"), ("", "umlaut.datasets")],
    )
    def test_the_experiment_never_is_a_models(self, prefix: str, expected: str) -> None:
        assert experiment_name(prefix) == expected
        assert experiment_name(prefix) != f"{prefix}datasets"

    def test_the_record_round_trips_tuples_and_nones(self) -> None:
        d = draft("codec")
        got = decode_version(_record(d), 4)
        assert got == dataclasses.replace(version_from_draft(d, 4), created=False)
        assert isinstance(got.columns[1].top[0], tuple) and got.columns[0].categories is None

    def test_the_native_input_fits_mlflows_limits(self) -> None:
        dv = version_from_draft(draft("codec " + "n" * 190), 2)
        given = dataset_input(dv, "training")
        assert given.dataset.digest == dv.digest.removeprefix("sha256:")[:36]
        assert all(len(t.value) <= 500 and len(t.key) <= 255 for t in given.tags)
        kinds = [c["type"] for c in json.loads(given.dataset.schema)["mlflow_colspec"]]
        assert kinds == ["double", "string", "string", "datetime"]
