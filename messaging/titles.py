"""A conversation's title from a cheap model call, when TITLE_MODEL is set.

The first message already gives an untitled conversation a title (its first words, set before
the answer starts). With TITLE_MODEL, once the first answer has completed, a short call to
that model replaces it, unless someone renamed the conversation meanwhile. The call is
recorded in the usage ledger like any other (kind ``title``). It runs after the stream has
ended, so it never delays an answer.
"""

import asyncio
import contextvars
import logging
import uuid

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction

from conversations.events import Event
from conversations.models import Conversation
from conversations.notify import conversation_notify
from messaging.llm.base import ChatMessage, ChatRequest, ProviderError, TextDelta, Usage
from messaging.llm.registry import provider_get
from messaging.llm.token_estimates import estimate_messages_tokens, estimate_tokens
from usage.catalog import ChatModel, chat_model_get, turn_cost
from usage.models import UsageKind
from usage.services import ledger_row, usage_record

logger = logging.getLogger(__name__)

TITLE_PROMPT = (
    "Write a title of at most six words for a conversation that starts with the user's "
    "message. Answer with the title only, without quotes or a final period."
)
TITLE_MAX_LENGTH = 200
# Reasoning models spend tokens thinking before they answer: leave them room.
TITLE_OUTPUT_TOKENS = 512
# Straight and typographic quotes models like to wrap titles in, and spaces.
_QUOTES = "\"' \u201c\u201d\u2018\u2019"
_running: set[asyncio.Task[None]] = set()


def title_generate_later(
    *,
    conversation_id: uuid.UUID,
    user_id: uuid.UUID | None,
    content: str,
    auto_title: str,
    api_key_id: uuid.UUID | None = None,
) -> None:
    """Start the title call in the background (call on the event loop). ``api_key_id``: the
    key that sent the turn, which the call's ledger row names as the turn's does."""
    task = asyncio.get_running_loop().create_task(
        title_generate(
            conversation_id=conversation_id,
            user_id=user_id,
            content=content,
            auto_title=auto_title,
            api_key_id=api_key_id,
        ),
        context=contextvars.Context(),
    )
    _running.add(task)
    task.add_done_callback(_running.discard)


@sync_to_async(thread_sensitive=False)
def _title_model() -> ChatModel | None:
    try:
        return chat_model_get(str(settings.TITLE_MODEL))
    finally:
        connection.close()


async def title_generate(
    *,
    conversation_id: uuid.UUID,
    user_id: uuid.UUID | None,
    content: str,
    auto_title: str,
    api_key_id: uuid.UUID | None = None,
) -> None:
    model = await _title_model()
    if model is None:
        logger.warning("TITLE_MODEL %r is not an available model", settings.TITLE_MODEL)
        return
    request = ChatRequest(
        model=model.id,
        messages=(
            ChatMessage(role="system", content=TITLE_PROMPT),
            ChatMessage(role="user", content=content[:2000]),
        ),
        temperature=0.2,
        max_output_tokens=min(TITLE_OUTPUT_TOKENS, model.max_output_tokens),
        reasoning_effort="low" if model.reasoning else None,
    )
    text: list[str] = []
    usage: Usage | None = None
    try:
        async for event in provider_get(model.provider).stream(request):
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, Usage):
                usage = event
    except ProviderError as exc:
        logger.warning("title generation failed: %s", exc)
        return
    title = _clean("".join(text))
    estimated = usage is None
    if usage is None:
        usage = Usage(
            input_tokens=estimate_messages_tokens(request.messages),
            output_tokens=estimate_tokens("".join(text)),
        )
    await _store(
        conversation_id=conversation_id,
        user_id=user_id,
        model=model,
        usage=usage,
        estimated=estimated,
        title=title,
        auto_title=auto_title,
        api_key_id=api_key_id,
    )


def _clean(raw: str) -> str:
    line = next((part.strip() for part in raw.strip().splitlines() if part.strip()), "")
    return line.strip(_QUOTES).rstrip(".")[:TITLE_MAX_LENGTH]


@sync_to_async(thread_sensitive=False)
def _store(
    *,
    conversation_id: uuid.UUID,
    user_id: uuid.UUID | None,
    model: ChatModel,
    usage: Usage,
    estimated: bool,
    title: str,
    auto_title: str,
    api_key_id: uuid.UUID | None,
) -> None:
    try:
        with transaction.atomic():
            if title:
                # Only over the automatic title: a rename in the meantime wins.
                renamed = Conversation.objects.filter(pk=conversation_id, title=auto_title).update(
                    title=title
                )
                if renamed:
                    conversation_notify(
                        Event.CONVERSATION_UPDATED, Conversation.objects.get(pk=conversation_id)
                    )
            usage_record(
                ledger_row(
                    user_id=user_id,
                    conversation_id=conversation_id,
                    message_id=None,
                    kind=UsageKind.TITLE,
                    model=model,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    reasoning_tokens=usage.reasoning_tokens,
                    usage_estimated=estimated,
                    cost_usd=turn_cost(model=model, usage=usage),
                    api_key_id=api_key_id,
                )
            )
    finally:
        connection.close()
