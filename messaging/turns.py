"""The database side of a turn: what happens before the first byte (``turn_prepare``) and
when the answer ends (``turn_record``). Both are synchronous and each runs in one thread hop.
"""

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from chatapi import metrics
from chatapi.errors import ApiError, ConflictError
from conversations.blocks import Block, blocks_text, text_blocks, tool_results_problem, tool_uses
from conversations.models import Conversation, Message, ReasoningEffort, ServiceTier
from conversations.services import conversation_touch
from messaging.history import chat_messages_from
from messaging.idempotency import CONSTRAINT as IDEMPOTENCY_CONSTRAINT
from messaging.idempotency import (
    IdempotencyClaim,
    IdempotentReplayError,
    idempotency_find,
    idempotency_record,
)
from messaging.llm.base import ChatMessage, ChatRequest, ToolChoice, ToolDefinition, Usage
from messaging.llm.token_estimates import estimate_messages_tokens, estimate_tokens
from messaging.process import WORKER_ID
from usage.catalog import ChatModel, chat_model_get, turn_cost
from usage.models import UsageKind, UsageRecord
from usage.services import budget_release, budget_reserve, usage_record

TITLE_MAX_CHARS = 60
# Statuses whose content is part of the conversation the model sees next time.
_CONTEXT_STATUSES = (Message.Status.COMPLETE, Message.Status.INCOMPLETE, Message.Status.CANCELLED)
_HISTORY_PAGE = 100
ONE_IN_PROGRESS_CONSTRAINT = "message_one_in_progress_per_conversation"


@dataclass(frozen=True)
class TurnPlan:
    conversation_id: uuid.UUID
    user_message: Message
    assistant_message_id: uuid.UUID
    model: ChatModel
    request: ChatRequest
    estimated_input_tokens: int
    started_at: float  # time.perf_counter() when the request arrived
    # The conversation's owner, whose ledger and budgets the turn counts against.
    user_id: uuid.UUID | None = None
    # The title this turn gave an untitled conversation (its first words), else None.
    auto_title: str | None = None
    # The models to try, in order, when ``model`` fails before its first token.
    fallbacks: tuple[ChatModel, ...] = ()


@dataclass(frozen=True)
class TurnOutcome:
    status: str
    content: str
    reasoning: str
    blocks: list[Block]
    model: str
    stop_reason: str
    stop_sequence: str | None
    usage: Usage
    usage_estimated: bool
    cost_usd: Decimal | None  # None: the model has no price (unknown, never 0)
    latency_ms: int
    ttft_ms: int | None
    error: dict[str, str] | None
    # The catalog model that answered when a fallback did; None: the plan's.
    answered_by: ChatModel | None = None


@dataclass(frozen=True)
class GenerationSettings:
    temperature: float | None
    max_output_tokens: int | None
    reasoning_effort: ReasoningEffort | None
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: ToolChoice | None = None
    stop_sequences: tuple[str, ...] = ()
    service_tier: ServiceTier | None = None
    fallback_models: tuple[str, ...] = ()


def _context_messages(*, conversation: Conversation, budget: int) -> tuple[list[ChatMessage], int]:
    """The newest history that fits ``budget`` estimated tokens, oldest first. A stored
    message is taken whole or not at all (a tool round trip is several provider messages);
    tool results whose call was cut off are left out too: the provider refuses them."""
    picked: list[ChatMessage] = []
    used = 0
    history = (
        Message.objects.filter(conversation=conversation, status__in=_CONTEXT_STATUSES)
        .exclude(role=Message.Role.SYSTEM)
        .order_by("-created_at", "-id")
        .values_list("role", "status", "content", "blocks")
    )
    offset = 0
    while True:
        page = list(history[offset : offset + _HISTORY_PAGE])
        for role, status, content, stored in page:
            # A stopped answer's calls were never answered: they cannot go back.
            blocks = (
                stored
                if status == Message.Status.COMPLETE
                else [block for block in stored if block["type"] != "tool_use"]
            )
            messages = chat_messages_from(role=role, content=content, blocks=blocks)
            if not messages:
                continue
            cost = estimate_messages_tokens(messages)
            if used + cost > budget:
                return _without_orphan_results(picked), used
            picked.extend(reversed(messages))
            used += cost
        if len(page) < _HISTORY_PAGE:
            return _without_orphan_results(picked), used
        offset += _HISTORY_PAGE


def _without_orphan_results(newest_first: list[ChatMessage]) -> list[ChatMessage]:
    oldest_first = newest_first[::-1]
    start = 0
    while start < len(oldest_first) and oldest_first[start].role == "tool":
        start += 1
    return oldest_first[start:]


def _open_tool_use_ids(conversation: Conversation) -> list[str]:
    """The calls of the conversation's last message, when it is a finished answer that
    called tools: the next message must answer them."""
    last = (
        Message.objects.filter(conversation=conversation)
        .exclude(role=Message.Role.SYSTEM)
        .order_by("-created_at", "-id")
        .values_list("role", "status", "blocks")
        .first()
    )
    if last is None or last[0] != Message.Role.ASSISTANT or last[1] != Message.Status.COMPLETE:
        return []
    return [block["id"] for block in tool_uses(last[2])]


def _title_from(content: str) -> str:
    line = " ".join(content.split())
    if len(line) <= TITLE_MAX_CHARS:
        return line
    cut = line[:TITLE_MAX_CHARS].rsplit(" ", 1)[0] or line[:TITLE_MAX_CHARS]
    return f"{cut}…"


def _in_progress_conflict(conversation: Conversation) -> ConflictError:
    running = (
        Message.objects.filter(conversation=conversation, status=Message.Status.IN_PROGRESS)
        .values_list("id", flat=True)
        .first()
    )
    return ConflictError(
        f"An answer is already being generated in this conversation (message {running}); "
        "resume it with GET .../messages/{id}/stream or cancel it first.",
        details={"in_progress_message_id": str(running) if running else None},
    )


def turn_prepare(
    *,
    conversation: Conversation,
    blocks: list[Block],
    model: ChatModel,
    generation: GenerationSettings,
    started_at: float | None = None,
    idempotency: IdempotencyClaim | None = None,
) -> TurnPlan:
    """Store the user message (committed before any upstream call) and an ``in_progress``
    assistant message, and build the provider request from the history that fits the
    model's context window minus the output budget.

    The turn's worst case (estimated input plus the whole output budget) is reserved against
    the owner's budgets in the same transaction (``usage.services.budget_reserve``).

    ``blocks`` (the user message's content) must answer the previous answer's tool calls,
    if it made any, with one ``tool_result`` each (``ApiError`` naming the ids otherwise).

    Raises ``ConflictError`` while another answer is in progress in the conversation,
    ``IdempotentReplayError`` when a concurrent request with the same key won the race, and
    ``BillingError`` when a budget is spent (then nothing is stored)."""
    open_ids = _open_tool_use_ids(conversation)
    problem = tool_results_problem(open_ids=open_ids, blocks=blocks)
    if problem:
        raise ApiError(
            problem,
            details={"fields": {"content": [problem]}, "open_tool_use_ids": open_ids},
        )
    content = blocks_text(blocks)
    system = (
        [ChatMessage(role="system", content=conversation.system_prompt)]
        if conversation.system_prompt
        else []
    )
    new_messages = chat_messages_from(role="user", content=content, blocks=blocks)
    output_budget = generation.max_output_tokens or model.max_output_tokens
    budget = (
        model.context_window
        - output_budget
        - estimate_messages_tokens(system)
        - estimate_messages_tokens(new_messages)
    )
    if budget < 0:
        raise ApiError(
            f"The message is too long for {model.id}: its context window is "
            f"{model.context_window} tokens and {output_budget} are reserved for the answer.",
            details={"fields": {"content": ["Too long for the model's context window."]}},
        )
    history, history_tokens = _context_messages(conversation=conversation, budget=budget)
    messages = (*system, *history, *new_messages)
    estimated_input = (
        estimate_messages_tokens(system) + history_tokens + estimate_messages_tokens(new_messages)
    )

    now = timezone.now()
    user_message = Message(
        conversation=conversation,
        role=Message.Role.USER,
        content=content,
        blocks=blocks,
        status=Message.Status.COMPLETE,
        created_at=now,
        completed_at=now,
    )
    assistant = Message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.IN_PROGRESS,
        model=model.id,
        # Strictly after the user message, so (created_at, id) order never swaps them.
        created_at=now + timedelta(microseconds=1),
        worker_id=WORKER_ID,
    )
    try:
        with transaction.atomic():
            if idempotency is not None:
                # First: a concurrent retry waits here on the key, then replays this turn.
                idempotency_record(
                    claim=idempotency,
                    conversation_id=conversation.pk,
                    user_message_id=user_message.pk,
                    assistant_message_id=assistant.pk,
                )
            budget_reserve(
                user_id=conversation.owner_id,
                message_id=assistant.pk,
                tokens=estimated_input + output_budget,
                cost_usd=turn_cost(
                    model=model,
                    usage=Usage(input_tokens=estimated_input, output_tokens=output_budget),
                ),
            )
            Message.objects.bulk_create([user_message, assistant])
            conversation_touch(conversation_id=conversation.pk, at=now, title=_title_from(content))
    except IntegrityError as exc:
        if idempotency is not None and IDEMPOTENCY_CONSTRAINT in str(exc):
            record = idempotency_find(idempotency)
            if record is not None:
                raise IdempotentReplayError(record) from None
        if ONE_IN_PROGRESS_CONSTRAINT not in str(exc):
            raise
        raise _in_progress_conflict(conversation) from None
    return TurnPlan(
        conversation_id=conversation.pk,
        user_message=user_message,
        assistant_message_id=assistant.pk,
        model=model,
        request=ChatRequest(
            model=model.id,
            messages=messages,
            temperature=generation.temperature,
            max_output_tokens=generation.max_output_tokens,
            reasoning_effort=generation.reasoning_effort if model.reasoning else None,
            tools=generation.tools,
            tool_choice=generation.tool_choice,
            stop_sequences=generation.stop_sequences,
            service_tier=generation.service_tier,
        ),
        estimated_input_tokens=estimated_input,
        started_at=started_at if started_at is not None else time.perf_counter(),
        user_id=conversation.owner_id,
        auto_title=None if conversation.title else _title_from(content),
        fallbacks=tuple(
            fallback
            for fallback in map(chat_model_get, generation.fallback_models)
            if fallback is not None and fallback.id != model.id
        ),
    )


def provider_timings_json(usage: Usage) -> dict[str, float] | None:
    """The provider's timings as stored on the message, in seconds."""
    timings = usage.timings
    if timings is None:
        return None
    return {
        "queue": timings.queue_seconds,
        "prompt": timings.prompt_seconds,
        "completion": timings.completion_seconds,
    }


def turn_record(*, plan: TurnPlan, outcome: TurnOutcome) -> None:
    """Store how the turn ended: the assistant message with everything measured, its row in
    the usage ledger (none when it consumed no tokens: refused before any output), and the
    end of its budget reservation, in one transaction. Called once per prepared turn,
    whatever its status."""
    now = timezone.now()
    user_id = plan.user_id
    if user_id is None:
        user_id = (
            Conversation.objects.filter(pk=plan.conversation_id)
            .values_list("owner_id", flat=True)
            .first()
        )
    with transaction.atomic():
        fields = {
            "status": outcome.status,
            "content": outcome.content,
            "reasoning": outcome.reasoning,
            "blocks": outcome.blocks,
            "model": outcome.model,
            "stop_reason": outcome.stop_reason,
            "stop_sequence": outcome.stop_sequence or "",
            "input_tokens": outcome.usage.input_tokens,
            "output_tokens": outcome.usage.output_tokens,
            "cached_input_tokens": outcome.usage.cached_input_tokens,
            "provider_timings": provider_timings_json(outcome.usage),
            "usage_estimated": outcome.usage_estimated,
            "latency_ms": outcome.latency_ms,
            "ttft_ms": outcome.ttft_ms,
            "cost_usd": outcome.cost_usd,
            "error": outcome.error,
            "completed_at": now,
        }
        message = Message.objects.filter(pk=plan.assistant_message_id)
        if not message.filter(status=Message.Status.IN_PROGRESS).update(**fields):
            # Finished meanwhile by a sweeper or a cancel that took this process for dead
            # (its heartbeat could not reach the database): the real outcome replaces
            # theirs, and its ledger row their estimated one.
            UsageRecord.objects.filter(
                message_id=plan.assistant_message_id, kind=UsageKind.CHAT
            ).delete()
            message.update(**fields)
        conversation_touch(conversation_id=plan.conversation_id, at=now)
        usage_record(
            user_id=user_id,
            conversation_id=plan.conversation_id,
            message_id=plan.assistant_message_id,
            kind=UsageKind.CHAT,
            model=outcome.answered_by or plan.model,
            input_tokens=outcome.usage.input_tokens,
            output_tokens=outcome.usage.output_tokens,
            reasoning_tokens=outcome.usage.reasoning_tokens,
            cached_input_tokens=outcome.usage.cached_input_tokens,
            usage_estimated=outcome.usage_estimated,
            cost_usd=outcome.cost_usd,
            created_at=now,
        )
        budget_release(message_id=plan.assistant_message_id)
    metrics.turn_observe(
        model=(outcome.answered_by or plan.model).id,
        input_tokens=outcome.usage.input_tokens,
        output_tokens=outcome.usage.output_tokens,
        cost_usd=outcome.cost_usd,
    )


def turn_record_swept(*, message_id: uuid.UUID, content: str | None, reasoning: str) -> None:
    """Finish the books of a turn whose process died (the sweeper stored it ``incomplete``):
    its partial answer when the event log had one, an estimated ledger row, and the end of
    its budget reservation."""
    with transaction.atomic():
        message = (
            Message.objects.select_related("conversation")
            .filter(pk=message_id, status=Message.Status.INCOMPLETE)
            .first()
        )
        if message is None:
            return
        if content is not None:
            message.content, message.reasoning = content, reasoning
            message.blocks = text_blocks(content, reasoning)
        usage = Usage(
            input_tokens=message.input_tokens or 0,
            output_tokens=estimate_tokens(message.reasoning) + estimate_tokens(message.content),
        )
        model = chat_model_get(message.model)
        cost = turn_cost(model=model, usage=usage) if model is not None else None
        message.output_tokens = usage.output_tokens
        message.cost_usd = cost
        message.save(update_fields=["content", "reasoning", "blocks", "output_tokens", "cost_usd"])
        if model is not None:
            usage_record(
                user_id=message.conversation.owner_id,
                conversation_id=message.conversation_id,
                message_id=message.pk,
                kind=UsageKind.CHAT,
                model=model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                usage_estimated=True,
                cost_usd=cost,
            )
        budget_release(message_id=message.pk)
