"""Sign-up, login, refresh and logout, proxied to Supabase Auth; and who am I."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import get_authorization_header
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_claims, request_user
from accounts.gotrue import gotrue_client
from accounts.rls import CallerAPIView
from accounts.serializers import (
    CredentialsSerializer,
    LogoutSerializer,
    MeSerializer,
    RefreshSerializer,
    RegisterResponseSerializer,
    RegisterSerializer,
    SessionSerializer,
)
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
