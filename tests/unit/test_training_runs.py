"""Training runs through the facade on ``memory:``: what ``start_run`` promises on
every backend that the store-level conformance class cannot see (argument checks,
the handle's life, lineage, reading dead runs)."""

from __future__ import annotations

import datetime as dt
import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from umlaut_core import (
    BackendNotFoundError,
    ConfigurationError,
    EncodingError,
    InvalidNameError,
    ParamConflictError,
    TrainingRunNotFoundError,
    Umlaut,
)
from umlaut_core.experiments import RunStatus
from umlaut_core.experiments.context import current_run
from umlaut_core.experiments.records import MetricPoint
from umlaut_core.experiments.writes import MetricsLogged, RunStarted, from_json, to_json
from umlaut_core.ids import new_run_id
from umlaut_core.testing.models import Threshold


@pytest.fixture
def um() -> Umlaut:
    return Umlaut("memory:")


class TestLife:
    """A run ends once, with the right status, and the exception is the caller's."""

    def test_with_block_finishes_and_records_environment(self, um: Umlaut) -> None:
        with um.start_run("iris", name="fit", tags={"team": "vision"}) as run:
            assert current_run() is run
        assert current_run() is None
        got = um.get_training_run(run.run_id)
        assert got.status is RunStatus.FINISHED and got.ended_at is not None
        assert (got.experiment, got.name, got.tags["team"]) == ("iris", "fit", "vision")
        env = got.environment
        assert env["host"] == socket.gethostname() and env["python"]
        assert "umlaut-core" in env["packages"]

    def test_exception_fails_the_run_and_reaches_the_caller_unchanged(self, um: Umlaut) -> None:
        error = ValueError("diverged")
        with pytest.raises(ValueError) as caught, um.start_run("iris") as run:
            raise error
        assert caught.value is error
        got = um.get_training_run(run.run_id)
        assert got.status is RunStatus.FAILED
        assert got.error == "ValueError: diverged"

    def test_keyboard_interrupt_kills_the_run(self, um: Umlaut) -> None:
        with pytest.raises(KeyboardInterrupt), um.start_run("iris") as run:
            raise KeyboardInterrupt
        assert um.get_training_run(run.run_id).status is RunStatus.KILLED

    def test_children_nest_and_restore_the_parent(self, um: Umlaut) -> None:
        with um.start_run("iris") as parent:
            with parent.start_run("step") as child:
                assert current_run() is child
                with um.start_run(name="grandchild") as grandchild:
                    pass
            assert current_run() is parent
            with um.start_run(name="root", parent=None) as root:
                pass
        assert um.get_training_run(child.run_id).parent_id == parent.run_id
        assert um.get_training_run(grandchild.run_id).parent_id == child.run_id
        assert um.get_training_run(grandchild.run_id).experiment == "iris"
        assert um.get_training_run(root.run_id).parent_id is None

    def test_without_with_end_restores_and_is_idempotent(self, um: Umlaut) -> None:
        run = um.start_run("iris")
        assert current_run() is run
        run.end()
        run.end(RunStatus.FAILED)  # a second end changes nothing
        assert current_run() is None
        assert um.get_training_run(run.run_id).status is RunStatus.FINISHED

    def test_closing_the_facade_ends_open_runs(self) -> None:
        um = Umlaut("memory:")
        run = um.start_run("iris")
        tracker = um.tracker
        um.close()
        again = Umlaut(tracker=tracker)
        assert again.get_training_run(run.run_id).status is RunStatus.FINISHED

    def test_resume_keeps_params_fixed_and_continues_steps(self, um: Umlaut) -> None:
        with um.start_run("iris") as run:
            run.log_param("alpha", 0.1)
            run.log_metric("loss", 1.0)
            run.log_metric("loss", 0.5)
        with um.start_run(run_id=run.run_id) as again:
            again.log_param("alpha", 0.1)  # the same value: fine
            with pytest.raises(ParamConflictError):
                again.log_param("alpha", 0.2)
            again.log_metric("loss", 0.25)
        steps = [p.step for p in um.metric_history(run.run_id, "loss")]
        assert steps == [0, 1, 2]

    def test_unknown_run_is_a_typed_error(self, um: Umlaut) -> None:
        with pytest.raises(TrainingRunNotFoundError):
            um.get_training_run("nope")
        with pytest.raises(TrainingRunNotFoundError):
            um.start_run(run_id="nope")


class TestValues:
    """Params are fixed JSON of any size; metrics keep NaN and infinity."""

    def test_params_are_immutable_and_any_json(self, um: Umlaut) -> None:
        big = "x" * 100_000
        with um.start_run("iris") as run:
            run.log_params({"layers": [64, 32, {"act": "relu"}], "text": big, "n": 3})
            run.log_param("n", 3)
            with pytest.raises(ParamConflictError, match="already 3"):
                run.log_param("n", 4)
            with pytest.raises(EncodingError, match="no JSON form"):
                run.log_param("bad", math.nan)
        got = um.get_training_run(run.run_id).params
        assert got == {"layers": [64, 32, {"act": "relu"}], "text": big, "n": 3}

    def test_metrics_keep_nan_and_infinity_with_automatic_steps(self, um: Umlaut) -> None:
        with um.start_run("iris") as run:
            for value in (1.0, math.inf, -math.inf, math.nan):
                run.log_metric("loss", value)
            run.log_metric("loss", 7, step=10, timestamp=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
            run.log_metrics({"a": 1, "b": 2}, step=3)
        points = um.metric_history(run.run_id, "loss")
        assert [p.step for p in points] == [0, 1, 2, 3, 10]
        values = [p.value for p in points]
        assert values[:3] == [1.0, math.inf, -math.inf] and math.isnan(values[3])
        assert points[-1].timestamp_ms == 1767225600000
        summary = um.get_training_run(run.run_id).metrics["loss"]
        assert (summary.last, summary.min, summary.max, summary.count) == (
            7,
            -math.inf,
            math.inf,
            5,
        )

    @pytest.mark.parametrize(
        "values", [[0.5, -0.0, 1e-300, 3], [0.5, math.nan, math.inf, -math.inf, -0.0]]
    )
    def test_metric_points_cross_the_spool_as_themselves(self, values: list[float]) -> None:
        points = tuple(
            MetricPoint("loss", v, s, 1767225600000 + s, 7 << 32 | s) for s, v in enumerate(values)
        )
        text = to_json(MetricsLogged("r", points))
        assert json.loads(text)["points"][0] == ["loss", 0.5, 0, 1767225600000, 7 << 32]
        back = from_json(text)
        assert isinstance(back, MetricsLogged) and back.run_id == "r"
        assert all(type(p) is MetricPoint and type(p.value) is float for p in back.points)
        assert [p._replace(value=0.0) for p in back.points] == [
            p._replace(value=0.0) for p in points
        ]
        for got, sent in zip(back.points, points, strict=True):
            assert repr(got.value) == repr(float(sent.value))  # NaN, ±inf and -0.0 too
        body = json.loads(text)
        body["points"][0].append(8)
        with pytest.raises(ValueError, match="metric point"):
            from_json(json.dumps(body))

    @pytest.mark.parametrize("key", ["", " padded", "a\x00b", "x" * 251, 3])
    def test_bad_keys_are_refused_before_anything_is_written(self, um: Umlaut, key: object) -> None:
        with um.start_run("iris") as run:
            with pytest.raises(InvalidNameError):
                run.log_metric(key, 1.0)  # type: ignore[arg-type]
            with pytest.raises(InvalidNameError):
                run.log_param(key, 1)  # type: ignore[arg-type]
        assert um.get_training_run(run.run_id).metrics == {}

    def test_bad_values_are_typed_errors(self, um: Umlaut) -> None:
        with um.start_run("iris") as run:
            with pytest.raises(EncodingError):
                run.log_metric("m", "high")  # type: ignore[arg-type]
            with pytest.raises(EncodingError):
                run.log_metric("m", 1.0, step=1.5)  # type: ignore[arg-type]
            with pytest.raises(ConfigurationError):
                run.log_metrics([1, 2])  # type: ignore[arg-type]

    def test_unicode_keys_are_normalised(self, um: Umlaut) -> None:
        with um.start_run("iris") as run:
            run.log_metric("cafe\u0301", 1.0)  # decomposed é
        assert list(um.get_training_run(run.run_id).metrics) == ["caf\u00e9"]


class TestArtifacts:
    def test_bytes_files_text_and_json_round_trip(self, um: Umlaut, tmp_path: Path) -> None:
        source = tmp_path / "weights.bin"
        source.write_bytes(b"\x00\x01" * 1000)
        with um.start_run("iris") as run:
            run.log_artifact(source)
            run.log_artifact(b"raw", "nested/raw.bin")
            run.log_text("héllo", "notes.txt")
            run.log_dict({"a": [1, 2]}, "config.json")
        got = um.get_training_run(run.run_id)
        assert sorted(a.path for a in got.artifacts) == [
            "config.json", "nested/raw.bin", "notes.txt", "weights.bin"
        ]  # fmt: skip
        assert um.load_artifact(run.run_id, "weights.bin") == source.read_bytes()
        assert um.load_artifact(run.run_id, "notes.txt").decode() == "héllo"
        assert json.loads(um.load_artifact(run.run_id, "config.json")) == {"a": [1, 2]}

    @pytest.mark.parametrize("name", ["../up", "/abs", "a//b", "."])
    def test_paths_that_escape_are_refused(self, um: Umlaut, name: str) -> None:
        with um.start_run("iris") as run, pytest.raises(InvalidNameError):
            run.log_artifact(b"x", name)


class TestLineage:
    """From an audit record: the version that answered and the run that trained it."""

    def test_record_to_version_to_run(self, um: Umlaut) -> None:
        with um.start_run("iris") as run:
            run.log_param("limit", 5)
            mv = um.track_model(Threshold(5), "scorer", run=run, stage="Production")
        um.run_model("scorer", {"x": 9}, stage="Production", reference_id="req-1")
        record = um.history("scorer")[0]
        for lineage in (um.lineage(record.id), um.lineage(reference_id="req-1")):
            assert lineage.record.id == record.id
            assert lineage.version.version == mv.version
            assert lineage.training_run is not None
            assert lineage.training_run.run_id == run.run_id
            assert lineage.training_run.params == {"limit": 5}
        versions = um.get_training_run(run.run_id).versions
        assert [(v.model_name, v.version) for v in versions] == [("scorer", mv.version)]

    def test_a_version_without_a_run_has_none_and_typos_are_refused(self, um: Umlaut) -> None:
        um.track_model(Threshold(1), "plain")
        um.run_model("plain", {"x": 0}, reference_id="r")
        assert um.lineage(reference_id="r").training_run is None
        with pytest.raises(TrainingRunNotFoundError):
            um.track_model(Threshold(2), "plain", run="no-such-run")
        assert [v.version for v in um.list_versions("plain")] == [1]


class TestSearch:
    def test_or_filters_ordering_paging_and_a_frame(self, um: Umlaut) -> None:
        for i in range(7):
            with um.start_run("sweep", name=f"r{i}") as run:
                run.log_param("C", i)
                run.log_metric("acc", i / 10)
        page = um.search_training_runs(
            "sweep", filter="params.C < 2 or metrics.acc.max >= 0.5", order_by="metrics.acc DESC"
        )
        assert [r.name for r in page.runs] == ["r6", "r5", "r1", "r0"]
        seen, token = [], None
        while True:
            page = um.search_training_runs("sweep", order_by="params.C", limit=3, page_token=token)
            seen += [r.name for r in page.runs]
            token = page.next_page_token
            if token is None:
                break
        assert seen == [f"r{i}" for i in range(7)]
        pytest.importorskip("pandas")
        frame = um.search_training_runs("sweep", order_by="params.C").to_pandas()
        assert list(frame["params.C"]) == list(range(7))

    def test_bad_filters_and_limits_are_clear_errors(self, um: Umlaut) -> None:
        with pytest.raises(ConfigurationError, match="unknown field"):
            um.search_training_runs(filter="paramz.x = 1")
        with pytest.raises(ConfigurationError):
            um.search_training_runs(limit=0)


class TestKilled:
    """A RUNNING run whose process is gone is reported (and stored) as KILLED."""

    def _started(self, um: Umlaut, **env: object) -> str:
        run_id = new_run_id()
        um._training.store.write(
            [RunStarted(run_id, "iris", None, dt.datetime.now(dt.UTC), environment=env)]
        )
        return run_id

    def test_a_dead_process_on_this_host(self, um: Umlaut) -> None:
        done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        run_id = self._started(um, host=socket.gethostname(), pid=int(done.stdout))
        got = um.get_training_run(run_id)
        assert got.status is RunStatus.KILLED and got.ended_at is not None
        assert um._training.store.get_run(run_id).status is RunStatus.KILLED  # stored

    def test_a_live_process_and_a_fresh_heartbeat_stay_running(self, um: Umlaut) -> None:
        import os

        mine = self._started(um, host=socket.gethostname(), pid=os.getpid())
        elsewhere = self._started(um, host="another-host", pid=1)
        assert um.get_training_run(mine).status is RunStatus.RUNNING
        assert um.get_training_run(elsewhere).status is RunStatus.RUNNING

    def test_a_silent_run_on_another_host(self, um: Umlaut) -> None:
        run_id = new_run_id()
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        um._training.store.write(
            [RunStarted(run_id, "iris", None, long_ago, environment={"host": "gone", "pid": 1})]
        )
        assert um.get_training_run(run_id).status is RunStatus.KILLED


class TestBackends:
    def test_a_backend_without_experiments_says_which_have_them(self) -> None:
        from umlaut_core.testing.example_plugin import ToyTracker

        um = Umlaut(tracker=ToyTracker("toy:"), delivery="sync")
        with pytest.raises(BackendNotFoundError, match=r"experiment store.*'memory'"):
            um.start_run("iris")
