"""What every route shares: the request's context, JSON responses, error bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from ._errors import ApiError

if TYPE_CHECKING:
    from ._app import Server

__all__ = ["Ctx", "error_response", "json_response"]


@dataclass
class Ctx:
    """Per request: its id, and what the access log and metrics report about it."""

    server: Server
    request_id: str
    protocol: str
    model: str = ""
    version: int | None = None
    record_id: str | None = None
    error_code: str | None = None
    auth: str = "none"


def json_response(body: Any, status: int = 200) -> Response:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return Response(text, status_code=status, media_type="application/json")


def error_response(error: ApiError, protocol: str) -> Response:
    body: dict[str, Any] = {"error_code": error.error_code, "message": error.message}
    if protocol == "v2":
        body = {"error": error.message, **body}
    response = json_response(body, error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="umlaut"'
    return response
