"""Audit runs written straight to the REST API are the runs MlflowClient would write."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from umlaut_core import Umlaut, get_plugin_manager
from umlaut_core.exceptions import BackendError
from umlaut_core.records import AuditRecord
from umlaut_core.testing.models import Threshold

pytest.importorskip("mlflow")

from mlflow.exceptions import MlflowException, RestException
from mlflow.utils.rest_utils import MlflowHostCreds
from umlaut_mlflow._rest import RestRunWriter
from umlaut_mlflow._tracker import MlflowTracker
from umlaut_mlflow._uri import HTTP_DEFAULTS


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the next canned (status, body); keeps what it got."""

    seen: list[tuple[str, dict[str, str], Any]]
    answers: list[tuple[int, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, dict(self.headers), body))
        status, answer = self.answers.pop(0)
        data = json.dumps(answer).encode() if not isinstance(answer, bytes) else answer
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Handler", (_Recorder,), {"seen": [], "answers": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


class TestWhenItIsUsed:
    """The direct path is chosen only where it sends what MlflowClient would."""

    def test_plain_token_and_basic_credentials_are_eligible(self) -> None:
        host = "http://127.0.0.1:5000"
        for creds in (
            MlflowHostCreds(host),
            MlflowHostCreds(host, token="t"),
            MlflowHostCreds(host, username="u", password="p"),
            MlflowHostCreds("https://mlflow.example", ignore_tls_verification=True),
        ):
            writer = RestRunWriter.for_creds(creds, HTTP_DEFAULTS)
            assert writer is not None
            writer.close()

    def test_signing_plugins_and_non_http_stores_fall_back(self) -> None:
        host = "http://127.0.0.1:5000"
        for creds in (
            MlflowHostCreds(host, aws_sigv4=True),
            MlflowHostCreds(host, auth="my-auth-plugin"),
            MlflowHostCreds(host, use_databricks_sdk=True),
            MlflowHostCreds("databricks"),
        ):
            assert RestRunWriter.for_creds(creds, HTTP_DEFAULTS) is None

    def test_database_store_has_no_writer(self, mlflow_sqlite_uri: str) -> None:
        tracker = MlflowTracker(mlflow_sqlite_uri)
        try:
            assert tracker._rest is None
        finally:
            tracker.close()


class TestWhatItSends:
    """Bodies, credentials and error payloads, seen from the server's side."""

    def test_bodies_and_bearer_token(self, endpoint: tuple[str, type[_Recorder]]) -> None:
        url, handler = endpoint
        handler.answers += [(200, {"run": {"info": {"run_id": "abc"}}}), (200, {})]
        writer = RestRunWriter.for_creds(MlflowHostCreds(url, token="s3cr3t"), HTTP_DEFAULTS)
        assert writer is not None
        tags = {"umlaut.kind": "audit", "mlflow.user": "ada"}
        assert writer.create_run("7", start_time=1000, tags=tags, run_name="r1") == "abc"
        writer.finish_run("abc", "FAILED", 1500)
        writer.close()
        (path1, headers1, create), (path2, _, update) = handler.seen
        assert path1 == "/api/2.0/mlflow/runs/create"
        assert create == {
            "experiment_id": "7", "user_id": "ada", "start_time": 1000, "run_name": "r1",
            "tags": [{"key": "umlaut.kind", "value": "audit"},
                     {"key": "mlflow.user", "value": "ada"}],
        }  # fmt: skip
        assert headers1["Authorization"] == "Bearer s3cr3t"
        assert headers1["User-Agent"].startswith("mlflow-python-client/")
        assert path2 == "/api/2.0/mlflow/runs/update"
        assert update == {"run_id": "abc", "run_uuid": "abc", "status": "FAILED", "end_time": 1500}

    def test_basic_auth_and_workspace_header(
        self, endpoint: tuple[str, type[_Recorder]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        url, handler = endpoint
        handler.answers.append((200, {}))
        writer = RestRunWriter.for_creds(
            MlflowHostCreds(url, username="u", password="p"), HTTP_DEFAULTS
        )
        assert writer is not None
        monkeypatch.setenv("MLFLOW_WORKSPACE", "team-a")
        writer.finish_run("abc", "FINISHED", 1)
        writer.close()
        headers = handler.seen[0][1]
        assert headers["Authorization"] == "Basic dTpw"
        assert headers["X-MLFLOW-WORKSPACE"] == "team-a"

    def test_environment_settings_requests_would_read_are_kept(
        self,
        endpoint: tuple[str, type[_Recorder]],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Any,
    ) -> None:
        url, handler = endpoint
        netrc = tmp_path / "netrc"
        netrc.write_text("machine 127.0.0.1 login ada password lovelace\n")
        monkeypatch.setenv("NETRC", str(netrc))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "corporate-ca.pem"))
        handler.answers.append((200, {}))
        writer = RestRunWriter.for_creds(MlflowHostCreds(url), HTTP_DEFAULTS)
        assert writer is not None
        assert writer._session.verify == str(tmp_path / "corporate-ca.pem")
        writer.finish_run("abc", "FINISHED", 1)
        writer.close()
        assert handler.seen[0][1]["Authorization"] == "Basic YWRhOmxvdmVsYWNl"

    def test_error_payloads_become_mlflow_exceptions(
        self, endpoint: tuple[str, type[_Recorder]]
    ) -> None:
        url, handler = endpoint
        gone = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such experiment"}
        handler.answers += [(404, gone), (400, b"<html>not json</html>")]
        writer = RestRunWriter.for_creds(MlflowHostCreds(url), HTTP_DEFAULTS)
        assert writer is not None
        with pytest.raises(RestException) as caught:
            writer.create_run("9", start_time=1, tags={}, run_name="x")
        assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        with pytest.raises(MlflowException, match="failed with error code 400"):
            writer.finish_run("abc", "FINISHED", 1)
        writer.close()


@pytest.mark.mlflow
class TestOnARealServer:
    """What a plain MLflow user sees of a record written this way."""

    def test_audit_runs_are_complete_mlflow_runs(self, mlflow_server: str) -> None:
        from mlflow import MlflowClient

        name = f"rest-{uuid.uuid4().hex[:8]}"
        with Umlaut(
            f"mlflow+{mlflow_server}", plugin_manager=get_plugin_manager(), delivery="sync"
        ) as umlaut:
            assert isinstance(umlaut.tracker, MlflowTracker)
            rest = umlaut.tracker._rest
            assert rest is not None  # the direct path is the one under test
            # It times out like MlflowClient, from the limits the tracker put in effect.
            assert rest._timeout == float(
                umlaut.tracker.http_settings["MLFLOW_HTTP_REQUEST_TIMEOUT"]
            )
            umlaut.track_model(Threshold(5), name, stage="Production")
            umlaut.run_model(name, {"x": 9}, stage="Production", reference_id="ok-call")
            with pytest.raises(KeyError):
                umlaut.run_model(name, {"y": 1}, version=1, reference_id="bad-call")
            ok, bad = (umlaut.history(name, reference_id=r)[0] for r in ("ok-call", "bad-call"))
        client = MlflowClient(mlflow_server)
        exp = client.get_experiment_by_name(f"umlaut/{name}")
        runs = {
            r.data.tags["umlaut.reference_id"]: r
            for r in client.search_runs([exp.experiment_id], "tags.`umlaut.kind` = 'audit'")
        }
        for record, status in ((ok, "FINISHED"), (bad, "FAILED")):
            run = runs[record.reference_id or ""]
            assert run.info.status == status
            assert run.info.run_name == record.id
            assert run.info.start_time == int(record.started_at.timestamp() * 1000)
            assert run.info.end_time >= run.info.start_time
            assert run.data.tags["umlaut.id"] == record.id
        assert ok.output == {"above": True, "limit": 5}
        assert bad.error_type == "KeyError"

    def test_a_run_for_an_experiment_that_is_gone_is_a_backend_error(
        self, mlflow_server: str
    ) -> None:
        tracker = MlflowTracker(f"mlflow+{mlflow_server}")
        try:
            assert tracker._rest is not None
            tracker._experiments["ghost"] = "987654321"  # an id the server never made
            record = AuditRecord(
                id="01J0000000000000000000000Z", model_name="ghost", version=1,
                selector="latest", inputs_json="{}", output_json="1", status="ok",
                started_at=dt.datetime.now(dt.UTC), duration_ms=1.0,
            )  # fmt: skip
            with pytest.raises(BackendError, match="writing audit runs"):
                tracker.record_runs([record])
        finally:
            tracker.close()
