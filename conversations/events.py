"""What happens to a user's conversations, as the events their clients are told of: the
names and the payloads, one definition for every way an event leaves the server (the signed
webhooks and the live WebSocket). Payloads carry ids, status, model and usage, never the text
of a message: the text is read through the API (or replayed by resume)."""

from decimal import Decimal
from enum import StrEnum
from typing import Any

from conversations.models import Conversation, Message


class Event(StrEnum):
    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_UPDATED = "conversation.updated"
    CONVERSATION_DELETED = "conversation.deleted"
    MESSAGE_CREATED = "message.created"
    MESSAGE_COMPLETED = "message.completed"
    MESSAGE_FAILED = "message.failed"
    MESSAGE_CANCELLED = "message.cancelled"


# How an answer's end is told: an answer cut short (its process died, the server shut down,
# its client went away) did not complete, so it is a failure with status "incomplete".
_ENDED_BY_STATUS = {
    Message.Status.COMPLETE: Event.MESSAGE_COMPLETED,
    Message.Status.CANCELLED: Event.MESSAGE_CANCELLED,
    Message.Status.ERROR: Event.MESSAGE_FAILED,
    Message.Status.INCOMPLETE: Event.MESSAGE_FAILED,
}

# The events a webhook endpoint can subscribe to.
WEBHOOK_EVENTS = (Event.MESSAGE_COMPLETED, Event.MESSAGE_FAILED, Event.MESSAGE_CANCELLED)


def message_ended_event(status: str) -> Event | None:
    """The event telling that a message ended with ``status``; None while in progress."""
    return _ENDED_BY_STATUS.get(Message.Status(status))


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def message_event_data(message: Message) -> dict[str, Any]:
    """A message as events carry it: everything but its content."""
    return {
        "id": str(message.pk),
        "conversation_id": str(message.conversation_id),
        "parent_id": None if message.parent_id is None else str(message.parent_id),
        "role": message.role,
        "status": message.status,
        "model": message.model,
        "stop_reason": message.stop_reason or None,
        "usage": {
            "input_tokens": message.input_tokens,
            "output_tokens": message.output_tokens,
            "cached_input_tokens": message.cached_input_tokens,
            "cost_usd": _decimal(message.cost_usd),
            "estimated": message.usage_estimated,
        },
        "error": message.error,
        "created_at": message.created_at.isoformat(),
        "completed_at": None if message.completed_at is None else message.completed_at.isoformat(),
    }


def conversation_event_data(conversation: Conversation) -> dict[str, Any]:
    """A conversation as events carry it: ids, title and model, no messages."""
    return {
        "id": str(conversation.pk),
        "title": conversation.title,
        "model": conversation.model,
        "archived": conversation.archived,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
    }
