"""What the OpenAPI document says about errors, for every operation at once (a
drf-spectacular postprocessing hook, see SPECTACULAR_SETTINGS in chatapi/settings.py)."""

from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ServerSentEventSerializer(serializers.Serializer[dict[str, str]]):
    """One event of a ``text/event-stream`` answer, as clients (and Schemathesis) read it."""

    id = serializers.CharField(required=False, help_text="For Last-Event-ID.")
    event = serializers.CharField(required=False, help_text="Equals data.type.")
    # The wire name; shadows Serializer.data, which this schema-only serializer never uses.
    data = serializers.CharField(help_text="One JSON document.")  # type: ignore[assignment]


def sse_schema_response(description: str) -> OpenApiResponse:
    """A ``text/event-stream`` answer, described per event."""
    return OpenApiResponse(ServerSentEventSerializer, description=description)


ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The one error envelope of every API error.",
    "properties": {
        "type": {"type": "string", "enum": ["error"]},
        "error": {
            "type": "object",
            "properties": {
                "type": {
                    "type": "string",
                    "description": "invalid_request_error, authentication_error, "
                    "billing_error, permission_error, not_found_error, request_too_large, "
                    "rate_limit_error, api_error, timeout_error or overloaded_error.",
                },
                "message": {"type": "string"},
                "details": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "Machine-readable specifics, e.g. the problems per field "
                    "in `fields`; absent when there are none.",
                },
            },
            "required": ["type", "message"],
        },
        "request_id": {"type": "string", "description": "Also in the request-id header."},
    },
    "required": ["type", "error", "request_id"],
}

OPENAI_ERROR_REF = {"$ref": "#/components/schemas/OpenAIError"}
OPENAI_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The envelope as OpenAI's error shape, on the OpenAI-compatible routes.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": "string", "nullable": True},
                "code": {"type": "string", "nullable": True},
            },
            "required": ["message", "type", "param", "code"],
        },
        "request_id": {"type": "string"},
    },
    "required": ["error"],
}
# What an operation's ``x-error-shape`` extension (extend_schema(extensions=...)) asks for.
_ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "envelope": ERROR_REF,
    "openai": OPENAI_ERROR_REF,
    # /v1/models: Anthropic's (the envelope) with anthropic-version, OpenAI's without.
    "either": {"oneOf": [ERROR_REF, OPENAI_ERROR_REF]},
}

_UNAUTHENTICATED = (
    "The access token is missing, malformed, expired or not accepted (error envelope, "
    "authentication_error, with WWW-Authenticate: Bearer)."
)
_INVALID = (
    "The request is invalid: malformed JSON or a problem with a field or parameter "
    "(error envelope, invalid_request_error, with the problems per field in "
    "error.details.fields)."
)
_TOO_LARGE = "The body is over API_MAX_BODY_BYTES (error envelope, request_too_large)."
_UNSUPPORTED_MEDIA_TYPE = (
    "The body is not application/json (error envelope, invalid_request_error)."
)


def _takes_input(operation: dict[str, Any]) -> bool:
    return "requestBody" in operation or any(
        parameter.get("in") != "path" for parameter in operation.get("parameters", [])
    )


def document_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Add the answers every operation can give whatever its view says: 401 where a token is
    required, 400 where there is input to reject, 413 and 415 where there is a body; and
    give every error response the envelope's schema (or the one ``x-error-shape`` names)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["OpenAIError"] = OPENAI_ERROR_SCHEMA
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method == "parameters":
                continue
            error_schema = _ERROR_SCHEMAS[operation.pop("x-error-shape", "envelope")]
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if operation.get("security") and {} not in operation["security"]:
                responses.setdefault("401", {"description": _UNAUTHENTICATED})
            if _takes_input(operation):
                responses.setdefault("400", {"description": _INVALID})
            if "requestBody" in operation:
                responses.setdefault("413", {"description": _TOO_LARGE})
                responses.setdefault("415", {"description": _UNSUPPORTED_MEDIA_TYPE})
            for status, response in responses.items():
                if status[0] in "45" and "content" not in response:
                    response["content"] = {"application/json": {"schema": error_schema}}
    return result
