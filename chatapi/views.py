from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from chatapi.dispatch import APIView
from chatapi.errors import ServiceUnavailableError, error_body
from chatapi.middleware import API_PREFIXES


class PingView(APIView):
    """Liveness: the process answers (no database). Also the benchmark's hello world."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(
        operation_id="ping",
        tags=["health"],
        auth=[],
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
    if not request.path.startswith(API_PREFIXES):
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
