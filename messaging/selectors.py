from uuid import UUID

from chatapi.errors import NotFoundError
from conversations.models import Conversation
from messaging.models import Message


def message_get_in_conversation(*, conversation: Conversation, message_id: str) -> Message:
    """A message of a conversation the caller owns; NotFoundError for any other id
    (another conversation's, missing, malformed), with the same body."""
    try:
        pk = UUID(message_id)
    except ValueError:
        raise NotFoundError("Message not found.") from None
    message = Message.objects.filter(pk=pk, conversation=conversation).first()
    if message is None:
        raise NotFoundError("Message not found.")
    return message


def message_get(*, message_id: UUID) -> Message:
    return Message.objects.get(pk=message_id)
