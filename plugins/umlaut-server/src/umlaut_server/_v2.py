"""The Open Inference Protocol (KServe V2), REST, for tabular inputs.

Request ``{"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "data"}],
"outputs"?}``. Each input tensor is a column: tensor ``x`` with shape ``[N]`` (or
``[N, 1]``) gives row ``i`` the value ``{"x": data[i]}``. A single input with shape
``[N, K]`` (K > 1) gives each row its list of K values. ``data`` may be flat
(row-major, as the spec's canonical form) or nested. The model gets the list of
rows, as from MLflow's ``dataframe_records``.

Response ``{"model_name", "model_version", "id", "outputs"}``: a model output that
is a list of N scalars is the tensor ``predictions`` of shape ``[N]``; a list of N
dicts gives one tensor per key (values that are not scalars as JSON text, ``BYTES``);
any other output is one ``BYTES`` tensor ``output`` holding its JSON text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._body import decode_json, media_type, read_body
from ._errors import ApiError, bad_request
from ._http import Ctx, json_response
from ._schemas import input_schema

__all__ = ["datatype_of", "routes", "rows_from_request", "tensors_from_output"]

_DATATYPES = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
}


def rows_from_request(body: Any) -> tuple[list[Any], str | None]:
    """``(rows, request id)`` from a decoded V2 inference request."""
    if not isinstance(body, dict):
        raise bad_request("an inference request is a JSON object with 'inputs'")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise bad_request("'id' must be a string")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise bad_request("'inputs' must be a non-empty list of tensors")
    columns: list[tuple[str, list[Any]]] = []
    count: int | None = None
    for number, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise bad_request(f"input tensor {number} is not a JSON object")
        name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
        if not isinstance(name, str) or not name:
            raise bad_request(f"input tensor {number} has no 'name'")
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise bad_request(f"input tensor {number}: 'shape' must be a list of sizes")
        if datatype not in _DATATYPES:
            raise bad_request(
                f"input tensor {number}: 'datatype' must be one of {sorted(_DATATYPES)}"
            )
        if "data" not in tensor:
            raise bad_request(f"input tensor {number} has no 'data'")
        flat = _flatten(tensor["data"])
        if math.prod(shape) != len(flat):
            raise bad_request(
                f"input tensor {number}: shape {shape} holds {math.prod(shape)} values, "
                f"'data' has {len(flat)}"
            )
        width = math.prod(shape[1:]) if len(shape) > 1 else 1
        if len(inputs) > 1 and width != 1:
            raise bad_request(
                f"input tensor {number}: with several input tensors each is one column "
                f"(shape [N] or [N, 1]); got {shape}"
            )
        if count is not None and shape[0] != count:
            raise bad_request(
                f"input tensors have different row counts ({count}, and {shape[0]} "
                f"for input tensor {number})"
            )
        count = shape[0]
        if width == 1:
            columns.append((name, flat))
        else:
            return [flat[i * width : (i + 1) * width] for i in range(count)], request_id
    rows = [{name: values[i] for name, values in columns} for i in range(count or 0)]
    return rows, request_id


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            out.append(value)
        else:
            stack.pop()
    return out


def datatype_of(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _tensor(name: str, values: list[Any]) -> dict[str, Any]:
    if not all(_scalar(v) and v is not None for v in values):
        values = [v if isinstance(v, str) else json.dumps(v) for v in values]
    return {"name": name, "datatype": datatype_of(values), "shape": [len(values)], "data": values}


def tensors_from_output(output: Any) -> list[dict[str, Any]]:
    if isinstance(output, list) and all(_scalar(v) for v in output):
        return [_tensor("predictions", output)]
    if isinstance(output, list) and output and all(isinstance(v, dict) for v in output):
        keys = list(output[0])
        if all(list(v) == keys for v in output):
            return [_tensor(k, [v[k] for v in output]) for k in keys]
    text = json.dumps(output)
    return [{"name": "output", "datatype": "BYTES", "shape": [1], "data": [text]}]


# -- routes -----------------------------------------------------------------------------


async def live(request: Request, ctx: Ctx) -> Response:
    return json_response({"live": True})


async def ready(request: Request, ctx: Ctx) -> Response:
    if ctx.server.stopping:
        raise ApiError(503, "TEMPORARILY_UNAVAILABLE", "the server is shutting down")
    return json_response({"ready": True})


def _model(request: Request, ctx: Ctx) -> tuple[str, int | None]:
    from ._native import version_of

    name = request.path_params["model"]
    ctx.server.service.spec(name)
    ctx.model = name
    text = request.path_params.get("version")
    return name, version_of(text) if text is not None else None


async def metadata(request: Request, ctx: Ctx) -> Response:
    from ._native import describe

    name, version = _model(request, ctx)
    server = ctx.server
    info = await server.service.in_thread(lambda: describe(server, name, version))
    ctx.version = info["version"]
    schema = input_schema(info["signature"])
    inputs = [
        {"name": column, "datatype": _datatype_of_schema(spec), "shape": [-1]}
        for column, spec in (schema or {}).get("properties", {}).items()
        if isinstance(spec, dict)
    ]
    return json_response(
        {
            "name": name,
            "versions": [str(v) for v in info["versions"]],
            "platform": "umlaut",
            "inputs": inputs,
            "outputs": [],
        }
    )


async def model_ready(request: Request, ctx: Ctx) -> Response:
    name, version = _model(request, ctx)
    service = ctx.server.service
    spec = service.spec(name)
    mv = await service.in_thread(
        lambda: service.umlaut.get_version(
            name,
            version=version if version is not None else spec.version,
            stage=None if version is not None else spec.stage,
        )
    )
    ctx.version = mv.version
    return json_response({"name": name, "ready": True})


async def infer(request: Request, ctx: Ctx) -> Response:
    name, version = _model(request, ctx)
    media_type(request.headers.get("content-type"), ("application/json",))
    config = ctx.server.config
    body = decode_json(await read_body(request, config.max_body_size, config.body_timeout))
    rows, request_id = rows_from_request(body)
    result = await ctx.server.service.run(
        name, rows, version=version, stage=None, reference_id=ctx.request_id
    )
    ctx.version, ctx.record_id = result.version, result.record_id
    output = json.loads(result.output_json)
    answer: dict[str, Any] = {
        "model_name": name,
        "model_version": str(result.version),
        "id": request_id if request_id is not None else ctx.request_id,
        "outputs": tensors_from_output(output),
    }
    return json_response(answer)


_V2_TYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}


def _datatype_of_schema(spec: dict[str, Any]) -> str:
    """A column's V2 datatype from its JSON Schema (a nullable column's non-null type)."""
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return _V2_TYPES.get(str(kind), "BYTES")


def routes(endpoint: Callable[[str, str | None, Any], Any]) -> list[Route]:
    out = [
        Route("/v2/health/live", endpoint("v2", None, live), methods=["GET"]),
        Route("/v2/health/ready", endpoint("v2", None, ready), methods=["GET"]),
    ]
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        out.append(Route(prefix, endpoint("v2", "read", metadata), methods=["GET"]))
        out.append(Route(f"{prefix}/ready", endpoint("v2", "read", model_ready), methods=["GET"]))
        out.append(Route(f"{prefix}/infer", endpoint("v2", "run", infer), methods=["POST"]))
    return out
