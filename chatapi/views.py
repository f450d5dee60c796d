from django.db import DatabaseError, connection
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatapi.errors import ServiceUnavailableError


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
