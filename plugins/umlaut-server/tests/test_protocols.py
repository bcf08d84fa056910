"""Every protocol shape over HTTP, against the shared server on each registry: the
answer, the version it names, and the one audit record behind it."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx
import pytest
from servekit import IRIS_COLUMNS, ServerProcess, records_for
from starlette.routing import Route
from umlaut_server import ServeConfig, create_app
from umlaut_server._openapi import build

from umlaut_core import Umlaut

pytestmark = pytest.mark.slow

#: The request bodies of MLflow's serving documentation ("Deploy MLflow models").
MLFLOW_DOC_BODIES: dict[str, tuple[dict[str, Any], Any]] = {
    "dataframe_split": (
        {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5, 6]]}},
        [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}],
    ),
    "dataframe_records": (
        {"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]},
        [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}],
    ),
    "instances": (
        {
            "instances": [
                {"a": "s1", "b": 1, "c": [1, 2, 3]},
                {"a": "s2", "b": 2, "c": [4, 5, 6]},
                {"a": "s3", "b": 3, "c": [7, 8, 9]},
            ]
        },
        [
            {"a": "s1", "b": 1, "c": [1, 2, 3]},
            {"a": "s2", "b": 2, "c": [4, 5, 6]},
            {"a": "s3", "b": 3, "c": [7, 8, 9]},
        ],
    ),
    "inputs": (
        {
            "inputs": {
                "a": ["s1", "s2", "s3"],
                "b": [1, 2, 3],
                "c": [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
            }
        },
        [
            {"a": "s1", "b": 1, "c": [1, 2, 3]},
            {"a": "s2", "b": 2, "c": [4, 5, 6]},
            {"a": "s3", "b": 3, "c": [7, 8, 9]},
        ],
    ),
    "params": (
        {"dataframe_records": [{"a": 1}], "params": {"temperature": 0.5}},
        [{"a": 1}],
    ),
}

IRIS_ROWS = [
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3},
]


def _echo_server(server: ServerProcess) -> ServerProcess:
    return server


class TestMlflowProtocol:
    """/invocations answers MLflow's request shapes as mlflow models serve does."""

    @pytest.mark.parametrize("shape", sorted(MLFLOW_DOC_BODIES))
    def test_doc_bodies_reach_the_model_as_rows(
        self, sqlite_server: ServerProcess, shape: str, echo_invocations: str
    ) -> None:
        body, rows = MLFLOW_DOC_BODIES[shape]
        response = httpx.post(
            echo_invocations, json=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": rows}
        assert response.headers["X-Umlaut-Model"] == "Echo"
        assert response.headers["X-Umlaut-Version"] == "1"

    def test_csv_body_is_rows_with_json_typed_cells(self, echo_invocations: str) -> None:
        response = httpx.post(
            echo_invocations,
            content=b'a,b,c\n1,x,2.5\n3,"[1, 2]",true\n',
            headers={"Content-Type": "text/csv; charset=utf-8"},
        )
        assert response.status_code == 200, response.text
        assert response.json() == {
            "predictions": [{"a": 1, "b": "x", "c": 2.5}, {"a": 3, "b": [1, 2], "c": True}]
        }

    def test_iris_on_the_shared_server_of_each_registry(self, any_server: ServerProcess) -> None:
        with any_server.client() as client:
            response = client.post(
                "/invocations",
                json={
                    "dataframe_split": {
                        "columns": IRIS_COLUMNS,
                        "data": [list(r.values()) for r in IRIS_ROWS],
                    }
                },
                headers={"X-Request-ID": f"iris-{any_server.registry.name}"},
            )
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert [p["prediction"] for p in predictions] == ["setosa", "virginica"]
        with any_server.registry.umlaut() as umlaut:
            (record,) = records_for(umlaut, f"iris-{any_server.registry.name}")
        assert record.model_name == "Iris" and record.selector == "stage=Production"
        assert record.inputs == IRIS_ROWS and record.output == predictions
        assert str(record.version) == response.headers["X-Umlaut-Version"]
        assert response.headers["X-Umlaut-Record-ID"] == record.id

    def test_ping_health_version(self, sqlite_server: ServerProcess) -> None:
        for path in ("/ping", "/health"):
            assert httpx.get(sqlite_server.url + path).status_code == 200  # no token needed
        version = httpx.get(sqlite_server.url + "/version")
        assert version.status_code == 200 and version.text == "0.1.0"

    # Importing mlflow's pyfunc warns about its own type hints.
    @pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
    def test_mlflow_python_client(self, echo_invocations: str) -> None:
        pytest.importorskip("mlflow")
        import pandas as pd
        from mlflow.pyfunc.scoring_server.client import ScoringServerClient

        host, port = echo_invocations.removesuffix("/invocations").rsplit(":", 1)
        client = ScoringServerClient(host.removeprefix("http://"), int(port))
        client.wait_server_ready(timeout=10)
        frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
        result = client.invoke(frame)
        assert result.get_predictions(predictions_format="dataframe").to_dict("records") == [
            {"a": 1, "b": "x"},
            {"a": 2, "b": "y"},
        ]


@pytest.fixture(scope="module")
def echo_invocations(sqlite_registry: Any, server_factory: Any) -> str:
    """/invocations of a server whose first model is Echo, without auth (MLflow's
    client sends no token)."""
    server = server_factory(
        sqlite_registry, "--model", "Echo@Production", "--all-models", "--no-auth"
    )
    return str(server.url + "/invocations")


class TestAllModels:
    """--all-models serves every model of the registry, at its latest version by default."""

    def test_any_model_by_name(self, echo_invocations: str) -> None:
        base = echo_invocations.removesuffix("/invocations")
        listed = httpx.get(base + "/v1/models").json()["models"]
        moving = httpx.post(base + "/v1/models/Moving/run", json={"input": {}})
        unknown = httpx.post(base + "/v1/models/Nope/run", json={"input": {}})
        assert {m["name"] for m in listed} >= {"Echo", "Moving", "Iris"}
        assert moving.json()["version"] == 2 == moving.json()["output"]  # the latest
        assert unknown.status_code == 404
        metrics = httpx.get(base + "/metrics").text
        assert 'model="Moving"' in metrics and 'model="Nope"' not in metrics


class TestNativeProtocol:
    """/v1 runs one input or a batch under any selector, and lists the served models."""

    def test_run_with_each_selector(self, any_server: ServerProcess) -> None:
        with any_server.client() as client:
            default = client.post("/v1/models/Moving/run", json={"input": {}})
            pinned = client.post("/v1/models/Moving/versions/2/run", json={"input": {}})
            staged = client.post(
                "/v1/models/Double/stages/Production/run", json={"input": {"v": 4}}
            )
        assert default.status_code == 200, default.text
        assert default.json()["output"] == default.json()["version"]
        assert pinned.json()["output"] == 2 and pinned.json()["version"] == 2
        assert staged.json()["output"] == 8
        assert staged.json()["request_id"] == staged.headers["X-Request-ID"]
        # No X-Request-ID sent: the generated one is echoed and is the record's reference.
        generated = staged.headers["X-Request-ID"]
        with any_server.registry.umlaut() as umlaut:
            (record,) = records_for(umlaut, generated)
        assert record.id == staged.headers["X-Umlaut-Record-ID"] and record.output == 8

    def test_batch_is_one_version_and_one_record_per_input(self, any_server: ServerProcess) -> None:
        with any_server.client() as client:
            response = client.post(
                "/v1/models/Double/batch",
                json={"inputs": [{"v": 1}, {"w": 1}, {"v": 3}]},
                headers={"X-Request-ID": f"batch-{any_server.registry.name}"},
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["results"] == [
            {"status": "ok", "output": 2},
            {"status": "error", "error_type": "KeyError"},
            {"status": "ok", "output": 6},
        ]
        with any_server.registry.umlaut() as umlaut:
            records = records_for(umlaut, f"batch-{any_server.registry.name}", expect=3)
        assert len(records) == 3
        assert {r.version for r in records} == {body["version"]}
        assert {r.tags["serve.selector"] for r in records} == {"stage=Production"}

    def test_listings(self, sqlite_server: ServerProcess) -> None:
        with sqlite_server.client(token=None) as anonymous:
            assert anonymous.get("/v1/models").status_code == 401
        with sqlite_server.client() as client:
            models = client.get("/v1/models").json()["models"]
            double = client.get("/v1/models/Double").json()
            missing = client.get("/v1/models/Nope")
        assert {m["name"] for m in models} == {
            "Iris",
            "Echo",
            "Double",
            "Slow",
            "Failing",
            "Moving",
        }
        assert double["signature"] == {"v": "float"} and double["stages"] == {"Production": 1}
        assert missing.status_code == 404
        assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def _served_routes() -> list[tuple[Route, str]]:
    """Every ``(route, method)`` the app of ``create_app`` serves (``HEAD`` aside; the
    shared server has no ``--ui``, whose HTML pages are a ``Mount``)."""
    config = ServeConfig(all_models=True, no_auth=True, access_log=None)
    app = create_app(config, Umlaut("memory:", delivery="sync"))
    try:
        return [
            (route, method)
            for route in app.routes
            if isinstance(route, Route)
            for method in sorted((route.methods or set()) - {"HEAD"})
        ]
    finally:
        app.state.server.close()


def _body_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    body = document["paths"][path]["post"]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


@pytest.fixture(scope="module")
def document(sqlite_server: ServerProcess) -> dict[str, Any]:
    """The shared server's /openapi.json."""
    with sqlite_server.client() as client:
        answer: dict[str, Any] = client.get("/openapi.json").json()
    return answer


class TestOpenApi:
    """/openapi.json lists every route served, with the input schema of each model's
    signature wherever the route takes that model's input."""

    def test_every_served_route_and_no_other(self, document: dict[str, Any]) -> None:
        served = _served_routes()
        paths = document["paths"]
        missing = [f"{m} {r.path}" for r, m in served if m.lower() not in paths.get(r.path, {})]
        assert missing == []
        for path, operations in paths.items():  # a model's own path matches its template
            for method, operation in operations.items():
                assert any(
                    route.path_regex.match(path) and m == method.upper() for route, m in served
                ), f"{method} {path} is not served"
                declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
                assert declared == set(re.findall(r"{(\w+)}", path)), path

    def test_valid_openapi(self, document: dict[str, Any]) -> None:
        from openapi_spec_validator import validate  # the serve env installs it

        validate(document)
        assert document["openapi"].startswith("3.")

    def test_signature_schemas(self, document: dict[str, Any]) -> None:
        iris = set(IRIS_COLUMNS)
        run = _body_schema(document, "/v1/models/Iris/run")["properties"]["input"]
        row = run["anyOf"][0]
        assert set(row["properties"]) == iris  # from the estimator's table signature
        # scikit-learn records no nulls seen, so the estimator's columns are nullable.
        assert all(p["type"] == ["number", "null"] for p in row["properties"].values())
        assert set(row["required"]) == iris
        batch = _body_schema(document, "/v1/models/Iris/batch")["properties"]["inputs"]
        assert batch["items"] == run
        mlflow = _body_schema(document, "/invocations")["properties"]  # Iris: the first --model
        assert mlflow["dataframe_records"]["items"] == row
        assert set(mlflow["dataframe_split"]["properties"]["columns"]["items"]["enum"]) == iris
        tensor = _body_schema(document, "/v2/models/Iris/infer")["properties"]["inputs"]["items"]
        assert set(tensor["properties"]["name"]["enum"]) == iris
        double = _body_schema(document, "/v1/models/Double/batch")["properties"]["inputs"]
        assert double["items"]["anyOf"][0]["properties"] == {"v": {"type": "number"}}

    def test_generic_without_a_known_signature(self, document: dict[str, Any]) -> None:
        # Echo has no signature; a selector may name another version, another signature.
        assert not [p for p in document["paths"] if "/Echo" in p]
        templated = {r.path for r, m in _served_routes() if m == "POST" and "{" in r.path}
        assert {p for p in templated if "{version}" in p or "{stage}" in p}
        for path in templated:
            text = json.dumps(_body_schema(document, path))
            assert not [c for c in IRIS_COLUMNS if c in text], path

    def test_security_follows_the_auth_setting(self, document: dict[str, Any]) -> None:
        assert document["paths"]["/invocations"]["post"]["security"] == [{"bearer": ["run"]}]
        config = ServeConfig(all_models=True, no_auth=True, access_log=None)
        app = create_app(config, Umlaut("memory:", delivery="sync"))
        try:
            open_doc = build(app.state.server, {})
        finally:
            app.state.server.close()
        assert "components" not in open_doc
        assert not [p for p, ops in open_doc["paths"].items() for op in ops.values()
                    if "security" in op]  # fmt: skip

    def test_docs_page(self, sqlite_server: ServerProcess) -> None:
        with sqlite_server.client() as client:
            page = client.get("/docs")
        text = html.unescape(page.text)
        assert page.status_code == 200 and "POST /invocations" in text
        assert "POST /v1/models/{name}/stages/{stage}/batch" in text
        assert "GET /v2/models/{model}/versions/{version}/ready" in text


class TestOpenInferenceProtocol:
    """/v2 (KServe V2) health, metadata, readiness and tabular inference."""

    def test_health_and_metadata(self, sqlite_server: ServerProcess) -> None:
        assert httpx.get(sqlite_server.url + "/v2/health/live").json() == {"live": True}
        assert httpx.get(sqlite_server.url + "/v2/health/ready").json() == {"ready": True}
        with sqlite_server.client() as client:
            meta = client.get("/v2/models/Iris").json()
            ready = client.get("/v2/models/Moving/versions/2/ready")
            missing = client.get("/v2/models/Nope/ready")
        assert meta["name"] == "Iris" and meta["versions"] == ["1"]
        assert sorted(i["name"] for i in meta["inputs"]) == sorted(IRIS_COLUMNS)
        assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
        assert ready.json() == {"name": "Moving", "ready": True}
        with sqlite_server.client() as client:
            pinned = client.get("/v2/models/Moving/versions/2")
            unknown = client.get("/v2/models/Moving/versions/9")
        assert pinned.json()["name"] == "Moving" and pinned.json()["versions"] == ["1", "2"]
        assert pinned.headers["X-Umlaut-Version"] == "2" and unknown.status_code == 404
        assert missing.status_code == 404 and "error" in missing.json()

    def test_infer_columns_echoes_the_id(self, any_server: ServerProcess) -> None:
        tensors = [
            {"name": c, "shape": [2], "datatype": "FP64", "data": [r[c] for r in IRIS_ROWS]}
            for c in IRIS_COLUMNS
        ]
        with any_server.client() as client:
            response = client.post(
                "/v2/models/Iris/infer", json={"id": "req-42", "inputs": tensors}
            )
            pinned = client.post(
                "/v2/models/Moving/versions/1/infer",
                json={"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [0]}]},
            )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["id"], body["model_name"], body["model_version"]) == ("req-42", "Iris", "1")
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["prediction"]["data"] == ["setosa", "virginica"]
        assert outputs["prediction"]["datatype"] == "BYTES"
        assert json.loads(outputs["probabilities"]["data"][0])["setosa"] > 0.5
        assert pinned.json()["outputs"] == [
            {"name": "output", "datatype": "BYTES", "shape": [1], "data": ["1"]}
        ]
