"""The admin usage dashboard against hand-computed values."""

import re
from datetime import UTC, datetime

import pytest
from django.test import Client

from accounts.models import User
from testsupport.factories import make_usage

pytestmark = pytest.mark.django_db

URL = "/admin/usage/usagerecord/dashboard/"


@pytest.fixture
def staff_client() -> Client:
    staff = User.objects.create_superuser("root", "root@example.com")
    client = Client()
    client.force_login(staff)
    return client


def bars(html: str, chart: str) -> list[str]:
    """The tooltips of a chart's bars, in day order."""
    svg = html.split(f'id="{chart}"', 1)[1].split("</svg>", 1)[0]
    return re.findall(r"<title>([^<]*)</title>", svg)


def test_dashboard_charts_and_tops(staff_client: Client, user: User, other_user: User) -> None:
    # given: three days of usage by two users on two models
    make_usage(
        user=user,
        at=datetime(2026, 11, 1, 9, tzinfo=UTC),
        input_tokens=100,
        output_tokens=50,
        cost_usd="0.0100",
    )
    make_usage(
        user=user,
        at=datetime(2026, 11, 1, 23, 59, tzinfo=UTC),
        input_tokens=10,
        output_tokens=5,
        cost_usd="0.0010",
        model="qwen/qwen3-32b",
    )
    make_usage(
        user=other_user,
        at=datetime(2026, 11, 3, 0, 0, tzinfo=UTC),
        input_tokens=1000,
        output_tokens=0,
        cost_usd="0.2000",
    )
    make_usage(
        user=user,
        at=datetime(2026, 11, 4, 0, 0, tzinfo=UTC),
        input_tokens=7,
        output_tokens=7,
        cost_usd="9",
    )  # outside the range

    # when
    response = staff_client.get(URL, {"from": "2026-11-01", "to": "2026-11-03"})

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert bars(html, "tokens-chart") == [
        "2026-11-01: 165 tokens",
        "2026-11-02: 0 tokens",
        "2026-11-03: 1000 tokens",
    ]
    assert bars(html, "cost-chart") == [
        "2026-11-01: 0.011 USD",
        "2026-11-02: 0 USD",
        "2026-11-03: 0.2 USD",
    ]
    assert "<strong>3</strong> upstream calls, <strong>1165</strong> tokens" in html
    top_users = html.split('id="top-users"', 1)[1].split("</table>", 1)[0]
    assert top_users.index("mallory@example.com") < top_users.index("ada@example.com")
    top_models = html.split('id="top-models"', 1)[1].split("</table>", 1)[0]
    assert top_models.index("openai/gpt-oss-20b") < top_models.index("qwen/qwen3-32b")


def test_dashboard_filters_by_user_and_model(
    staff_client: Client, user: User, other_user: User
) -> None:
    make_usage(
        user=user,
        at=datetime(2026, 11, 1, tzinfo=UTC),
        input_tokens=1,
        output_tokens=1,
        cost_usd="0.5",
        model="qwen/qwen3-32b",
    )
    make_usage(
        user=user,
        at=datetime(2026, 11, 1, tzinfo=UTC),
        input_tokens=4,
        output_tokens=4,
        cost_usd="0.5",
    )
    make_usage(
        user=other_user,
        at=datetime(2026, 11, 1, tzinfo=UTC),
        input_tokens=50,
        output_tokens=0,
        cost_usd="1",
    )

    response = staff_client.get(
        URL,
        {
            "from": "2026-11-01",
            "to": "2026-11-01",
            "user": str(user.pk),
            "model": "openai/gpt-oss-20b",
        },
    )

    assert bars(response.content.decode(), "tokens-chart") == ["2026-11-01: 8 tokens"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"from": "yesterday"}, "Dates must be YYYY-MM-DD; showing the last 30 days."),
        ({"from": "2026-11-05", "to": "2026-11-01"}, "A range is 1 to 367 days"),
        ({"user": "not-a-uuid"}, "The user filter must be a user id (UUID); showing everyone."),
    ],
)
def test_bad_filters_say_so_and_show_defaults(
    staff_client: Client, query: dict[str, str], message: str
) -> None:
    response = staff_client.get(URL, query)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert len(bars(response.content.decode(), "tokens-chart")) == 30


def test_dashboard_is_for_staff_only(user: User) -> None:
    client = Client()
    client.force_login(user)

    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
