"""Budgets: the worst case of a turn is reserved before the upstream call, concurrent turns
overspend by at most one estimate, and a turn's end settles its reservation."""

import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import Settings
from rest_framework.test import APIClient

from accounts.models import User
from chatapi.errors import BillingError
from conversations.models import Message
from conversations.services import conversation_create
from messaging.turns import GenerationSettings
from testsupport.assertions import assert_error
from testsupport.factories import make_usage
from testsupport.helpers import eventually
from testsupport.turns import turn_finish, turn_start
from usage.models import BudgetReservation, UsageBudget, UsageRecord
from usage.selectors import BudgetLimits, budget_limits_get
from usage.services import budget_reserve

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)


def _reserve(user: User, tokens: int, cost: str | None = None, now: datetime = NOW) -> None:
    with transaction.atomic():
        budget_reserve(
            user_id=user.pk,
            message_id=uuid.uuid4(),
            tokens=tokens,
            cost_usd=None if cost is None else Decimal(cost),
            now=now,
        )


def test_limits_are_the_settings_unless_overridden(settings: Settings, user: User) -> None:
    # given
    settings.USAGE_DAILY_TOKEN_LIMIT = 1000
    settings.USAGE_MONTHLY_USD_LIMIT = Decimal("5")
    assert budget_limits_get(user_id=user.pk) == BudgetLimits(
        daily_tokens=1000, monthly_usd=Decimal("5")
    )

    # when: an override of one limit, then no limits at all
    budget = UsageBudget.objects.create(user=user, daily_usd_limit=Decimal("0.5"))
    overridden = budget_limits_get(user_id=user.pk)
    budget.unlimited = True
    budget.save()

    # then
    assert overridden == BudgetLimits(
        daily_tokens=1000, daily_usd=Decimal("0.5"), monthly_usd=Decimal("5")
    )
    assert budget_limits_get(user_id=user.pk) == BudgetLimits()
    assert BudgetLimits().any is False


def test_without_limits_nothing_is_reserved(user: User) -> None:
    _reserve(user, 10**9)

    assert BudgetReservation.objects.count() == 0


def test_turns_are_admitted_while_spent_plus_in_flight_is_under_the_limit(
    settings: Settings, user: User
) -> None:
    # given: 300 of 1000 tokens spent today
    settings.USAGE_DAILY_TOKEN_LIMIT = 1000
    make_usage(user=user, at=NOW - timedelta(hours=1), input_tokens=200, output_tokens=100,
               cost_usd="0")  # fmt: skip

    # when: two turns of up to 400 tokens each are admitted (300, then 700, are under 1000)
    _reserve(user, 400)
    _reserve(user, 400)
    with pytest.raises(BillingError) as refused:
        _reserve(user, 400)

    # then: the third finds 300 + 800 >= 1000
    assert refused.value.status_code == 402
    assert str(refused.value.detail) == (
        "Your daily token budget is spent: 300 tokens of 1000 tokens used, and 800 tokens "
        "held by requests in progress. It resets at 2026-11-27T00:00:00Z."
    )
    assert refused.value.details == {
        "limit": "daily_tokens",
        "limit_value": "1000",
        "used": "300",
        "in_flight": "800",
        "resets_at": "2026-11-27T00:00:00Z",
    }
    assert BudgetReservation.objects.count() == 2


def test_yesterday_and_last_month_do_not_count(settings: Settings, user: User) -> None:
    settings.USAGE_DAILY_TOKEN_LIMIT = 100
    settings.USAGE_MONTHLY_TOKEN_LIMIT = 1000
    make_usage(user=user, at=datetime(2026, 11, 25, 23, 59, tzinfo=UTC), input_tokens=500,
               output_tokens=0, cost_usd="0")  # fmt: skip
    make_usage(user=user, at=datetime(2026, 10, 31, 23, 59, tzinfo=UTC), input_tokens=999,
               output_tokens=0, cost_usd="0")  # fmt: skip

    _reserve(user, 50)

    assert BudgetReservation.objects.count() == 1


def test_a_spent_monthly_budget_is_reported_over_the_daily_one(
    settings: Settings, user: User
) -> None:
    # given: both spent; only the monthly reset lets the user send again
    settings.USAGE_DAILY_USD_LIMIT = Decimal("0.01")
    settings.USAGE_MONTHLY_USD_LIMIT = Decimal("0.02")
    make_usage(user=user, at=NOW, input_tokens=1, output_tokens=1, cost_usd="0.025")

    # when
    with pytest.raises(BillingError) as refused:
        _reserve(user, 10, "0.001")

    # then
    assert str(refused.value.detail) == (
        "Your monthly USD budget is spent: $0.0250 of $0.0200 used. "
        "It resets at 2026-12-01T00:00:00Z."
    )


def test_an_expired_reservation_stops_counting_and_is_removed(
    settings: Settings, user: User
) -> None:
    # given: a turn whose process died an hour ago
    settings.USAGE_DAILY_TOKEN_LIMIT = 1000
    settings.USAGE_RESERVATION_TTL_SECONDS = 600
    _reserve(user, 1000, now=NOW - timedelta(hours=1))

    # when
    _reserve(user, 1000)

    # then
    assert list(BudgetReservation.objects.values_list("tokens", "created_at")) == [(1000, NOW)]


def test_a_recorded_turn_settles_its_reservation_at_the_real_usage(
    settings: Settings, user: User
) -> None:
    # given
    settings.USAGE_DAILY_TOKEN_LIMIT = 1_000_000
    conversation = conversation_create(owner=user, model="openai/gpt-oss-20b")
    plan = turn_start(
        conversation,
        generation=GenerationSettings(
            temperature=None, max_output_tokens=500, reasoning_effort=None
        ),
    )
    held = BudgetReservation.objects.get()

    # when
    turn_finish(plan, input_tokens=30, output_tokens=20)

    # then: the estimate was the input estimate plus the whole output budget
    assert (held.message_id, held.user_id, held.tokens) == (
        plan.assistant_message_id,
        user.pk,
        plan.estimated_input_tokens + 500,
    )
    assert held.cost_usd == Decimal(plan.estimated_input_tokens * 75 + 500 * 300) / 10**9
    assert BudgetReservation.objects.count() == 0
    assert UsageRecord.objects.get().total_tokens == 50


@pytest.mark.parametrize(
    ("status", "tokens"),
    [(Message.Status.ERROR, 0), (Message.Status.CANCELLED, 9), (Message.Status.INCOMPLETE, 9)],
)
def test_every_ending_releases_the_reservation(
    settings: Settings, user: User, status: str, tokens: int
) -> None:
    settings.USAGE_MONTHLY_TOKEN_LIMIT = 1_000_000
    plan = turn_start(conversation_create(owner=user, model="openai/gpt-oss-20b"))
    assert BudgetReservation.objects.count() == 1

    turn_finish(plan, input_tokens=tokens, output_tokens=tokens, status=status)

    assert BudgetReservation.objects.count() == 0
    assert UsageRecord.objects.count() == (1 if tokens else 0)


def test_a_send_over_budget_is_a_402_and_stores_nothing(
    settings: Settings, api_client: APIClient, user: User
) -> None:
    # given: today's 100 tokens spent
    settings.USAGE_DAILY_TOKEN_LIMIT = 100
    conversation = conversation_create(owner=user, model="local/dev-echo")
    make_usage(user=user, at=timezone.now(), input_tokens=60, output_tokens=40, cost_usd="0")

    # when
    response = api_client.post(
        f"/api/v1/conversations/{conversation.pk}/messages", {"content": "Hi"}, format="json"
    )

    # then
    body = assert_error(response, 402, "billing_error")
    tomorrow = (timezone.now().astimezone(UTC) + timedelta(days=1)).date()
    assert body["error"]["message"] == (
        "Your daily token budget is spent: 100 tokens of 100 tokens used. "
        f"It resets at {tomorrow}T00:00:00Z."
    )
    assert body["error"]["details"]["limit"] == "daily_tokens"
    assert Message.objects.filter(conversation=conversation).count() == 0
    assert BudgetReservation.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_turns_near_the_limit_end_at_most_one_estimate_over(
    settings: Settings, user: User
) -> None:
    # given: 800 of 1000 tokens spent, and eight turns of up to 150 tokens at once
    settings.USAGE_DAILY_TOKEN_LIMIT = 1000
    make_usage(user=user, at=NOW, input_tokens=800, output_tokens=0, cost_usd="0")
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            connection.ensure_connection()  # connected first, so that the checks overlap
            start.wait()
            _reserve(user, 150)
            outcomes.append("admitted")
        except BillingError:
            outcomes.append("402")
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    # then: 800 -> 950 -> 1100; the worst case ends 100 over, under one estimate (150)
    assert sorted(outcomes) == ["402"] * 6 + ["admitted"] * 2
    held = sum(BudgetReservation.objects.values_list("tokens", flat=True))
    assert 800 + held == 1100


def test_a_users_limits_are_read_once_while_the_copy_is_fresh(
    settings: Settings, user: User
) -> None:
    # given
    settings.USAGE_BUDGET_CACHE_SECONDS = 60
    budget_limits_get(user_id=user.pk)

    # when
    with CaptureQueriesContext(connection) as queries:
        limits = budget_limits_get(user_id=user.pk)

    # then
    assert limits == BudgetLimits()
    assert len(queries) == 0


def test_an_override_written_elsewhere_applies_once_the_copy_is_stale(
    settings: Settings, user: User
) -> None:
    # given: this process's copy, then an override written without this process's signals
    # (as another server process's admin writes it)
    settings.USAGE_BUDGET_CACHE_SECONDS = 0.3
    assert budget_limits_get(user_id=user.pk) == BudgetLimits()
    UsageBudget.objects.bulk_create([UsageBudget(user=user, daily_token_limit=10)])

    # when
    stale = budget_limits_get(user_id=user.pk)

    # then: the copy until it is 0.3 s old, the override after
    assert stale == BudgetLimits()
    eventually(lambda: budget_limits_get(user_id=user.pk) == BudgetLimits(daily_tokens=10), wait=5)


def test_a_turn_with_no_limit_holds_no_reservation_and_deletes_none(user: User) -> None:
    # given: no limit applies
    conversation = conversation_create(owner=user, model="openai/gpt-oss-20b")
    plan = turn_start(conversation)

    # when
    with CaptureQueriesContext(connection) as queries:
        turn_finish(plan, input_tokens=10, output_tokens=5)

    # then
    assert plan.reserved is False
    reservations = BudgetReservation._meta.db_table
    assert not [q["sql"] for q in queries if reservations in q["sql"]]


def test_a_turn_under_a_limit_ends_its_reservation(settings: Settings, user: User) -> None:
    # given
    settings.USAGE_DAILY_TOKEN_LIMIT = 1_000_000
    conversation = conversation_create(owner=user, model="openai/gpt-oss-20b")
    plan = turn_start(conversation)
    assert plan.reserved is True
    assert BudgetReservation.objects.filter(message_id=plan.assistant_message_id).exists()

    # when
    turn_finish(plan, input_tokens=10, output_tokens=5)

    # then
    assert not BudgetReservation.objects.filter(message_id=plan.assistant_message_id).exists()
