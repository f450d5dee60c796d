"""The context of a turn on a tree with tool round trips (messaging.turns.context_messages):
the branch up to the parent, each stored message whole or not at all, tool results whose call
was cut off left out, a stopped answer's calls and every thinking block never sent, in one
query whatever the depth."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from conversations.models import Conversation, Message
from messaging.llm.base import ChatMessage, ToolCall
from messaging.turns import context_messages
from testsupport.factories import at, make_conversation, make_message

pytestmark = pytest.mark.django_db

CALL = {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Lisbon"}}
RESULT = {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C, sunny"}
CALLED = ChatMessage(
    "assistant",
    "",
    tool_calls=(ToolCall(id="call_1", name="get_weather", arguments='{"city":"Lisbon"}'),),
)


def round_trip(conversation: Conversation, start: int = 0) -> Message:
    """Lisbon? (6 tokens), the call (12), its result (7), the answer (6, its thinking not
    counted); returns the answer."""
    make_message(conversation=conversation, role=Message.Role.USER, content="Lisbon?",
                 created_at=at(start + 1))  # fmt: skip
    make_message(conversation=conversation, role=Message.Role.ASSISTANT, content="",
                 blocks=[CALL], created_at=at(start + 2))  # fmt: skip
    make_message(conversation=conversation, role=Message.Role.USER, content="",
                 blocks=[RESULT], created_at=at(start + 3))  # fmt: skip
    return make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="18 C.",
        reasoning="Warm.",
        created_at=at(start + 4),
    )


def test_the_whole_round_trip_fits_and_thinking_is_never_sent(user: User) -> None:
    # given
    conversation = make_conversation(owner=user)
    answer = round_trip(conversation)

    # when
    history, used = context_messages(conversation=conversation, parent_id=answer.pk, budget=31)

    # then
    assert history == [
        ChatMessage("user", "Lisbon?"),
        CALLED,
        ChatMessage("tool", "18 C, sunny", tool_call_id="call_1"),
        ChatMessage("assistant", "18 C."),
    ]
    assert used == 31


def test_a_call_cut_by_the_budget_takes_its_results_with_it(user: User) -> None:
    # given: room for the answer and the result (13), not for the call too (25)
    conversation = make_conversation(owner=user)
    answer = round_trip(conversation)

    # when
    history, used = context_messages(conversation=conversation, parent_id=answer.pk, budget=20)

    # then: the result without its call would be refused upstream
    assert history == [ChatMessage("assistant", "18 C.")]
    assert used == 13


def test_a_stopped_answers_call_is_not_sent_but_its_text_is(user: User) -> None:
    # given
    conversation = make_conversation(owner=user)
    make_message(conversation=conversation, role=Message.Role.USER, content="Lisbon?",
                 created_at=at(1))  # fmt: skip
    stopped = make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="Let me check.",
        blocks=[{"type": "text", "text": "Let me check."}, CALL],
        status=Message.Status.CANCELLED,
        created_at=at(2),
    )

    # when
    history, _ = context_messages(conversation=conversation, parent_id=stopped.pk, budget=1000)

    # then
    assert history == [ChatMessage("user", "Lisbon?"), ChatMessage("assistant", "Let me check.")]


def test_another_branchs_round_trip_is_not_part_of_the_context(user: User) -> None:
    # given: a second answer to the first question, beside the call
    conversation = make_conversation(owner=user)
    round_trip(conversation)
    question = Message.objects.get(conversation=conversation, content="Lisbon?")
    other = make_message(conversation=conversation, role=Message.Role.ASSISTANT,
                         content="Sunny.", parent=question, created_at=at(5))  # fmt: skip

    # when
    history, _ = context_messages(conversation=conversation, parent_id=other.pk, budget=1000)

    # then
    assert history == [ChatMessage("user", "Lisbon?"), ChatMessage("assistant", "Sunny.")]


def test_a_parent_in_another_conversation_brings_in_nothing_of_it(
    user: User, other_user: User
) -> None:
    # given: a message whose parent_id was pointed at another user's message (outside the
    # API, which checks parents: the Data API under RLS checks only the row's own owner)
    theirs = make_conversation(owner=other_user)
    secret = make_message(conversation=theirs, role=Message.Role.ASSISTANT, content="Secret.")
    conversation = make_conversation(owner=user)
    question = make_message(conversation=conversation, role=Message.Role.USER, content="Hi?")
    answer = make_message(conversation=conversation, role=Message.Role.ASSISTANT, content="Hello.")
    Message.objects.filter(pk=question.pk).update(parent=secret)

    # when
    history, _ = context_messages(conversation=conversation, parent_id=answer.pk, budget=1000)

    # then
    assert history == [ChatMessage("user", "Hi?"), ChatMessage("assistant", "Hello.")]


def test_the_context_is_read_in_one_query_whatever_the_depth(user: User) -> None:
    # given: ten round trips on one branch
    conversation = make_conversation(owner=user)
    for trip in range(10):
        answer = round_trip(conversation, start=4 * trip)

    # when
    with CaptureQueriesContext(connection) as queries:
        history, _ = context_messages(conversation=conversation, parent_id=answer.pk, budget=10_000)

    # then
    assert (
        history
        == [
            ChatMessage("user", "Lisbon?"),
            CALLED,
            ChatMessage("tool", "18 C, sunny", tool_call_id="call_1"),
            ChatMessage("assistant", "18 C."),
        ]
        * 10
    )
    assert len(queries) == 1
