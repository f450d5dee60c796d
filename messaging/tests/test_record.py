"""A turn's end outside a transaction (as a generation stores it): one statement that ends
the message, touches its conversation, appends the ledger row and its rollups, ends the
budget reservation and writes the webhook outbox, all or nothing."""

import re
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH, MAX_CACHED_STATEMENT_PARAMS

from accounts.models import User
from conversations.models import Conversation, Message
from messaging.models import WebhookDelivery, WebhookEndpoint
from messaging.turns import TurnPlan, _recorded_sql, turn_record_swept
from testsupport.factories import make_conversation
from testsupport.helpers import outbox_refusing_writes
from testsupport.turns import turn_finish, turn_start
from usage.models import BudgetReservation, UsageDaily, UsageHourly, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = ["message.completed", "message.failed", "message.cancelled"]


@pytest.fixture
def conversation(user: User) -> Conversation:
    return make_conversation(owner=user)


@pytest.fixture
def plan(conversation: Conversation, settings) -> TurnPlan:
    settings.USAGE_DAILY_USD_LIMIT = Decimal(100)  # so the turn holds a reservation
    WebhookEndpoint.objects.create(
        owner=conversation.owner, url="https://a.example/h", events=EVENTS, secret="whsec_AAAA"
    )
    plan = turn_start(conversation)
    assert plan.reserved
    return plan


def test_the_whole_end_is_one_statement(plan: TurnPlan) -> None:
    # when
    with CaptureQueriesContext(connection) as queries:
        outcome = turn_finish(plan, input_tokens=40, output_tokens=10)

    # then: one statement, and everything it stands for
    assert len(queries) == 1
    message = Message.objects.get(pk=plan.assistant_message_id)
    assert (message.status, message.content, message.output_tokens) == ("complete", "answer", 10)
    (row,) = UsageRecord.objects.filter(message_id=plan.assistant_message_id)
    assert (row.input_tokens, row.output_tokens, row.cost_usd) == (40, 10, outcome.cost_usd)
    assert UsageDaily.objects.aggregate(n=Sum("requests"), c=Sum("cost_usd")) == {
        "n": 1,
        "c": outcome.cost_usd,
    }
    assert UsageHourly.objects.get().cost_usd == outcome.cost_usd
    assert not BudgetReservation.objects.exists()
    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.event_type == "message.completed"
    assert delivery.payload["data"]["message"]["id"] == str(plan.assistant_message_id)
    conversation = Conversation.objects.get(pk=plan.conversation_id)
    assert conversation.last_message_at == message.completed_at


def test_a_failing_part_leaves_everything_as_it_was(plan: TurnPlan) -> None:
    # when: the outbox refuses writes
    with outbox_refusing_writes(), pytest.raises(DatabaseError, match="outbox down"):
        turn_finish(plan, input_tokens=40, output_tokens=10)

    # then
    assert Message.objects.get(pk=plan.assistant_message_id).status == "in_progress"
    assert not UsageRecord.objects.exists()
    assert not UsageDaily.objects.exists()
    assert BudgetReservation.objects.filter(message_id=plan.assistant_message_id).exists()


def test_an_end_after_a_sweep_replaces_the_sweeps_books(plan: TurnPlan) -> None:
    # given: a sweeper took the process for dead and finished the turn with an estimate
    assert turn_record_swept(message_id=plan.assistant_message_id, content="par", reasoning="")

    # when: the turn's real end comes
    outcome = turn_finish(plan, input_tokens=40, output_tokens=10)

    # then: one ledger row, the real one, and rollups that agree with it
    message = Message.objects.get(pk=plan.assistant_message_id)
    assert (message.status, message.content) == ("complete", "answer")
    rows = list(
        UsageRecord.objects.filter(message_id=plan.assistant_message_id).values_list(
            "output_tokens", "usage_estimated"
        )
    )
    assert rows == [(10, False)]
    assert UsageDaily.objects.aggregate(n=Sum("requests"), c=Sum("cost_usd")) == {
        "n": 1,
        "c": outcome.cost_usd,
    }
    assert not BudgetReservation.objects.exists()
    assert sorted(WebhookDelivery.objects.values_list("event_type", flat=True)) == [
        "message.completed",
        "message.failed",
    ]


def test_an_end_with_no_tokens_writes_no_ledger_row(plan: TurnPlan) -> None:
    # when: refused before any output
    turn_finish(plan, input_tokens=0, output_tokens=0, status="error")

    # then
    assert Message.objects.get(pk=plan.assistant_message_id).status == "error"
    assert not UsageRecord.objects.exists()
    assert not UsageDaily.objects.exists()
    assert not BudgetReservation.objects.exists()
    assert WebhookDelivery.objects.get().event_type == "message.failed"


def test_an_end_without_a_reservation_is_one_statement_psycopg_parses_once(
    conversation: Conversation,
) -> None:
    # given: a user with no budget limit (no reservation) and a webhook endpoint
    WebhookEndpoint.objects.create(
        owner=conversation.owner, url="https://a.example/h", events=EVENTS, secret="whsec_AAAA"
    )
    plan = turn_start(conversation)
    assert not plan.reserved

    # when
    with CaptureQueriesContext(connection) as queries:
        outcome = turn_finish(plan, input_tokens=40, output_tokens=10)

    # then: one statement, short enough for psycopg to keep its parsing (4 kB, 50 parameters)
    assert len(queries) == 1
    sql = _recorded_sql(reserved=False)
    assert len(sql.encode()) <= MAX_CACHED_STATEMENT_LENGTH
    assert len(set(re.findall(r"%\((\w+)\)s", sql))) <= MAX_CACHED_STATEMENT_PARAMS
    message = Message.objects.get(pk=plan.assistant_message_id)
    assert (message.status, message.output_tokens, message.cost_usd) == (
        "complete",
        10,
        outcome.cost_usd,
    )
    assert UsageRecord.objects.get(message_id=plan.assistant_message_id).cost_usd == (
        outcome.cost_usd
    )
    assert WebhookDelivery.objects.get().event_type == "message.completed"
