"""Errors the server answers with, in one place.

Every error body is ``{"error_code": CODE, "message": TEXT}`` (the KServe V2 routes
add ``"error": TEXT``, the field that protocol names). ``CODE`` is always a name of
MLflow's ``ErrorCode`` enum, so MLflow's clients read it. A message never holds a
stack trace, a token, or any value of the request's input: a model's own exception
is named by its type only (its message is in the audit record, which the response's
``X-Request-ID`` finds).

    status  error_code                when
    400     MALFORMED_REQUEST         body not JSON / CSV, not UTF-8, nested too deep
    400     BAD_REQUEST               JSON of the wrong shape; the model raised
    400     INVALID_PARAMETER_VALUE   a bad version number, X-Request-ID, query value
    401     UNAUTHENTICATED           no bearer token, or an unknown one
    403     PERMISSION_DENIED         the token lacks the route's scope
    404     RESOURCE_DOES_NOT_EXIST   model, version or stage not served / not found
    404     ENDPOINT_NOT_FOUND        no such route (405: wrong method)
    408     DEADLINE_EXCEEDED         the client sent its body too slowly
    413     REQUEST_LIMIT_EXCEEDED    the body is larger than --max-body-size
    415     BAD_REQUEST               content type not JSON / CSV, charset not UTF-8
    503     TEMPORARILY_UNAVAILABLE   the registry is unreachable (nothing cached yet),
                                      the spool is full, or the server is stopping
    504     DEADLINE_EXCEEDED         the model call took longer than --timeout
    500     INTERNAL_ERROR            anything else (logged with its traceback)
"""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """An error response: HTTP ``status``, MLflow ``error_code`` and a safe ``message``.

    :param version: the model version that answered, when one did (model errors).
    """

    def __init__(
        self, status: int, error_code: str, message: str, *, version: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.version = version


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BAD_REQUEST", message)


def malformed(message: str) -> ApiError:
    return ApiError(400, "MALFORMED_REQUEST", message)


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", message)


def unsupported_media(message: str) -> ApiError:
    return ApiError(415, "BAD_REQUEST", message)
