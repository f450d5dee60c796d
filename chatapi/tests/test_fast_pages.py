"""A list's commonest request without the generic machinery: its query checked by hand
(``simple_page_query``) and its first page read by a query compiled once (``FirstPages``),
each held equal to what it stands in for (the serializers, ``keyset_page``)."""

import datetime
from typing import Any
from uuid import UUID

import pytest
from django.db.models import QuerySet
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import User
from chatapi.pagination import (
    MAX_LIMIT,
    FirstPages,
    PageParams,
    keyset_page,
    simple_page_query,
)
from conversations.models import Conversation, Message
from conversations.selectors import conversation_list, message_list, messages_with_siblings
from conversations.serializers import ConversationListQuerySerializer, MessageListQuerySerializer
from testsupport.factories import make_conversation

pytestmark = pytest.mark.django_db


def _serializers_data(query: dict[str, str]) -> list[dict[str, Any] | None]:
    """What each list's query serializer makes of ``query`` (None: refused)."""
    found = []
    for serializer in (
        ConversationListQuerySerializer(data=query),
        MessageListQuerySerializer(data=query, context={"conversation": None}),
    ):
        found.append(dict(serializer.validated_data) if serializer.is_valid() else None)
    return found


@pytest.mark.parametrize(
    "query", [{}, {"limit": "1"}, {"limit": "20"}, {"limit": "100"}, {"limit": "007"}]
)
def test_a_common_query_gets_the_serializers_data(query: dict[str, str]) -> None:
    data = simple_page_query(query)

    assert data is not None
    assert _serializers_data(query) == [data, data]


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "-1"},
        {"limit": " 5"},
        {"limit": "5.0"},
        {"limit": "٣"},  # a digit, but not an ASCII one
        {"limit": ""},
        {"limit": "5", "after_id": "x"},
        {"archived": "true"},
        {"q": ""},
        {"leaf_id": "00000000-0000-0000-0000-000000000001"},
    ],
)
def test_any_other_query_is_left_to_the_serializer(query: dict[str, str]) -> None:
    assert simple_page_query(query) is None


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.sampled_from(["limit", "after_id", "archived", "x"]),
        st.one_of(st.integers(-5, 150).map(str), st.text(max_size=4)),
        max_size=2,
    )
)
def test_a_query_the_hand_check_accepts_is_what_the_serializers_accept(
    query: dict[str, str],
) -> None:
    data = simple_page_query(query)

    if data is not None:
        assert _serializers_data(query) == [data, data]


def _fields(instances: list[Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in vars(i).items() if k != "_state"} for i in instances]


def _conversations(user: User, count: int) -> None:
    # Ties on the sort key: the id decides their order.
    moment = timezone.now()
    for index in range(count):
        conversation = make_conversation(owner=user)
        at = moment - datetime.timedelta(seconds=index // 3)
        Conversation.objects.filter(pk=conversation.pk).update(activity_at=at)


@pytest.mark.parametrize("limit", [1, 2, 5, 20, MAX_LIMIT])
def test_a_compiled_first_page_of_conversations_is_keyset_pages(
    user: User, other_user: User, limit: int
) -> None:
    # given: the user's conversations with ties, and another user's
    _conversations(user, 12)
    _conversations(other_user, 3)

    # when
    compiled = conversation_list(user=user, page=PageParams(limit=limit))
    generic = keyset_page(
        Conversation.objects.filter(owner=user),
        params=PageParams(limit=limit),
        sort_field="activity_at",
        descending=True,
    )

    # then
    assert [c.pk for c in compiled.items] == [c.pk for c in generic.items]
    assert compiled.has_more == generic.has_more
    assert _fields(compiled.items) == _fields(generic.items)


@pytest.mark.parametrize("limit", [1, 3, 20])
def test_a_compiled_first_page_of_a_branch_is_keyset_pages(user: User, limit: int) -> None:
    # given: a branch of five messages and a sibling branch
    conversation = make_conversation(owner=user)
    parent = None
    branch = []
    for index in range(5):
        message = Message.objects.create(
            conversation=conversation,
            parent=parent,
            role="user" if index % 2 == 0 else "assistant",
            content=f"m{index}",
        )
        branch.append(message)
        parent = message
    Message.objects.create(conversation=conversation, parent=branch[1], role="user", content="s")
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf_id=branch[-1].pk)
    conversation.refresh_from_db()

    # when
    compiled = message_list(conversation=conversation, page=PageParams(limit=limit))
    generic_rows: QuerySet[Message] = messages_with_siblings(
        Message.objects.filter(pk__in=[m.pk for m in branch])
    )
    generic = keyset_page(
        generic_rows, params=PageParams(limit=limit), sort_field="created_at", descending=False
    )

    # then: the same messages, fields and sibling positions
    assert [m.pk for m in compiled.items] == [m.pk for m in branch][:limit]
    assert compiled.has_more == (limit < 5)
    assert _fields(compiled.items) == _fields(generic.items)
    assert [(vars(m)["sibling_count"], vars(m)["sibling_index"]) for m in compiled.items] == [
        (1, 1),
        (1, 1),
        (2, 1),
        (1, 1),
        (1, 1),
    ][:limit]


def test_first_pages_refuse_a_query_whose_parameter_is_no_probe() -> None:
    pages = FirstPages(
        lambda owner: Conversation.objects.filter(owner_id=owner, title="fixed"),
        sort_field="activity_at",
        descending=True,
        owner=UUID(int=1),
    )

    with pytest.raises(ValueError, match="no probe"):
        pages.page(5, owner=UUID(int=9))
