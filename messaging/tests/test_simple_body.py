"""The send's hand-checked common body (``simple_message_data``) against the serializer it
stands in for: for every body it accepts, the same validated data; every body it declines
is left to the serializer, whatever the serializer then says."""

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import User
from conversations.models import Conversation
from messaging.serializers import MESSAGE_MAX_CHARS, MessageCreateSerializer, simple_message_data
from testsupport.factories import make_conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(user: User) -> Conversation:
    return make_conversation(owner=user)


def _serializer_data(conversation: Conversation, body: Any) -> dict[str, Any] | None:
    serializer = MessageCreateSerializer(instance=conversation, data=body)
    return dict(serializer.validated_data) if serializer.is_valid() else None


@pytest.mark.parametrize(
    "body",
    [
        {"content": "Hello"},
        {"content": "Hello", "stream": True},
        {"content": "Hello", "stream": False},
        {"content": "  padded  \n"},
        {"content": "x" * MESSAGE_MAX_CHARS},
        {"content": "Olá, 世界 🎉"},
    ],
)
def test_a_common_body_gets_the_serializers_data(conversation: Conversation, body: Any) -> None:
    # when
    fast = simple_message_data(body)

    # then
    assert fast is not None
    assert fast == _serializer_data(conversation, body)


@pytest.mark.parametrize(
    "body",
    [
        {"content": ""},
        {"content": " \n\t"},
        {"content": "x" * (MESSAGE_MAX_CHARS + 1)},
        {"content": "a\x00b"},
        {"content": "a\ud800b"},
        {"content": "Hello", "stream": "true"},
        {"content": "Hello", "stream": 1},
        {"content": "Hello", "stream": None},
        {"content": "Hello", "background": True},
        {"content": "Hello", "model": "openai/gpt-oss-20b"},
        {"content": "Hello", "unknown": 1},
        {"content": [{"type": "text", "text": "Hello"}]},
        {"content": 5},
        {"stream": True},
        {},
        ["content"],
        "Hello",
    ],
)
def test_any_other_body_is_left_to_the_serializer(conversation: Conversation, body: Any) -> None:
    assert simple_message_data(body) is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=5,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.dictionaries(
        st.sampled_from(["content", "stream", "background", "model", "x"]),
        st.text(max_size=12) | _JSON,
        max_size=3,
    )
)
def test_whatever_it_accepts_the_serializer_accepts_the_same(
    conversation: Conversation, body: dict[str, Any]
) -> None:
    fast = simple_message_data(body)
    if fast is not None:
        assert fast == _serializer_data(conversation, body)
