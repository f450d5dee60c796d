"""API key scopes as a DRF permission that every view answers to.

A view says what a key needs per HTTP method in ``api_key_scopes``; a request authenticated by
a Supabase session is not concerned. A view that says nothing is for sessions only (key
management, logout, who am I): a key gets 403 there, so a new route is closed to keys until
it names its scope.
"""

from collections.abc import Mapping
from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.keys import ApiKeyCaller
from accounts.models import ApiKeyScope
from chatapi.errors import PermissionDeniedError

# A method mapped to None: any key may call it (the model catalog).
ApiKeyScopes = Mapping[str, ApiKeyScope | None]

_READ_METHODS = ("GET", "HEAD", "OPTIONS")
_WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def scopes_read_write(*, read: ApiKeyScope | None, write: ApiKeyScope | None) -> ApiKeyScopes:
    """Reads need ``read``, changes ``write``."""
    return {**dict.fromkeys(_READ_METHODS, read), **dict.fromkeys(_WRITE_METHODS, write)}


def scopes_all(scope: ApiKeyScope | None) -> ApiKeyScopes:
    """Every method needs ``scope`` (a POST that only reads, such as counting tokens)."""
    return scopes_read_write(read=scope, write=scope)


class ApiKeyScopePermission(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        caller = request.auth
        if not isinstance(caller, ApiKeyCaller):
            return True
        scopes: ApiKeyScopes | None = getattr(view, "api_key_scopes", None)
        if scopes is None or (request.method or "") not in scopes:
            raise PermissionDeniedError(
                "API keys cannot use this route: it needs a Supabase session.",
                details={"required": "session"},
            )
        required = scopes[request.method or ""]
        if required is not None and required not in caller.scopes:
            raise PermissionDeniedError(
                f"This API key lacks the scope '{required}'.",
                details={"required_scope": str(required)},
            )
        return True
