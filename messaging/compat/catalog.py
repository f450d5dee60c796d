"""``GET /v1/models`` for both SDKs' ``models.list()`` (and ``retrieve``), from the one
catalog: Anthropic's page when the request carries ``anthropic-version`` (the Anthropic SDK
always sends it), OpenAI's list otherwise."""

from datetime import UTC, datetime
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import scopes_all
from messaging.compat.base import CompatView, model_or_404
from messaging.compat.openai import openai_error_body
from usage.catalog import ChatModel, chat_models

TAG = "compatibility"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ANTHROPIC_VERSION = OpenApiParameter(
    "anthropic-version",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Present: Anthropic's shapes; absent: OpenAI's.",
)


def _anthropic(model: ChatModel) -> dict[str, Any]:
    created = model.created_at or _EPOCH
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.display_name,
        "created_at": created.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def _openai(model: ChatModel) -> dict[str, Any]:
    return {
        "id": model.id,
        "object": "model",
        "created": int((model.created_at or _EPOCH).timestamp()),
        "owned_by": model.provider,
    }


class _ModelsView(CompatView):
    api_key_scopes = scopes_all(None)  # the catalog: any key

    def anthropic(self, request: Request) -> bool:
        return "anthropic-version" in request.headers

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if not self.anthropic(self.request) and isinstance(response.data, dict):
            response.data = openai_error_body(response.data, response.status_code)
        return response


class CompatModelListView(_ModelsView):
    @extend_schema(
        operation_id="compat_models_list",
        tags=[TAG],
        summary="Models, for the Anthropic and OpenAI SDKs",
        description="With anthropic-version: Anthropic's page (data, has_more, first_id, "
        "last_id; one page); without: OpenAI's list (object: list).",
        parameters=[_ANTHROPIC_VERSION],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT)},
        extensions={"x-error-shape": "either"},
    )
    def get(self, request: Request) -> Response:
        models = chat_models()
        if self.anthropic(request):
            return Response(
                {
                    "data": [_anthropic(model) for model in models],
                    "has_more": False,
                    "first_id": models[0].id if models else None,
                    "last_id": models[-1].id if models else None,
                }
            )
        return Response({"object": "list", "data": [_openai(model) for model in models]})


class CompatModelDetailView(_ModelsView):
    @extend_schema(
        operation_id="compat_models_retrieve",
        tags=[TAG],
        summary="One model, for the Anthropic and OpenAI SDKs",
        description="What models.retrieve() reads: Anthropic's shape with anthropic-version, "
        "OpenAI's without; 404 for an id the catalog does not offer.",
        parameters=[
            _ANTHROPIC_VERSION,
            OpenApiParameter("model_id", OpenApiTypes.STR, OpenApiParameter.PATH),
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT),
            404: OpenApiResponse(description="Not a model of the catalog."),
        },
        extensions={"x-error-shape": "either"},
    )
    def get(self, request: Request, model_id: str) -> Response:
        model = model_or_404(model_id)
        return Response(_anthropic(model) if self.anthropic(request) else _openai(model))
