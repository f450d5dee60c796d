"""A conversation's messages: the history, and sending a new one (JSON or SSE)."""

import functools
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.http import HttpResponseBase, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_api_key_id, request_user
from chatapi import daphne_writes, shutdown
from chatapi.dispatch import ContinueOnLoop
from chatapi.errors import ApiError, ConflictError, api_error, status_for_error_type
from chatapi.openapi import sse_schema_response
from chatapi.pagination import PageParams, page_body, page_schema, simple_page_query
from chatapi.ratelimits import SendRateThrottle
from conversations.models import Conversation, Message
from conversations.selectors import (
    message_get_in_conversation,
    message_list,
    message_with_siblings,
)
from conversations.serializers import MessageListQuerySerializer, MessageSerializer
from conversations.views import INVALID_RESPONSE, NOT_FOUND_RESPONSE, ConversationScopedView
from messaging.generation import Generation
from messaging.idempotency import HEADER as IDEMPOTENCY_HEADER
from messaging.llm.base import ProviderError
from messaging.resume import message_events, message_wait_final
from messaging.serializers import (
    AssistantReply,
    AssistantReplySerializer,
    BackgroundAcceptedSerializer,
    MessageCreateSerializer,
    RegenerateSerializer,
    simple_message_data,
)
from messaging.services import (
    NewTurn,
    RepeatedTurn,
    message_cancel,
    message_regenerate,
    message_send,
)

_MESSAGES_EXAMPLE: list[dict[str, Any]] = [
    {
        "id": "5f0a2c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b",
        "conversation_id": "0b9c3f0e-7d3c-4a53-9d3e-2f1a6f4e8b21",
        "parent_id": None,
        "sibling_count": 1,
        "sibling_index": 1,
        "role": "user",
        "content": "Three things to see in Lisbon?",
        "reasoning": "",
        "blocks": [{"type": "text", "text": "Three things to see in Lisbon?"}],
        "status": "complete",
        "stop_reason": None,
        "stop_sequence": None,
        "model": None,
        "usage": {
            "input_tokens": None,
            "cached_input_tokens": None,
            "output_tokens": None,
            "estimated": False,
        },
        "latency_ms": None,
        "ttft_ms": None,
        "provider_timings": None,
        "cost_usd": None,
        "error": None,
        "created_at": "2026-11-26T12:00:05.000000Z",
        "completed_at": "2026-11-26T12:00:05.000000Z",
    },
    {
        "id": "6a1b3d2f-4c5e-4f70-9bac-1d2e3f4a5b6c",
        "conversation_id": "0b9c3f0e-7d3c-4a53-9d3e-2f1a6f4e8b21",
        "parent_id": "5f0a2c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b",
        "sibling_count": 2,
        "sibling_index": 2,
        "role": "assistant",
        "content": "Belem Tower, the Alfama, and the LX Factory.",
        "reasoning": "The user wants three sights.",
        "blocks": [
            {"type": "thinking", "thinking": "The user wants three sights."},
            {"type": "text", "text": "Belem Tower, the Alfama, and the LX Factory."},
        ],
        "status": "complete",
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "model": "openai/gpt-oss-20b",
        "usage": {
            "input_tokens": 42,
            "cached_input_tokens": 0,
            "output_tokens": 17,
            "estimated": False,
        },
        "latency_ms": 812,
        "ttft_ms": 95,
        "provider_timings": {"queue": 0.012, "prompt": 0.004, "completion": 0.7},
        "cost_usd": "0.0000082500",
        "error": None,
        "created_at": "2026-11-26T12:00:05.100000Z",
        "completed_at": "2026-11-26T12:00:05.912000Z",
    },
]


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

_SEND_RESPONSES: dict[int | tuple[int, str], Any] = {
    201: AssistantReplySerializer,
    202: OpenApiResponse(
        BackgroundAcceptedSerializer,
        description="With background=true: the user message is stored and the answer is being "
        "generated with no client attached. Location points at GET .../messages/{id}.",
    ),
    (200, "text/event-stream"): sse_schema_response(
        "With stream=true or Accept: text/event-stream: Anthropic Messages "
        "streaming events (message_start, content_block_start/delta/stop, message_delta, "
        "message_stop, ping, error), each with an SSE id. Headers conversation-id and "
        "user-message-id name the conversation and the stored user message."
    ),
    400: INVALID_RESPONSE,
    404: NOT_FOUND_RESPONSE,
    409: OpenApiResponse(description="An answer is already being generated in the conversation."),
    429: OpenApiResponse(description="The model provider's rate limit (with Retry-After)."),
    502: OpenApiResponse(description="The model provider failed or refused this server."),
    503: OpenApiResponse(description="The model provider is not configured or timed out."),
}


def api_error_from_provider(error: ProviderError) -> ApiError:
    """A provider's refusal as the API error it is answered with (Retry-After kept)."""
    headers = {"Retry-After": str(math.ceil(error.retry_after))} if error.retry_after else None
    return api_error(error.status, error.message, error_type=error.error_type, headers=headers)


async def generation_relay(
    generation: Generation, *, to_client: bool = False
) -> AsyncIterator[bytes]:
    """The response body: follows the generation's events. When the client goes away
    (cancellation under ASGI, or the iterator closed) the generation goes on, to be resumed,
    unless GENERATION_CONTINUE_ON_DISCONNECT is off.

    ``to_client``: the bytes are the response's as they are (the native route; the
    compatible routes translate them). Under daphne they are then written to the connection
    by the generation as it makes them (``Generation.push``) and this yields nothing."""
    try:
        write = daphne_writes.body_writer() if to_client else None
        if write is not None:
            await generation.push(write)
        else:
            async for chunk in generation.follow():
                yield chunk
    finally:
        if not generation.finished and not settings.GENERATION_CONTINUE_ON_DISCONNECT:
            generation.cancel(Message.Status.INCOMPLETE)


def event_stream_response(body: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        shutdown.stream_tracked(body), content_type="text/event-stream"
    )
    for name, value in SSE_HEADERS.items():
        response[name] = value
    return response


def answer_error(assistant: Message) -> ApiError:
    """The error an answer that did not complete is answered with, when awaited whole."""
    error = assistant.error or {"type": "api_error", "message": "The answer failed."}
    return api_error(
        status_for_error_type(error["type"], default=status.HTTP_502_BAD_GATEWAY),
        error["message"],
        error_type=error["type"],
    )


def _reply(reply: AssistantReply) -> Response:
    """201 with the stored answer as an Anthropic Message, or the error it ended with."""
    assistant = reply.assistant
    if assistant.status != Message.Status.COMPLETE:
        raise answer_error(assistant)
    return Response(AssistantReplySerializer(reply).data, status=status.HTTP_201_CREATED)


def _stream_of(
    body: AsyncIterator[bytes], *, conversation_id: Any, user_message_id: Any
) -> StreamingHttpResponse:
    response = event_stream_response(body)
    response["conversation-id"] = str(conversation_id)
    response["user-message-id"] = str(user_message_id)
    return response


class ConversationMessageSendMixin:
    """Sending a message. Everything that can fail as an ordinary HTTP error (validation,
    the model, the provider refusing) happens before the first byte; after it, failures are
    `error` events in the stream."""

    conversation: Conversation

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        # Replies are JSON, or SSE written without a renderer; Accept: text/event-stream
        # is a request for the stream, not grounds for a 406.
        return JSONRenderer(), "application/json"

    def send(self, request: Request, *, always_stream: bool) -> HttpResponseBase:
        started_at = time.perf_counter()
        data = simple_message_data(request.data)
        if data is None:
            serializer = MessageCreateSerializer(instance=self.conversation, data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        try:
            turn = message_send(
                conversation=self.conversation,
                user=request_user(request),
                data=data,
                idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
                started_at=started_at,
                api_key_id=request_api_key_id(request),
            )
        except ProviderError as exc:
            raise api_error_from_provider(exc) from None
        if data["background"]:
            return _background(turn)
        return _respond(turn, streaming=_streaming(request, data, always_stream=always_stream))

    def regenerate(self, request: Request, *, answer: Message) -> HttpResponseBase:
        """Another answer to ``answer``'s user message, beside it, rendered as a send."""
        started_at = time.perf_counter()
        serializer = RegenerateSerializer(instance=self.conversation, data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            turn = message_regenerate(
                conversation=self.conversation,
                user=request_user(request),
                answer=answer,
                data=data,
                idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
                started_at=started_at,
                api_key_id=request_api_key_id(request),
            )
        except ProviderError as exc:
            raise api_error_from_provider(exc) from None
        if data["background"]:
            return _background(turn)
        return _respond(turn, streaming=_streaming(request, data, always_stream=False))


def _streaming(request: Request, data: dict[str, Any], *, always_stream: bool) -> bool:
    return (
        always_stream or data["stream"] or "text/event-stream" in request.headers.get("Accept", "")
    )


def _respond(turn: NewTurn | RepeatedTurn, *, streaming: bool) -> HttpResponseBase:
    """A turn as the response: its stream, or its JSON reply once it has ended."""
    if isinstance(turn, RepeatedTurn):
        return _repeat(turn, streaming=streaming)
    return ContinueOnLoop(
        functools.partial(_answer, turn.generation, streaming=streaming),
        abandon=turn.generation.abandon,
        discard=turn.generation.discard,
    )


def _accepted(
    *, conversation_id: Any, user_message: Message, assistant_id: Any, assistant_status: str
) -> Response:
    response = Response(
        BackgroundAcceptedSerializer(
            {
                "conversation_id": conversation_id,
                "user_message": user_message,
                "assistant_message_id": assistant_id,
                "status": assistant_status,
            }
        ).data,
        status=status.HTTP_202_ACCEPTED,
    )
    response["Location"] = f"/api/v1/conversations/{conversation_id}/messages/{assistant_id}"
    return response


def _background(turn: NewTurn | RepeatedTurn) -> HttpResponseBase:
    """A background send: 202 at once, the answer generated with no client attached (the
    client going away, even before the answer starts, does not stop it)."""
    if isinstance(turn, RepeatedTurn):
        return _accepted(
            conversation_id=turn.conversation_id,
            user_message=turn.user_message,
            assistant_id=turn.assistant_message.pk,
            assistant_status=turn.assistant_message.status,
        )
    generation = turn.generation
    plan = generation.plan
    accepted = _accepted(
        conversation_id=plan.conversation_id,
        user_message=plan.user_message,
        assistant_id=plan.assistant_message_id,
        assistant_status=Message.Status.IN_PROGRESS,
    )

    async def detached() -> None:
        generation.run_detached()

    async def started() -> HttpResponseBase:
        await detached()
        return accepted

    return ContinueOnLoop(started, abandon=detached, discard=generation.discard)


def _repeat(turn: RepeatedTurn, *, streaming: bool) -> HttpResponseBase:
    """A retry with a known Idempotency-Key: the same turn, followed or awaited."""
    if streaming:
        return _stream_of(
            message_events(turn.assistant_message, after=0, to_client=True),
            conversation_id=turn.conversation_id,
            user_message_id=turn.user_message.pk,
        )

    async def awaited() -> HttpResponseBase:
        assistant = await message_wait_final(turn.assistant_message)
        return _reply(AssistantReply(turn.user_message, assistant))

    return ContinueOnLoop(awaited)


async def _answer(generation: Generation, *, streaming: bool) -> HttpResponseBase:
    """The rest of a send, on the event loop: open the upstream request (its refusal is
    still an HTTP error), then stream the answer, or wait for it."""
    plan = generation.plan
    try:
        if streaming:
            await generation.start()
        else:
            await generation.run_to_end()
    except ProviderError as exc:
        raise api_error_from_provider(exc) from None
    if streaming:
        return _stream_of(
            generation_relay(generation, to_client=True),
            conversation_id=plan.conversation_id,
            user_message_id=plan.user_message.pk,
        )
    return _reply(AssistantReply(plan.user_message, generation.stored_message()))


class ConversationMessagesView(ConversationMessageSendMixin, ConversationScopedView):
    """``/conversations/{id}/messages``. The conversation is the caller's (see the base
    class); handlers use ``self.conversation``."""

    throttle_classes = (SendRateThrottle,)  # counts POSTs only

    @extend_schema(
        operation_id="conversations_messages_list",
        tags=["messages"],
        summary="List a conversation's messages",
        description="The current branch (the path from the root to the conversation's "
        "current_leaf_id), or with leaf_id the branch that ends at another message, oldest "
        "first. Each message carries its parent_id and its place among its siblings "
        "(sibling_index of sibling_count: '2 of 3'). Keyset pagination: pass a page's last_id "
        "as after_id for the next page, its first_id as before_id for the previous one.",
        parameters=[MessageListQuerySerializer],
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
        params = simple_page_query(request.query_params.dict())
        if params is None:
            query = MessageListQuerySerializer(
                data=request.query_params.dict(), context={"conversation": self.conversation}
            )
            query.is_valid(raise_exception=True)
            params = query.validated_data
        page = message_list(
            conversation=self.conversation,
            page=PageParams.from_query(params),
            leaf_id=params.get("leaf_id"),
        )
        return Response(page_body(page, MessageSerializer))

    @extend_schema(
        operation_id="conversations_messages_create",
        tags=["messages"],
        summary="Send a message and get the assistant's answer",
        description="The user message is stored before the model is called, after the "
        "conversation's current leaf or after parent_id (an assistant message; null for a new "
        "root): editing a user message is sending the new text with its parent_id, and the old "
        "version stays as a sibling. The model sees the branch up to the parent only. The new "
        "messages become the current leaf. Without streaming: 201 with the answer as an "
        "Anthropic Message plus the stored user message, latency, time to first token and "
        "cost. With stream=true or Accept: text/event-stream: an SSE stream in Anthropic's "
        "Messages event format. With background=true: 202 at once with the user message and "
        "the id of the answer in progress, generated with no client attached (follow it with "
        "GET .../messages/{id}, resume its stream, cancel it, or be told by a webhook). 409 "
        "while another answer of the conversation is being generated, whatever its branch.",
        request=MessageCreateSerializer,
        responses=_SEND_RESPONSES,
        examples=[
            OpenApiExample(
                "streamed",
                value={"content": "Three things to see in Lisbon?", "stream": True},
                request_only=True,
            ),
            OpenApiExample(
                "background",
                value={"content": "Summarize the report.", "background": True},
                request_only=True,
            ),
            OpenApiExample(
                "with overrides",
                value={"content": "Again, shorter.", "temperature": 0.2, "max_output_tokens": 200},
                request_only=True,
            ),
            OpenApiExample(
                "edit",
                summary="A new version of the user message that followed this answer",
                value={
                    "content": "Three things to eat in Lisbon?",
                    "parent_id": "6a1b3d2f-4c5e-4f70-9bac-1d2e3f4a5b6c",
                },
                request_only=True,
            ),
            OpenApiExample(
                "tool results",
                value={
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_x1", "content": "18 C, sunny"}
                    ]
                },
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request, conversation_id: str) -> HttpResponseBase:
        return self.send(request, always_stream=False)


class ConversationMessagesStreamView(ConversationMessageSendMixin, ConversationScopedView):
    """The older path: always streams."""

    throttle_classes = (SendRateThrottle,)

    @extend_schema(
        operation_id="conversations_messages_stream",
        tags=["messages"],
        summary="Send a message and stream the answer (older path)",
        description="Same as POST /conversations/{id}/messages with stream=true.",
        request=MessageCreateSerializer,
        responses={k: v for k, v in _SEND_RESPONSES.items() if k != 201},
    )
    def post(self, request: Request, conversation_id: str) -> HttpResponseBase:
        return self.send(request, always_stream=True)


MAX_EVENT_ID = 2**63 - 1


def _last_event_id(request: Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query_params.get("after") or "0"
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ApiError(
            "Last-Event-ID (or after) must be a non-negative event id.",
            details={"fields": {"after": ["Must be a non-negative integer."]}},
        )
    if value > MAX_EVENT_ID:
        # Redis refuses a stream id past 64 bits, mid-stream: refuse it here instead.
        raise ApiError(
            f"Last-Event-ID (or after) must be an event id of at most {MAX_EVENT_ID}.",
            details={"fields": {"after": [f"Must be at most {MAX_EVENT_ID}."]}},
        )
    return value


_MESSAGE_ID_PARAMETER = OpenApiParameter(
    "message_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The message's id."
)


class ConversationMessageDetailView(ConversationScopedView):
    """One message of the caller's conversation."""

    @extend_schema(
        operation_id="conversations_messages_retrieve",
        tags=["messages"],
        summary="Get a message",
        description="The message as stored now, with its status, usage and cost: how a "
        "background send is followed. While an answer is in_progress its content is not "
        "stored yet: resume its stream (GET .../messages/{id}/stream) for the text so far. "
        "404 for a malformed id or another conversation's message.",
        parameters=[_MESSAGE_ID_PARAMETER],
        responses={200: MessageSerializer, 404: NOT_FOUND_RESPONSE},
    )
    def get(self, request: Request, conversation_id: str, message_id: str) -> Response:
        message = message_get_in_conversation(conversation=self.conversation, message_id=message_id)
        return Response(MessageSerializer(message_with_siblings(message_id=message.pk)).data)


class ConversationMessageStreamView(ConversationScopedView):
    """Resume (or replay) an assistant message's stream."""

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        return JSONRenderer(), "application/json"

    @extend_schema(
        operation_id="conversations_messages_stream_resume",
        tags=["messages"],
        summary="Resume an answer's stream",
        description="The events after Last-Event-ID (header) or ?after=, then live until the "
        "end, from any server process. Across a disconnect and a resume the client sees "
        "exactly the bytes of one uninterrupted stream. A finished message whose event log "
        "has expired is replayed from storage as a fresh, complete sequence (ids from 1).",
        parameters=[
            _MESSAGE_ID_PARAMETER,
            OpenApiParameter("after", OpenApiTypes.INT, description="Last event id received."),
            OpenApiParameter(
                "Last-Event-ID",
                OpenApiTypes.INT,
                OpenApiParameter.HEADER,
                description="Last event id received (what EventSource sends on reconnect).",
            ),
        ],
        responses={
            (200, "text/event-stream"): sse_schema_response(
                "The answer's events, as the send route streams them."
            ),
            400: INVALID_RESPONSE,
            404: NOT_FOUND_RESPONSE,
        },
    )
    def get(self, request: Request, conversation_id: str, message_id: str) -> HttpResponseBase:
        after = _last_event_id(request)
        message = message_get_in_conversation(conversation=self.conversation, message_id=message_id)
        if message.role != Message.Role.ASSISTANT:
            raise ApiError("Only an assistant message has a stream.")
        response = event_stream_response(message_events(message, after=after, to_client=True))
        response["conversation-id"] = str(self.conversation.pk)
        return response


class ConversationMessageCancelView(ConversationScopedView):
    """Stop a generation, on whichever server process runs it."""

    @extend_schema(
        operation_id="conversations_messages_cancel",
        tags=["messages"],
        summary="Cancel an answer being generated",
        description="The upstream request is closed, and the message is stored as cancelled "
        "with its partial content and usage; live followers get a message_delta with "
        "stop_reason 'cancelled' and message_stop. 202 if the generating process has not "
        "confirmed yet; 409 if the message is not in progress.",
        parameters=[_MESSAGE_ID_PARAMETER],
        request=None,
        responses={
            200: MessageSerializer,
            202: MessageSerializer,
            404: NOT_FOUND_RESPONSE,
            409: OpenApiResponse(description="The message is not in progress."),
        },
    )
    def post(self, request: Request, conversation_id: str, message_id: str) -> HttpResponseBase:
        message = message_get_in_conversation(conversation=self.conversation, message_id=message_id)
        if message.status != Message.Status.IN_PROGRESS:
            raise ConflictError(
                f"The message is not in progress (it is {message.status}).",
                details={"status": message.status},
            )
        # Its place among its siblings, read here (the database is not the loop's): ending
        # an answer does not move it.
        positioned = message_with_siblings(message_id=message.pk)

        async def cancelled() -> HttpResponseBase:
            stored = await message_cancel(message=message)
            stored.sibling_count = positioned.sibling_count  # type: ignore[attr-defined]
            stored.sibling_index = positioned.sibling_index  # type: ignore[attr-defined]
            done = stored.status != Message.Status.IN_PROGRESS
            return Response(
                MessageSerializer(stored).data,
                status=status.HTTP_200_OK if done else status.HTTP_202_ACCEPTED,
            )

        return ContinueOnLoop(cancelled)


class ConversationMessageRegenerateView(ConversationMessageSendMixin, ConversationScopedView):
    """Another answer to the same user message."""

    throttle_classes = (SendRateThrottle,)

    @extend_schema(
        operation_id="conversations_messages_regenerate",
        tags=["messages"],
        summary="Regenerate an answer",
        description="Another answer to the user message that this assistant message answers, "
        "stored beside it as a sibling, from the same history (the branch up to that user "
        "message); optionally with another model, temperature, max_output_tokens or "
        "reasoning_effort. The new answer becomes the current leaf. It streams or answers "
        "JSON exactly like a send (user_message is the existing user message) and honours "
        "Idempotency-Key. 400 for a user message; 409 while the message, or any answer of "
        "the conversation, is being generated.",
        parameters=[_MESSAGE_ID_PARAMETER],
        request=RegenerateSerializer,
        responses={
            **_SEND_RESPONSES,
            409: OpenApiResponse(description="An answer is being generated."),
        },
        examples=[
            OpenApiExample(
                "another model, streamed",
                value={"model": "openai/gpt-oss-120b", "stream": True},
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request, conversation_id: str, message_id: str) -> HttpResponseBase:
        answer = message_get_in_conversation(conversation=self.conversation, message_id=message_id)
        return self.regenerate(request, answer=answer)
