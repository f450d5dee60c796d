"""The admin as an operator sees it, in Debian's Chromium at 1280x800 (the server, browser and
request watchers are test_browser.py's): the usage dashboard's charts with their axes, for a
day of usage and for a range without any; a user picked by e-mail; the conversation page with
its transcript first; the change lists whole at that width.

Screenshots are saved under test-artifacts/screenshots/ (git-ignored).
"""

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.models import User
from chatapi.tests import test_browser
from chatapi.tests.test_browser import ARTIFACTS, CHROMIUM
from conversations.models import Conversation
from testsupport.factories import make_usage
from testsupport.servers import LiveServer

# test_browser.py's module: its skip when Chromium is missing, and its fixtures (the server,
# the browser, the watchers of outside requests and console errors, the staff user and a
# conversation with one exchange), bound here so pytest finds them by name.
pytestmark = test_browser.pytestmark
server = test_browser.server
browser = test_browser.browser
outside_requests = test_browser.outside_requests
console_errors = test_browser.console_errors
staff = test_browser.staff
conversation = test_browser.conversation

SCREENSHOTS = ARTIFACTS.parent / "screenshots"
WIDTH, HEIGHT = 1280, 800

if CHROMIUM.exists():
    from playwright.sync_api import Browser, Locator, Page, expect


@pytest.fixture
def page(browser: "Browser", server: LiveServer, staff: User) -> Iterator["Page"]:
    """A page at 1280x800, logged in to the admin as a superuser."""
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, base_url=server.url)
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    opened.goto("/admin/login/")
    opened.fill("#id_username", "root")
    opened.fill("#id_password", "correct horse battery")
    opened.locator("input[type=submit]").click()
    expect(opened.locator("#content h1")).to_have_text("chatapi administration")
    yield opened
    context.close()


def screenshot(name: str) -> Path:
    """Where test-artifacts/screenshots/<name>.png goes."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def texts(chart: "Locator", css_class: str) -> list[str]:
    return chart.locator(f"text.{css_class}").all_text_contents()


def test_the_usage_dashboard_is_reached_from_the_index_and_draws_labelled_axes(
    page: "Page",
    outside_requests: list[str],
    console_errors: list[str],
    conversation: Conversation,
    other_user: User,
) -> None:
    # given: today's usage by the conversation's owner (ada@), $0.18, 1,500 tokens
    make_usage(
        user=conversation.owner,
        at=timezone.now(),
        input_tokens=1200,
        output_tokens=300,
        cost_usd="0.1800",
    )

    # when: from the admin index
    expect(page.locator("#site-name")).to_have_text("chatapi admin")
    page.locator("#content-main a", has_text="Usage dashboard").click()

    # then: a bar a day; the value axes scaled from the data, the dates along the bottom
    expect(page.locator("#content h1")).to_have_text("Usage dashboard")
    tokens = page.locator("#tokens-chart svg")
    cost = page.locator("#cost-chart svg")
    expect(tokens.locator("rect.bar")).to_have_count(30)
    assert texts(tokens, "value-label") == ["0", "500", "1,000", "1,500"]
    assert texts(cost, "value-label") == ["$0.00", "$0.05", "$0.10", "$0.15", "$0.20"]
    assert len(texts(cost, "date-label")) == 10
    assert texts(cost, "axis-title")[0] == "USD per day"
    expect(cost.locator("rect.bar").last.locator("title")).to_have_text(
        f"{timezone.now().date().isoformat()}: $0.18"
    )
    expect(page.locator(".dashboard-totals")).to_contain_text("$0.18")
    expect(page.locator("#top-users")).to_contain_text("ada@example.com")
    page.screenshot(path=screenshot("admin-usage-dashboard"), full_page=True)

    # when: the user is picked by e-mail
    page.locator(".dashboard-filters .select2-selection").click()
    page.locator(".select2-search__field").fill("mall")
    page.locator(".select2-results__option", has_text="mallory@example.com").click()
    page.locator(".dashboard-filters").screenshot(
        path=screenshot("admin-usage-dashboard-user-picker")
    )
    page.locator(".dashboard-filters input[type=submit]").click()

    # then: mallory has used nothing: the axes say $0.00, not a made-up maximum
    expect(page).to_have_url(re.compile(rf"user={other_user.pk}"))
    expect(page.locator(".dashboard-filters .select2-selection__rendered")).to_contain_text(
        "mallory@example.com"
    )
    cost = page.locator("#cost-chart svg")
    assert texts(cost, "value-label") == ["$0.00"]
    assert texts(cost, "empty") == ["Nothing in this range: $0.00 every day"]
    expect(page.locator(".dashboard-totals")).to_contain_text("$0.00")
    page.screenshot(path=screenshot("admin-usage-dashboard-zero"), full_page=True)
    assert outside_requests == []
    assert console_errors == []


def test_a_year_of_usage_is_labelled_once_a_month(page: "Page") -> None:
    # when: a 367-day range, the longest the dashboard draws
    page.goto("/admin/usage/usagerecord/dashboard/?from=2025-11-01&to=2026-11-02")

    # then: a date label every 31 days, none overlapping
    cost = page.locator("#cost-chart svg")
    labels = texts(cost, "date-label")
    assert labels[:3] == ["Nov 01", "Dec 02", "Jan 02"]
    assert len(labels) == 12
    boxes = [
        box
        for box in (label.bounding_box() for label in cost.locator("text.date-label").all())
        if box
    ]
    assert all(left["x"] + left["width"] < right["x"] for left, right in pairwise(boxes))
    page.locator("#cost-chart").screenshot(path=screenshot("admin-usage-dashboard-year"))


def test_the_conversation_page_shows_the_transcript_first_and_the_settings_collapsed(
    page: "Page", console_errors: list[str], conversation: Conversation
) -> None:
    # when
    page.goto(f"/admin/conversations/conversation/{conversation.pk}/change/")

    # then: the transcript at the top of the form, the settings below it and closed
    transcript = page.locator(".transcript")
    settings = page.locator("details:has(h2:text('Settings'))")
    expect(transcript.locator("article.turn")).to_have_count(3)
    transcript_box, settings_box = transcript.bounding_box(), settings.bounding_box()
    assert transcript_box is not None
    assert settings_box is not None
    assert transcript_box["y"] < settings_box["y"]
    assert transcript_box["y"] < HEIGHT / 2
    expect(page.locator(".field-system_prompt")).to_be_hidden()
    page.screenshot(path=screenshot("admin-conversation"))

    # when: the settings are opened
    settings.locator("summary").click()

    # then
    expect(page.locator(".field-system_prompt")).to_be_visible()
    page.screenshot(path=screenshot("admin-conversation-settings"), full_page=True)
    assert console_errors == []


@pytest.mark.parametrize(
    "changelist", ["conversations/conversation", "usage/usagerecord", "usage/userusage"]
)
def test_a_change_list_fits_1280_px_without_cutting_columns(
    page: "Page", conversation: Conversation, changelist: str
) -> None:
    # given: a ledger row with every column filled
    make_usage(
        user=conversation.owner,
        at=datetime(2026, 11, 2, 12, tzinfo=UTC),
        input_tokens=123456,
        output_tokens=65432,
        reasoning_tokens=4321,
        cost_usd="1234.5678",
        conversation_id=conversation.pk,
    )

    # when
    page.goto(f"/admin/{changelist}/")

    # then: the table is as wide as its box (no scrolling inside it), and so is the page
    table = page.locator("#result_list")
    expect(table.locator("tbody tr").first).to_be_visible()
    page.screenshot(path=screenshot(f"admin-changelist-{changelist.replace('/', '-')}"))
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    assert table.evaluate("t => t.parentElement.scrollWidth <= t.parentElement.clientWidth")
