"""MLflow's scoring protocol (``mlflow models serve``, MLflow 3.x): request bodies to
one model input, the way a tabular umlaut model takes it.

An umlaut model takes JSON, so each MLflow shape becomes a list of rows:

* ``dataframe_split`` ``{"columns": [...], "data": [[...]], "index": [...]}`` → one
  dict per row (``index`` is dropped, as the model never sees it in MLflow either);
  without ``columns``, each row is its list of values;
* ``dataframe_records`` ``[{...}, ...]`` → those dicts;
* ``instances`` / ``inputs``: a list is passed as it is; a dict of equal-length lists
  (TF serving's columnar form, ``{"a": [1, 2], "b": [3, 4]}``) becomes one dict per
  row; any other value is passed as it is;
* ``text/csv``: a header row, then one dict per row, each cell typed by umlaut's CSV
  rule (a cell that parses as JSON is that value, else its text).

The audit record holds exactly that input. ``params`` is accepted, as MLflow accepts
it for models whose ``predict`` takes none, and not passed to the model (umlaut
models take one input); it is not recorded, since the model never saw it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._body import decode_json, media_type, parse_csv, read_body
from ._errors import bad_request, not_found
from ._http import Ctx

__all__ = ["FORMATS", "model_input", "routes"]

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_REQUIRED = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}"
)


def model_input(body: Any) -> tuple[Any, Any]:
    """``(input for the model, params)`` from a decoded JSON request body."""
    if not isinstance(body, dict):
        kind = "a list" if isinstance(body, list) else f"a JSON {_kind(body)}"
        raise bad_request(f"{_REQUIRED}. Received {kind}.")
    present = [k for k in FORMATS if k in body]
    unknown = sorted(k for k in body if k not in FORMATS and k != "params")
    if len(present) != 1 or unknown:
        # Counted, not quoted: a field name is the client's text, and error bodies
        # repeat none of it (a key can hold a value: {"<customer email>": ...}).
        raise bad_request(
            f"{_REQUIRED} (and optionally 'params'). Received {len(present)} of those "
            f"input fields and {len(unknown)} other field(s)."
        )
    params = body.get("params")
    if params is not None and not isinstance(params, dict):
        raise bad_request("'params' must be a JSON object")
    key = present[0]
    value = body[key]
    if key == "dataframe_split":
        return _split(value), params
    if key == "dataframe_records":
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise bad_request("'dataframe_records' must be a list of JSON objects, one per row")
        return value, params
    return _columns_to_rows(value), params


def _split(value: Any) -> list[Any]:
    if not isinstance(value, dict) or "data" not in value:
        raise bad_request(
            "'dataframe_split' must be a JSON object with 'data' (a list of rows) and "
            "optionally 'columns' and 'index'"
        )
    extra = set(value) - {"columns", "data", "index"}
    if extra:
        raise bad_request(
            f"'dataframe_split' has {len(extra)} unknown field(s); it takes 'data' and "
            f"optionally 'columns' and 'index'"
        )
    data = value["data"]
    columns = value.get("columns")
    if not isinstance(data, list):
        raise bad_request("'dataframe_split.data' must be a list of rows")
    if columns is None:
        return data
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise bad_request("'dataframe_split.columns' must be a list of column names")
    rows = []
    for number, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise bad_request(
                f"row {number} of 'dataframe_split.data' is not a list of {len(columns)} "
                f"values (one per column)"
            )
        rows.append(dict(zip(columns, row, strict=True)))
    return rows


def _columns_to_rows(value: Any) -> Any:
    if isinstance(value, Mapping) and value and all(isinstance(v, list) for v in value.values()):
        lengths = {len(v) for v in value.values()}
        if len(lengths) == 1:
            (count,) = lengths
            keys = list(value)
            return [{k: value[k][i] for k in keys} for i in range(count)]
    return value


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


async def invocations(request: Request, ctx: Ctx) -> Response:
    """``POST /invocations``: the first ``--model``, as ``mlflow models serve`` does."""
    server = ctx.server
    spec = server.config.invocations_model
    if spec is None:
        raise not_found(
            "/invocations serves the first --model; this server was started with "
            "--all-models only: use /v1/models/{name}/run or /v2/models/{name}/infer"
        )
    ctx.model = spec.name
    mime = media_type(request.headers.get("content-type"), ("application/json", "text/csv"))
    config = server.config
    body = await read_body(request, config.max_body_size, config.body_timeout)
    if mime == "text/csv":
        data: Any = parse_csv(body)
    else:
        data, _params = model_input(decode_json(body))
    result = await server.service.run(
        spec.name, data, version=spec.version, stage=spec.stage, reference_id=ctx.request_id
    )
    ctx.version, ctx.record_id = result.version, result.record_id
    return Response('{"predictions":' + result.output_json + "}", media_type="application/json")


def routes(endpoint: Callable[[str, str | None, Any], Any]) -> list[Route]:
    return [Route("/invocations", endpoint("mlflow", "run", invocations), methods=["POST"])]
