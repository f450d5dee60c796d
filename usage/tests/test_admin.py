"""The usage admin: the catalog and its price history, the ledger, per-user totals and budget
overrides; query counts that do not grow with the rows."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from testsupport.factories import make_chat_model, make_usage
from usage.catalog import chat_model_get
from usage.models import LanguageModel, ModelPrice, UsageBudget
from usage.selectors import budget_limits_get

pytestmark = pytest.mark.django_db

MODELS = "/admin/usage/languagemodel/"
LEDGER = "/admin/usage/usagerecord/"
USERS = "/admin/usage/userusage/"
BUDGETS = "/admin/usage/usagebudget/"
RESERVATIONS = "/admin/usage/budgetreservation/"
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def staff_client() -> Client:
    staff = User.objects.create_superuser("root", "root@example.com")  # no hashing: fast
    client = Client()
    client.force_login(staff)
    return client


def _rows(response: object) -> list[object]:
    return list(response.context["cl"].result_list)  # type: ignore[attr-defined]


def test_model_list_shows_the_current_prices(staff_client: Client) -> None:
    response = staff_client.get(MODELS, {"q": "gpt-oss-20b"})

    assert response.status_code == 200
    (row,) = _rows(response)
    assert (row.input_price, row.output_price) == (Decimal("0.075"), Decimal("0.3"))  # type: ignore[attr-defined]
    assert "0.0750" in response.content.decode()


def test_a_price_added_in_the_admin_is_in_force_at_once(staff_client: Client) -> None:
    # given: the model's page, with its seeded price as a read-only row
    model = LanguageModel.objects.get(model_id="qwen/qwen3-32b")
    seeded = ModelPrice.objects.get(language_model=model)
    url = f"{MODELS}{model.pk}/change/"
    assert chat_model_get(model.model_id).input_usd_per_mtok == Decimal("0.29")  # type: ignore[union-attr]
    page = staff_client.get(url)
    (prices,) = page.context["inline_admin_formsets"]
    assert prices.has_change_permission is False

    # when: a new price from a past instant is added
    response = staff_client.post(
        url,
        {
            "provider": "groq",
            "model_id": model.model_id,
            "display_name": model.display_name,
            "context_window": model.context_window,
            "max_output_tokens": model.max_output_tokens,
            "reasoning": "on",
            "active": "on",
            "prices-TOTAL_FORMS": "2",
            "prices-INITIAL_FORMS": "1",
            "prices-MIN_NUM_FORMS": "0",
            "prices-MAX_NUM_FORMS": "1000",
            "prices-0-id": seeded.pk,
            "prices-0-language_model": model.pk,
            "prices-1-language_model": model.pk,
            "prices-1-effective_from_0": "2026-11-01",
            "prices-1-effective_from_1": "00:00:00",
            "prices-1-input_usd_per_mtok": "0.1",
            "prices-1-cached_input_usd_per_mtok": "0.05",
            "prices-1-output_usd_per_mtok": "0.4",
        },
    )

    # then: the old row is untouched, the catalog has the new price
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    assert list(
        ModelPrice.objects.filter(language_model=model)
        .order_by("effective_from")
        .values_list("input_usd_per_mtok", "output_usd_per_mtok")
    ) == [(Decimal("0.29"), Decimal("0.59")), (Decimal("0.1"), Decimal("0.4"))]
    current = chat_model_get(model.model_id)
    assert current is not None
    assert (current.input_usd_per_mtok, current.cached_input_usd_per_mtok) == (
        Decimal("0.1"),
        Decimal("0.05"),
    )


def test_a_decommissioned_model_cannot_be_activated(staff_client: Client) -> None:
    model = LanguageModel.objects.get(model_id="gemma2-9b-it")

    response = staff_client.post(
        f"{MODELS}{model.pk}/change/",
        {
            "provider": "groq",
            "model_id": model.model_id,
            "display_name": model.display_name,
            "context_window": model.context_window,
            "max_output_tokens": model.max_output_tokens,
            "active": "on",
            "decommissioned": "on",
            "prices-TOTAL_FORMS": "0",
            "prices-INITIAL_FORMS": "0",
            "prices-MIN_NUM_FORMS": "0",
            "prices-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 200
    assert "A decommissioned model cannot be active." in response.content.decode()
    assert LanguageModel.objects.get(pk=model.pk).active is False


def test_ledger_filters_by_user_model_and_date(
    staff_client: Client, user: User, other_user: User
) -> None:
    # given
    mine = make_usage(user=user, at=T0, input_tokens=10, output_tokens=5, cost_usd="0.01")
    make_usage(user=other_user, at=T0, input_tokens=1, output_tokens=1, cost_usd="0.02")
    qwen = make_usage(user=user, at=datetime(2026, 11, 20, tzinfo=UTC), model="qwen/qwen3-32b",
                      input_tokens=1, output_tokens=1, cost_usd="0.03")  # fmt: skip

    # when / then
    def ids(**query: str) -> list[int]:
        response = staff_client.get(LEDGER, query)
        assert response.status_code == 200
        return sorted(row.pk for row in _rows(response))  # type: ignore[attr-defined]

    assert ids(user=str(user.pk)) == sorted([mine.pk, qwen.pk])
    assert ids(model="qwen/qwen3-32b") == [qwen.pk]
    assert ids(created_at__gte="2026-11-10 00:00:00+00:00") == [qwen.pk]
    assert ids(q="mallory@example.com") == [mine.pk + 1]
    page = staff_client.get(LEDGER, {"user": str(user.pk)})
    assert "ada@example.com" in page.content.decode()  # the chosen user, in the filter
    assert staff_client.get(LEDGER, {"user": "not-an-id"}).status_code == 302  # ?e=1


def test_ledger_rows_fit_in_narrow_columns(staff_client: Client, user: User) -> None:
    # given
    conversation_id = uuid.UUID("0d5f3e2a-1111-4222-8333-444455556666")
    make_usage(user=user, at=T0, input_tokens=123456, output_tokens=65432, reasoning_tokens=4321,
               cost_usd="1234.5678", conversation_id=conversation_id)  # fmt: skip

    # when
    html = staff_client.get(LEDGER).content.decode()

    # then
    assert '<td class="field-tokens">123,456 in / 65,432 out<br>(4,321 reasoning)</td>' in html
    assert '<td class="field-cost"><span title="1234.5678 USD">$1,234.57</span></td>' in html
    assert (
        '<td class="field-conversation"><a href="/admin/conversations/conversation/'
        f'{conversation_id}/change/" title="{conversation_id}">0d5f3e2a…</a></td>'
    ) in html


def test_user_usage_shows_totals_and_edits_the_budget_override(
    staff_client: Client, user: User
) -> None:
    # given
    make_usage(user=user, at=T0, input_tokens=100, output_tokens=50, cost_usd="0.25")
    make_usage(user=user, at=T0, input_tokens=10, output_tokens=5, cost_usd=None)

    # when
    listing = staff_client.get(USERS, {"q": "ada@"})
    response = staff_client.post(
        f"{USERS}{user.pk}/change/",
        {
            "usage_budget-TOTAL_FORMS": "1",
            "usage_budget-INITIAL_FORMS": "0",
            "usage_budget-MIN_NUM_FORMS": "0",
            "usage_budget-MAX_NUM_FORMS": "1",
            "usage_budget-0-user": str(user.pk),
            "usage_budget-0-daily_token_limit": "5000",
            "usage_budget-0-monthly_usd_limit": "2.50",
        },
    )

    # then
    (row,) = _rows(listing)
    assert (row.request_count, row.token_total, row.cost_total) == (2, 165, Decimal("0.25"))  # type: ignore[attr-defined]
    assert response.status_code == 302
    limits = budget_limits_get(user_id=user.pk)
    assert (limits.daily_tokens, limits.monthly_usd) == (5000, Decimal("2.50"))
    assert UsageBudget.objects.get().user_id == user.pk


def _fill(users: list[User], per_user: int) -> None:
    for user in users:
        for index in range(per_user):
            make_usage(user=user, at=T0, input_tokens=index, output_tokens=1, cost_usd="0.001")
        UsageBudget.objects.get_or_create(user=user, defaults={"daily_token_limit": 10})


@pytest.mark.parametrize("url", [MODELS, LEDGER, USERS, BUDGETS, RESERVATIONS])
def test_changelist_queries_do_not_grow_with_rows(staff_client: Client, url: str) -> None:
    # given
    def users(count: int) -> list[User]:
        return [
            User.objects.create(id=uuid.uuid4(), email=f"u{uuid.uuid4().hex[:6]}@example.com")
            for _ in range(count)
        ]

    _fill(users(2), 2)
    staff_client.get(url)
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(url).status_code == 200

    # when
    _fill(users(20), 3)
    for index in range(10):
        make_chat_model(f"extra/model-{index}")
    with CaptureQueriesContext(connection) as many:
        assert staff_client.get(url).status_code == 200

    # then
    assert len(many) == len(few)


@pytest.mark.parametrize("url", [MODELS, LEDGER, USERS, BUDGETS, RESERVATIONS])
def test_admin_pages_are_for_staff_only(user: User, url: str) -> None:
    client = Client()
    client.force_login(user)

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"
