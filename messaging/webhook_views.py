"""``/webhooks``: a user's webhook endpoints and their delivery logs."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_user
from accounts.rls import CallerAPIView
from chatapi.pagination import PageParams, PageQuerySerializer, page_body, page_schema
from conversations.views import CONVERSATION_SCOPES, INVALID_RESPONSE
from messaging.models import WebhookEndpoint
from messaging.serializers import (
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
)
from messaging.webhooks import (
    webhook_delivery_list,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_get_for_user,
    webhook_endpoint_list,
)

_NOT_FOUND = OpenApiResponse(
    description="No webhook endpoint with this id belongs to the caller, or the id is "
    "malformed (error envelope, not_found_error)."
)


class WebhookListView(CallerAPIView):
    """The caller's webhook endpoints. API keys: conversations:read to list, conversations:write
    to create (webhooks tell of conversations' messages)."""

    api_key_scopes = CONVERSATION_SCOPES

    @extend_schema(
        operation_id="webhooks_list",
        tags=["webhooks"],
        summary="List your webhook endpoints",
        description="The caller's endpoints, newest first; never their secrets. Keyset "
        "pagination: pass a page's last_id as after_id for the next page.",
        parameters=[PageQuerySerializer],
        responses={
            200: page_schema("WebhookEndpointList", WebhookEndpointSerializer),
            400: INVALID_RESPONSE,
        },
    )
    def get(self, request: Request) -> Response:
        query = PageQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        page = webhook_endpoint_list(
            owner=request_user(request), page=PageParams.from_query(query.validated_data)
        )
        return Response(page_body(page, WebhookEndpointSerializer))

    @extend_schema(
        operation_id="webhooks_create",
        tags=["webhooks"],
        summary="Create a webhook endpoint",
        description="The URL is told of the events named, each a POST signed the Standard "
        "Webhooks way (webhook-id, webhook-timestamp, webhook-signature: HMAC-SHA256 with the "
        "secret) and retried with backoff for 24 hours until it answers 2xx. The answer "
        "carries the signing secret this once: store it now. 400 for a URL that is not https "
        "or whose host resolves to a private, loopback or link-local address.",
        request=WebhookEndpointCreateSerializer,
        responses={201: WebhookEndpointCreatedSerializer, 400: INVALID_RESPONSE},
        examples=[
            OpenApiExample(
                "every answer's end",
                value={
                    "url": "https://example.com/hooks/chatapi",
                    "events": ["message.completed", "message.failed", "message.cancelled"],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = WebhookEndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(
            owner=request_user(request),
            url=serializer.validated_data["url"],
            events=serializer.validated_data["events"],
        )
        return Response(
            WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED
        )


@extend_schema(
    parameters=[
        OpenApiParameter(
            "endpoint_id",
            OpenApiTypes.UUID,
            OpenApiParameter.PATH,
            description="The webhook endpoint's id.",
        )
    ]
)
class WebhookScopedView(CallerAPIView):
    """Base class of the views under ``/webhooks/{endpoint_id}``: the caller's endpoint is
    resolved once, before the handler, as ``self.endpoint`` (the same 404 for a malformed, a
    missing and another user's id)."""

    api_key_scopes = CONVERSATION_SCOPES
    endpoint: WebhookEndpoint

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.endpoint = webhook_endpoint_get_for_user(
            user=request_user(request), endpoint_id=kwargs["endpoint_id"]
        )


class WebhookDetailView(WebhookScopedView):
    @extend_schema(
        operation_id="webhooks_retrieve",
        tags=["webhooks"],
        summary="Get a webhook endpoint",
        description="The endpoint's URL and events; never its secret.",
        responses={200: WebhookEndpointSerializer, 404: _NOT_FOUND},
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        return Response(WebhookEndpointSerializer(self.endpoint).data)

    @extend_schema(
        operation_id="webhooks_delete",
        tags=["webhooks"],
        summary="Delete a webhook endpoint",
        description="The endpoint and its delivery log are deleted; deliveries not yet sent "
        "are dropped.",
        responses={204: None, 404: _NOT_FOUND},
    )
    def delete(self, request: Request, endpoint_id: str) -> Response:
        webhook_endpoint_delete(endpoint=self.endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveriesView(WebhookScopedView):
    @extend_schema(
        operation_id="webhooks_deliveries_list",
        tags=["webhooks"],
        summary="List an endpoint's deliveries",
        description="The delivery log, newest first: each event sent to the endpoint with its "
        "webhook-id, status (pending, delivered, failed), attempts, the next attempt's time, "
        "the last HTTP status and error, and the body sent. Keyset pagination as for the "
        "other lists.",
        parameters=[PageQuerySerializer],
        responses={
            200: page_schema("WebhookDeliveryList", WebhookDeliverySerializer),
            400: INVALID_RESPONSE,
            404: _NOT_FOUND,
        },
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        query = PageQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        page = webhook_delivery_list(
            endpoint=self.endpoint, page=PageParams.from_query(query.validated_data)
        )
        return Response(page_body(page, WebhookDeliverySerializer))
