"""MLflow-specific behaviour: interop with plain MLflow, URIs, errors, layout."""

from __future__ import annotations

import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from umlaut_core import Umlaut, get_plugin_manager
from umlaut_core.exceptions import BackendError, ConfigurationError, StageNotFoundError
from umlaut_core.testing.models import Echo, Threshold

pytest.importorskip("mlflow")

from umlaut_mlflow._compat import import_mlflow
from umlaut_mlflow._tracker import MlflowTracker
from umlaut_mlflow._uri import parse_uri

pytestmark = pytest.mark.mlflow


@pytest.fixture
def server_umlaut(mlflow_server: str) -> Iterator[Umlaut]:
    # sync: these tests look in MLflow directly right after a call (the server
    # default, spooled delivery, is covered in tests/integration).
    with Umlaut(
        f"mlflow+{mlflow_server}", plugin_manager=get_plugin_manager(), delivery="sync"
    ) as u:
        yield u


@pytest.fixture
def name() -> str:
    return f"mlflow test {uuid.uuid4().hex[:10]}"


def _plain_client(url: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=url, registry_uri=url)


class TestUris:
    """umlaut URIs translate to MLflow's own, and bad ones are refused up front."""

    def test_prefix_is_stripped(self) -> None:
        assert parse_uri("mlflow+http://h:5000").tracking_uri == "http://h:5000"
        target = parse_uri("mlflow+sqlite:////tmp/x/m.db")
        assert target.tracking_uri == "sqlite:////tmp/x/m.db"
        assert target.local_artifact_root == Path("/tmp/x/mlartifacts")

    def test_bare_scheme_defers_to_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere:5000")
        assert parse_uri("mlflow:").tracking_uri == "http://elsewhere:5000"
        monkeypatch.delenv("MLFLOW_TRACKING_URI")
        with pytest.raises(ConfigurationError, match="MLFLOW_TRACKING_URI"):
            parse_uri("mlflow:")

    def test_password_never_shown(self) -> None:
        tracker = MlflowTracker("mlflow+http://bob:s3cret@127.0.0.1:9")
        assert "s3cret" not in tracker.uri and "s3cret" not in repr(tracker)


class TestInterop:
    """Versions are ordinary MLflow pyfunc models, and MLflow pyfuncs run through umlaut."""

    def test_umlaut_version_loads_with_plain_pyfunc(
        self,
        server_umlaut: Umlaut,
        mlflow_server: str,
        name: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        mlflow = import_mlflow()
        server_umlaut.track_model(Threshold(4), name, stage="Production")
        expected = server_umlaut.run_model(name, {"x": 7}, stage="Production")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # as a plain user would
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow's own notes on the environment
            model = mlflow.pyfunc.load_model(f"models:/{name}@Production")
        assert model.predict({"x": 7}) == expected == {"above": True, "limit": 4}
        requirements = model.metadata.get_model_info().flavors["python_function"]
        assert requirements["loader_module"] == "mlflow.pyfunc.model"

    def test_plain_mlflow_pyfunc_runs_through_umlaut_and_is_audited(
        self, server_umlaut: Umlaut, mlflow_server: str, name: str, tmp_path: Path
    ) -> None:
        mlflow = import_mlflow()
        from sklearn.linear_model import LinearRegression

        model = LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])
        client = _plain_client(mlflow_server)
        exp = client.create_experiment(f"plain {name}")
        run = client.create_run(exp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.sklearn.save_model(model, str(tmp_path / "m"), pip_requirements=["scikit-learn"])
        client.log_artifacts(run.info.run_id, str(tmp_path / "m"), "model")
        client.create_registered_model(name)
        client.create_model_version(
            name, f"{run.info.artifact_uri}/model", run.info.run_id, await_creation_for=0
        )
        client.set_registered_model_alias(name, "Production", "1")

        out = server_umlaut.run_model(name, [[3.0]], stage="Production", reference_id="plain")
        assert out == pytest.approx([7.0])
        mv = server_umlaut.get_version(name, stage="Production")
        assert mv.flavor == "mlflow-pyfunc" and mv.digest.startswith("sha256:")
        assert server_umlaut.get_version(name, version=1).digest == mv.digest
        (record,) = server_umlaut.history(name)
        assert (record.reference_id, record.inputs, record.status) == ("plain", [[3.0]], "ok")
        assert record.output == pytest.approx([7.0])

    def test_threads_each_get_their_own_run(self, server_umlaut: Umlaut, name: str) -> None:
        server_umlaut.track_model(Echo(), name)

        def call(i: int) -> Any:
            return server_umlaut.run_model(name, {"i": i}, reference_id=f"ref-{i}")

        with ThreadPoolExecutor(6) as pool:
            outs = list(pool.map(call, range(24)))
        assert outs == [{"i": i} for i in range(24)]
        records = server_umlaut.history(name, limit=100)
        assert sorted((r.reference_id, r.inputs["i"]) for r in records) == sorted(
            (f"ref-{i}", i) for i in range(24)
        )

    def test_large_inputs_round_trip_in_tags_and_in_artifacts(
        self, server_umlaut: Umlaut, mlflow_server: str, name: str
    ) -> None:
        server_umlaut.track_model(Echo(), name)
        medium = {"text": "é" * 12_000}  # split over tags
        large = {"rows": ["x" * 100 for _ in range(1000)]}  # ~100 kB: a run artifact
        server_umlaut.run_model(name, medium, reference_id="medium")
        server_umlaut.run_model(name, large, reference_id="large")
        assert server_umlaut.history(name, reference_id="medium")[0].inputs == medium
        got = server_umlaut.history(name, reference_id="large")[0]
        assert got.inputs == large and got.output == large
        client = _plain_client(mlflow_server)
        exp = client.get_experiment_by_name(f"umlaut/{name}")
        runs = client.search_runs([exp.experiment_id], "tags.`umlaut.reference_id` = 'large'")
        assert runs[0].data.tags["umlaut.inputs.artifact"] == "umlaut/inputs.json"
        assert runs[0].info.status == "FINISHED"


class TestMlflowLayout:
    """What a user of the MLflow UI sees: aliases, version tags and ledger runs."""

    def test_stage_is_an_alias_and_digest_a_version_tag(
        self, server_umlaut: Umlaut, mlflow_server: str, name: str
    ) -> None:
        mv = server_umlaut.track_model(Threshold(1), name, stage="Staging")
        client = _plain_client(mlflow_server)
        native = client.get_model_version_by_alias(name, "Staging")
        assert native.version == "1" and native.tags["umlaut.digest"] == mv.digest
        assert not [m for m in server_umlaut.list_models() if m.name.startswith("umlaut.lock.")]

    def test_unknown_alias_lists_existing(self, server_umlaut: Umlaut, name: str) -> None:
        server_umlaut.track_model(Threshold(1), name, stage="Staging")
        with pytest.raises(StageNotFoundError, match="'Staging'"):
            server_umlaut.run_model(name, {"x": 1}, stage="Production")


class TestRegistrationLock:
    """A lock released while the server words its conflict error is simply retried."""

    def test_lock_gone_during_the_conflict_is_retried(
        self, mlflow_sqlite_uri: str, monkeypatch: pytest.MonkeyPatch, name: str
    ) -> None:
        from mlflow.exceptions import RestException
        from umlaut_mlflow._tracker import LOCK_PREFIX

        tracker = MlflowTracker(mlflow_sqlite_uri)
        real = tracker._client.create_registered_model
        locks: list[str] = []

        def racing(model: str, *args: Any, **kwargs: Any) -> Any:
            if model.startswith(LOCK_PREFIX):
                locks.append(model)
                if len(locks) == 1:
                    # What MLflow's server answers when the name is taken on insert and
                    # the holder deletes its lock before the server looks it up.
                    raise RestException(
                        {
                            "error_code": "RESOURCE_DOES_NOT_EXIST",
                            "message": f"Registered Model with name={model} not found",
                        }
                    )
            return real(model, *args, **kwargs)

        monkeypatch.setattr(tracker._client, "create_registered_model", racing)
        try:
            mv = Umlaut(tracker=tracker, delivery="sync").track_model(Threshold(1), name)
            assert mv.version == 1 and mv.created
            assert len(locks) == 2 and locks[0] == locks[1]
        finally:
            tracker.close()


class TestErrors:
    """An unreachable server fails fast with BackendError naming the URI."""

    def test_server_down_is_fast_and_typed(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        tracker = MlflowTracker(f"mlflow+http://127.0.0.1:{port}")
        start = time.monotonic()
        with pytest.raises(BackendError, match=f"127.0.0.1:{port}"):
            tracker.get_version("anything")
        assert time.monotonic() - start < 10
        tracker.close()
