"""Telling a user's live sockets what happened to their conversations (chatapi.live_events),
with the events and payloads of ``conversations.events``. Each call sends after the current
transaction commits and never fails the change it reports."""

import uuid

from chatapi.live_events import event_publish, events_wanted
from conversations.events import Event, conversation_event_data, message_event_data
from conversations.models import Conversation, Message


def conversation_notify(event: Event, conversation: Conversation) -> None:
    if not events_wanted():
        return
    event_publish(
        user_id=conversation.owner_id, event=event, data=conversation_event_data(conversation)
    )


def message_notify(event: Event, message: Message, *, user_id: uuid.UUID) -> None:
    """``user_id``: the owner of the message's conversation."""
    if not events_wanted():
        return
    event_publish(user_id=user_id, event=event, data=message_event_data(message))
