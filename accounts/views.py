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
_SESSION_EXAMPLE = {
    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
    "token_type": "bearer",
    "expires_in": 3600,
    "expires_at": 1796400000,
    "refresh_token": "v1.MjQ0NzE2ZTQtYz...",
}
_USER_EXAMPLE = {
    "id": "1cf51d21-83b6-5cc5-b53d-7737a0b5348a",
    "email": "ada@example.com",
    "phone": "",
    "role": "authenticated",
    "email_confirmed_at": "2026-11-26T12:00:00Z",
    "created_at": "2026-11-26T12:00:00Z",
    "updated_at": "2026-11-26T12:00:00Z",
    "user_metadata": {},
}
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
        summary="Create an account",
        description=(
            "Registers an e-mail address and password with Supabase Auth. When the project "
            "confirms e-mail addresses, `session` is null and the user must follow the link "
            "Supabase sent before logging in; otherwise `session` holds the first access token "
            "and refresh token. The password is 6 to 72 characters. Needs no token."
        ),
        request=RegisterSerializer,
        responses={
            201: RegisterResponseSerializer,
            **_SUPABASE_ERRORS,
            409: OpenApiResponse(description="The e-mail address is already registered."),
            429: _RATE_LIMITED,
        },
        examples=[
            _CREDENTIALS_EXAMPLE,
            OpenApiExample(
                "registered",
                summary="Registered, e-mail confirmation off",
                value={"user": _USER_EXAMPLE, "session": _SESSION_EXAMPLE},
                response_only=True,
                status_codes=["201"],
            ),
        ],
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
        summary="Log in with e-mail and password",
        description=(
            "Trades an e-mail address and password for a session at Supabase Auth. Send the "
            "`access_token` as `Authorization: Bearer <access_token>` on every other request "
            "until it expires (`expires_in` seconds), then get a new one from POST "
            "/auth/refresh with the `refresh_token`. Needs no token."
        ),
        request=CredentialsSerializer,
        responses={200: SessionSerializer, **_SUPABASE_ERRORS, 429: _RATE_LIMITED},
        examples=[
            _CREDENTIALS_EXAMPLE,
            OpenApiExample("session", value=_SESSION_EXAMPLE, response_only=True),
        ],
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
        summary="Refresh a session",
        description=(
            "Trades a refresh token for a new session: a new access token and a new refresh "
            "token. A refresh token works once; keep the new one. Needs no access token (the "
            "old one may have expired)."
        ),
        examples=[
            OpenApiExample(
                "refresh token", value={"refresh_token": "v1.MjQ0NzE2ZTQtYz..."}, request_only=True
            ),
            OpenApiExample("session", value=_SESSION_EXAMPLE, response_only=True),
        ],
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
        summary="Log out",
        description=(
            "Revokes the caller's refresh tokens at Supabase Auth: of this session (`local`, "
            "the default), of every session (`global`) or of every other one (`others`). "
            "Access tokens already issued stay valid until they expire."
        ),
        examples=[OpenApiExample("every session", value={"scope": "global"}, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = get_authorization_header(request).split()[1].decode("ascii")
        gotrue_client().sign_out(access_token=token, scope=serializer.validated_data["scope"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(CallerAPIView):
    @extend_schema(
        operation_id="auth_me",
        tags=["auth"],
        summary="Who am I",
        description=(
            "The user the access token belongs to, and what the token says about the session: "
            "its role, its assurance level (`aal1`, or `aal2` after a second factor) and its id. "
            "A quick way to check that a token is accepted."
        ),
        responses={200: MeSerializer},
        examples=[
            OpenApiExample(
                "me",
                value={
                    "id": "1cf51d21-83b6-5cc5-b53d-7737a0b5348a",
                    "email": "ada@example.com",
                    "role": "authenticated",
                    "aal": "aal1",
                    "session_id": "fbe6048b-3695-4719-a234-31ed0b995db5",
                    "is_anonymous": False,
                    "date_joined": "2026-11-26T12:00:00Z",
                },
                response_only=True,
            )
        ],
    )
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
