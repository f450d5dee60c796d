"""What both compatibility APIs share: a call translated into the send service's inputs, the
conversation it is stored in, and the base view."""

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpResponseBase
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_api_key_id, request_user
from accounts.models import ApiKeyScope, User
from accounts.permissions import scopes_all
from accounts.rls import CallerAPIView
from chatapi.dispatch import ContinueOnLoop
from chatapi.errors import ApiError, api_error
from chatapi.ratelimits import SendRateThrottle
from conversations.blocks import Block, blocks_text, text_blocks, tool_results_problem, tool_uses
from conversations.models import Conversation, Message
from conversations.selectors import conversation_get_for_user
from conversations.serializers import unstorable_text
from conversations.services import conversation_create_with_history
from messaging.history import chat_messages_from
from messaging.idempotency import HEADER as IDEMPOTENCY_HEADER
from messaging.llm.base import ChatMessage, ProviderError
from messaging.models import IdempotencyKey
from messaging.resume import message_events, message_wait_final
from messaging.serializers import MESSAGE_MAX_CHARS
from messaging.services import NewTurn, RepeatedTurn, message_send
from messaging.views import api_error_from_provider, generation_relay
from usage.catalog import ChatModel, chat_model_get, chat_model_unavailable

# Names the stored conversation of every answer; sent by a client, continues it.
CONVERSATION_HEADER = "chatapi-conversation-id"


# Tool use is offered on Anthropic's route and the native one; here it is refused, never
# silently dropped.
_TOOL_FIELDS = frozenset(
    {"tools", "tool_choice", "functions", "function_call", "parallel_tool_calls"}
)


def unsupported_fields_error(fields: list[str]) -> serializers.ValidationError:
    """The 400 for request fields this route does not offer, each named."""
    return serializers.ValidationError(
        {
            name: [
                f"{name} is not supported by chatapi's OpenAI-compatible routes; tool use works "
                "on POST /v1/messages (Anthropic's API) and POST /api/v1/conversations/{id}/"
                "messages."
                if name in _TOOL_FIELDS
                else f"{name} is not supported by chatapi."
            ]
            for name in fields
        }
    )


def text_content(value: Any, *, field: str, max_chars: int = MESSAGE_MAX_CHARS) -> str:
    """A message's content: a string, or text blocks (Anthropic) or parts (OpenAI), both
    ``{"type": "text", "text": ...}``, joined; text is the only kind offered."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list):
        pieces = []
        for block in value:
            if not isinstance(block, dict) or block.get("type") != "text":
                kind = block.get("type") if isinstance(block, dict) else type(block).__name__
                raise serializers.ValidationError(
                    {field: [f"Only text content is supported, not {kind!r}."]}
                )
            if not isinstance(block.get("text"), str):
                raise serializers.ValidationError({field: ["A text block needs a text string."]})
            pieces.append(block["text"])
        text = "".join(pieces)
    else:
        raise serializers.ValidationError({field: ["A string or a list of text blocks."]})
    if len(text) > max_chars:
        raise serializers.ValidationError({field: [f"At most {max_chars} characters."]})
    problem = unstorable_text(text)
    if problem:
        raise serializers.ValidationError({field: [problem]})
    return text


@dataclass(frozen=True, slots=True)
class CompatMessage:
    """A user or assistant message of a call as content blocks: text, and on Anthropic's
    route the tool blocks (tool_use in an answer, tool_result in a user message) and an
    answer's thinking."""

    role: str
    blocks: tuple[Block, ...]

    @classmethod
    def text(cls, role: str, content: str) -> "CompatMessage":
        return cls(role, tuple(text_blocks(content)))

    @property
    def content(self) -> str:
        return blocks_text(self.blocks)

    @property
    def text_only(self) -> bool:
        return all(block["type"] == "text" for block in self.blocks)

    def chat_messages(self) -> list[ChatMessage]:
        """As the provider reads it (what the context is budgeted with)."""
        return chat_messages_from(role=self.role, content=self.content, blocks=self.blocks)


def tool_pairs_problem(messages: list[CompatMessage]) -> tuple[int, str] | None:
    """The first message that does not answer the tool calls of the answer before it (each
    with one tool_result, nothing else), as both APIs require, and why. A call of one message
    is left to the send, which checks it against the stored conversation."""
    if len(messages) == 1:
        return None
    for index, message in enumerate(messages):
        previous = messages[index - 1] if index else None
        open_ids = (
            [block["id"] for block in tool_uses(previous.blocks)]
            if previous is not None and previous.role == "assistant"
            else []
        )
        if message.role == "user":
            problem = tool_results_problem(open_ids=open_ids, blocks=message.blocks)
            if problem:
                return index, problem
        elif open_ids:
            return index, (
                f"The answer before called tools ({', '.join(open_ids)}): their results must "
                "come next."
            )
    return None


@dataclass(frozen=True)
class CompatCall:
    """One call of either API, translated: ``messages`` end with the new user message."""

    model: str
    messages: tuple[CompatMessage, ...]
    system: str
    max_output_tokens: int | None
    stream: bool
    temperature: float | None = None
    top_p: float | None = None
    # Anthropic's stop_sequences, OpenAI's stop: chatapi's own stop sequences, enforced on
    # the streamed text (an OpenAI finish_reason "stop" when one ends the answer).
    stop_sequences: tuple[str, ...] = ()
    reasoning_effort: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Anthropic tool definitions and tool_choice, for this turn (the native send's shapes).
    tools: tuple[Block, ...] = ()
    tool_choice: Block | None = None
    # OpenAI's response_format (json_object or json_schema), for this turn.
    response_format: dict[str, Any] | None = None

    def send_data(self) -> dict[str, Any]:
        """The send service's ``data``: the new message and this turn's settings."""
        new = self.messages[-1]
        data: dict[str, Any] = {
            "content": new.content if new.text_only else list(new.blocks),
            "model": self.model,
        }
        for name in ("temperature", "max_output_tokens", "top_p", "reasoning_effort"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.stop_sequences:
            data["stop_sequences"] = list(self.stop_sequences)
        if self.tools:
            data["tools"] = [dict(tool) for tool in self.tools]
        if self.tool_choice is not None:
            data["tool_choice"] = dict(self.tool_choice)
        if self.response_format is not None:
            data["response_format"] = self.response_format
        return data

    def context_digest(self) -> str:
        """What a stateless call's context is, for its Idempotency-Key: a retry must repeat
        the history too, not only the last message."""
        material = [
            self.system,
            [
                (m.role, m.content) if m.text_only else (m.role, m.content, list(m.blocks))
                for m in self.messages[:-1]
            ],
        ]
        return hashlib.sha256(json.dumps(material).encode()).hexdigest()


@dataclass(frozen=True)
class Answer:
    """A call's turn, stored in ``conversation_id``: new, or the one its key repeats."""

    conversation_id: uuid.UUID
    turn: NewTurn | RepeatedTurn


def model_or_404(model_id: str) -> ChatModel:
    """The catalog model; both APIs answer an unknown model with 404."""
    model = chat_model_get(model_id)
    if model is None:
        raise api_error(404, chat_model_unavailable(model_id), error_type="not_found_error")
    return model


def _idempotent_conversation(user: User, key: str | None) -> uuid.UUID | None:
    """The conversation a stateless call with this Idempotency-Key already made, if any: its
    retry repeats that turn instead of storing the history again."""
    if not key:
        return None
    return (
        IdempotencyKey.objects.filter(
            user=user,
            key=key,
            created_at__gte=timezone.now()
            - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS),
        )
        .values_list("conversation_id", flat=True)
        .first()
    )


def _continued(user: User, conversation_id: str, call: CompatCall) -> Conversation:
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
    if len(call.messages) != 1:
        raise ApiError(
            f"With the {CONVERSATION_HEADER} header, send only the new user message: the "
            "server supplies the stored history.",
            details={"fields": {"messages": ["Exactly one user message."]}},
        )
    if call.system and call.system != conversation.system_prompt:
        raise ApiError(
            "A continued conversation keeps its stored system prompt; omit the system "
            "message or send it unchanged.",
            details={"fields": {"system": ["Differs from the conversation's."]}},
        )
    return conversation


def _stored_as_new(user: User, model: ChatModel, call: CompatCall) -> Conversation:
    """A new conversation holding the call's system prompt, metadata and history (every
    message before the new one), as the stateless APIs send the whole context each time."""
    return conversation_create_with_history(
        owner=user,
        model=model.id,
        system_prompt=call.system,
        metadata=call.metadata,
        history=[(message.role, message.blocks) for message in call.messages[:-1]],
    )


def compat_send(request: Request, call: CompatCall) -> Answer:
    """Store the call and prepare its answer: a new turn, or the one an Idempotency-Key
    repeats. Without the conversation header the call is stored as a new conversation; with
    it (the caller's conversation, else the same 404 as a missing one) the stored history is
    the context. One transaction: a call refused before the answer starts stores nothing."""
    started_at = time.perf_counter()
    user = request_user(request)
    model = model_or_404(call.model)
    if call.max_output_tokens is not None and call.max_output_tokens > model.max_output_tokens:
        raise ApiError(
            f"{model.id} allows at most {model.max_output_tokens} output tokens; "
            f"{call.max_output_tokens} were asked for.",
            details={"fields": {"max_tokens": ["Over the model's limit."]}},
        )
    key = request.headers.get(IDEMPOTENCY_HEADER)
    header = request.headers.get(CONVERSATION_HEADER)
    data = call.send_data()
    with transaction.atomic():
        if header is not None:
            conversation = _continued(user, header, call)
        else:
            data["context"] = call.context_digest()
            repeated = _idempotent_conversation(user, key)
            conversation = (
                Conversation.objects.get(pk=repeated, owner=user)
                if repeated is not None
                else _stored_as_new(user, model, call)
            )
        try:
            turn = message_send(
                conversation=conversation,
                user=user,
                data=data,
                idempotency_key=key,
                started_at=started_at,
                api_key_id=request_api_key_id(request),
            )
        except ProviderError as exc:
            raise api_error_from_provider(exc) from None
    return Answer(conversation_id=conversation.pk, turn=turn)


async def answer_events(answer: Answer) -> tuple[AsyncIterator[bytes], str]:
    """Start the answer and return its event stream (Anthropic SSE, as the native route
    sends it) and the model that answers. The provider's refusal is still an HTTP error."""
    turn = answer.turn
    if isinstance(turn, RepeatedTurn):
        return message_events(turn.assistant_message, after=0), turn.assistant_message.model
    try:
        await turn.generation.start()
    except ProviderError as exc:
        raise api_error_from_provider(exc) from None
    return generation_relay(turn.generation), turn.generation.model


async def answer_stored(answer: Answer) -> Message:
    """Run the answer to its end and return the stored assistant message."""
    turn = answer.turn
    if isinstance(turn, RepeatedTurn):
        return await message_wait_final(turn.assistant_message)
    try:
        await turn.generation.run_to_end()
    except ProviderError as exc:
        raise api_error_from_provider(exc) from None
    return turn.generation.stored_message()


def continue_on_loop(
    answer: Answer, finish: Callable[[], Awaitable[HttpResponseBase]]
) -> ContinueOnLoop:
    """The rest of the call on the event loop; a new turn whose client went away before it
    started is abandoned as the native route's is."""
    turn = answer.turn
    if isinstance(turn, NewTurn):
        return ContinueOnLoop(
            finish, abandon=turn.generation.abandon, discard=turn.generation.discard
        )
    return ContinueOnLoop(finish)


class CompatView(CallerAPIView):
    """Base of the compatibility routes: JSON whatever ``Accept`` says (SSE is written
    without a renderer), and the conversation header on every answer of a stored turn. Errors
    leave as the envelope, which is Anthropic's shape; the OpenAI routes reshape it in
    ``handle_exception``."""

    api_key_scopes = scopes_all(ApiKeyScope.CONVERSATIONS_WRITE)
    conversation_id: uuid.UUID | None = None

    def perform_content_negotiation(
        self, request: Request, force: bool = False
    ) -> tuple[BaseRenderer, str]:
        return JSONRenderer(), "application/json"

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.conversation_id is not None:
            response[CONVERSATION_HEADER] = str(self.conversation_id)
        return response


class CompatSendView(CompatView):
    throttle_classes = (SendRateThrottle,)
