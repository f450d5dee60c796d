"""The database side of a turn: what happens before the first byte (``turn_prepare``) and
when the answer ends (``turn_record``). Both are synchronous and each runs in one thread hop.
"""

import contextlib
import copy
import dataclasses
import functools
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import orjson
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chatapi import metrics
from chatapi.errors import ApiError, ConflictError
from chatapi.rows import (
    compact_sql,
    insert_rows_sql,
    json_rows,
    update_assignments,
    update_values,
)
from conversations.blocks import (
    Block,
    blocks_text,
    text_blocks,
    tool_results,
    tool_results_problem,
    tool_uses,
)
from conversations.events import Event, message_ended_event
from conversations.models import Conversation, Message, ReasoningEffort, ServiceTier
from conversations.notify import conversation_notify, message_notify
from conversations.selectors import (
    Parent,
    conversation_leaf_id,
)
from messaging.endings import SWEPT_ERROR
from messaging.history import chat_messages_from
from messaging.idempotency import CONSTRAINT as IDEMPOTENCY_CONSTRAINT
from messaging.idempotency import (
    IdempotencyClaim,
    IdempotentReplayError,
    idempotency_find,
    idempotency_record,
)
from messaging.llm.base import ChatMessage, ChatRequest, ToolChoice, ToolDefinition, Usage
from messaging.llm.token_estimates import (
    BYTES_PER_TOKEN,
    TOKENS_PER_MESSAGE,
    estimate_messages_tokens,
    estimate_tokens,
    estimate_tokens_of_size,
    estimate_tools_tokens,
)
from messaging.process import WORKER_ID
from messaging.webhooks import (
    OUTBOX_INSERT,
    webhook_outbox_params,
    webhook_outbox_write,
    webhook_outbox_written,
)
from usage.catalog import ChatModel, chat_model_get, turn_cost
from usage.models import UsageKind, UsageRecord
from usage.selectors import budget_limits_get
from usage.services import (
    budget_release,
    budget_release_sql,
    budget_reserve,
    ledger_append_ctes,
    ledger_remove,
    ledger_row,
    usage_record,
)

TITLE_MAX_CHARS = 60
# Statuses whose content is part of the conversation the model sees next time.
_CONTEXT_STATUSES = (Message.Status.COMPLETE, Message.Status.INCOMPLETE, Message.Status.CANCELLED)


def _literal(value: str) -> str:
    """A constant of the code (a choice's value) as an SQL string literal: the statements
    below name their constants instead of sending them as parameters, each of which psycopg
    adapts on every execution."""
    if not value.isidentifier():
        raise ValueError(f"not a constant of the code: {value!r}")
    return f"'{value}'"


_CONTEXT_STATUS_LIST = ", ".join(_literal(status) for status in _CONTEXT_STATUSES)
ONE_IN_PROGRESS_CONSTRAINT = "message_one_in_progress_per_conversation"


# The branch that ends at a message, newest first, with what the context needs of each
# message: one statement whatever the depth. The recursion follows parent_id by primary key
# alone, one LATERAL lookup per level as in conversations.selectors._BRANCH_IDS (a join there
# lets stale statistics pick a scan per level); only the conversation's own messages are kept,
# so a parent_id pointing elsewhere (written outside the API) brings in nothing of another
# conversation.
# `before` is the UTF-8 size of the newer texts: a message whose newer texts alone exceed the
# budget (at BYTES_PER_TOKEN bytes a token at least) can never fit, so it is not sent. The
# blocks come only for messages with tool blocks: the others are their text (`content` is
# their text blocks joined), and their thinking is never sent.
_MESSAGES = Message._meta.db_table
_CONTEXT_CTES = f"""
branch AS (
    SELECT id, parent_id, conversation_id, role, status, content, blocks, created_at
    FROM {_MESSAGES} WHERE id = %(leaf)s AND conversation_id = %(conversation)s
  UNION ALL
    SELECT m.* FROM branch b CROSS JOIN LATERAL (
        SELECT id, parent_id, conversation_id, role, status, content, blocks, created_at
        FROM {_MESSAGES} WHERE id = b.parent_id LIMIT 1
    ) m
), sized AS (
    SELECT id, role, status, content, blocks, created_at, octet_length(content) AS size,
        coalesce(sum(octet_length(content)) OVER (
            ORDER BY created_at DESC, id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS before
    FROM branch
    WHERE conversation_id = %(conversation)s AND status IN ({_CONTEXT_STATUS_LIST})
        AND role <> {_literal(Message.Role.SYSTEM)}
), context AS (
    SELECT id, role, status, size, content, created_at,
        CASE WHEN jsonb_path_exists(
            blocks, '$[*] ? (@.type == "tool_use" || @.type == "tool_result")'
        ) THEN blocks END AS blocks
    FROM sized WHERE before <= %(max_bytes)s
)"""  # noqa: S608 (constant SQL: the table name; the values are parameters)
_CONTEXT_SQL = f"""WITH RECURSIVE {_CONTEXT_CTES}
SELECT id, role, status, size, content, blocks FROM context ORDER BY created_at DESC, id DESC
"""  # noqa: S608 (constant SQL: the table name; the values are parameters)


# A turn before its first byte, in one statement: the history window above (read from the
# snapshot the statement started with, so without the new messages), the user message (unless
# regenerating: then it is stored already) and the in-progress answer, the conversation's new
# leaf, activity and first-words title, and the user message's place among its siblings
# (counted in the same snapshot: the new message itself is added by the caller).
# With `guard` on, nothing is written when the parent is a finished answer that called tools
# (a message with no tool results cannot follow it): `stored` says so, and the caller
# answers with the open calls it read in the context. (The statement's own writes are the
# one exception to "the snapshot": the UPDATE waits for, and sees, a concurrent writer of
# the conversation row.)
@functools.cache
def _prepare_sql(*, root: bool) -> str:
    siblings = "parent_id IS NULL" if root else "parent_id = %(leaf)s"
    conversations = Conversation._meta.db_table
    return f"""WITH RECURSIVE {_CONTEXT_CTES}, guard AS (
    SELECT NOT (%(guard)s AND EXISTS (
        SELECT FROM {_MESSAGES} WHERE id = %(leaf)s AND conversation_id = %(conversation)s
            AND role = {_literal(Message.Role.ASSISTANT)}
            AND status = {_literal(Message.Status.COMPLETE)}
            AND jsonb_path_exists(blocks, '$[*] ? (@.type == "tool_use")')
    )) AS ok
), stored AS (
    {insert_rows_sql(Message, "rows")} WHERE (SELECT ok FROM guard)
), touched AS (
    UPDATE {conversations} SET
        last_message_at = GREATEST(last_message_at, %(now)s),
        activity_at = GREATEST(activity_at, %(now)s),
        current_leaf_id = %(answer)s::uuid,
        title = CASE WHEN title = '' THEN %(title)s::varchar ELSE title END
    WHERE id = %(conversation)s AND (SELECT ok FROM guard)
), siblings AS (
    SELECT count(*) AS n,
        count(*) FILTER (
            WHERE (created_at, id) <= (%(question_created_at)s::timestamptz, %(question)s::uuid)
        ) AS i
    FROM {_MESSAGES} WHERE {siblings} AND conversation_id = %(conversation)s
)
SELECT (SELECT ok FROM guard), siblings.n, siblings.i,
    context.id, context.role, context.status, context.size, context.content, context.blocks
FROM siblings LEFT JOIN context ON true
ORDER BY context.created_at DESC, context.id DESC
"""  # noqa: S608 (constant SQL: table and column names; the values are parameters)


_TOOL_BLOCK_TYPES = frozenset({"tool_use", "tool_result"})


@dataclass(frozen=True)
class TurnPlan:
    conversation_id: uuid.UUID
    user_message: Message
    assistant_message_id: uuid.UUID
    assistant_created_at: datetime
    model: ChatModel
    request: ChatRequest
    estimated_input_tokens: int
    started_at: float  # time.perf_counter() when the request arrived
    # The conversation's owner, whose ledger and budgets the turn counts against.
    user_id: uuid.UUID | None = None
    # The title this turn gave an untitled conversation (its first words), else None.
    auto_title: str | None = None
    # The API key that asked for the turn (its ledger row names it); None for a session.
    api_key_id: uuid.UUID | None = None
    # The models to try, in order, when ``model`` fails before its first token.
    fallbacks: tuple[ChatModel, ...] = ()
    # Whether the turn holds a budget reservation (none when no limit applies to its owner),
    # which its record ends.
    reserved: bool = True

    def started(self) -> "TurnPlan":
        """The plan once the provider has accepted the request: without the request's history
        and the fallback models, which only a failure before the first token would use. An
        open stream then holds none of the conversation it answers."""
        return dataclasses.replace(
            self, request=dataclasses.replace(self.request, messages=()), fallbacks=()
        )


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
    # Per turn only (the compatibility routes'); conversations keep no such setting.
    top_p: float | None = None
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: ToolChoice | None = None
    stop_sequences: tuple[str, ...] = ()
    service_tier: ServiceTier | None = None
    fallback_models: tuple[str, ...] = ()
    # Per turn only, as top_p: OpenAI's response_format (the OpenAI-compatible route's).
    response_format: dict[str, Any] | None = None


def _sent_blocks(status: str, blocks: list[Block]) -> list[Block]:
    """A stored message's blocks as they go back upstream: a stopped answer's calls were
    never answered, so they cannot go back."""
    if status == Message.Status.COMPLETE:
        return blocks
    return [block for block in blocks if block["type"] != "tool_use"]


def context_messages(
    *, conversation: Conversation, parent_id: uuid.UUID | None, budget: int
) -> tuple[list[ChatMessage], int]:
    """The newest history that fits ``budget`` estimated tokens, oldest first: the branch
    that ends at ``parent_id`` (the new message's parent; None: a new root, no history).
    Messages on other branches are never part of it. A stored message is taken whole or not
    at all (a tool round trip is several provider messages); tool results whose call was
    cut off are left out too: the provider refuses them.

    One statement whatever the depth; the texts of messages that cannot fit are not read."""
    messages, used, _ = _context(conversation=conversation, parent_id=parent_id, budget=budget)
    return messages, used


def _context_params(
    *, conversation: Conversation, parent_id: uuid.UUID | None, budget: int
) -> dict[str, Any]:
    return {
        "leaf": parent_id,
        "conversation": conversation.pk,
        "max_bytes": budget * BYTES_PER_TOKEN,
    }


def _context(
    *, conversation: Conversation, parent_id: uuid.UUID | None, budget: int
) -> tuple[list[ChatMessage], int, list[str]]:
    """``context_messages``, and the ids of the tool calls of the parent (when it is a
    finished answer that called tools) that the new message must answer: the same rows."""
    if parent_id is None:
        return [], 0, []
    with connection.cursor() as cursor:
        cursor.execute(
            _CONTEXT_SQL,
            _context_params(conversation=conversation, parent_id=parent_id, budget=budget),
        )
        rows = cursor.fetchall()
    return _context_from(rows, parent_id=parent_id, budget=budget)


def _context_from(
    rows: list[tuple[Any, ...]], *, parent_id: uuid.UUID | None, budget: int
) -> tuple[list[ChatMessage], int, list[str]]:
    """The context and the parent's open tool calls from the context's rows (id, role,
    status, size, content, blocks), newest first."""
    picked: list[list[ChatMessage]] = []
    used = 0
    # The parent is the newest row, when it is part of a context at all.
    parent_row = rows[0] if rows and rows[0][0] == parent_id else None
    open_ids = (
        [block["id"] for block in tool_uses(orjson.loads(parent_row[5]))]
        if parent_row is not None
        and parent_row[1] == Message.Role.ASSISTANT
        and parent_row[2] == Message.Status.COMPLETE
        and parent_row[5] is not None
        else []
    )
    # Django has psycopg hand jsonb over as text (JSONField parses it); orjson parses it here.
    for _, role, status, size, content, blocks_json in rows:
        if blocks_json is None:  # text only
            if not size:
                continue  # it says nothing
            cost = estimate_tokens_of_size(size) + TOKENS_PER_MESSAGE
            if used + cost > budget:
                break
            picked.append(
                [ChatMessage("user" if role == Message.Role.USER else "assistant", content)]
            )
            used += cost
            continue
        sent = _sent_blocks(status, orjson.loads(blocks_json))
        # The tool messages (or the calls) as chat_messages_from makes them, without the text.
        tool_messages = chat_messages_from(
            role=role,
            content="",
            blocks=[block for block in sent if block["type"] in _TOOL_BLOCK_TYPES],
        )
        if not size and not tool_messages:
            continue  # it says nothing
        cost = estimate_messages_tokens(tool_messages) + estimate_tokens_of_size(size)
        if size and (role == Message.Role.USER or not tool_messages):
            cost += TOKENS_PER_MESSAGE  # the text is a message of its own
        if used + cost > budget:
            break
        picked.append(chat_messages_from(role=role, content=content, blocks=sent))
        used += cost
    messages = [message for stored in reversed(picked) for message in stored]
    return _without_orphan_results(messages), used, open_ids


def _without_orphan_results(oldest_first: list[ChatMessage]) -> list[ChatMessage]:
    start = 0
    while start < len(oldest_first) and oldest_first[start].role == "tool":
        start += 1
    return oldest_first[start:]


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
    api_key_id: uuid.UUID | None = None,
    parent: uuid.UUID | Literal[Parent.CURRENT_LEAF] | None = Parent.CURRENT_LEAF,
) -> TurnPlan:
    """Store the user message (committed before any upstream call) after ``parent`` (an
    assistant message of the conversation, checked by the caller; None: a new root; by
    default the current leaf) and an ``in_progress`` assistant message, and build the
    provider request from the branch up to the parent that fits the model's context window
    minus the output budget. The two messages become the conversation's current leaf.

    The turn's worst case (estimated input plus the whole output budget) is reserved against
    the owner's budgets in the same transaction (``usage.services.budget_reserve``).

    ``blocks`` (the user message's content) must answer the tool calls of the answer it
    follows, if it made any, with one ``tool_result`` each (``ApiError`` naming the ids
    otherwise).

    Raises ``ConflictError`` while another answer is in progress in the conversation,
    ``IdempotentReplayError`` when a concurrent request with the same key won the race, and
    ``BillingError`` when a budget is spent (then nothing is stored)."""
    now = timezone.now()
    parent_id = (
        conversation_leaf_id(conversation=conversation) if parent is Parent.CURRENT_LEAF else parent
    )
    question = Message(
        conversation=conversation,
        parent_id=parent_id,
        role=Message.Role.USER,
        content=blocks_text(blocks),
        blocks=blocks,
        status=Message.Status.COMPLETE,
        stop_sequence="",
        created_at=now,
        completed_at=now,
    )
    return _turn_prepare(
        conversation=conversation,
        question=question,
        store_question=True,
        model=model,
        generation=generation,
        started_at=started_at,
        idempotency=idempotency,
        now=now,
        api_key_id=api_key_id,
    )


def turn_prepare_regeneration(
    *,
    conversation: Conversation,
    question: Message,
    model: ChatModel,
    generation: GenerationSettings,
    started_at: float | None = None,
    idempotency: IdempotencyClaim | None = None,
    api_key_id: uuid.UUID | None = None,
) -> TurnPlan:
    """Another answer to ``question`` (a stored user message of the conversation): an
    ``in_progress`` assistant message beside its earlier answers, built from the same
    history, and the conversation's current leaf. Otherwise as ``turn_prepare``."""
    return _turn_prepare(
        conversation=conversation,
        question=question,
        store_question=False,
        model=model,
        generation=generation,
        started_at=started_at,
        idempotency=idempotency,
        now=timezone.now(),
        api_key_id=api_key_id,
    )


def _history_budget(
    *, model: ChatModel, output_budget: int, tools_tokens: int, fixed_tokens: int
) -> int:
    """The estimated tokens left for the history in ``model``'s context window once the
    answer's budget, the tools' definitions (the provider writes them into the prompt) and
    ``fixed_tokens`` (the system prompt and the new message) have their room; ``ApiError``
    when nothing is left for the message itself."""
    budget = model.context_window - output_budget - tools_tokens - fixed_tokens
    if budget < 0:
        reserved = (
            f", {output_budget} are reserved for the answer and {tools_tokens} for the tools' "
            "definitions"
            if tools_tokens
            else f" and {output_budget} are reserved for the answer"
        )
        raise ApiError(
            f"The message is too long for {model.id}: its context window is "
            f"{model.context_window} tokens{reserved}.",
            details={"fields": {"content": ["Too long for the model's context window."]}},
        )
    return budget


def _turn_prepare(
    *,
    conversation: Conversation,
    question: Message,
    store_question: bool,
    model: ChatModel,
    generation: GenerationSettings,
    started_at: float | None,
    idempotency: IdempotencyClaim | None,
    now: datetime,
    api_key_id: uuid.UUID | None,
) -> TurnPlan:
    content = question.content
    system = (
        [ChatMessage(role="system", content=conversation.system_prompt)]
        if conversation.system_prompt
        else []
    )
    # A regenerated question goes again as it was stored: its tool results included.
    new_messages = chat_messages_from(role="user", content=content, blocks=question.blocks)
    output_budget = generation.max_output_tokens or model.max_output_tokens
    tools_tokens = estimate_tools_tokens(generation.tools)
    budget = _history_budget(
        model=model,
        output_budget=output_budget,
        tools_tokens=tools_tokens,
        fixed_tokens=estimate_messages_tokens(system) + estimate_messages_tokens(new_messages),
    )
    assistant = Message(
        conversation=conversation,
        parent_id=question.pk,
        role=Message.Role.ASSISTANT,
        status=Message.Status.IN_PROGRESS,
        model=model.id,
        stop_sequence="",
        # Strictly after the user message, so (created_at, id) order never swaps them.
        created_at=now + timedelta(microseconds=1),
        worker_id=WORKER_ID,
    )
    title = _title_from(content) if store_question else None
    has_results = bool(tool_results(question.blocks))
    # Without an idempotency key, tool results to check or budget limits, the turn is the
    # one statement in autocommit: one round trip before the upstream call.
    limits = budget_limits_get(user_id=conversation.owner_id)
    # (Inside a caller's transaction, DB_RLS_PER_REQUEST's, a savepoint keeps a refused
    # insert from aborting it.)
    in_transaction = (
        idempotency is not None or has_results or limits.any or connection.in_atomic_block
    )
    params = {
        **_context_params(conversation=conversation, parent_id=question.parent_id, budget=budget),
        # Both messages, or the answer alone when the question is stored already.
        "rows": json_rows(question, assistant) if store_question else json_rows(assistant),
        "question": question.pk,
        "question_created_at": question.created_at,
        "answer": assistant.pk,
        # Checked by the statement when nothing else checks it (see _prepare_sql).
        "guard": store_question and not in_transaction,
        "now": now,
        "title": title or "",
    }
    try:
        with transaction.atomic() if in_transaction else contextlib.nullcontext():
            if idempotency is not None:
                # First: a concurrent retry waits here on the key, then replays this turn.
                idempotency_record(
                    claim=idempotency,
                    conversation_id=conversation.pk,
                    user_message_id=question.pk,
                    assistant_message_id=assistant.pk,
                )
            with connection.cursor() as cursor:
                cursor.execute(_prepare_sql(root=question.parent_id is None), params)
                rows = cursor.fetchall()
            stored, siblings, position = rows[0][:3]
            history, history_tokens, open_ids = _context_from(
                [row[3:] for row in rows if row[3] is not None],
                parent_id=question.parent_id,
                budget=budget,
            )
            if store_question:
                # A new message must answer the tool calls of the answer it follows, if it
                # made any (a problem here rolls the transaction back).
                problem = tool_results_problem(open_ids=open_ids, blocks=question.blocks)
                if problem:
                    raise ApiError(
                        problem,
                        details={"fields": {"content": [problem]}, "open_tool_use_ids": open_ids},
                    )
            if not stored:  # the guard found open tool calls: the problem was raised above
                raise RuntimeError("The turn's statement stored nothing.")
            estimated_input = (
                tools_tokens
                + estimate_messages_tokens(system)
                + history_tokens
                + estimate_messages_tokens(new_messages)
            )
            reservation = (
                budget_reserve(
                    user_id=conversation.owner_id,
                    message_id=assistant.pk,
                    tokens=estimated_input + output_budget,
                    cost_usd=turn_cost(
                        model=model,
                        usage=Usage(input_tokens=estimated_input, output_tokens=output_budget),
                    ),
                )
                if limits.any
                else None
            )
            question.sibling_count = siblings + store_question  # type: ignore[attr-defined]
            question.sibling_index = position + store_question  # type: ignore[attr-defined]
            if store_question:
                message_notify(Event.MESSAGE_CREATED, question, user_id=conversation.owner_id)
            message_notify(Event.MESSAGE_CREATED, assistant, user_id=conversation.owner_id)
            if title and not conversation.title:  # its first words became its title
                titled = copy.copy(conversation)  # the caller's stays as it was read
                titled.title = title
                conversation_notify(Event.CONVERSATION_UPDATED, titled)
    except IntegrityError as exc:
        if idempotency is not None and IDEMPOTENCY_CONSTRAINT in str(exc):
            record = idempotency_find(idempotency)
            if record is not None:
                raise IdempotentReplayError(record) from None
        if ONE_IN_PROGRESS_CONSTRAINT not in str(exc):
            raise
        raise _in_progress_conflict(conversation) from None
    messages = (*system, *history, *new_messages)
    conversation.current_leaf_id = assistant.pk
    return TurnPlan(
        conversation_id=conversation.pk,
        user_message=question,
        assistant_message_id=assistant.pk,
        assistant_created_at=assistant.created_at,
        model=model,
        request=ChatRequest(
            model=model.id,
            messages=messages,
            temperature=generation.temperature,
            max_output_tokens=generation.max_output_tokens,
            reasoning_effort=generation.reasoning_effort if model.reasoning else None,
            top_p=generation.top_p,
            tools=generation.tools,
            tool_choice=generation.tool_choice,
            stop_sequences=generation.stop_sequences,
            service_tier=generation.service_tier,
            response_format=generation.response_format,
        ),
        estimated_input_tokens=estimated_input,
        started_at=started_at if started_at is not None else time.perf_counter(),
        user_id=conversation.owner_id,
        auto_title=None if conversation.title or title is None else title,
        api_key_id=api_key_id,
        fallbacks=tuple(
            fallback
            for fallback in map(chat_model_get, generation.fallback_models)
            if fallback is not None and fallback.id != model.id
        ),
        reserved=reservation is not None,
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


def _ended_message(plan: TurnPlan, fields: dict[str, Any]) -> Message:
    """The assistant message as ``turn_record`` stores it (``fields``), built without a
    query: what its webhook event tells."""
    return Message(
        id=plan.assistant_message_id,
        conversation_id=plan.conversation_id,
        parent_id=plan.user_message.pk,
        role=Message.Role.ASSISTANT,
        created_at=plan.assistant_created_at,
        **fields,
    )


_RECORDED_FIELDS = (
    "status",
    "content",
    "reasoning",
    "blocks",
    "model",
    "stop_reason",
    "stop_sequence",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "provider_timings",
    "usage_estimated",
    "latency_ms",
    "ttft_ms",
    "cost_usd",
    "error",
    "completed_at",
)

# The end of an answer: the message (while still in progress) and its conversation's
# activity; `ended` is 0 when the message was finished meanwhile.
_ENDED_CTES = f"""ended AS (
    UPDATE {_MESSAGES} SET {{assignments}}
    WHERE id = %(id)s AND status = %(in_progress)s RETURNING 1
), touched AS (
    UPDATE {Conversation._meta.db_table} SET
        last_message_at = GREATEST(last_message_at, %(now)s),
        activity_at = GREATEST(activity_at, %(now)s)
    WHERE id = %(conversation)s
)"""  # noqa: S608 (constant SQL: table and column names; the values are parameters)


@functools.cache
def _ended_sql() -> str:
    ctes = _ENDED_CTES.format(assignments=update_assignments(Message, _RECORDED_FIELDS, "m"))
    return f"WITH {ctes} SELECT count(*) FROM ended"  # noqa: S608 - constant SQL


# The whole record in one statement (autocommit: one round trip): the end above and, only if
# the message was still in progress, its ledger row with the rollups, the end of its budget
# reservation (when one was held) and its webhook outbox rows. Counts the messages ended and
# the outbox rows. Compacted: without a reservation it stays under psycopg's 4 kB limit for
# caching a statement's parsing (chatapi.rows.compact_sql).
@functools.cache
def _recorded_sql(*, reserved: bool) -> str:
    ctes = _ENDED_CTES.format(assignments=update_assignments(Message, _RECORDED_FIELDS, "m"))
    when = "EXISTS (SELECT FROM ended)"
    released = (
        f"released AS ({budget_release_sql(message_param='id')} AND {when}),\n" if reserved else ""
    )
    return compact_sql(f"""WITH {ctes},
{ledger_append_ctes(param="ledger", condition=when)},
{released}outbox AS ({OUTBOX_INSERT} AND %(outbox)s AND {when} RETURNING 1)
SELECT (SELECT count(*) FROM ended), (SELECT count(*) FROM outbox)""")  # noqa: S608 - constant SQL


def turn_record(*, plan: TurnPlan, outcome: TurnOutcome) -> None:
    """Store how the turn ended: the assistant message with everything measured, its row in
    the usage ledger (none when it consumed no tokens: refused before any output), the end
    of its budget reservation and its webhook outbox rows, all or nothing: one statement
    outside a transaction, else in the caller's. Called once per prepared turn, whatever its
    status."""
    now = timezone.now()
    user_id = plan.user_id
    if user_id is None:
        user_id = (
            Conversation.objects.filter(pk=plan.conversation_id)
            .values_list("owner_id", flat=True)
            .first()
        )
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
    answer = _ended_message(plan, fields)
    ledger = ledger_row(
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
        api_key_id=plan.api_key_id,
    )
    outbox = webhook_outbox_params(owner_id=user_id, message=answer)
    params = {
        "m": update_values(Message, fields),
        "id": plan.assistant_message_id,
        "in_progress": Message.Status.IN_PROGRESS,
        "conversation": plan.conversation_id,
        "now": now,
    }
    if connection.in_atomic_block or not _record_at_once(
        params, ledger=ledger, outbox=outbox, reserved=plan.reserved
    ):
        _record_in_transaction(plan, params, fields, ledger=ledger, answer=answer, owner=user_id)
    ended = message_ended_event(outcome.status)
    if ended is not None and user_id is not None:
        message_notify(ended, answer, user_id=user_id)
    metrics.turn_observe(
        model=(outcome.answered_by or plan.model).id,
        input_tokens=outcome.usage.input_tokens,
        output_tokens=outcome.usage.output_tokens,
        cost_usd=outcome.cost_usd,
    )


def _record_at_once(
    params: dict[str, Any], *, ledger: UsageRecord | None, outbox: dict[str, Any], reserved: bool
) -> bool:
    """``turn_record`` in one autocommitted statement; False, with only the conversation's
    activity changed, when the message was no longer in progress."""
    with connection.cursor() as cursor:
        cursor.execute(
            _recorded_sql(reserved=reserved),
            {
                **params,
                "ledger": json_rows(ledger) if ledger is not None else "[]",
                "outbox": bool(outbox),
                **(outbox or _NO_OUTBOX),
            },
        )
        ended, written = cursor.fetchone()
    if written:
        webhook_outbox_written()
    return bool(ended)


# The outbox's parameters when the end tells no one (the statement still names them).
_NO_OUTBOX = {
    "outbox_event": "",
    "outbox_payload": "null",
    "outbox_status": "",
    "outbox_now": None,
    "outbox_owner": None,
}


def _record_in_transaction(
    plan: TurnPlan,
    params: dict[str, Any],
    fields: dict[str, Any],
    *,
    ledger: UsageRecord | None,
    answer: Message,
    owner: uuid.UUID | None,
) -> None:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_ended_sql(), params)
            (ended,) = cursor.fetchone()
        if not ended:
            # Finished meanwhile by a sweeper or a cancel that took this process for dead
            # (its heartbeat could not reach the database): the real outcome replaces
            # theirs, and its ledger row their estimated one (the update above waited for
            # the sweeper's transaction, row and all, so this statement sees its row).
            ledger_remove(message_id=plan.assistant_message_id, kind=UsageKind.CHAT)
            Message.objects.filter(pk=plan.assistant_message_id).update(**fields)
        usage_record(ledger)
        if plan.reserved:
            budget_release(message_id=plan.assistant_message_id)
        webhook_outbox_write(owner_id=owner, message=answer)


def turn_record_swept(*, message_id: uuid.UUID, content: str | None, reasoning: str) -> bool:
    """Finish a turn whose process died: the message ``incomplete`` with its partial answer
    (when the event log had one), an estimated ledger row and the end of its budget
    reservation, in one transaction. False, and nothing changed, if the message is no longer
    in progress: another sweeper, or its own generation (late, not dead), finished it.

    The message row is locked first: whichever of this and ``turn_record`` comes second
    sees the other's outcome whole, so a turn never gets two ledger rows."""
    now = timezone.now()
    with transaction.atomic():
        message = (
            Message.objects.select_for_update()
            .filter(pk=message_id, status=Message.Status.IN_PROGRESS)
            .first()
        )
        if message is None:
            return False
        if content is not None:
            message.content, message.reasoning = content, reasoning
            message.blocks = text_blocks(content, reasoning)
        usage = Usage(
            input_tokens=message.input_tokens or 0,
            output_tokens=estimate_tokens(message.reasoning) + estimate_tokens(message.content),
        )
        model = chat_model_get(message.model)
        cost = turn_cost(model=model, usage=usage) if model is not None else None
        message.status = Message.Status.INCOMPLETE
        message.error = SWEPT_ERROR
        message.usage_estimated = True
        message.completed_at = now
        message.output_tokens = usage.output_tokens
        message.cost_usd = cost
        message.save(
            update_fields=[
                "status",
                "error",
                "usage_estimated",
                "completed_at",
                "content",
                "reasoning",
                "blocks",
                "output_tokens",
                "cost_usd",
            ]
        )
        owner_id = (
            Conversation.objects.filter(pk=message.conversation_id)
            .values_list("owner_id", flat=True)
            .first()
        )
        if model is not None:
            usage_record(
                ledger_row(
                    user_id=owner_id,
                    conversation_id=message.conversation_id,
                    message_id=message.pk,
                    kind=UsageKind.CHAT,
                    model=model,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    usage_estimated=True,
                    cost_usd=cost,
                    created_at=now,
                )
            )
        budget_release(message_id=message.pk)
        webhook_outbox_write(owner_id=owner_id, message=message)
        if owner_id is not None:
            message_notify(Event.MESSAGE_FAILED, message, user_id=owner_id)
    return True
