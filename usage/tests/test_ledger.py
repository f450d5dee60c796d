"""The usage ledger: one row per upstream call, exact Decimal costs at the price in force at
the call, rows that outlive conversations and users."""

from decimal import Decimal

import pytest

from accounts.models import User
from conversations.models import Conversation, Message
from conversations.services import conversation_create, conversation_delete
from messaging.llm.base import Usage
from testsupport.factories import make_chat_model
from testsupport.turns import catalog_model, turn_finish, turn_start
from usage.catalog import turn_cost
from usage.models import LanguageModel, ModelPrice, UsageRecord
from usage.selectors import usage_stats
from usage.services import model_price_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(user: User) -> Conversation:
    return conversation_create(owner=user, model="openai/gpt-oss-20b")


def test_turn_cost_is_exact_in_decimal() -> None:
    # given: $0.075 in / $0.30 out per million tokens
    model = catalog_model("openai/gpt-oss-20b")

    # when
    cost = turn_cost(model=model, usage=Usage(input_tokens=1_234_567, output_tokens=89))

    # then: (1,234,567 x 0.075 + 89 x 0.30) / 10^6 = 92,619.225 / 10^6
    assert cost == Decimal("0.092619225")
    assert str(cost) == "0.0926192250"


def test_cached_input_tokens_cost_the_cached_price() -> None:
    # given: 400 of 1,000 input tokens cached, at half the input price
    model = make_chat_model("cache/model", input_usd_per_mtok="0.075", output_usd_per_mtok="0.3")
    model_price_add(
        language_model=model,
        input_usd_per_mtok=Decimal("0.075"),
        cached_input_usd_per_mtok=Decimal("0.0375"),
        output_usd_per_mtok=Decimal("0.3"),
    )
    usage = Usage(input_tokens=1000, output_tokens=10, cached_input_tokens=400)

    # when
    cost = turn_cost(model=catalog_model("cache/model"), usage=usage)

    # then: (600 x 0.075 + 400 x 0.0375 + 10 x 0.3) / 10^6 = 63 / 10^6
    assert cost == Decimal("0.0000630000")


def test_a_turn_is_one_ledger_row_with_the_messages_cost(
    user: User, conversation: Conversation
) -> None:
    # given
    plan = turn_start(conversation)

    # when
    turn_finish(plan, input_tokens=1_000_000, output_tokens=1_000_000, reasoning_tokens=200)

    # then
    row = UsageRecord.objects.get()
    message = Message.objects.get(pk=plan.assistant_message_id)
    assert message.cost_usd == Decimal("0.3750000000")
    assert (
        row.user_id,
        row.conversation_id,
        row.message_id,
        row.kind,
        row.provider,
        row.model,
        row.input_tokens,
        row.output_tokens,
        row.reasoning_tokens,
        row.usage_estimated,
        row.cost_usd,
        row.price_unknown,
        row.price_id,
        row.created_at,
    ) == (
        user.pk,
        conversation.pk,
        plan.assistant_message_id,
        "chat",
        "groq",
        "openai/gpt-oss-20b",
        1_000_000,
        1_000_000,
        200,
        False,
        message.cost_usd,
        False,
        ModelPrice.objects.filter(language_model__model_id="openai/gpt-oss-20b")
        .latest("effective_from")
        .pk,
        message.completed_at,
    )


def test_cost_across_a_price_change_keeps_the_price_in_force_at_each_call(
    user: User, conversation: Conversation
) -> None:
    # given: a turn that starts at the old price and ends after the change
    other = conversation_create(owner=user, model="openai/gpt-oss-20b")
    first = turn_start(conversation)
    spanning = turn_start(other)
    turn_finish(first, input_tokens=1_000_000, output_tokens=1_000_000)

    # when: the price changes ($0.10 / $0.40), and turns end or start
    model_price_add(
        language_model=LanguageModel.objects.get(model_id="openai/gpt-oss-20b"),
        input_usd_per_mtok=Decimal("0.10"),
        output_usd_per_mtok=Decimal("0.40"),
    )
    turn_finish(spanning, input_tokens=1_000_000, output_tokens=1_000_000)
    after = turn_start(conversation)
    turn_finish(after, input_tokens=1_000_000, output_tokens=1_000_000)

    # then: the first two at 0.075 + 0.30, the last at 0.10 + 0.40; nothing rewritten
    costs = {row.message_id: row.cost_usd for row in UsageRecord.objects.all()}
    assert costs == {
        first.assistant_message_id: Decimal("0.3750000000"),
        spanning.assistant_message_id: Decimal("0.3750000000"),
        after.assistant_message_id: Decimal("0.5000000000"),
    }
    messages = dict(Message.objects.filter(role="assistant").values_list("id", "cost_usd"))
    assert messages == costs
    stats = usage_stats(user=user, start=None, end=None)
    assert stats.cost_usd == Decimal("1.2500000000")


def test_ledger_rows_survive_deleting_the_conversation_and_the_user(
    user: User, conversation: Conversation
) -> None:
    # given
    plan = turn_start(conversation)
    turn_finish(plan, input_tokens=100, output_tokens=50)

    # when
    conversation_delete(conversation=conversation)

    # then: the row keeps the ids; the user's statistics still count it
    row = UsageRecord.objects.get()
    assert (row.conversation_id, row.message_id) == (
        plan.conversation_id,
        plan.assistant_message_id,
    )
    assert Message.objects.count() == 0
    stats = usage_stats(user=user, start=None, end=None)
    assert (stats.total_conversations, stats.total_messages, stats.total_tokens) == (1, 1, 150)

    # when the user goes too
    user.delete()

    # then
    row.refresh_from_db()
    assert (row.user_id, row.input_tokens, row.cost_usd) == (None, 100, Decimal("0.0000225000"))


def test_a_request_refused_before_any_output_writes_no_ledger_row(
    conversation: Conversation,
) -> None:
    # given
    plan = turn_start(conversation)

    # when: what Generation records when the provider refuses (no tokens)
    turn_finish(plan, input_tokens=0, output_tokens=0, status=Message.Status.ERROR)

    # then
    assert UsageRecord.objects.count() == 0
    message = Message.objects.get(pk=plan.assistant_message_id)
    assert (message.status, message.cost_usd) == ("error", Decimal(0))


def test_a_failed_or_cut_turn_is_billed_with_its_estimate_flagged(
    conversation: Conversation,
) -> None:
    plan = turn_start(conversation)

    turn_finish(
        plan, input_tokens=12, output_tokens=3, status=Message.Status.INCOMPLETE, estimated=True
    )

    row = UsageRecord.objects.get()
    assert (row.input_tokens, row.output_tokens, row.usage_estimated, row.cost_usd) == (
        12,
        3,
        True,
        Decimal("0.0000018000"),
    )


def test_an_unknown_price_is_a_null_cost_with_a_flag_never_zero(user: User) -> None:
    # given: an active model without a price
    make_chat_model("free/unknown", input_usd_per_mtok=None, output_usd_per_mtok=None)
    conversation = conversation_create(owner=user, model="free/unknown")
    plan = turn_start(conversation, "free/unknown")

    # when
    outcome = turn_finish(plan, input_tokens=40, output_tokens=10)

    # then
    row = UsageRecord.objects.get()
    assert outcome.cost_usd is None
    assert (row.cost_usd, row.price_unknown, row.price_id) == (None, True, None)
    assert Message.objects.get(pk=plan.assistant_message_id).cost_usd is None
    stats = usage_stats(user=user, start=None, end=None)
    assert (stats.cost_usd, stats.unpriced_requests, stats.total_tokens) == (Decimal(0), 1, 50)
