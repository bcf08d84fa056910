"""Training runs in MLflow: what MLflow's own client sees, values past its limits,
replays, and the wall between training runs and audit records.

The conformance suite (``test_conformance.py``) checks the store's contract; these
tests check what is particular to MLflow, mostly by looking with ``MlflowClient``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import random
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from umlaut_core import Umlaut, get_plugin_manager
from umlaut_core.exceptions import BackendError, ConfigurationError, TrainingRunNotFoundError
from umlaut_core.experiments.filters import RunSearch, parse_filter
from umlaut_core.experiments.memory import apply_summary, later_point
from umlaut_core.experiments.records import MetricPoint, RunStatus
from umlaut_core.experiments.writes import (
    MetricsLogged,
    ParamsLogged,
    RunEnded,
    RunStarted,
    RunWrite,
    TagsSet,
)
from umlaut_core.ids import new_run_id
from umlaut_core.registry import BackendRegistry
from umlaut_core.stores.memory import MemoryTracker
from umlaut_core.testing.models import Echo

pytest.importorskip("mlflow")

from umlaut_mlflow._experiments import MlflowExperimentStore
from umlaut_mlflow._run_metrics import Summary, fold
from umlaut_mlflow._run_values import (
    MAX_BYTES,
    batch_body,
    decode_key,
    encode_key,
    float_out,
    plan_batches,
)
from umlaut_mlflow._run_writes import RunWriter
from umlaut_mlflow._tracker import MlflowTracker

pytestmark = pytest.mark.mlflow

T0 = dt.datetime(2025, 6, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)
T0_MS = int(T0.timestamp() * 1000)
NAN, INF = float("nan"), float("inf")
#: What MLflow accepts as a param, metric or tag key (``mlflow.utils.validation``).
MLFLOW_KEY = re.compile(r"[/\w.\- :]{1,250}")


@pytest.fixture
def tracker(mlflow_server: str) -> Iterator[MlflowTracker]:
    tracker = MlflowTracker(f"mlflow+{mlflow_server}")
    yield tracker
    tracker.close()


@pytest.fixture
def store(tracker: MlflowTracker) -> Iterator[MlflowExperimentStore]:
    store = MlflowExperimentStore(tracker)
    yield store
    store.close()


@pytest.fixture
def client(mlflow_server: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=mlflow_server)


@pytest.fixture
def experiment() -> str:
    return f"mlflow experiments {uuid.uuid4().hex[:10]}"


def start(store: MlflowExperimentStore, experiment: str, *more: RunWrite, **fields: Any) -> str:
    run_id = new_run_id()
    fields.setdefault("started_at", T0)
    started = RunStarted(run_id, experiment, fields.pop("name", None), **fields)
    store.write([started, *(dataclasses.replace(w, run_id=run_id) for w in more)])
    return run_id


def points(key: str, values: list[float], first_step: int = 0) -> tuple[MetricPoint, ...]:
    return tuple(
        MetricPoint(key, v, s, T0_MS + 1000 * s, s + 1)
        for s, v in enumerate(values, start=first_step)
    )


def native_run(client: Any, experiment: str, run_id: str) -> Any:
    """The MLflow run holding a training run, found the way any MLflow user could."""
    exp = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([exp.experiment_id], f"tags.`umlaut.run_id` = '{run_id}'")
    return run


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


class TestNativeLayout:
    """Training runs are plain MLflow runs: MLflow's own client sees them whole."""

    def test_parent_with_three_children_through_the_facade(
        self, mlflow_server: str, client: Any, experiment: str
    ) -> None:
        with (
            Umlaut(
                f"mlflow+{mlflow_server}", delivery="sync", plugin_manager=get_plugin_manager()
            ) as u,
            u.start_run(experiment, name="pipeline", tags={"team": "vision"}) as parent,
        ):
            parent.log_param("alpha", 0.5)
            for i, step in enumerate(("scale", "pca", "fit")):
                with parent.start_run(step) as child:
                    child.log_params({"index": i})
                    child.log_metric("loss", 1.0 / (i + 1), step=i)
        exp = client.get_experiment_by_name(experiment)
        runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
        assert sorted(runs) == ["fit", "pca", "pipeline", "scale"]
        top = runs.pop("pipeline")
        assert top.data.tags["umlaut.run_id"] == parent.run_id
        assert "mlflow.parentRunId" not in top.data.tags
        assert (top.data.params, top.data.tags["team"]) == ({"alpha": "0.5"}, "vision")
        assert top.info.status == "FINISHED" and top.info.end_time is not None
        for i, step in enumerate(("scale", "pca", "fit")):
            kid = runs[step]
            assert kid.data.tags["mlflow.parentRunId"] == top.info.run_id
            assert kid.data.params == {"index": str(i)}
            assert kid.data.metrics == {"loss": 1.0 / (i + 1)}
            assert kid.info.status == "FINISHED"
            (point,) = client.get_metric_history(kid.info.run_id, "loss")
            assert point.step == i

    def test_system_tags_times_and_status(
        self, store: MlflowExperimentStore, client: Any, experiment: str
    ) -> None:
        env = {"source": "/work/train.py", "git_commit": "0123abcd" * 5, "git_dirty": False}
        run_id = start(
            store, experiment, name="fit", user="alice", host="gpu-1", environment=env,
            started_at=T0 + dt.timedelta(microseconds=789),
        )  # fmt: skip
        store.write([RunEnded(run_id, RunStatus.FAILED, T0 + dt.timedelta(seconds=3), "E: x")])
        run = native_run(client, experiment, run_id)
        tags = run.data.tags
        assert (run.info.run_name, tags["mlflow.runName"], tags["mlflow.user"]) == (
            "fit",
            "fit",
            "alice",
        )
        assert tags["mlflow.source.name"] == "/work/train.py"
        assert tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlflow.source.git.commit"] == "0123abcd" * 5
        assert (run.info.status, run.info.start_time, run.info.end_time) == (
            "FAILED",
            T0_MS,
            T0_MS + 3000,
        )
        got = store.get_run(run_id)
        # MLflow keeps milliseconds; umlaut's own tag keeps the moment exactly.
        assert got.started_at == T0 + dt.timedelta(microseconds=789)
        assert (got.status, got.error, got.user, got.host) == (
            RunStatus.FAILED,
            "E: x",
            "alice",
            "gpu-1",
        )
        assert dict(got.environment) == env

    def test_each_status_is_mlflows_own(
        self, store: MlflowExperimentStore, client: Any, experiment: str
    ) -> None:
        for status in RunStatus:
            ended = [] if status is RunStatus.RUNNING else [RunEnded("", status, T0)]
            run_id = start(store, experiment, *ended)
            assert native_run(client, experiment, run_id).info.status == status.value
            assert store.get_run(run_id).status is status

    def test_unnamed_run_has_mlflows_made_up_name_but_none_in_umlaut(
        self, store: MlflowExperimentStore, client: Any, experiment: str
    ) -> None:
        run_id = start(store, experiment)
        assert native_run(client, experiment, run_id).info.run_name  # for the UI
        assert store.get_run(run_id).name is None


class TestValues:
    """Values past MLflow's limits and keys it refuses round-trip; MLflow holds only
    what it accepts."""

    def test_oversize_params_and_tags_round_trip(
        self, store: MlflowExperimentStore, client: Any, experiment: str
    ) -> None:
        params: dict[str, Any] = {
            "medium": "m" * 7000,  # chunked tags
            "large": list(range(20_000)),  # ~110 kB: a run artifact
            "exact": "e" * 6000,  # fits as it is
        }
        tags = {"medium": "t" * 6000, "large": "ü" * 60_000}
        run_id = start(store, experiment, ParamsLogged("", params), TagsSet("", tags))
        got = store.get_run(run_id)
        assert json.dumps(dict(got.params), sort_keys=True) == json.dumps(params, sort_keys=True)
        assert dict(got.tags) == tags
        native = native_run(client, experiment, run_id)
        assert native.data.params["exact"] == "e" * 6000
        for key in ("medium", "large"):
            shown = native.data.params[key]
            assert len(shown) == 6000 and shown.endswith("…")  # a preview in the UI
            assert len(native.data.tags[key]) == 5000 and native.data.tags[key].endswith("…")
        assert all(len(v) <= 5000 for v in native.data.tags.values())
        files = [f.path for f in client.list_artifacts(native.info.run_id, "umlaut")]
        assert len(files) == 2 and all(f.endswith(".json") for f in files)

    def test_odd_keys_round_trip_and_mlflow_sees_only_valid_keys(
        self, store: MlflowExperimentStore, client: Any, experiment: str
    ) -> None:
        keys = [
            "a:b", "k" * 300, "ä ü", "../up", "a//b", "tail/", "trailing ", "", "mlflow.runName",
            "umlaut.kind", "with `backtick`", "quote'\"", "tab\tkey", "plain_key-1.0 /x",
        ]  # fmt: skip
        run_id = start(
            store, experiment,
            ParamsLogged("", {k: i for i, k in enumerate(keys)}),
            TagsSet("", {k: f"v{i}" for i, k in enumerate(keys)}),
            MetricsLogged("", tuple(p for k in keys for p in points(k, [0.5, 0.25]))),
            name="odd",
        )  # fmt: skip
        got = store.get_run(run_id)
        assert dict(got.params) == {k: i for i, k in enumerate(keys)}
        assert dict(got.tags) == {k: f"v{i}" for i, k in enumerate(keys)}
        assert sorted(got.metrics) == sorted(keys)
        for k in keys:
            assert [p.value for p in store.metric_history(run_id, k)] == [0.5, 0.25]
        native = native_run(client, experiment, run_id)
        for entries in (native.data.params, native.data.metrics, native.data.tags):
            assert all(MLFLOW_KEY.fullmatch(k) for k in entries), sorted(entries)
        assert native.data.params["plain_key-1.0 /x"] == str(keys.index("plain_key-1.0 /x"))
        assert native.info.run_name == "odd"  # a user tag "mlflow.runName" renames nothing
        where = parse_filter("tags.`ä ü` = 'v2' and params.`a:b` = 0")
        assert [r.run_id for r in store.search_runs(RunSearch((experiment,), where)).runs] == [
            run_id
        ]

    def test_strings_that_look_like_json_stay_strings(
        self, store: MlflowExperimentStore, client: Any, experiment: str
    ) -> None:
        params = {"n": "3", "t": "true", "z": "null", "q": '"x"', "real": 3, "no": None}
        run_id = start(store, experiment, ParamsLogged("", params))
        got = store.get_run(run_id).params
        assert json.dumps(dict(got), sort_keys=True) == json.dumps(params, sort_keys=True)
        shown = native_run(client, experiment, run_id).data.params
        assert (shown["n"], shown["real"], shown["no"]) == ("3", "3", "null")

    def test_nan_and_infinities_round_trip(
        self, store: MlflowExperimentStore, client: Any, experiment: str
    ) -> None:
        values = [1.0, NAN, INF, -INF, 0.5]
        run_id = start(store, experiment, MetricsLogged("", points("loss", values)))
        history = [p.value for p in store.metric_history(run_id, "loss")]
        assert all(same(a, b) for a, b in zip(history, values, strict=True))
        s = store.get_run(run_id).metrics["loss"]
        assert (s.last, s.min, s.max, s.count) == (0.5, -INF, INF, 5)
        native = native_run(client, experiment, run_id)
        mlflow_values = [m.value for m in client.get_metric_history(native.info.run_id, "loss")]
        # MLflow's SQL store keeps NaN as NaN and ±inf as the largest finite float.
        assert math.isnan(mlflow_values[1]) and mlflow_values[2] == 1.7976931348623157e308


class TestReplay:
    """At-least-once delivery doubles nothing: params, points, summaries."""

    def test_every_write_twice_and_again_from_a_new_process(
        self, store: MlflowExperimentStore, tracker: MlflowTracker, client: Any, experiment: str
    ) -> None:
        run_id = new_run_id()
        batch: list[RunWrite] = [
            RunStarted(run_id, experiment, "replayed", T0, tags={"a": "1"}),
            ParamsLogged(run_id, {"lr": 0.1, "big": "b" * 9000}),
            MetricsLogged(run_id, points("loss", [0.9, NAN, 0.5, 0.25])),
            MetricsLogged(run_id, points("acc", [0.1, 0.2])),
            RunEnded(run_id, RunStatus.FINISHED, T0 + dt.timedelta(seconds=9)),
        ]
        store.write(batch)
        once = store.get_run(run_id)
        store.write(batch)
        restarted = MlflowExperimentStore(tracker)  # after a crash: nothing cached
        try:
            restarted.write(batch)
            again = restarted.get_run(run_id)
        finally:
            restarted.close()
        assert (again.params, again.tags, again.status) == (once.params, once.tags, once.status)
        assert {k: s.count for k, s in again.metrics.items()} == {"loss": 4, "acc": 2}
        assert again.metrics["loss"].last == 0.25
        native = native_run(client, experiment, run_id)  # still exactly one MLflow run
        assert len(client.get_metric_history(native.info.run_id, "loss")) == 4

    def test_points_that_landed_without_their_summary_are_counted_once(
        self, store: MlflowExperimentStore, client: Any, experiment: str
    ) -> None:
        """A crash after MLflow stored the points but before the summary tag."""
        from mlflow.entities import Metric

        first, second = points("loss", [5.0, 4.0]), points("loss", [3.0, 2.0], first_step=2)
        run_id = start(store, experiment, MetricsLogged("", first))
        mlflow_id = native_run(client, experiment, run_id).info.run_id
        client.log_batch(
            mlflow_id, [Metric("loss", p.value, p.timestamp_ms, p.step) for p in second]
        )
        store.write([MetricsLogged(run_id, second)])  # the replay
        s = store.get_run(run_id).metrics["loss"]
        assert (s.count, s.last, s.min, s.max) == (4, 2.0, 2.0, 5.0)

    def test_a_request_that_failed_after_landing_is_retried_from_mlflows_state(
        self, store: MlflowExperimentStore, monkeypatch: pytest.MonkeyPatch, experiment: str
    ) -> None:
        """A timeout after the server applied the request: the retry must not fold
        the points into the summary a second time."""
        run_id = start(store, experiment, MetricsLogged("", points("loss", [3.0])))
        send = RunWriter._send

        def send_then_fail(self: RunWriter, mlflow_id: str, batches: Any) -> None:
            send(self, mlflow_id, batches)
            from mlflow.exceptions import MlflowException

            raise MlflowException("Read timed out")

        later = MetricsLogged(run_id, points("loss", [2.0, 1.0], first_step=1))
        with monkeypatch.context() as m:
            m.setattr(RunWriter, "_send", send_then_fail)
            with pytest.raises(BackendError):
                store.write([later])
        store.write([later])
        s = store.get_run(run_id).metrics["loss"]
        assert (s.count, s.last, s.min) == (3, 1.0, 1.0)

    def test_a_param_logged_elsewhere_first_keeps_its_value(
        self, store: MlflowExperimentStore, tracker: MlflowTracker, experiment: str
    ) -> None:
        """MLflow refuses a changed param; that refusal alone is swallowed."""
        other = MlflowExperimentStore(tracker)  # another process, with its own cache
        try:
            run_id = start(store, experiment, ParamsLogged("", {"a": 1}))
            other.write([TagsSet(run_id, {"seen": "yes"})])  # other caches the run now
            store.write([ParamsLogged(run_id, {"b": 1})])
            other.write([ParamsLogged(run_id, {"b": 2, "c": [3]})])
        finally:
            other.close()
        assert dict(store.get_run(run_id).params) == {"a": 1, "b": 1, "c": [3]}

    def test_a_half_started_run_is_invisible_until_a_replay_completes_it(
        self,
        store: MlflowExperimentStore,
        client: Any,
        monkeypatch: pytest.MonkeyPatch,
        experiment: str,
    ) -> None:
        env = {"notes": "n" * 50_000}  # too big for one request: written in steps
        started = RunStarted(new_run_id(), experiment, "big", T0, environment=env)

        def fail(*args: Any) -> None:
            raise OSError("connection reset")

        with monkeypatch.context() as m:
            m.setattr(RunWriter, "_send_tags", fail)
            with pytest.raises(BackendError):
                store.write([started])
        with pytest.raises(TrainingRunNotFoundError):
            store.get_run(started.run_id)
        assert store.search_runs(RunSearch((experiment,))).runs == []
        store.write([started])
        assert dict(store.get_run(started.run_id).environment) == env
        exp = client.get_experiment_by_name(experiment)
        assert len(client.search_runs([exp.experiment_id])) == 1


class TestSummaries:
    """Summaries are folded in as points arrive; a history is read only for a replay."""

    def test_a_fast_loop_never_reads_a_history(
        self, store: MlflowExperimentStore, monkeypatch: pytest.MonkeyPatch, experiment: str
    ) -> None:
        import umlaut_mlflow._run_writes as run_writes
        from umlaut_mlflow._run_metrics import read_history

        reads: list[Any] = []
        real = read_history

        def counted(*args: Any) -> Any:
            reads.append(args)
            return real(*args)

        monkeypatch.setattr(run_writes, "read_history", counted)
        run_id = start(store, experiment)
        # A tight loop: many steps within one millisecond, flushed in three batches.
        batches = [
            MetricsLogged(
                run_id,
                tuple(MetricPoint("loss", 1 / (s + 1), s, T0_MS, s + 1) for s in range(b, b + 10)),
            )
            for b in (0, 10, 20)
        ]
        for batch in batches:
            store.write([batch])
        assert reads == []
        s = store.get_run(run_id).metrics["loss"]
        assert (s.count, s.last_step, s.last, s.min) == (30, 29, 1 / 30, 1 / 30)
        store.write([batches[0]])  # a replay: one history read, nothing counted twice
        assert len(reads) == 1
        assert store.get_run(run_id).metrics["loss"].count == 30


class TestShipping:
    """A run's writes reach MLflow from one shipper, in order."""

    def test_flush_leaves_training_writes_to_the_shipper_process(
        self,
        mlflow_server: str,
        tmp_path: Path,
        experiment: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from umlaut_core.shipping import Shipper

        # A shipping thread in this process beside the child would apply the same
        # run's writes side by side: out of order, each summary overwriting the other's.
        here: list[int] = []
        real = Shipper._ship_writes

        def counted(shipper: Shipper, rows: Any, ids: Any) -> Any:
            here.append(len(rows))
            return real(shipper, rows, ids)

        monkeypatch.setattr(Shipper, "_ship_writes", counted)
        with Umlaut(f"mlflow+{mlflow_server}", spool_path=str(tmp_path / "spool.db")) as um:
            assert um.shipper == "process"
            with um.start_run(experiment) as run:
                for rounds in range(3):
                    for s in range(rounds * 2000, rounds * 2000 + 2000):
                        run.log_metric("loss", 1 / (s + 1))
                    assert um.flush(timeout=120)
            assert um.flush(timeout=120)
            summary = um.get_training_run(run.run_id).metrics["loss"]
            assert (summary.count, summary.last_step) == (6000, 5999)
            assert len(um.metric_history(run.run_id, "loss")) == 6000
        assert here == []


class TestSeparation:
    """Training runs and audit records never show up in each other's queries."""

    def test_audit_runs_and_training_runs_stay_apart(
        self, mlflow_server: str, store: MlflowExperimentStore, client: Any
    ) -> None:
        model = f"separation {uuid.uuid4().hex[:10]}"
        with Umlaut(
            f"mlflow+{mlflow_server}", delivery="sync", plugin_manager=get_plugin_manager()
        ) as u:
            u.track_model(Echo(), model)
            u.run_model(model, {"x": 1}, reference_id="audit-1")
            audit_experiment = f"umlaut/{model}"
            # A training experiment named like the audit one shares its MLflow experiment.
            shared = start(store, audit_experiment, name="shared")
            alone = start(store, f"{audit_experiment} training", name="alone")
            history = u.history(model, limit=100)
        assert [r.reference_id for r in history] == ["audit-1"]
        assert {r.id for r in history}.isdisjoint({shared, alone})
        in_shared = store.search_runs(RunSearch((audit_experiment,))).runs
        assert [r.run_id for r in in_shared] == [shared]
        everywhere = store.search_runs(RunSearch(where=parse_filter("name like 's%'")))
        assert shared in {r.run_id for r in everywhere.runs}
        assert all(r.experiment for r in everywhere.runs)
        exp = client.get_experiment_by_name(audit_experiment)
        kinds = sorted(r.data.tags["umlaut.kind"] for r in client.search_runs([exp.experiment_id]))
        assert kinds == ["audit", "training", "version"]
        listed = {e.name for e in store.list_experiments()}
        assert {audit_experiment, f"{audit_experiment} training"} <= listed
        audit_only = f"umlaut/{model} never trained"
        assert audit_only not in listed


class TestRegistration:
    """The plugin opens this store for every ``mlflow…`` tracker, and only for one."""

    def test_the_plugin_registers_the_store(self, tracker: MlflowTracker) -> None:
        registry = BackendRegistry.from_plugins(get_plugin_manager())
        store = registry.open_experiment_store(tracker)
        try:
            assert isinstance(store, MlflowExperimentStore) and store.uri == tracker.uri
        finally:
            store.close()

    def test_a_foreign_tracker_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="MlflowTracker"):
            MlflowExperimentStore(MemoryTracker())


class TestCodec:
    """Keys and batches are laid out within MLflow's limits (no server needed)."""

    @pytest.mark.parametrize(
        "key", ["loss", "val/acc", "a:b", "", "ä", "x" * 250, "umlaut.kind", "../x", "a "]
    )
    def test_keys_are_native_or_encoded_reversibly(self, key: str) -> None:
        support: dict[str, str] = {}
        mlflow_key = encode_key(key, support)
        assert MLFLOW_KEY.fullmatch(mlflow_key) and len(mlflow_key) <= 200
        assert decode_key(mlflow_key, support) == key
        assert (mlflow_key == key) == (not support)

    @pytest.mark.parametrize("key", ["m", "k" * 250, "é" * 250, "\U0001f600" * 250])
    def test_batches_stay_within_mlflows_caps(self, key: str) -> None:
        metrics = [
            (f"{key}{i % 7}", -1.7976931348623157e308, -(2**63), 2**63 - 1) for i in range(2500)
        ]
        tags = [(f"t{i}", "é" * 5000) for i in range(250)]
        batches = plan_batches(metrics=metrics, params=[("p", "v")], tags=tags)
        for b in batches:
            assert len(b.metrics) <= 1000 and len(b.params) + len(b.tags) <= 100
            assert len(b.metrics) + len(b.params) + len(b.tags) <= 1000
            assert len(batch_body("0" * 32, b).encode()) <= MAX_BYTES
        assert [m for b in batches for m in b.metrics] == metrics
        assert [t for b in batches for t in b.tags] == tags

    def test_a_batch_body_is_the_json_mlflow_reads(self) -> None:
        class Numpyish(float):
            def __repr__(self) -> str:
                return f"np.float64({float(self)!r})"

        values = [0.1, -0.0, 1e-300, 1e16, NAN, INF, -INF, 3, Numpyish(2.5)]
        metrics = [("a/b c", v, 1767225600000 + i, i) for i, v in enumerate(values)]
        (batch,) = plan_batches(metrics=metrics, params=[("p", "ä")], tags=[("t", '"q"')])
        body = json.loads(batch_body("run", batch))
        assert body == {
            "run_id": "run",
            "metrics": [
                {"key": "a/b c", "value": float_out(float(v)), "timestamp": ts, "step": s}
                for _, v, ts, s in metrics[:4]
            ]
            + [
                {"key": "a/b c", "value": spelled, "timestamp": 1767225600000 + i, "step": i}
                for i, spelled in ((4, "NaN"), (5, "Infinity"), (6, "-Infinity"))
            ]
            + [
                {"key": "a/b c", "value": 3.0, "timestamp": 1767225600007, "step": 7},
                {"key": "a/b c", "value": 2.5, "timestamp": 1767225600008, "step": 8},
            ],
            "params": [{"key": "p", "value": "ä"}],
            "tags": [{"key": "t", "value": '"q"'}],
        }
        assert repr(body["metrics"][1]["value"]) == "-0.0"

    def test_summaries_fold_as_point_by_point(self) -> None:
        """fold() over a batch is apply_summary() one point at a time: NaN never a
        bound unless every value is NaN, the first of equal "last" points wins."""
        rng = random.Random(13)
        odd = [0.0, -0.0, 1.0, -1.0, NAN, INF, -INF]

        def batch(n: int) -> list[MetricPoint]:
            return [
                MetricPoint(
                    "k",
                    rng.choice(odd) if rng.random() < 0.6 else rng.random(),
                    rng.randint(0, 4),
                    rng.randint(0, 4),
                    rng.randint(0, 3),
                )
                for _ in range(n)
            ]

        def one_by_one(previous: Summary | None, pts: list[MetricPoint]) -> Summary | None:
            out = previous
            for p in pts:
                if out is None:
                    out = Summary(
                        apply_summary(None, p, True), p.point_id, (p.timestamp_ms, p.step)
                    )
                    continue
                s = out.summary
                last = MetricPoint(
                    p.key, s.last, s.last_step, s.last_timestamp_ms, out.last_point_id
                )
                newer = later_point(p, last)
                out = Summary(
                    apply_summary(s, p, newer),
                    p.point_id if newer else out.last_point_id,
                    max(out.mark, (p.timestamp_ms, p.step)),
                )
            return out

        def seen(s: Summary | None) -> Any:
            if s is None:
                return None
            return repr((dataclasses.astuple(s.summary), s.last_point_id, s.mark))

        for _ in range(3000):
            first, then = batch(rng.randint(0, 4)), batch(rng.randint(0, 6))
            base = one_by_one(None, first)
            assert seen(fold(None, first)) == seen(base)
            assert seen(fold(base, iter(then))) == seen(one_by_one(base, then))
