"""What the OpenAPI document says about errors, for every operation at once (a
drf-spectacular postprocessing hook, see SPECTACULAR_SETTINGS in chatapi/settings.py)."""

from typing import Any

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
    give every error response the envelope's schema."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method == "parameters":
                continue
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
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
    return result
