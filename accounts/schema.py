"""How drf-spectacular describes the two ways in (a Supabase token, an API key) in the OpenAPI
schema."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema


class SupabaseJWTScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "accounts.authentication.SupabaseJWTAuthentication"
    name = "BearerAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Supabase access token (or `manage.py dev_token` in development).",
        }


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "x-api-key",
            "description": "An API key (POST /api/v1/api-keys), also accepted as "
            "`Authorization: Bearer <key>`. A key reaches the routes its scopes allow "
            "(conversations:read, conversations:write, usage:read) and the model list; the "
            "key routes and /auth need a Supabase session (403 permission_error).",
        }
