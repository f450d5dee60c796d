"""GET /usage/stats and /usage/daily against hand-computed values."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from testsupport.assertions import assert_error
from testsupport.factories import make_usage
from usage.models import UsageKind
from usage.selectors import usage_daily, usage_stats
from usage.serializers import OUT_OF_RANGE

pytestmark = pytest.mark.django_db

A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def _at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def ledger(user: User, other_user: User) -> None:
    """Costs at $0.075/$0.30 (gpt-oss-20b) and $0.29/$0.59 (qwen3-32b) per million tokens."""
    # 1000 x 0.075 + 200 x 0.30 = 135 micro-dollars
    make_usage(user=user, at=_at(1, 10), input_tokens=1000, output_tokens=200,
               cost_usd="0.000135", conversation_id=A)  # fmt: skip
    # 2000 x 0.075 + 400 x 0.30 = 270
    make_usage(user=user, at=_at(1, 23, 30), input_tokens=2000, output_tokens=400,
               reasoning_tokens=100, cost_usd="0.00027", conversation_id=A)  # fmt: skip
    # 500 x 0.29 + 100 x 0.59 = 204
    make_usage(user=user, at=_at(3, 8), model="qwen/qwen3-32b", input_tokens=500,
               output_tokens=100, cost_usd="0.000204", conversation_id=B)  # fmt: skip
    # a title: 50 x 0.075 + 10 x 0.30 = 6.75
    make_usage(user=user, at=_at(3, 9), input_tokens=50, output_tokens=10,
               cost_usd="0.00000675", conversation_id=B, kind=UsageKind.TITLE)  # fmt: skip
    # October, a model without a price
    make_usage(user=user, at=_at(31, 12, month=10), model="free/unknown", input_tokens=10,
               output_tokens=5, cost_usd=None, conversation_id=C)  # fmt: skip
    # someone else's
    make_usage(user=other_user, at=_at(1, 12), input_tokens=7777, output_tokens=7777,
               cost_usd="1", conversation_id=uuid.uuid4())  # fmt: skip


def _get(client: APIClient, path: str, **query: str) -> Any:
    return client.get(f"/api/v1/usage/{path}", query)


@pytest.mark.usefixtures("ledger")
def test_stats_for_a_month(api_client: APIClient) -> None:
    # when
    response = _get(api_client, "stats", **{"from": "2026-11-01", "to": "2026-11-30"})

    # then
    assert response.status_code == 200
    assert response.json() == {
        "from": "2026-11-01T00:00:00Z",
        "to": "2026-12-01T00:00:00Z",
        "total_conversations": 2,
        "total_messages": 3,
        "requests": 4,
        "input_tokens": 3550,
        "output_tokens": 710,
        "reasoning_tokens": 100,
        "total_tokens": 4260,
        "cost_usd": "0.0006157500",
        "cost_estimate_usd": "0.0006157500",
        "unpriced_requests": 0,
        "models_used": ["openai/gpt-oss-20b", "qwen/qwen3-32b"],
        "by_model": [
            {
                "model": "openai/gpt-oss-20b",
                "requests": 3,
                "input_tokens": 3050,
                "output_tokens": 610,
                "reasoning_tokens": 100,
                "total_tokens": 3660,
                "cost_usd": "0.0004117500",
                "unpriced_requests": 0,
            },
            {
                "model": "qwen/qwen3-32b",
                "requests": 1,
                "input_tokens": 500,
                "output_tokens": 100,
                "reasoning_tokens": 0,
                "total_tokens": 600,
                "cost_usd": "0.0002040000",
                "unpriced_requests": 0,
            },
        ],
    }


@pytest.mark.usefixtures("ledger")
def test_stats_without_bounds_count_everything_of_the_caller(api_client: APIClient) -> None:
    body = _get(api_client, "stats").json()

    assert (body["from"], body["to"]) == (None, None)
    assert (body["total_conversations"], body["total_messages"], body["requests"]) == (3, 4, 5)
    assert (body["total_tokens"], body["cost_usd"], body["unpriced_requests"]) == (
        4275,
        "0.0006157500",
        1,
    )
    assert body["models_used"] == ["free/unknown", "openai/gpt-oss-20b", "qwen/qwen3-32b"]
    assert body["by_model"][0] == {
        "model": "free/unknown",
        "requests": 1,
        "input_tokens": 10,
        "output_tokens": 5,
        "reasoning_tokens": 0,
        "total_tokens": 15,
        "cost_usd": "0.0000000000",
        "unpriced_requests": 1,
    }


@pytest.mark.usefixtures("ledger")
def test_stats_between_instants_include_from_and_exclude_to(api_client: APIClient) -> None:
    body = _get(
        api_client, "stats", **{"from": "2026-11-01T10:00:00Z", "to": "2026-11-03T08:00:00Z"}
    ).json()

    assert (body["requests"], body["total_tokens"], body["cost_usd"]) == (2, 3600, "0.0004050000")


@pytest.mark.usefixtures("ledger")
def test_stats_dates_are_days_of_tz(api_client: APIClient) -> None:
    # given: in Tokyo (UTC+9), 2026-11-01 23:30 UTC is already November 2
    body = _get(
        api_client, "stats", **{"from": "2026-11-01", "to": "2026-11-01", "tz": "Asia/Tokyo"}
    ).json()

    assert (body["from"], body["to"]) == ("2026-10-31T15:00:00Z", "2026-11-01T15:00:00Z")
    # only 10:00 UTC (19:00 in Tokyo); 23:30 UTC is November 2 there
    assert (body["requests"], body["total_tokens"]) == (1, 1200)


def test_stats_of_a_new_user_are_zeros(api_client: APIClient) -> None:
    body = _get(api_client, "stats").json()

    assert (body["total_conversations"], body["total_tokens"], body["cost_usd"]) == (
        0,
        0,
        "0.0000000000",
    )
    assert (body["models_used"], body["by_model"]) == ([], [])


def _day(date: str, requests: int, i: int, o: int, cost: str) -> dict[str, Any]:
    return {
        "date": date,
        "requests": requests,
        "input_tokens": i,
        "output_tokens": o,
        "total_tokens": i + o,
        "cost_usd": cost,
    }


@pytest.mark.usefixtures("ledger")
def test_daily_series_has_every_day(api_client: APIClient) -> None:
    response = _get(api_client, "daily", **{"from": "2026-11-01", "to": "2026-11-04"})

    assert response.status_code == 200
    assert response.json() == {
        "from": "2026-11-01",
        "to": "2026-11-04",
        "tz": "UTC",
        "data": [
            _day("2026-11-01", 2, 3000, 600, "0.0004050000"),
            _day("2026-11-02", 0, 0, 0, "0.0000000000"),
            _day("2026-11-03", 2, 550, 110, "0.0002107500"),
            _day("2026-11-04", 0, 0, 0, "0.0000000000"),
        ],
    }


@pytest.mark.usefixtures("ledger")
def test_daily_series_counts_calendar_days_of_tz(api_client: APIClient) -> None:
    body = _get(
        api_client, "daily", **{"from": "2026-10-31", "to": "2026-11-03", "tz": "Asia/Tokyo"}
    ).json()

    assert body["tz"] == "Asia/Tokyo"
    assert body["data"] == [
        _day("2026-10-31", 1, 10, 5, "0.0000000000"),
        _day("2026-11-01", 1, 1000, 200, "0.0001350000"),
        _day("2026-11-02", 1, 2000, 400, "0.0002700000"),
        _day("2026-11-03", 2, 550, 110, "0.0002107500"),
    ]


def test_daily_series_defaults_to_the_last_30_days(api_client: APIClient) -> None:
    body = _get(api_client, "daily", tz="Asia/Tokyo").json()

    today = timezone.now().astimezone(ZoneInfo("Asia/Tokyo")).date()
    assert [day["date"] for day in body["data"]] == [
        str(today - timedelta(days=n)) for n in range(29, -1, -1)
    ]
    assert (body["from"], body["to"]) == (str(today - timedelta(days=29)), str(today))


@pytest.mark.parametrize(
    ("path", "query", "field", "problem"),
    [
        ("stats", {"from": "yesterday"}, "from",
         "Use an ISO 8601 date (2026-11-01) or date-time (2026-11-01T12:00:00Z)."),
        ("stats", {"from": "2026-02-30"}, "from",
         "Use an ISO 8601 date (2026-11-01) or date-time (2026-11-01T12:00:00Z)."),
        ("stats", {"from": "2026-11-02", "to": "2026-11-01"}, "to", "Must be after from."),
        ("stats", {"tz": "Mars/Base"}, "tz",
         "Unknown time zone 'Mars/Base': use an IANA name such as Europe/Lisbon or UTC."),
        ("stats", {"tz": "../../etc/passwd"}, "tz",
         "Unknown time zone '../../etc/passwd': use an IANA name such as Europe/Lisbon or UTC."),
        ("stats", {"since": "2026-11-01"}, "since", "Unknown field."),
        ("daily", {"from": "2026-11-01T00:00:00Z"}, "from",
         "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
        ("daily", {"from": "2026-11-05", "to": "2026-11-01"}, "to", "Must not be before from."),
        ("daily", {"from": "2024-12-31", "to": "2026-01-01"}, "to",
         "At most 366 days per request."),
        ("daily", {"tz": "posix/UTC"}, "tz",
         "Unknown time zone 'posix/UTC': use an IANA name such as Europe/Lisbon or UTC."),
        # Dates at the ends of the calendar: a 400 on the field, never an OverflowError's 500
        ("stats", {"to": "9999-12-31"}, "to", OUT_OF_RANGE),
        ("stats", {"to": "9999-12-31T23:59:59-12:00"}, "to", OUT_OF_RANGE),
        ("stats", {"from": "0001-01-01T00:00:00+14:00"}, "from", OUT_OF_RANGE),
        ("stats", {"from": "0001-01-01", "tz": "Asia/Tokyo"}, "from", OUT_OF_RANGE),
        ("daily", {"to": "0001-01-05"}, "to", OUT_OF_RANGE),
        ("daily", {"from": "9999-12-31", "to": "9999-12-31"}, "to", OUT_OF_RANGE),
        ("daily", {"from": "0001-01-01", "to": "0001-01-02", "tz": "Asia/Tokyo"}, "from",
         OUT_OF_RANGE),
    ],
)  # fmt: skip
def test_bad_queries_are_400_envelopes(
    api_client: APIClient, path: str, query: dict[str, str], field: str, problem: str
) -> None:
    response = _get(api_client, path, **query)

    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["details"] == {"fields": {field: [problem]}}


def test_the_first_and_last_days_that_can_be_counted_are_answered(
    api_client: APIClient,
) -> None:
    # when
    first = _get(api_client, "daily", **{"from": "0001-01-01", "to": "0001-01-01"})
    last = _get(api_client, "stats", **{"from": "9999-12-30", "to": "9999-12-30"})

    # then
    assert first.status_code == 200
    assert [day["date"] for day in first.json()["data"]] == ["0001-01-01"]
    assert last.status_code == 200
    assert (last.json()["from"], last.json()["to"], last.json()["requests"]) == (
        "9999-12-30T00:00:00Z",
        "9999-12-31T00:00:00Z",
        0,
    )


@pytest.mark.parametrize("path", ["stats", "daily"])
def test_usage_needs_a_token(anon_client: APIClient, path: str) -> None:
    assert_error(_get(anon_client, path), 401, "authentication_error")


@pytest.mark.usefixtures("ledger")
def test_aggregation_is_in_sql_in_a_fixed_number_of_queries(user: User) -> None:
    with CaptureQueriesContext(connection) as stats_queries:
        usage_stats(user=user, start=None, end=None)
    with CaptureQueriesContext(connection) as daily_queries:
        usage_daily(
            user=user,
            first_day=_at(1, 0).date(),
            last_day=_at(30, 0).date(),
            zone=ZoneInfo("UTC"),
        )

    assert (len(stats_queries), len(daily_queries)) == (2, 1)
