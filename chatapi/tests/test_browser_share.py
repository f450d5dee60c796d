"""A share link's page as a reader opens it on a phone, in Debian's Chromium (the server,
browser and request watchers are test_browser.py's): the snapshot renders with its Markdown,
a script written in a message does not run, nothing is fetched from elsewhere, and a revoked
link is the not-found page.

Screenshots are saved under test-artifacts/screenshots/ (git-ignored).
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from accounts.models import User
from chatapi.tests import test_browser
from chatapi.tests.test_browser import ARTIFACTS, CHROMIUM
from conversations.models import Message
from conversations.services import share_create, share_delete
from testsupport.factories import at, make_conversation, make_message
from testsupport.servers import LiveServer

# test_browser.py's module: its skip when Chromium is missing, and its fixtures, bound here so
# pytest finds them by name.
pytestmark = test_browser.pytestmark
server = test_browser.server
browser = test_browser.browser
outside_requests = test_browser.outside_requests
console_errors = test_browser.console_errors

SCREENSHOTS = ARTIFACTS.parent / "screenshots"
ANSWER = """Three sights, **briefly**:

1. Belem Tower
2. The `Alfama`, on foot

<script>window.pwned = "answer script"</script>
<img src="x" onerror="window.pwned = 'answer onerror'">
[a link](javascript:window.pwned='link') and ![a pixel](https://tracker.example/p.png)
"""

if CHROMIUM.exists():
    from playwright.sync_api import Browser, Page, expect


@pytest.fixture
def page(browser: "Browser", server: LiveServer) -> Iterator["Page"]:
    """A phone-sized page (390x844, as an iPhone 14 reports itself)."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, base_url=server.url
    )
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


def screenshot(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def test_the_shared_page_renders_on_a_phone_and_runs_no_script_from_a_message(
    page: "Page",
    outside_requests: list[str],
    console_errors: list[str],
    user: User,
) -> None:
    # given
    conversation = make_conversation(owner=user, title="Trip to Lisbon")
    make_message(
        conversation=conversation,
        role=Message.Role.USER,
        content='Three things to see? <script>window.pwned = "question script"</script>',
        created_at=at(1),
    )
    make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content=ANSWER,
        model="openai/gpt-oss-20b",
        created_at=at(2),
    )
    share = share_create(conversation=conversation, expires_at=None)

    # when
    page.goto(f"/s/{share.token}")

    # then: the snapshot, with the answer's Markdown rendered
    expect(page.locator("h1")).to_have_text("Trip to Lisbon")
    answer = page.locator("article.assistant .answer")
    expect(answer.locator("strong")).to_have_text("briefly")
    expect(answer.locator("ol li")).to_have_text(["Belem Tower", "The Alfama, on foot"])
    expect(page.locator("article.user .text")).to_contain_text("<script>")
    page.screenshot(path=screenshot("share-phone"), full_page=True)
    # no script from a message ran, none is in the page, and nothing came from elsewhere
    assert page.evaluate("window.pwned") is None
    assert page.locator("article script, article img").count() == 0
    assert page.locator("article a[href^='javascript:']").count() == 0
    # (a request the page's policy refused would show among the console errors)
    assert outside_requests == []
    assert console_errors == []
    # the text fits the phone's width: no sideways scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # when: the owner revokes the link
    share_delete(share=share)
    response = page.goto(f"/s/{share.token}")

    # then
    assert response is not None
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Link not found")
    page.screenshot(path=screenshot("share-revoked-phone"))
