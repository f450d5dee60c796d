"""The live turn's writes: sending a message (``message_send``) and stopping an answer
(``message_cancel``). Free of HTTP: the JSON route, the streaming route and the next front
ends (Anthropic's /v1/messages, OpenAI's /v1/chat/completions, edit and regenerate) call
them with their own inputs and render the result their own way."""

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from chatapi.errors import ApiError, ConflictError, RateLimitedError
from chatapi.ratelimits import stream_slot_acquire, stream_slot_release
from conversations.blocks import Block, text_blocks
from conversations.events import Event
from conversations.models import Conversation, Message
from conversations.notify import message_notify
from conversations.selectors import Parent, message_with_siblings
from messaging.generation import Generation
from messaging.idempotency import (
    IdempotencyClaim,
    IdempotentReplayError,
    idempotency_claim,
    idempotency_find,
)
from messaging.live import generation_cancel
from messaging.llm.base import ToolChoice, ToolDefinition
from messaging.llm.registry import provider_get
from messaging.models import IdempotencyKey
from messaging.resume import message_wait_final
from messaging.sweeper import generations_sweep_stale_in, worker_is_alive
from messaging.turns import (
    GenerationSettings,
    TurnPlan,
    turn_prepare,
    turn_prepare_regeneration,
)
from messaging.webhooks import webhook_outbox_write
from usage.catalog import ChatModel, chat_model_get, chat_model_replacement, chat_model_unavailable


@dataclass(frozen=True, slots=True)
class NewTurn:
    """A prepared turn: both messages are stored, and ``generation`` is ready to be opened on
    the event loop (``start``, ``run_to_end``), or ``abandon``-ed if the caller went away."""

    generation: Generation


@dataclass(frozen=True, slots=True)
class RepeatedTurn:
    """A retry with a known idempotency key: the turn it repeats, to be followed or awaited
    (its assistant message may still be in progress)."""

    conversation_id: uuid.UUID
    user_message: Message
    assistant_message: Message


def _generation_settings(data: Mapping[str, Any], conversation: Conversation) -> GenerationSettings:
    """This turn's settings: the message's overrides, else the conversation's."""

    def pick(field: str) -> Any:
        return data[field] if field in data else getattr(conversation, field)

    choice = pick("tool_choice")
    return GenerationSettings(
        temperature=pick("temperature"),
        max_output_tokens=pick("max_output_tokens"),
        reasoning_effort=pick("reasoning_effort") or None,
        # For this turn only (the compatibility routes'): conversations keep no such setting.
        top_p=data.get("top_p"),
        response_format=data.get("response_format"),
        tools=tuple(
            ToolDefinition(
                name=tool["name"],
                description=tool.get("description", ""),
                input_schema=tool["input_schema"],
            )
            for tool in pick("tools")
        ),
        tool_choice=None if choice is None else ToolChoice(choice["type"], choice.get("name")),
        stop_sequences=tuple(pick("stop_sequences")),
        service_tier=pick("service_tier") or None,
        fallback_models=tuple(pick("fallback_models")),
    )


def _content_blocks(content: str | list[Block]) -> list[Block]:
    """The user message's content as blocks: a string is one text block."""
    return text_blocks(content) if isinstance(content, str) else content


def _stream_slot(user: User) -> Callable[[], None]:
    """Hold one of the user's concurrent-generation slots; returns its release."""
    slot = stream_slot_acquire(user.pk)
    if slot is None:
        raise RateLimitedError(
            f"At most {settings.RATE_LIMIT_CONCURRENT_STREAMS} answers can be generated at once;"
            " wait for one to finish, or cancel one.",
            headers={"Retry-After": "1"},
        )
    return functools.partial(stream_slot_release, user.pk, slot)


def message_send(
    *,
    conversation: Conversation,
    user: User,
    data: Mapping[str, Any],
    idempotency_key: str | None,
    started_at: float | None = None,
    api_key_id: uuid.UUID | None = None,
) -> NewTurn | RepeatedTurn:
    """Send ``data["content"]`` (a string, or text and tool_result blocks) to
    ``conversation`` (the caller's, already authorized) with the optional overrides in
    ``data`` (model, temperature, max_output_tokens, reasoning_effort, tools, tool_choice,
    stop_sequences, service_tier, fallback_models; validated by ``MessageCreateSerializer``;
    top_p for this turn only), after ``data["parent_id"]`` (an assistant message of the
    conversation, checked by the serializer; None: a new root) or, without it, after the
    conversation's current leaf: store the user message and an in-progress answer, the new
    current leaf, holding one of ``user``'s stream slots until the answer is stored.
    Everything that can fail before the first byte fails here; ``started_at``
    (``time.perf_counter()``) is when the request arrived, for the latency measures;
    ``api_key_id`` the API key that asked, which the ledger names.

    A retry with an ``idempotency_key`` already used for the same request returns the turn
    it repeats instead of a new one.

    Raises ``ApiError`` (the model is not available, a bad key, the message does not fit),
    ``RateLimitedError`` (no stream slot free), ``ConflictError`` (an answer is in progress),
    ``BillingError`` (a budget is spent) and ``ProviderError`` (the model's provider is not
    configured). Must run in a thread that may query the database (not on the event loop).
    """
    parent = data.get("parent_id", Parent.CURRENT_LEAF)

    def prepare(model: ChatModel, claim: IdempotencyClaim | None) -> TurnPlan:
        return turn_prepare(
            conversation=conversation,
            blocks=_content_blocks(data["content"]),
            model=model,
            generation=_generation_settings(data, conversation),
            started_at=started_at,
            idempotency=claim,
            parent=parent,
            api_key_id=api_key_id,
        )

    return _turn_start(
        conversation=conversation,
        user=user,
        data=data,
        claim_body=dict(data),
        idempotency_key=idempotency_key,
        prepare=prepare,
    )


def message_regenerate(
    *,
    conversation: Conversation,
    user: User,
    answer: Message,
    data: Mapping[str, Any],
    idempotency_key: str | None,
    started_at: float | None = None,
    api_key_id: uuid.UUID | None = None,
) -> NewTurn | RepeatedTurn:
    """Another answer to the user message that ``answer`` (a message of ``conversation``,
    the caller's) answers: a new in-progress assistant message beside it, from the same
    history, with the optional overrides in ``data`` (validated by ``RegenerateSerializer``),
    and the conversation's new current leaf. Otherwise as ``message_send``: the same
    idempotency, stream slot, budgets and errors, plus ``ApiError`` when ``answer`` is not an
    assistant message and ``ConflictError`` while it is still being generated."""
    if answer.role != Message.Role.ASSISTANT:
        raise ApiError(
            "Only an assistant message can be regenerated; this is a user message "
            "(to change it, send the new text with its parent_id)."
        )
    if answer.status == Message.Status.IN_PROGRESS:
        raise ConflictError(
            "The message is still being generated; cancel it, or wait for it to end.",
            details={"status": answer.status},
        )
    question = answer.parent
    if question is None or question.role != Message.Role.USER:
        raise ApiError("This answer follows no user message: there is nothing to ask again.")

    def prepare(model: ChatModel, claim: IdempotencyClaim | None) -> TurnPlan:
        return turn_prepare_regeneration(
            conversation=conversation,
            question=question,
            model=model,
            generation=_generation_settings(data, conversation),
            started_at=started_at,
            idempotency=claim,
            api_key_id=api_key_id,
        )

    # The answer regenerated is part of the request: a key used for a send, or for another
    # answer, is a different request (422).
    return _turn_start(
        conversation=conversation,
        user=user,
        data=data,
        claim_body={**data, "regenerate": str(answer.pk)},
        idempotency_key=idempotency_key,
        prepare=prepare,
    )


def _turn_start(
    *,
    conversation: Conversation,
    user: User,
    data: Mapping[str, Any],
    claim_body: dict[str, Any],
    idempotency_key: str | None,
    prepare: Callable[[ChatModel, IdempotencyClaim | None], TurnPlan],
) -> NewTurn | RepeatedTurn:
    """What every turn shares: the idempotency key, the model and its provider, a stream
    slot, then ``prepare`` (which stores the messages)."""
    claim = idempotency_claim(
        user=user, key=idempotency_key, conversation_id=conversation.pk, body=claim_body
    )
    if claim is not None and (record := idempotency_find(claim)) is not None:
        return _repeated(record)
    model_id = data.get("model") or conversation.model
    model = chat_model_get(model_id)
    if model is None:
        details: dict[str, Any] = {"fields": {"model": ["Not an available model."]}}
        replacement = chat_model_replacement(model_id)
        if replacement is not None:
            # For clients that switch on their own: PATCH the conversation's model to it.
            details["replaced_by"] = replacement
        raise ApiError(
            f"{chat_model_unavailable(model_id)} The conversation keeps its history; "
            "send with the model field to answer with another model.",
            details=details,
        )
    provider = provider_get(model.provider)
    release_slot = _stream_slot(user)
    try:
        try:
            plan = prepare(model, claim)
        except ConflictError:
            # The answer in progress may be a dead process's: then it is finished now and
            # this turn goes ahead (once: a live one is a conflict).
            if not generations_sweep_stale_in(conversation_id=conversation.pk):
                raise
            plan = prepare(model, claim)
    except IdempotentReplayError as replay:
        release_slot()
        return _repeated(replay.record)
    except BaseException:
        release_slot()
        raise
    return NewTurn(
        Generation(plan, provider, ping_seconds=settings.SSE_PING_SECONDS, on_stored=release_slot)
    )


def _repeated(record: IdempotencyKey) -> RepeatedTurn:
    return RepeatedTurn(
        conversation_id=record.conversation_id,
        user_message=message_with_siblings(message_id=record.user_message_id),
        assistant_message=record.assistant_message,
    )


CANCEL_CONFIRM_SECONDS = 2.0


@sync_to_async(thread_sensitive=False)
def _cancel_orphan(message: Message) -> Message:
    """Cancel ``message`` here if the process that generated it is gone; as stored now."""
    try:
        if not worker_is_alive(worker_id=message.worker_id):
            with transaction.atomic():
                orphan = (
                    Message.objects.select_for_update()
                    .filter(pk=message.pk, status=Message.Status.IN_PROGRESS)
                    .select_related("conversation")
                    .first()
                )
                if orphan is not None:
                    orphan.status = Message.Status.CANCELLED
                    orphan.completed_at = timezone.now()
                    orphan.save(update_fields=["status", "completed_at"])
                    owner_id = orphan.conversation.owner_id
                    webhook_outbox_write(owner_id=owner_id, message=orphan)
                    message_notify(Event.MESSAGE_CANCELLED, orphan, user_id=owner_id)
        message.refresh_from_db()
        return message
    finally:
        connection.close()


async def message_cancel(*, message: Message) -> Message:
    """Stop the generation of ``message`` wherever it runs, and wait (at most
    ``CANCEL_CONFIRM_SECONDS``) until its process has stored it as cancelled. A message whose
    process is gone is cancelled here. Returns the message as stored now (still
    ``in_progress`` if the process is slow). Runs on the event loop: the wait is the
    generation's own end when this process runs it, without holding a thread."""
    await generation_cancel(message.pk)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CANCEL_CONFIRM_SECONDS):
            message = await message_wait_final(message)
    if message.status == Message.Status.IN_PROGRESS:
        message = await _cancel_orphan(message)
    return message
