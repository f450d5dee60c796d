"""Sign-up, login, refresh and logout, proxied to Supabase Auth; who am I; API keys."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import status
from rest_framework.authentication import get_authorization_header
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_claims, request_user
from accounts.gotrue import gotrue_client
from accounts.models import ApiKey
from accounts.rls import CallerAPIView
from accounts.selectors import api_key_get_for_user, api_key_list
from accounts.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    CredentialsSerializer,
    LogoutSerializer,
    MeSerializer,
    RefreshSerializer,
    RegisterResponseSerializer,
    RegisterSerializer,
    SessionSerializer,
)
from accounts.services import api_key_create, api_key_revoke
from chatapi.dispatch import APIView
from chatapi.ratelimits import AuthRateThrottle

_CREDENTIALS_EXAMPLE = OpenApiExample(
    "credentials",
    value={"email": "ada@example.com", "password": "correct horse battery"},
    request_only=True,
)
_RATE_LIMITED = OpenApiResponse(
    description="Too many sign-up and login attempts from this address "
    "(RATE_LIMIT_AUTH_PER_MINUTE): rate_limit_error with Retry-After."
)
# What Supabase Auth's answers map to (accounts.gotrue), on every proxied route.
_SUPABASE_ERRORS = {
    401: OpenApiResponse(
        description="Supabase Auth refused the credentials or token (authentication_error)."
    ),
    403: OpenApiResponse(description="Supabase Auth does not allow this (permission_error)."),
    429: OpenApiResponse(
        description="Supabase Auth's own rate limit (rate_limit_error, with Retry-After)."
    ),
    502: OpenApiResponse(description="Supabase Auth failed or answered unexpectedly."),
    503: OpenApiResponse(
        description="Supabase Auth timed out (timeout_error) or is not configured here."
    ),
}


class _PublicView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)


class RegisterView(_PublicView):
    throttle_classes = (AuthRateThrottle,)

    @extend_schema(
        operation_id="auth_register",
        tags=["auth"],
        auth=[],
        request=RegisterSerializer,
        responses={
            201: RegisterResponseSerializer,
            **_SUPABASE_ERRORS,
            409: OpenApiResponse(description="The e-mail address is already registered."),
            429: _RATE_LIMITED,
        },
        examples=[_CREDENTIALS_EXAMPLE],
    )
    def post(self, request: Request) -> Response:
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = gotrue_client().sign_up(**serializer.validated_data)
        body = {
            "user": result.user.fields,
            "session": result.session.as_json() if result.session else None,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class LoginView(_PublicView):
    throttle_classes = (AuthRateThrottle,)

    @extend_schema(
        operation_id="auth_login",
        tags=["auth"],
        auth=[],
        request=CredentialsSerializer,
        responses={200: SessionSerializer, **_SUPABASE_ERRORS, 429: _RATE_LIMITED},
        examples=[_CREDENTIALS_EXAMPLE],
    )
    def post(self, request: Request) -> Response:
        serializer = CredentialsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = gotrue_client().sign_in_with_password(**serializer.validated_data)
        return Response(session.as_json())


class RefreshView(_PublicView):
    @extend_schema(
        operation_id="auth_refresh",
        tags=["auth"],
        auth=[],
        request=RefreshSerializer,
        responses={200: SessionSerializer, **_SUPABASE_ERRORS},
        description="Trade a refresh token (single use) for a new session.",
    )
    def post(self, request: Request) -> Response:
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = gotrue_client().refresh_session(**serializer.validated_data)
        return Response(session.as_json())


class LogoutView(CallerAPIView):
    @extend_schema(
        operation_id="auth_logout",
        tags=["auth"],
        request=LogoutSerializer,
        responses={204: None, **_SUPABASE_ERRORS},
        description="Revoke the caller's refresh tokens at Supabase Auth. Access tokens stay "
        "valid until they expire.",
    )
    def post(self, request: Request) -> Response:
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = get_authorization_header(request).split()[1].decode("ascii")
        gotrue_client().sign_out(access_token=token, scope=serializer.validated_data["scope"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(CallerAPIView):
    @extend_schema(operation_id="auth_me", tags=["auth"], responses={200: MeSerializer})
    def get(self, request: Request) -> Response:
        user, claims = request_user(request), request_claims(request)
        body = {
            "id": user.pk,
            "email": user.email,
            "role": claims.role,
            "aal": claims.aal,
            "session_id": claims.session_id,
            "is_anonymous": claims.is_anonymous,
            "date_joined": user.date_joined,
        }
        return Response(MeSerializer(body).data)


_API_KEY_NOT_FOUND = OpenApiResponse(
    description="No API key with this id belongs to the caller, or the id is malformed "
    "(error envelope, not_found_error)."
)
_SESSION_ONLY = OpenApiResponse(
    description="The request was authenticated by an API key: keys are managed only with a "
    "Supabase session (permission_error)."
)


class ApiKeyListView(CallerAPIView):
    """The caller's API keys. Session only: a request made with a key gets 403 here
    (``api_key_scopes`` unset, accounts.permissions)."""

    @extend_schema(
        operation_id="api_keys_list",
        tags=["api-keys"],
        summary="List your API keys",
        description="Every key of the caller, revoked ones too, newest first; never a secret.",
        responses={
            200: inline_serializer("ApiKeyList", {"data": ApiKeySerializer(many=True)}),
            403: _SESSION_ONLY,
        },
    )
    def get(self, request: Request) -> Response:
        keys = api_key_list(user=request_user(request))
        return Response({"data": ApiKeySerializer(keys, many=True).data})

    @extend_schema(
        operation_id="api_keys_create",
        tags=["api-keys"],
        summary="Create an API key",
        description="The answer carries the secret in `key`, this once: store it now. Send it "
        "as `x-api-key: <key>` or `Authorization: Bearer <key>`.",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer, 403: _SESSION_ONLY},
        examples=[
            OpenApiExample(
                "a script's key",
                value={"name": "nightly report", "scopes": ["usage:read"], "expires_at": None},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, secret = api_key_create(user=request_user(request), **serializer.validated_data)
        api_key.key = secret  # type: ignore[attr-defined]  # this answer only
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)


@extend_schema(
    parameters=[
        OpenApiParameter(
            "api_key_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The key's id."
        )
    ]
)
class ApiKeyScopedView(CallerAPIView):
    """Base class of the views under ``/api-keys/{api_key_id}``: the caller's key is resolved
    once, before the handler, as ``self.api_key`` (the same 404 for a malformed, a missing and
    another user's id)."""

    api_key: ApiKey

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.api_key = api_key_get_for_user(
            user=request_user(request), api_key_id=kwargs["api_key_id"]
        )


class ApiKeyDetailView(ApiKeyScopedView):
    @extend_schema(
        operation_id="api_keys_revoke",
        tags=["api-keys"],
        summary="Revoke an API key",
        description="Every server process refuses the key (401) from the next request on. "
        "The key stays listed, with revoked_at.",
        responses={204: None, 403: _SESSION_ONLY, 404: _API_KEY_NOT_FOUND},
    )
    def delete(self, request: Request, api_key_id: str) -> Response:
        api_key_revoke(api_key=self.api_key)
        return Response(status=status.HTTP_204_NO_CONTENT)
