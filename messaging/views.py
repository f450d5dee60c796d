"""A conversation's messages."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from chatapi.pagination import PageParams, PageQuerySerializer, page_body, page_schema
from conversations.views import INVALID_RESPONSE, NOT_FOUND_RESPONSE, ConversationScopedView
from messaging.selectors import message_list
from messaging.serializers import MessageSerializer

_MESSAGES_EXAMPLE: list[dict[str, Any]] = [
    {
        "id": "5f0a2c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b",
        "conversation_id": "0b9c3f0e-7d3c-4a53-9d3e-2f1a6f4e8b21",
        "role": "user",
        "content": "Three things to see in Lisbon?",
        "reasoning": "",
        "status": "complete",
        "stop_reason": None,
        "model": None,
        "usage": {"input_tokens": None, "output_tokens": None, "estimated": False},
        "latency_ms": None,
        "ttft_ms": None,
        "cost_usd": None,
        "error": None,
        "created_at": "2026-11-26T12:00:05.000000Z",
        "completed_at": "2026-11-26T12:00:05.000000Z",
    },
    {
        "id": "6a1b3d2f-4c5e-4f70-9bac-1d2e3f4a5b6c",
        "conversation_id": "0b9c3f0e-7d3c-4a53-9d3e-2f1a6f4e8b21",
        "role": "assistant",
        "content": "Belem Tower, the Alfama, and the LX Factory.",
        "reasoning": "The user wants three sights.",
        "status": "complete",
        "stop_reason": "end_turn",
        "model": "openai/gpt-oss-20b",
        "usage": {"input_tokens": 42, "output_tokens": 17, "estimated": False},
        "latency_ms": 812,
        "ttft_ms": 95,
        "cost_usd": "0.0000082500",
        "error": None,
        "created_at": "2026-11-26T12:00:05.100000Z",
        "completed_at": "2026-11-26T12:00:05.912000Z",
    },
]


class ConversationMessagesView(ConversationScopedView):
    """``/conversations/{id}/messages``. The conversation is the caller's (see the base
    class); handlers use ``self.conversation``."""

    @extend_schema(
        operation_id="conversations_messages_list",
        tags=["messages"],
        summary="List a conversation's messages",
        description="Oldest first. Keyset pagination: pass a page's last_id as after_id for "
        "the next page, its first_id as before_id for the previous one.",
        parameters=[PageQuerySerializer],
        responses={
            200: page_schema("MessageList", MessageSerializer),
            400: INVALID_RESPONSE,
            404: NOT_FOUND_RESPONSE,
        },
        examples=[
            OpenApiExample(
                "page",
                value={
                    "data": _MESSAGES_EXAMPLE,
                    "has_more": False,
                    "first_id": _MESSAGES_EXAMPLE[0]["id"],
                    "last_id": _MESSAGES_EXAMPLE[-1]["id"],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        query = PageQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        page = message_list(
            conversation=self.conversation, page=PageParams.from_query(query.validated_data)
        )
        return Response(page_body(page, MessageSerializer))
