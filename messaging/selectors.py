from chatapi.pagination import Page, PageParams, keyset_page
from conversations.models import Conversation
from messaging.models import Message


def message_list(*, conversation: Conversation, page: PageParams) -> Page[Message]:
    """A conversation's messages, oldest first. The caller has checked ownership (the
    conversation comes from conversations.selectors.conversation_get_for_user)."""
    return keyset_page(
        Message.objects.filter(conversation=conversation),
        params=page,
        sort_field="created_at",
        descending=False,
    )
