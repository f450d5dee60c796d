"""The books of a turn that a sweeper finished while its process was in fact alive (its
heartbeat could not reach the database, or came late): one outcome, one ledger row, and
rollups that hold what the ledger holds, whichever of the two wrote first."""

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db.models import Sum

from accounts.models import User
from conversations.blocks import text_blocks
from conversations.models import Message
from conversations.services import conversation_create
from messaging.endings import SWEPT_ERROR
from messaging.llm.base import Usage
from messaging.turns import (
    GenerationSettings,
    TurnOutcome,
    TurnPlan,
    turn_prepare,
    turn_record,
    turn_record_swept,
)
from usage.catalog import chat_model_get, turn_cost
from usage.models import BudgetReservation, UsageDaily, UsageHourly, UsageRecord

pytestmark = pytest.mark.django_db

MODEL = "openai/gpt-oss-20b"


@pytest.fixture
def plan(user: User, settings) -> TurnPlan:
    settings.USAGE_DAILY_USD_LIMIT = Decimal(100)  # so the turn holds a reservation
    model = chat_model_get(MODEL)
    assert model is not None
    return turn_prepare(
        conversation=conversation_create(owner=user, model=MODEL),
        blocks=text_blocks("Hi"),
        model=model,
        generation=GenerationSettings(
            temperature=None, max_output_tokens=None, reasoning_effort=None
        ),
    )


def complete(plan: TurnPlan) -> TurnOutcome:
    usage = Usage(input_tokens=42, output_tokens=17)
    return TurnOutcome(
        status="complete",
        content="Hello there!",
        reasoning="",
        blocks=text_blocks("Hello there!"),
        model=MODEL,
        stop_reason="stop",
        stop_sequence=None,
        usage=usage,
        usage_estimated=False,
        cost_usd=turn_cost(model=plan.model, usage=usage),
        latency_ms=120,
        ttft_ms=40,
        error=None,
    )


def books(message_id: uuid.UUID) -> tuple[list[tuple[int, int, Decimal | None]], Any, Any, Any]:
    """The message's ledger rows, and the daily and hourly rollups' requests and costs."""
    rows = list(
        UsageRecord.objects.filter(message_id=message_id).values_list(
            "input_tokens", "output_tokens", "cost_usd"
        )
    )
    daily = UsageDaily.objects.aggregate(requests=Sum("requests"), cost=Sum("cost_usd"))
    hourly = UsageHourly.objects.aggregate(cost=Sum("cost_usd"))
    return rows, daily["requests"], daily["cost"], hourly["cost"]


def test_the_real_outcome_recorded_after_a_sweep_replaces_the_estimate_in_ledger_and_rollups(
    plan: TurnPlan,
) -> None:
    # given: a sweeper took the turn's process for dead and finished it with "Par"
    assert turn_record_swept(message_id=plan.assistant_message_id, content="Par", reasoning="")
    outcome = complete(plan)

    # when: the process, alive after all, records the real outcome
    turn_record(plan=plan, outcome=outcome)

    # then: the message, one ledger row and the rollups all hold the real outcome
    message = Message.objects.get(pk=plan.assistant_message_id)
    assert (message.status, message.content, message.cost_usd) == (
        "complete",
        "Hello there!",
        outcome.cost_usd,
    )
    assert books(plan.assistant_message_id) == (
        [(42, 17, outcome.cost_usd)],
        1,
        outcome.cost_usd,
        outcome.cost_usd,
    )
    assert not BudgetReservation.objects.exists()


def test_a_sweep_after_the_turn_was_recorded_changes_nothing(plan: TurnPlan) -> None:
    # given: the turn recorded by its own process
    outcome = complete(plan)
    turn_record(plan=plan, outcome=outcome)

    # when: a sweeper that read it as in progress a moment earlier comes to finish it
    swept = turn_record_swept(message_id=plan.assistant_message_id, content="Par", reasoning="")

    # then
    assert swept is False
    message = Message.objects.get(pk=plan.assistant_message_id)
    assert (message.status, message.content, message.error) == ("complete", "Hello there!", None)
    assert books(plan.assistant_message_id) == (
        [(42, 17, outcome.cost_usd)],
        1,
        outcome.cost_usd,
        outcome.cost_usd,
    )


def test_a_sweep_finishes_message_ledger_and_reservation_in_one_go(plan: TurnPlan) -> None:
    # when
    swept = turn_record_swept(message_id=plan.assistant_message_id, content="Par", reasoning="")

    # then: nothing in between is ever visible: the message incomplete with its partial
    # answer, its estimated ledger row, no reservation left
    assert swept is True
    message = Message.objects.get(pk=plan.assistant_message_id)
    cost = turn_cost(model=plan.model, usage=Usage(input_tokens=0, output_tokens=1))
    assert (message.status, message.content, message.error, message.usage_estimated) == (
        "incomplete",
        "Par",
        SWEPT_ERROR,
        True,
    )
    assert books(plan.assistant_message_id) == ([(0, 1, cost)], 1, cost, cost)
    assert not BudgetReservation.objects.exists()
