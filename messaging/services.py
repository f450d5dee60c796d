"""The live turn's writes: sending a message (``message_send``) and stopping an answer
(``message_cancel``). Free of HTTP: the native send routes and the compatibility routes
(messaging/compat) call them with their own inputs and render the result their own way."""

import functools
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from chatapi.errors import ApiError, RateLimitedError
from conversations.models import Conversation
from conversations.services import conversation_touch
from messaging.generation import Generation
from messaging.idempotency import IdempotentReplayError, idempotency_claim, idempotency_find
from messaging.llm.registry import provider_get
from messaging.models import IdempotencyKey, Message
from messaging.turns import GenerationSettings, turn_prepare
from messaging.workers import generation_cancel, worker_is_alive
from usage.catalog import chat_model_get, chat_model_unavailable
from usage.limits import stream_slot_acquire, stream_slot_release


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

    return GenerationSettings(
        temperature=pick("temperature"),
        max_output_tokens=pick("max_output_tokens"),
        reasoning_effort=pick("reasoning_effort") or None,
        top_p=data.get("top_p"),
        stop=tuple(data.get("stop") or ()),
    )


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


def _repeated(record: IdempotencyKey) -> RepeatedTurn:
    return RepeatedTurn(
        conversation_id=record.conversation_id,
        user_message=record.user_message,
        assistant_message=record.assistant_message,
    )


def message_send(
    *,
    conversation: Conversation,
    user: User,
    data: Mapping[str, Any],
    idempotency_key: str | None,
    started_at: float | None = None,
    api_key_id: uuid.UUID | None = None,
) -> NewTurn | RepeatedTurn:
    """Send ``data["content"]`` to ``conversation`` (the caller's, already authorized) with
    the optional overrides in ``data`` (model, temperature, max_output_tokens,
    reasoning_effort; top_p and stop for this turn only): store the user message and an
    in-progress answer, holding one of ``user``'s stream slots until the answer is stored.
    Everything that can fail before the first byte fails here; ``started_at``
    (``time.perf_counter()``) is when the request arrived; ``api_key_id`` the key that asked
    (the ledger names it).

    A retry with an ``idempotency_key`` already used for the same request returns the turn
    it repeats instead of a new one.

    Raises ``ApiError`` (the model is not available, a bad key, the message does not fit),
    ``RateLimitedError`` (no stream slot free), ``ConflictError`` (an answer is in progress),
    ``BillingError`` (a budget is spent) and ``ProviderError`` (the model's provider is not
    configured). Must run in a thread that may query the database (not on the event loop).
    """
    claim = idempotency_claim(
        user=user, key=idempotency_key, conversation_id=conversation.pk, body=dict(data)
    )
    if claim is not None and (record := idempotency_find(claim)) is not None:
        return _repeated(record)
    model_id = data.get("model") or conversation.model
    model = chat_model_get(model_id)
    if model is None:
        raise ApiError(
            f"{chat_model_unavailable(model_id)} The conversation keeps its history; "
            "send with the model field to answer with another model.",
            details={"fields": {"model": ["Not an available model."]}},
        )
    provider = provider_get(model.provider)
    release_slot = _stream_slot(user)
    try:
        plan = turn_prepare(
            conversation=conversation,
            content=data["content"],
            model=model,
            generation=_generation_settings(data, conversation),
            started_at=started_at,
            idempotency=claim,
            api_key_id=api_key_id,
        )
    except IdempotentReplayError as replay:
        release_slot()
        return _repeated(replay.record)
    except BaseException:
        release_slot()
        raise
    return NewTurn(
        Generation(plan, provider, ping_seconds=settings.SSE_PING_SECONDS, on_stored=release_slot)
    )


def message_create(
    *,
    conversation: Conversation,
    role: Message.Role,
    content: str,
    reasoning: str = "",
    status: Message.Status = Message.Status.COMPLETE,
    stop_reason: str = "",
    model: str = "",
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    usage_estimated: bool = False,
    latency_ms: int | None = None,
    ttft_ms: int | None = None,
    cost_usd: Decimal | None = None,
    error: dict[str, Any] | None = None,
    created_at: datetime | None = None,
    completed_at: datetime | None = None,
) -> Message:
    """Add a message and bump the conversation's last_message_at and activity_at (its place
    in the list), in one transaction.

    The bump never moves the timestamps back, so messages created out of order (or with an
    explicit ``created_at``) leave the latest one in place.
    """
    created_at = created_at or timezone.now()
    with transaction.atomic():
        message = Message.objects.create(
            conversation=conversation,
            role=role,
            content=content,
            reasoning=reasoning,
            status=status,
            stop_reason=stop_reason,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            usage_estimated=usage_estimated,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            cost_usd=cost_usd,
            error=error,
            created_at=created_at,
            completed_at=completed_at,
        )
        conversation_touch(conversation_id=conversation.pk, at=created_at)
    # The instance follows the row, as far as it knows.
    conversation.last_message_at = max(conversation.last_message_at or created_at, created_at)
    conversation.activity_at = max(conversation.activity_at, created_at)
    return message


CANCEL_CONFIRM_SECONDS = 2.0
_CANCEL_POLL_SECONDS = 0.02


def message_cancel(*, message: Message) -> Message:
    """Stop the generation of ``message`` wherever it runs, and wait (briefly) until its
    process has stored it as cancelled. A message whose process is gone is cancelled here.
    Returns the message as stored now (still ``in_progress`` if the process is slow)."""
    async_to_sync(generation_cancel)(message.pk)
    deadline = time.monotonic() + CANCEL_CONFIRM_SECONDS
    while True:
        message.refresh_from_db()
        if message.status != Message.Status.IN_PROGRESS or time.monotonic() >= deadline:
            break
        time.sleep(_CANCEL_POLL_SECONDS)
    if message.status == Message.Status.IN_PROGRESS and not worker_is_alive(
        worker_id=message.worker_id
    ):
        Message.objects.filter(pk=message.pk, status=Message.Status.IN_PROGRESS).update(
            status=Message.Status.CANCELLED, completed_at=timezone.now()
        )
        message.refresh_from_db()
    return message
