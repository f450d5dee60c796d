"""The stored record: a new message moves its conversation up the list (conversation_touch,
through the factory that stores a message as a turn does), and the database refuses
impossible rows."""

from decimal import Decimal

import pytest
from django.db import IntegrityError

from accounts.models import User
from conversations.models import Conversation, Message
from conversations.services import conversation_delete
from testsupport.factories import at, make_conversation, make_message

pytestmark = pytest.mark.django_db


def test_a_new_message_bumps_the_conversations_activity(user: User) -> None:
    # given
    conversation = make_conversation(owner=user, activity_at=at(0))

    # when
    message = make_message(
        conversation=conversation, role=Message.Role.USER, content="hi", created_at=at(5)
    )

    # then
    stored = Conversation.objects.get()
    assert (stored.last_message_at, stored.activity_at) == (at(5), at(5))
    assert (conversation.last_message_at, conversation.activity_at) == (at(5), at(5))
    assert Message.objects.get() == message
    assert message.status == Message.Status.COMPLETE


def test_an_older_message_does_not_move_activity_back(user: User) -> None:
    # given
    conversation = make_conversation(owner=user, activity_at=at(0))
    make_message(
        conversation=conversation, role=Message.Role.USER, content="late", created_at=at(9)
    )
    stale = Conversation.objects.get()  # an instance read before the next message

    # when
    make_message(conversation=stale, role=Message.Role.USER, content="early", created_at=at(3))

    # then
    stored = Conversation.objects.get()
    assert (stored.last_message_at, stored.activity_at) == (at(9), at(9))
    assert (stale.last_message_at, stale.activity_at) == (at(9), at(9))


def test_a_new_message_leaves_the_conversations_other_fields_alone(user: User) -> None:
    # given an instance whose title is stale: another request renamed the conversation
    conversation = make_conversation(owner=user, title="Old")
    Conversation.objects.filter(pk=conversation.pk).update(title="Renamed")

    # when
    make_message(conversation=conversation, role=Message.Role.USER, content="hi")

    # then
    assert Conversation.objects.get().title == "Renamed"


def test_conversation_delete_removes_only_its_messages(user: User) -> None:
    # given
    doomed = make_conversation(owner=user)
    kept = make_conversation(owner=user)
    make_message(conversation=doomed, role=Message.Role.USER, content="a")
    make_message(conversation=kept, role=Message.Role.USER, content="b")

    # when
    conversation_delete(conversation=doomed)

    # then
    assert list(Message.objects.values_list("content", flat=True)) == ["b"]


@pytest.mark.parametrize(
    "fields",
    [
        {"cost_usd": Decimal("-0.0000000001")},
        {"input_tokens": -1},
        {"latency_ms": -5},
        {"role": "tool"},
        {"status": "pending"},
    ],
)
def test_the_database_rejects_impossible_messages(user: User, fields: dict[str, object]) -> None:
    conversation = make_conversation(owner=user)
    values: dict[str, object] = {"role": Message.Role.USER, "content": "x"} | fields

    with pytest.raises(IntegrityError):
        Message.objects.create(conversation=conversation, **values)


@pytest.mark.parametrize(
    "fields",
    [
        {"temperature": 2.5},
        {"temperature": -0.5},
        {"max_output_tokens": 0},
        {"reasoning_effort": "max"},
    ],
)
def test_the_database_rejects_impossible_conversations(
    user: User, fields: dict[str, object]
) -> None:
    with pytest.raises(IntegrityError):
        make_conversation(owner=user, **fields)
