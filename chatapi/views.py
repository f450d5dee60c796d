from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views import defaults
from django.views.decorators.http import require_safe
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from chatapi.dispatch import APIView
from chatapi.errors import ServiceUnavailableError, error_body
from chatapi.middleware import API_PREFIX


def index_body() -> dict[str, object]:
    """What `/` and `/api/v1/` say: the name, the API's version, and where to read on."""
    return {
        "name": settings.SPECTACULAR_SETTINGS["TITLE"],
        "version": settings.SPECTACULAR_SETTINGS["VERSION"],
        "links": {
            "api": reverse("api-index"),
            "docs": reverse("docs"),
            "redoc": reverse("redoc"),
            "openapi": reverse("openapi"),
            "health": reverse("health"),
            "admin": reverse("admin:index"),
        },
    }


class ApiIndexView(APIView):
    """The API's front door: what a client finds at /api/v1/."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        operation_id="api_index",
        tags=["index"],
        auth=[],
        summary="Find the API's documents",
        description=(
            "The API's name and version and where its documents are: the interactive docs "
            "(`/docs`), the reference (`/redoc`), this OpenAPI document, the health check and "
            "the admin. Needs no token."
        ),
        responses={
            200: OpenApiResponse(
                inline_serializer(
                    "ApiIndex",
                    {
                        "name": serializers.CharField(),
                        "version": serializers.CharField(),
                        "links": inline_serializer(
                            "ApiIndexLinks",
                            {
                                name: serializers.CharField()
                                for name in ("api", "docs", "redoc", "openapi", "health", "admin")
                            },
                        ),
                    },
                ),
                examples=[
                    OpenApiExample(
                        "The index",
                        value={
                            "name": "chatapi",
                            "version": "1.0.0",
                            "links": {
                                "api": "/api/v1",
                                "docs": "/docs",
                                "redoc": "/redoc",
                                "openapi": "/api/v1/openapi.json",
                                "health": "/api/v1/health",
                                "admin": "/admin/",
                            },
                        },
                    )
                ],
            )
        },
    )
    def get(self, request: Request) -> Response:
        return Response(index_body())


@require_safe
def site_index(request: HttpRequest) -> HttpResponse:
    """`/`: a page of links for a browser, the API index's JSON for anything that prefers
    JSON (curl's `*/*` included)."""
    response: HttpResponse
    if request.get_preferred_type(["application/json", "text/html"]) == "text/html":
        response = render(request, "chatapi/index.html", index_body())
    else:
        response = JsonResponse(index_body(), json_dumps_params={"separators": (",", ":")})
    patch_vary_headers(response, ["Accept"])
    return response


class PingView(APIView):
    """Liveness: the process answers (no database). Also the benchmark's hello world."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        operation_id="ping",
        tags=["health"],
        auth=[],
        summary="Check that the server answers",
        description=(
            'Answers `{"status": "ok"}` as soon as the server process runs, without '
            "touching the database: a liveness check. Needs no token."
        ),
        responses={200: inline_serializer("Ping", {"status": serializers.CharField()})},
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class HealthView(APIView):
    """Liveness and database reachability, for load balancers and uptime checks."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        operation_id="health",
        tags=["health"],
        auth=[],
        summary="Check the server and its database",
        description=(
            "200 when the server answers and reaches PostgreSQL, 503 in the error envelope when "
            "it cannot: for load balancers and uptime checks. Needs no token."
        ),
        responses={
            200: inline_serializer(
                "Health",
                {"status": serializers.CharField(), "database": serializers.CharField()},
            ),
            503: OpenApiResponse(description="PostgreSQL is unreachable (error envelope)."),
        },
    )
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError:
            raise ServiceUnavailableError("The database is unreachable.") from None
        return Response({"status": "ok", "database": "ok"})


class OpenApiSchemaView(SpectacularAPIView):
    """The OpenAPI 3 document, always as JSON (the path says so)."""

    renderer_classes = [OpenApiJsonRenderer]


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 400 handler (malformed requests Django itself refuses). On API routes: the
    envelope, and 413 for a body over API_MAX_BODY_BYTES."""
    if not request.path.startswith(API_PREFIX):
        return defaults.bad_request(request, exception)  # type: ignore[arg-type]
    if isinstance(exception, RequestDataTooBig):
        status, message = (
            413,
            (f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."),
        )
    else:
        status, message = 400, "The request is invalid."
    body = error_body(
        status_code=status, message=message, request_id=getattr(request, "request_id", None)
    )
    return JsonResponse(body, status=status, json_dumps_params={"separators": (",", ":")})
