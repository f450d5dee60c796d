"""``message_send`` called as a front end other than the HTTP views would call it: plain
inputs in, a turn out, nothing of DRF or HTTP."""

import pytest
from pytest_django import Settings

from accounts.models import User
from chatapi.errors import ApiError
from conversations.models import Conversation, Message
from messaging.services import NewTurn, RepeatedTurn, message_send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("groq_providers")]


def test_a_send_stores_both_messages_and_a_retry_with_its_key_repeats_the_turn(
    settings: Settings, conversation: Conversation, user: User
) -> None:
    # given
    settings.RATE_LIMIT_CONCURRENT_STREAMS = 0

    # when
    first = message_send(
        conversation=conversation, user=user, data={"content": "Hi"}, idempotency_key="k-1"
    )
    again = message_send(
        conversation=conversation, user=user, data={"content": "Hi"}, idempotency_key="k-1"
    )

    # then
    assert isinstance(first, NewTurn)
    plan = first.generation.plan
    assert isinstance(again, RepeatedTurn)
    assert (again.conversation_id, again.user_message.pk, again.assistant_message.pk) == (
        conversation.pk,
        plan.user_message.pk,
        plan.assistant_message_id,
    )
    assert list(
        Message.objects.filter(conversation=conversation)
        .order_by("created_at")
        .values_list("role", "content", "status")
    ) == [("user", "Hi", "complete"), ("assistant", "", "in_progress")]


def test_a_model_that_is_not_available_is_refused_before_anything_is_stored(
    conversation: Conversation, user: User
) -> None:
    # when
    with pytest.raises(ApiError) as refused:
        message_send(
            conversation=conversation,
            user=user,
            data={"content": "Hi", "model": "no/such-model"},
            idempotency_key=None,
        )

    # then
    assert refused.value.details == {"fields": {"model": ["Not an available model."]}}
    assert not Message.objects.filter(conversation=conversation).exists()
