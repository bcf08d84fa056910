"""umlaut's own protocol, ``/v1``: one input or a batch, any selector, model listings.

* ``POST /v1/models/{name}[/versions/{v}|/stages/{s}]/run`` — body ``{"input": X}``;
  answers ``{"model", "version", "request_id", "record_id", "output"}``.
* ``POST …/batch`` — body ``{"inputs": [X, …]}`` (at most ``--max-batch``); one
  version answers every input and all records go in one transaction; answers
  ``{"model", "version", "request_id", "results": [{"status": "ok", "output": …} |
  {"status": "error", "error_type": …}]}`` with status 200 even when items failed.
* ``GET /v1/models`` — the served models with their default selector, latest
  version and stages; ``GET /v1/models/{name}`` — one of them in full (the version
  its default selector names now, every version, stages, flavor, signature).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._body import decode_json, media_type, read_body
from ._errors import ApiError, bad_request, invalid
from ._http import Ctx, json_response

if TYPE_CHECKING:
    from ._app import Server

__all__ = ["routes", "version_of", "warm_up"]

log = logging.getLogger("umlaut.serve")


def version_of(text: str) -> int:
    if not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise invalid(f"a version is a positive whole number, not {text[:20]!r}")
    return int(text)


def _selector(request: Request) -> tuple[int | None, str | None]:
    params = request.path_params
    version = version_of(params["version"]) if "version" in params else None
    return version, params.get("stage")


async def _json_body(request: Request, ctx: Ctx) -> Any:
    media_type(request.headers.get("content-type"), ("application/json",))
    config = ctx.server.config
    return decode_json(await read_body(request, config.max_body_size, config.body_timeout))


async def run(request: Request, ctx: Ctx) -> Response:
    name = request.path_params["name"]
    ctx.server.service.spec(name)
    ctx.model = name
    version, stage = _selector(request)
    body = await _json_body(request, ctx)
    if not isinstance(body, dict) or "input" not in body or set(body) != {"input"}:
        raise bad_request('the body must be a JSON object {"input": <the model\'s input>}')
    result = await ctx.server.service.run(
        name, body["input"], version=version, stage=stage, reference_id=ctx.request_id
    )
    ctx.version, ctx.record_id = result.version, result.record_id
    head = json.dumps(
        {
            "model": name,
            "version": result.version,
            "request_id": ctx.request_id,
            "record_id": result.record_id,
        },
        ensure_ascii=False,
    )
    return Response(
        head[:-1] + ',"output":' + result.output_json + "}", media_type="application/json"
    )


async def batch(request: Request, ctx: Ctx) -> Response:
    name = request.path_params["name"]
    ctx.server.service.spec(name)
    ctx.model = name
    version, stage = _selector(request)
    body = await _json_body(request, ctx)
    if (
        not isinstance(body, dict)
        or set(body) != {"inputs"}
        or not isinstance(body["inputs"], list)
    ):
        raise bad_request('the body must be a JSON object {"inputs": [<input>, ...]}')
    inputs = body["inputs"]
    limit = ctx.server.config.max_batch
    if len(inputs) > limit:
        raise ApiError(
            413, "REQUEST_LIMIT_EXCEEDED", f"a batch holds at most {limit} inputs (--max-batch)"
        )
    number, items = await ctx.server.service.run_batch(
        name, inputs, version=version, stage=stage, reference_id=ctx.request_id
    )
    ctx.version = number
    results = [
        {"status": "ok", "output": value} if ok else {"status": "error", "error_type": value}
        for ok, value in items
    ]
    return json_response(
        {"model": name, "version": number, "request_id": ctx.request_id, "results": results}
    )


def _served(server: Server) -> list[dict[str, Any]]:
    service = server.service
    infos = {m.name: m for m in service.umlaut.list_models()}
    names = list(infos) if server.config.all_models else list(service.specs)
    out = []
    for name in names:
        spec = service.spec(name)
        info = infos.get(name)
        out.append(
            {
                "name": name,
                "selector": spec.selector,
                "latest_version": info.latest_version if info else None,
                "stages": dict(info.aliases) if info else {},
            }
        )
    return out


async def list_models(request: Request, ctx: Ctx) -> Response:
    server = ctx.server
    models = await server.service.in_thread(lambda: _served(server))
    return json_response({"models": models})


def describe(server: Server, name: str, version: int | None = None) -> dict[str, Any]:
    """A served model in full (run in the thread pool: it asks the registry)."""
    service = server.service
    spec = service.spec(name)
    umlaut = service.umlaut
    mv = umlaut.get_version(
        name,
        version=version if version is not None else spec.version,
        stage=None if version is not None else spec.stage,
    )
    versions = umlaut.list_versions(name)
    info = next((m for m in umlaut.list_models() if m.name == name), None)
    return {
        "name": name,
        "selector": spec.selector,
        "version": mv.version,
        "versions": [v.version for v in versions],
        "stages": dict(info.aliases) if info else {},
        "flavor": mv.flavor,
        "description": mv.description,
        "signature": mv.manifest.get("signature"),
    }


async def show_model(request: Request, ctx: Ctx) -> Response:
    server = ctx.server
    name = request.path_params["name"]
    server.service.spec(name)
    ctx.model = name
    return json_response(await server.service.in_thread(lambda: describe(server, name)))


async def warm_up(server: Server) -> None:
    """Load each ``--model`` once at start (a copy, through ``load_model``), so a typo
    shows in the log at once and the first request does not pay for the imports its
    bundle needs (the server still starts: a model may be registered later)."""
    for spec in server.service.specs.values():
        try:
            await server.service.in_thread(
                functools.partial(
                    server.service.umlaut.load_model,
                    spec.name,
                    version=spec.version,
                    stage=spec.stage,
                )
            )
        except ApiError as error:
            log.warning("serving %s@%s: %s", spec.name, spec.selector, error.message)


def routes(endpoint: Callable[[str, str | None, Any], Any]) -> list[Route]:
    out = [
        Route("/v1/models", endpoint("v1", "read", list_models), methods=["GET"]),
        Route("/v1/models/{name}", endpoint("v1", "read", show_model), methods=["GET"]),
    ]
    for prefix in (
        "/v1/models/{name}",
        "/v1/models/{name}/versions/{version}",
        "/v1/models/{name}/stages/{stage}",
    ):
        out.append(Route(f"{prefix}/run", endpoint("v1", "run", run), methods=["POST"]))
        out.append(Route(f"{prefix}/batch", endpoint("v1", "run", batch), methods=["POST"]))
    return out
