from uuid import UUID

from accounts.models import User
from chatapi.errors import NotFoundError
from chatapi.pagination import Page, PageParams, keyset_page
from conversations.models import Conversation


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
