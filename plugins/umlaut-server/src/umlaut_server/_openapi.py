"""``GET /openapi.json`` (OpenAPI 3.1) and ``GET /docs`` (a page rendered from it).

Each served model gets its own ``/v1/models/{name}/run`` path whose input schema
comes from the version's signature (``track_model(signature=...)``) when it has one:
a JSON Schema object (``{"type": "object", "properties": …}``) is used as it is; a
mapping of column → type name (``{"sepal_length": "float", "species": "str"}``, or
the same under ``"inputs"``) becomes an object schema of those columns.
"""

from __future__ import annotations

import html
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ._http import Ctx, json_response

__all__ = ["document", "docs_page", "input_schema"]

_TYPES = {
    "float": "number",
    "double": "number",
    "number": "number",
    "int": "integer",
    "long": "integer",
    "integer": "integer",
    "str": "string",
    "string": "string",
    "bool": "boolean",
    "boolean": "boolean",
}
_ERROR = {
    "description": "an error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
                "required": ["error_code", "message"],
            }
        }
    },
}


def input_schema(signature: Any) -> dict[str, Any] | None:
    """A JSON Schema for one input row, from a version's signature (None if unknown)."""
    if not isinstance(signature, dict):
        return None
    if signature.get("type") == "object" and isinstance(signature.get("properties"), dict):
        return signature
    columns = signature.get("inputs", signature)
    if isinstance(columns, dict) and columns and all(isinstance(v, str) for v in columns.values()):
        return {
            "type": "object",
            "properties": {
                k: {"type": _TYPES.get(v.lower(), "string")} for k, v in columns.items()
            },
            "required": list(columns),
        }
    return None


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, body: dict[str, Any] | None, scope: str | None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": "OK"}, "default": _ERROR},
        "parameters": [
            {
                "name": "X-Request-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            }
        ],
    }
    if body is not None:
        op["requestBody"] = body
    if scope is not None:
        op["security"] = [{"bearer": [scope]}]
    return op


def build(server: Any, signatures: dict[str, Any]) -> dict[str, Any]:
    any_input: dict[str, Any] = {}
    rows = {"type": "array", "items": {"type": "object"}}
    mlflow_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "exactly one of the four input fields, plus optional params",
                    "properties": {
                        "dataframe_split": {"type": "object"},
                        "dataframe_records": rows,
                        "instances": {},
                        "inputs": {},
                        "params": {"type": "object"},
                    },
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }
    paths: dict[str, Any] = {
        "/ping": {"get": _op("health check (no authentication)", None, None)},
        "/health": {"get": _op("health check (no authentication)", None, None)},
        "/version": {"get": _op("the umlaut-server version", None, None)},
        "/metrics": {"get": _op("Prometheus metrics", None, "read")},
        "/invocations": {"post": _op("MLflow scoring protocol", mlflow_body, "run")},
        "/v1/models": {"get": _op("the served models", None, "read")},
        "/v1/models/{name}": {"get": _op("one served model", None, "read")},
        "/v1/models/{name}/run": {
            "post": _op(
                "run one input",
                _json_body({"type": "object", "properties": {"input": any_input}}),
                "run",
            )
        },
        "/v1/models/{name}/batch": {
            "post": _op(
                "run many inputs, one transaction",
                _json_body({"type": "object", "properties": {"inputs": {"type": "array"}}}),
                "run",
            )
        },
        "/v2/health/live": {"get": _op("KServe V2 liveness", None, None)},
        "/v2/health/ready": {"get": _op("KServe V2 readiness", None, None)},
        "/v2/models/{model}": {"get": _op("KServe V2 model metadata", None, "read")},
        "/v2/models/{model}/ready": {"get": _op("KServe V2 model readiness", None, "read")},
        "/v2/models/{model}/infer": {
            "post": _op("KServe V2 inference (tabular)", _json_body({"type": "object"}), "run")
        },
    }
    for name, signature in signatures.items():
        schema = input_schema(signature)
        if schema is None:
            continue
        body = _json_body(
            {
                "type": "object",
                "properties": {"input": {"anyOf": [schema, {"type": "array", "items": schema}]}},
            }
        )
        paths[f"/v1/models/{name}/run"] = {"post": _op(f"run {name}", body, "run")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "umlaut serve", "version": server.version},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


def _signatures(server: Any) -> dict[str, Any]:
    from ._native import _served, describe

    out = {}
    for model in _served(server):
        try:
            out[model["name"]] = describe(server, model["name"])["signature"]
        except Exception:  # a model without a version yet: no schema
            continue
    return out


async def document(request: Request, ctx: Ctx) -> Response:
    server = ctx.server
    signatures = await server.service.in_thread(lambda: _signatures(server))
    return json_response(build(server, signatures))


async def docs_page(request: Request, ctx: Ctx) -> Response:
    server = ctx.server
    signatures = await server.service.in_thread(lambda: _signatures(server))
    doc = build(server, signatures)
    items = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            scope = op.get("security", [{"bearer": ["none"]}])[0]["bearer"][0]
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            items.append(
                f"<li><code>{method.upper()} {html.escape(path)}</code> — "
                f"{html.escape(op['summary'])} (scope: {scope})"
                + (
                    f"<pre>{html.escape(json.dumps(schema.get('schema'), indent=1))}</pre>"
                    if schema
                    else ""
                )
                + "</li>"
            )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>umlaut serve</title></head>"
        "<body><h1>umlaut serve</h1><p>The OpenAPI document: <a href='openapi.json'>"
        "openapi.json</a>.</p><ul>" + "".join(items) + "</ul></body></html>"
    )
    return HTMLResponse(page)
