from dataclasses import dataclass
from uuid import UUID

from django.db.models import Prefetch, QuerySet

from accounts.models import User
from chatapi.errors import NotFoundError
from chatapi.pagination import Page, PageParams, keyset_page
from conversations.models import Conversation
from messaging.models import Message


@dataclass(frozen=True)
class Transcript:
    """A conversation and all its messages, oldest first."""

    conversation: Conversation
    messages: list[Message]


def conversation_get_for_user(*, user: User, conversation_id: str) -> Conversation:
    """The conversation with this id if ``user`` owns it, else NotFoundError.

    The one ownership check for every conversation route. Another user's id, a missing id
    and a malformed id get the same error; the first two run the same single query, so
    neither the body nor the time taken tells them apart.
    """
    try:
        pk = UUID(conversation_id)
    except ValueError:
        raise NotFoundError("Conversation not found.") from None
    conversation = Conversation.objects.filter(pk=pk, owner=user).first()
    if conversation is None:
        raise NotFoundError("Conversation not found.")
    return conversation


def conversation_list(
    *, user: User, page: PageParams, archived: bool | None = None, q: str = ""
) -> Page[Conversation]:
    """The user's conversations, most recent activity first."""
    owned = Conversation.objects.filter(owner=user)
    conversations = owned
    if archived is not None:
        conversations = conversations.filter(archived=archived)
    if q:
        conversations = conversations.filter(title__icontains=q)
    return keyset_page(
        conversations,
        params=page,
        sort_field="activity_at",
        descending=True,
        cursor_scope=owned,
    )


def _messages_in_order() -> QuerySet[Message]:
    return Message.objects.order_by("created_at", "id")


def conversation_transcript(*, conversation: Conversation) -> Transcript:
    """Every message of the conversation, for an export. The caller has checked ownership
    (the conversation comes from ``conversation_get_for_user``, or staff asked for it)."""
    return Transcript(
        conversation=conversation,
        messages=list(_messages_in_order().filter(conversation=conversation)),
    )


def conversation_transcripts(*, conversations: QuerySet[Conversation]) -> list[Transcript]:
    """Several transcripts in two queries, in the queryset's order (the admin's export)."""
    rows = conversations.prefetch_related(Prefetch("messages", queryset=_messages_in_order()))
    return [
        Transcript(conversation=conversation, messages=list(conversation.messages.all()))
        for conversation in rows
    ]
