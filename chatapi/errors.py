"""The API's one error envelope, shared by DRF views, Django's handlers and middleware.

Shape (Anthropic's): ``{"type": "error", "error": {"type", "message", "details"?},
"request_id": "req_..."}``, as in https://docs.anthropic.com/en/api/errors.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)

BEARER_CHALLENGE = 'Bearer realm="api"'

ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    406: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

DEFAULT_MESSAGE_BY_STATUS = {
    400: "The request is invalid.",
    401: "Authentication is required.",
    402: "Your usage budget is spent.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    413: "The request is too large.",
    429: "Too many requests.",
    500: "Internal server error.",
    503: "The service is temporarily unavailable.",
}


# The lowest status of each error type: the one an error is answered with when only its type
# is known (a stored failure).
_STATUS_BY_ERROR_TYPE = {
    error_type: status_code for status_code, error_type in reversed(ERROR_TYPE_BY_STATUS.items())
}


def status_for_error_type(error_type: str, *, default: int) -> int:
    """The status an error known only by its type is answered with; ``default`` for
    ``api_error``, which stands for every server-side failure, and for unknown types."""
    if error_type == "api_error":
        return default
    return _STATUS_BY_ERROR_TYPE.get(error_type, default)


def error_type_for_status(status_code: int) -> str:
    if status_code in ERROR_TYPE_BY_STATUS:
        return ERROR_TYPE_BY_STATUS[status_code]
    return "api_error" if status_code >= 500 else "invalid_request_error"


def error_body(
    *,
    status_code: int,
    message: str | None = None,
    error_type: str | None = None,
    details: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "type": error_type or error_type_for_status(status_code),
        "message": message or DEFAULT_MESSAGE_BY_STATUS.get(status_code, "Request failed."),
    }
    if details:
        error["details"] = details
    return {"type": "error", "error": error, "request_id": request_id}


def request_id_of(request: HttpRequest | None) -> str | None:
    return getattr(request, "request_id", None)


class ApiError(exceptions.APIException):
    """An application error with an explicit envelope type, status and optional details."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    error_type: str | None = None
    default_detail = "The request is invalid."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail=message)
        self.details = details
        self.headers = headers or {}


def api_error(
    status_code: int,
    message: str,
    *,
    error_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> ApiError:
    """An ApiError with a status known only at run time (e.g. mapped from an upstream)."""
    error = ApiError(message, headers=headers)
    error.status_code = status_code
    error.error_type = error_type
    return error


class AuthenticationError(ApiError):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "Authentication failed."


class BillingError(ApiError):
    """A usage budget is spent: the message names the limit and when it resets."""

    status_code = status.HTTP_402_PAYMENT_REQUIRED
    error_type = "billing_error"
    default_detail = "Your usage budget is spent."


class PermissionDeniedError(ApiError):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "You do not have permission to perform this action."


class RateLimitedError(ApiError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Too many requests."


class NotFoundError(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "Not found."


class ConflictError(ApiError):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."


class ServiceUnavailableError(ApiError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The service is temporarily unavailable."


class UpstreamError(ApiError):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "An upstream service failed."


class UpstreamTimeoutError(ApiError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    error_type = "timeout_error"
    default_detail = "An upstream service timed out."


def _flatten_validation_detail(detail: Any) -> Any:
    """DRF's ErrorDetail tree as plain JSON: strings and lists of strings per field."""
    if isinstance(detail, dict):
        return {str(key): _flatten_validation_detail(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten_validation_detail(item) for item in detail]
    return str(detail)


def _validation_message(details: Any) -> str:
    if isinstance(details, dict) and details:
        field, problems = next(iter(details.items()))
        first = problems[0] if isinstance(problems, list) and problems else problems
        if isinstance(first, (dict, list)):
            return f"Invalid value for '{field}'."
        if field == "non_field_errors":
            return str(first)
        return f"{field}: {first}"
    if isinstance(details, list) and details:
        return str(details[0])
    return "The request is invalid."


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every exception a DRF view raises leaves in the envelope."""
    request = context.get("request")
    if isinstance(exc, Http404):
        exc = NotFoundError()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, (OperationalError, InterfaceError)):
        # PostgreSQL is down or restarting, or the pool had no connection in time: the
        # request may succeed if retried shortly, so 503 as /health says, never a 500.
        logger.warning("database unreachable: %s", str(exc).strip())
        exc = ServiceUnavailableError("The database is unreachable; try again shortly.")

    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: Django logs it and the middleware renders a 500 envelope

    headers: dict[str, str] = {}
    details: dict[str, Any] | None = None
    if isinstance(exc, ApiError):
        message = str(exc.detail)
        details = exc.details
        headers.update(exc.headers)
        error_type = exc.error_type
    elif isinstance(exc, exceptions.ValidationError):
        flat = _flatten_validation_detail(exc.detail)
        details = {"fields": flat} if isinstance(flat, dict) else {"errors": flat}
        message = _validation_message(flat)
        error_type = None
    else:
        message = str(exc.default_detail if isinstance(exc.detail, (dict, list)) else exc.detail)
        error_type = None

    # APIView.handle_exception already chose 401 and the challenge for auth failures.
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    elif exc.status_code == status.HTTP_401_UNAUTHORIZED:
        # RFC 7235: every 401 carries a challenge (login/refresh failures included).
        headers["WWW-Authenticate"] = BEARER_CHALLENGE
    wait = getattr(exc, "wait", None)  # Throttled's seconds until a retry may succeed
    if wait is not None:
        headers["Retry-After"] = str(int(wait))

    body = error_body(
        status_code=exc.status_code,
        message=message,
        error_type=error_type,
        details=details,
        request_id=request_id_of(request),
    )
    return Response(body, status=exc.status_code, headers=headers)
