"""``GET /openapi.json`` (OpenAPI 3.1) and ``GET /docs`` (a page rendered from it).

Every route the server serves is in the document: the operations routes listed here,
and each protocol's routes read from its module's own ``routes()`` (so a route added
there cannot be missing here), selectors included.

A model's input schema comes from its signature when it has one
(:func:`~umlaut_server._schemas.input_schema`). That one row schema is reused for
every route that takes the model's input at its default selector:
``/v1/models/{name}/run`` (``input``) and ``/batch`` (each of ``inputs``) and
``/v2/models/{model}/infer`` (a tensor per column, named after one) get a path of
their own per model, and ``/invocations`` describes the first ``--model``
(``dataframe_records`` rows, ``dataframe_split`` columns). The selector routes
(``…/versions/{v}``, ``…/stages/{s}``) may reach another version, with another
signature: they stay generic, as does every route of a model without a signature.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import json
import re
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from . import _mlflow, _native, _v2
from ._http import Ctx, json_response
from ._schemas import input_schema

__all__ = ["build", "document", "docs_page"]

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
#: The operations routes (``create_app`` serves them itself, all ``GET``): path,
#: scope, summary.
_OPERATIONS = (
    ("/ping", None, "health check (no authentication)"),
    ("/health", None, "health check (no authentication)"),
    ("/version", None, "the umlaut-server version"),
    ("/metrics", "read", "Prometheus metrics"),
    ("/openapi.json", "read", "this OpenAPI document"),
    ("/docs", "read", "this OpenAPI document as a page"),
)
_SUMMARIES: dict[Callable[..., Any], str] = {
    _mlflow.invocations: "MLflow scoring protocol (the first --model)",
    _native.list_models: "the served models",
    _native.show_model: "one served model",
    _native.run: "run one input",
    _native.batch: "run many inputs, one version, one transaction",
    _v2.live: "KServe V2 liveness",
    _v2.ready: "KServe V2 readiness",
    _v2.metadata: "KServe V2 model metadata",
    _v2.model_ready: "KServe V2 model readiness",
    _v2.infer: "KServe V2 inference (tabular)",
}
#: The routes that take the model's input: each model with a signature gets its own
#: path for them, at its default selector.
_TAKE_INPUT = (_native.run, _native.batch, _v2.infer)
_PARAM = re.compile(r"{(\w+)}")


# -- the protocol modules' routes ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Served:
    """What a module's ``routes(endpoint)`` asks ``endpoint`` to wrap (recorded, not run)."""

    protocol: str
    scope: str | None
    handler: Callable[..., Any]


@functools.cache
def _protocol_routes() -> tuple[tuple[str, str, _Served], ...]:
    """``(path, method, what)`` of every route of the protocol modules."""
    out = []
    for module in (_mlflow, _native, _v2):
        for route in module.routes(_Served):
            served = cast(_Served, route.endpoint)
            for method in sorted((route.methods or set()) - {"HEAD"}):
                out.append((route.path, method.lower(), served))
    return tuple(out)


# -- schemas --------------------------------------------------------------------------------


def _columns(row: dict[str, Any] | None) -> list[str]:
    return list(row.get("properties", {})) if row else []


def _model_input(row: dict[str, Any] | None) -> dict[str, Any]:
    """One input of ``/v1``'s ``run`` (and each of ``batch``): a row or a list of rows."""
    if row is None:
        return {}
    return {"anyOf": [row, {"type": "array", "items": row}]}


def _exact(**properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _mlflow_schema(row: dict[str, Any] | None) -> dict[str, Any]:
    columns = _columns(row)
    split = {
        "type": "object",
        "properties": {
            "columns": {
                "type": "array",
                "items": {"enum": columns} if columns else {"type": "string"},
            },
            "data": {"type": "array", "description": "the rows, each a list of values"},
            "index": {"type": "array", "description": "ignored, as by MLflow"},
        },
        "required": ["data"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "description": "exactly one of the four input fields, plus optional params",
        "properties": {
            "dataframe_split": split,
            "dataframe_records": {"type": "array", "items": row or {"type": "object"}},
            "instances": {},
            "inputs": {},
            "params": {"type": "object"},
        },
        "oneOf": [{"required": [name]} for name in _mlflow.FORMATS],
        "additionalProperties": False,
    }


def _v2_schema(row: dict[str, Any] | None) -> dict[str, Any]:
    columns = _columns(row)
    tensor = {
        "type": "object",
        "properties": {
            "name": {"enum": columns} if columns else {"type": "string", "minLength": 1},
            "shape": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
            "datatype": {"enum": sorted(_v2._DATATYPES)},
            "data": {},
        },
        "required": ["name", "shape", "datatype", "data"],
    }
    if columns:
        tensor["description"] = "one column of the model's signature"
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "minItems": 1, "items": tensor},
            "outputs": {"type": "array"},
        },
        "required": ["inputs"],
    }


def _body(handler: Callable[..., Any], row: dict[str, Any] | None, max_batch: int) -> Any:
    """The request body of ``handler``'s route for a model whose row schema is ``row``."""
    json_body: dict[str, Any]
    if handler is _native.run:
        json_body = _exact(input=_model_input(row))
    elif handler is _native.batch:
        items = _model_input(row)
        json_body = _exact(inputs={"type": "array", "maxItems": max_batch, "items": items})
    elif handler is _v2.infer:
        json_body = _v2_schema(row)
    elif handler is _mlflow.invocations:
        return {
            "required": True,
            "content": {
                "application/json": {"schema": _mlflow_schema(row)},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    else:
        return None
    return {"required": True, "content": {"application/json": {"schema": json_body}}}


def _parameters(path: str) -> list[dict[str, Any]]:
    version = {"type": "integer", "minimum": 1}
    out: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": version if name == "version" else {"type": "string"},
        }
        for name in _PARAM.findall(path)
    ]
    out.append(
        {"name": "X-Request-ID", "in": "header", "required": False, "schema": {"type": "string"}}
    )
    return out


def _op(path: str, summary: str, body: Any, scope: str | None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": {"description": "OK"}, "default": _ERROR},
        "parameters": _parameters(path),
    }
    if body is not None:
        op["requestBody"] = body
    if scope is not None:
        op["security"] = [{"bearer": [scope]}]
    return op


def _summary(path: str, handler: Callable[..., Any]) -> str:
    summary = _SUMMARIES.get(handler, handler.__name__)
    if "{version}" in path:
        return f"{summary}: the version given"
    if "{stage}" in path:
        return f"{summary}: the version in that stage now"
    return summary


def build(server: Any, signatures: dict[str, Any]) -> dict[str, Any]:
    """The document for ``server``, whose served models have these signatures."""
    config = server.config
    first = config.invocations_model
    rows = {name: input_schema(signature) for name, signature in signatures.items()}
    paths: dict[str, Any] = {
        path: {"get": _op(path, summary, None, scope)} for path, scope, summary in _OPERATIONS
    }
    for path, method, served in _protocol_routes():
        handler = served.handler
        summary = _summary(path, handler)
        row = None
        if handler is _mlflow.invocations:
            if first is None:
                summary += " (404: this server serves --all-models only)"
            else:
                row = rows.get(first.name)
        body = _body(handler, row, config.max_batch)
        paths.setdefault(path, {})[method] = _op(path, summary, body, served.scope)
    for path, method, served in _protocol_routes():
        params = _PARAM.findall(path)
        if served.handler not in _TAKE_INPUT or len(params) != 1:
            continue  # a selector: perhaps another version, with another signature
        for name, row in rows.items():
            if row is None:
                continue
            concrete = path.replace(f"{{{params[0]}}}", quote(name, safe=""))
            summary = f"{_summary(path, served.handler)} ({name})"
            body = _body(served.handler, row, config.max_batch)
            paths.setdefault(concrete, {})[method] = _op(concrete, summary, body, served.scope)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "umlaut serve", "version": server.version},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
    if config.no_auth:  # served without authentication: a client sends no token
        del doc["components"]
        for methods in paths.values():
            for op in methods.values():
                op.pop("security", None)
    return doc


def _signatures(server: Any) -> dict[str, Any]:
    out = {}
    for model in _native._served(server):
        try:
            out[model["name"]] = _native.describe(server, model["name"])["signature"]
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
