"""The admin usage dashboard against hand-computed values: the charts' bars and axes, money to
the cent, the user picked by e-mail, and the links that lead to it."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from testsupport.factories import make_usage
from usage.dashboard import value_axis

pytestmark = pytest.mark.django_db

URL = "/admin/usage/usagerecord/dashboard/"


@pytest.fixture
def staff_client() -> Client:
    staff = User.objects.create_superuser("root", "root@example.com")
    client = Client()
    client.force_login(staff)
    return client


def _svg(html: str, chart: str) -> str:
    return html.split(f'id="{chart}"', 1)[1].split("</svg>", 1)[0]


def bars(html: str, chart: str) -> list[str]:
    """The tooltips of a chart's bars, in day order."""
    return re.findall(r"<title>([^<]*)</title>", _svg(html, chart))


def texts(html: str, chart: str, css_class: str) -> list[str]:
    """The texts of one kind in a chart (value-label, date-label, axis-title, empty)."""
    return re.findall(rf'<text class="{css_class}"[^>]*>([^<]*)</text>', _svg(html, chart))


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
        "2026-11-03: 1,000 tokens",
    ]
    assert bars(html, "cost-chart") == [
        "2026-11-01: $0.01",
        "2026-11-02: $0.00",
        "2026-11-03: $0.20",
    ]
    assert texts(html, "tokens-chart", "value-label") == ["0", "500", "1,000"]
    assert texts(html, "cost-chart", "value-label") == [
        "$0.00",
        "$0.05",
        "$0.10",
        "$0.15",
        "$0.20",
    ]
    assert texts(html, "cost-chart", "date-label") == ["Nov 01", "Nov 02", "Nov 03"]
    assert texts(html, "cost-chart", "axis-title") == [
        "USD per day",
        "UTC day, 2026-11-01 to 2026-11-03",
    ]
    assert (
        "<strong>3</strong> upstream calls, <strong>1,165</strong> tokens, <strong>$0.21</strong>"
    ) in html
    top_users = html.split('id="top-users"', 1)[1].split("</table>", 1)[0]
    assert top_users.index("mallory@example.com") < top_users.index("ada@example.com")
    assert '<td class="number">$0.20</td>' in top_users
    assert '<td class="number">$0.01</td>' in top_users
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

    html = response.content.decode()
    assert bars(html, "tokens-chart") == ["2026-11-01: 8 tokens"]
    assert '<option value="qwen/qwen3-32b">' in html  # the catalog's ids, suggested


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"from": "yesterday"}, "Dates must be YYYY-MM-DD; showing the last 30 days."),
        ({"from": "2026-11-05", "to": "2026-11-01"}, "A range is 1 to 367 days"),
        ({"user": "not-a-uuid"}, "No such user; showing everyone."),
        ({"user": str(uuid.UUID(int=7))}, "No such user; showing everyone."),
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


def test_a_range_without_usage_draws_zero_axes_and_no_made_up_maximum(
    staff_client: Client,
) -> None:
    # when: the last 30 days, nothing in the ledger
    response = staff_client.get(URL)

    # then: one tick at zero on each value axis, a date label every third day
    html = response.content.decode()
    assert texts(html, "tokens-chart", "value-label") == ["0"]
    assert texts(html, "cost-chart", "value-label") == ["$0.00"]
    assert texts(html, "cost-chart", "empty") == ["Nothing in this range: $0.00 every day"]
    first_day = timezone.now().date() - timedelta(days=29)
    labels = texts(html, "cost-chart", "date-label")
    assert len(labels) == 10
    assert labels[0] == first_day.strftime("%b %d")
    assert bars(html, "cost-chart") == [
        f"{(first_day + timedelta(days=n)).isoformat()}: $0.00" for n in range(30)
    ]
    assert "max 1" not in html
    assert "<strong>$0.00</strong>" in html


@pytest.mark.parametrize(
    ("peak", "smallest_step", "ticks"),
    [
        ("0", "0.01", ["0"]),
        ("0.0003", "0.01", ["0", "0.01"]),
        ("0.2", "0.01", ["0", "0.05", "0.10", "0.15", "0.20"]),
        ("7", "1", ["0", "2", "4", "6", "8"]),
        ("1000", "1", ["0", "500", "1000"]),
        ("1001", "1", ["0", "500", "1000", "1500"]),
        ("3", "1", ["0", "1", "2", "3"]),
    ],
)
def test_the_value_axis_is_scaled_from_the_peak_in_round_steps(
    peak: str, smallest_step: str, ticks: list[str]
) -> None:
    assert value_axis(Decimal(peak), smallest_step=Decimal(smallest_step)) == [
        Decimal(tick) for tick in ticks
    ]


def test_users_are_picked_by_email_from_the_admin_autocomplete(
    staff_client: Client, user: User, other_user: User
) -> None:
    # when: the dashboard's user box asks for "mall"
    found = staff_client.get(
        "/admin/autocomplete/",
        {"app_label": "usage", "model_name": "usagerecord", "field_name": "user", "term": "mall"},
    )

    # then
    assert found.status_code == 200
    assert found.json() == {
        "results": [{"id": str(other_user.pk), "text": "mallory@example.com"}],
        "pagination": {"more": False},
    }

    # when: the dashboard for the user picked
    html = staff_client.get(URL, {"user": str(other_user.pk)}).content.decode()

    # then: the box shows the address, and its script is on the page
    assert f'<option value="{other_user.pk}" selected>mallory@example.com</option>' in html
    assert 'class="admin-autocomplete"' in html
    assert "/static/admin/js/autocomplete.js" in html


@pytest.mark.parametrize("page", ["/admin/", "/admin/usage/", "/admin/usage/usagerecord/"])
def test_the_dashboard_is_linked_from_the_index_and_the_ledger(
    staff_client: Client, page: str
) -> None:
    html = staff_client.get(page).content.decode()

    assert f'<a href="{URL}"' in html
    assert "Usage dashboard</a>" in html


def test_the_admin_is_branded(staff_client: Client) -> None:
    html = staff_client.get("/admin/").content.decode()

    assert "<title>chatapi administration | chatapi admin</title>" in html
    assert '<div id="site-name"><a href="/admin/">chatapi admin</a></div>' in html
