"""Conversations: create, list, read, change, delete."""

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_user
from accounts.rls import CallerAPIView
from chatapi.pagination import PageParams, page_body, page_schema
from conversations.export import (
    ConversationExportQuerySerializer,
    ConversationExportSerializer,
    transcript_export,
)
from conversations.models import Conversation
from conversations.selectors import (
    conversation_get_for_user,
    conversation_list,
    conversation_transcript,
)
from conversations.serializers import (
    ConversationCreateSerializer,
    ConversationListQuerySerializer,
    ConversationSerializer,
    ConversationUpdateSerializer,
)
from conversations.services import conversation_create, conversation_delete, conversation_update

NOT_FOUND_RESPONSE = OpenApiResponse(
    description="No conversation with this id belongs to the caller, or the id is malformed "
    "(error envelope, not_found_error)."
)
INVALID_RESPONSE = OpenApiResponse(
    description="Validation failed (error envelope, invalid_request_error, with the "
    "problems per field in error.details.fields)."
)

_CONVERSATION_EXAMPLE = {
    "id": "0b9c3f0e-7d3c-4a53-9d3e-2f1a6f4e8b21",
    "title": "Trip to Lisbon",
    "model": "openai/gpt-oss-20b",
    "system_prompt": "You are a concise travel assistant.",
    "temperature": 0.7,
    "max_output_tokens": 4096,
    "reasoning_effort": "low",
    "metadata": {"client": "web"},
    "archived": False,
    "created_at": "2026-11-26T12:00:00.000000Z",
    "updated_at": "2026-11-26T12:00:00.000000Z",
    "last_message_at": None,
}


# Subclasses inherit this description of the path parameter.
@extend_schema(
    parameters=[
        OpenApiParameter(
            "conversation_id",
            OpenApiTypes.UUID,
            OpenApiParameter.PATH,
            description="The conversation's id.",
        )
    ]
)
class ConversationScopedView(CallerAPIView):
    """Base class of every view under ``/conversations/{conversation_id}``.

    The caller's conversation is resolved once, after authentication and before the handler
    runs, and handed over as ``self.conversation``: a subclass never checks ownership itself.
    Handlers take ``conversation_id`` from the URL and ignore it.
    """

    conversation: Conversation

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.conversation = conversation_get_for_user(
            user=request_user(request), conversation_id=kwargs["conversation_id"]
        )


class ConversationListView(CallerAPIView):
    @extend_schema(
        operation_id="conversations_list",
        tags=["conversations"],
        summary="List conversations",
        description="The caller's conversations, most recent activity (creation or last "
        "message) first. Keyset pagination: pass a page's last_id as after_id for the next "
        "page, its first_id as before_id for the previous one.",
        parameters=[ConversationListQuerySerializer],
        responses={
            200: page_schema("ConversationList", ConversationSerializer),
            400: INVALID_RESPONSE,
        },
        examples=[
            OpenApiExample(
                "page",
                value={
                    "data": [_CONVERSATION_EXAMPLE],
                    "has_more": True,
                    "first_id": _CONVERSATION_EXAMPLE["id"],
                    "last_id": _CONVERSATION_EXAMPLE["id"],
                },
                response_only=True,
            ),
        ],
    )
    def get(self, request: Request) -> Response:
        query = ConversationListQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        page = conversation_list(
            user=request_user(request),
            page=PageParams.from_query(query.validated_data),
            archived=query.validated_data.get("archived"),
            q=query.validated_data.get("q", ""),
        )
        return Response(page_body(page, ConversationSerializer))

    @extend_schema(
        operation_id="conversations_create",
        tags=["conversations"],
        summary="Create a conversation",
        description=(
            "Starts an empty conversation owned by the caller; send messages to it with POST "
            "/conversations/{conversation_id}/messages. Every field is optional: `model` "
            "defaults to the server's default model (GET /models lists the others), an empty "
            "`title` is filled in from the first message, and null temperature, "
            "max_output_tokens and reasoning_effort use the model's defaults."
        ),
        request=ConversationCreateSerializer,
        responses={201: ConversationSerializer, 400: INVALID_RESPONSE},
        examples=[
            OpenApiExample(
                "minimal",
                summary="Defaults for everything",
                value={"title": "Trip to Lisbon"},
                request_only=True,
            ),
            OpenApiExample(
                "full",
                summary="Every setting",
                value={
                    "title": "Trip to Lisbon",
                    "model": "openai/gpt-oss-20b",
                    "system_prompt": "You are a concise travel assistant.",
                    "temperature": 0.7,
                    "max_output_tokens": 4096,
                    "reasoning_effort": "low",
                    "metadata": {"client": "web"},
                },
                request_only=True,
            ),
            OpenApiExample(
                "created",
                value=_CONVERSATION_EXAMPLE,
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        serializer = ConversationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = conversation_create(owner=request_user(request), **serializer.validated_data)
        return Response(ConversationSerializer(conversation).data, status=status.HTTP_201_CREATED)


class ConversationDetailView(ConversationScopedView):
    @extend_schema(
        operation_id="conversations_retrieve",
        tags=["conversations"],
        summary="Get a conversation",
        description=(
            "One of the caller's conversations with its settings; its messages are at GET "
            "/conversations/{conversation_id}/messages. Another user's conversation is a 404, "
            "as a missing one is."
        ),
        responses={200: ConversationSerializer, 404: NOT_FOUND_RESPONSE},
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        return Response(ConversationSerializer(self.conversation).data)

    @extend_schema(
        operation_id="conversations_update",
        tags=["conversations"],
        summary="Change a conversation",
        description="Changes only the fields sent; null resets temperature, "
        "max_output_tokens and reasoning_effort to the defaults.",
        request=ConversationUpdateSerializer,
        responses={200: ConversationSerializer, 400: INVALID_RESPONSE, 404: NOT_FOUND_RESPONSE},
        examples=[
            OpenApiExample("rename", value={"title": "Lisbon, 3 days"}, request_only=True),
            OpenApiExample("archive", value={"archived": True}, request_only=True),
        ],
    )
    def patch(self, request: Request, conversation_id: str) -> Response:
        serializer = ConversationUpdateSerializer(
            self.conversation, data=request.data, partial=True
        )
        serializer.is_valid(raise_exception=True)
        conversation = conversation_update(
            conversation=self.conversation, data=serializer.validated_data
        )
        return Response(ConversationSerializer(conversation).data)

    @extend_schema(
        operation_id="conversations_delete",
        tags=["conversations"],
        summary="Delete a conversation",
        description="Deletes the conversation and its messages, for good.",
        responses={204: None, 404: NOT_FOUND_RESPONSE},
    )
    def delete(self, request: Request, conversation_id: str) -> Response:
        conversation_delete(conversation=self.conversation)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationExportView(ConversationScopedView):
    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # ?format= names the export's format here, not one of DRF's renderers; errors
        # are JSON envelopes whatever the format asked for.
        return JSONRenderer(), "application/json"

    @extend_schema(
        operation_id="conversations_export",
        tags=["conversations"],
        summary="Export a conversation",
        description="The conversation and all its messages as a file to download "
        "(Content-Disposition: attachment). format=json (the default): the conversation "
        "and each message in the shapes the API returns them, oldest first, plus totals. "
        "format=markdown: a readable transcript, reasoning in collapsed <details> blocks, "
        "with each answer's model, tokens, cost, latency and time to first token.",
        parameters=[ConversationExportQuerySerializer],
        responses={
            (200, "application/json"): ConversationExportSerializer,
            (200, "text/markdown"): OpenApiResponse(
                OpenApiTypes.STR, description="With format=markdown."
            ),
            400: INVALID_RESPONSE,
            404: NOT_FOUND_RESPONSE,
        },
    )
    def get(self, request: Request, conversation_id: str) -> HttpResponse:
        query = ConversationExportQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        return transcript_export(
            transcript=conversation_transcript(conversation=self.conversation),
            export_format=query.validated_data["format"],
        ).as_response()
