from dataclasses import dataclass
from uuid import UUID

from django.db.models import Model, Prefetch, QuerySet

from accounts.models import User
from chatapi.errors import NotFoundError
from chatapi.pagination import Page, PageParams, keyset_page
from conversations.models import Conversation, Message


@dataclass(frozen=True)
class Transcript:
    """A conversation and all its messages, oldest first."""

    conversation: Conversation
    messages: list[Message]


def _owned_or_404[M: Model](owned: QuerySet[M], *, pk: str, not_found: str) -> M:
    """The row of ``owned`` with this primary key, else NotFoundError(``not_found``): a
    malformed id fails before any query, a missing or unowned one after the same single
    query, with the same body."""
    try:
        uuid = UUID(pk)
    except ValueError:
        raise NotFoundError(not_found) from None
    row = owned.filter(pk=uuid).first()
    if row is None:
        raise NotFoundError(not_found)
    return row


def conversation_get_for_user(*, user: User, conversation_id: str) -> Conversation:
    """The conversation with this id if ``user`` owns it, else NotFoundError.

    The one ownership check for every conversation route. Another user's id, a missing id
    and a malformed id get the same error; the first two run the same single query, so
    neither the body nor the time taken tells them apart.
    """
    return _owned_or_404(
        Conversation.objects.filter(owner=user),
        pk=conversation_id,
        not_found="Conversation not found.",
    )


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


def message_list(*, conversation: Conversation, page: PageParams) -> Page[Message]:
    """A conversation's messages, oldest first. The caller has checked ownership (the
    conversation comes from ``conversation_get_for_user``)."""
    return keyset_page(
        Message.objects.filter(conversation=conversation),
        params=page,
        sort_field="created_at",
        descending=False,
    )


def message_get_in_conversation(*, conversation: Conversation, message_id: str) -> Message:
    """A message of a conversation the caller owns; NotFoundError for any other id
    (another conversation's, missing, malformed), with the same body."""
    return _owned_or_404(
        Message.objects.filter(conversation=conversation),
        pk=message_id,
        not_found="Message not found.",
    )
