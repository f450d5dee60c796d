"""The pages a person opens, in a real browser: Debian's Chromium (/usr/bin/chromium), driven
by Playwright, against a daphne server on loopback. Swagger UI authorizes with a token and
runs "Try it out"; ReDoc renders; the admin logs in and shows a conversation's transcript.
None of these pages may load anything from outside the server.

Screenshots are saved under test-artifacts/browser/ (git-ignored). `.ci/run` installs the
browser; without it these tests are skipped (never downloaded: no `playwright install`).
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import User
from conversations.models import Conversation
from testsupport.factories import make_conversation, make_exchange, make_usage
from testsupport.servers import REPO, LiveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts" / "browser"

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; "
        ".ci/run installs it)",
    ),
    pytest.mark.django_db(transaction=True),
]

if CHROMIUM.exists():
    from playwright.sync_api import (
        Browser,
        Locator,
        Page,
        Request,
        expect,
        sync_playwright,
    )


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the module; each test's rows are committed (transaction=True), so the
    server sees them."""
    live = LiveServer(
        env={"LOG_LEVEL": "WARNING"}, log_path=tmp_path_factory.mktemp("browser") / "server.log"
    )
    yield live
    live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    # Playwright's sync API keeps an asyncio loop running on this thread, which Django takes
    # for an async context and then refuses the tests' (plain, synchronous) ORM calls. The
    # server under test runs without this override (LiveServer drops it).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield launched
            launched.close()


@pytest.fixture
def page(browser: "Browser", server: LiveServer) -> Iterator["Page"]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.url)
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    yield opened
    context.close()


@pytest.fixture
def outside_requests(page: "Page", server: LiveServer, blocked: list[str]) -> list[str]:
    """URLs the page fetched from anywhere but the server under test. A request the page's
    Content-Security-Policy blocked never leaves the browser: it goes to ``blocked``."""
    outside: list[str] = []

    def record(request: "Request") -> None:
        if not request.url.startswith((f"{server.url}/", "data:", "blob:")):
            outside.append(request.url)

    def failed(request: "Request") -> None:
        if request.failure == "csp" and request.url in outside:
            outside.remove(request.url)
            blocked.append(request.url)

    page.on("request", record)
    page.on("requestfailed", failed)
    return outside


@pytest.fixture
def blocked() -> list[str]:
    return []


@pytest.fixture
def console_errors(page: "Page") -> list[str]:
    """The page's console errors: a script that failed, a resource it could not load."""
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    return errors


def screenshot(target: "Page | Locator", name: str) -> None:
    """A page's viewport, or one element of it, as test-artifacts/browser/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=ARTIFACTS / f"{name}.png")


def test_swagger_ui_authorizes_and_tries_the_conversation_list(
    page: "Page",
    outside_requests: list[str],
    console_errors: list[str],
    make_token: Any,
    user: User,
) -> None:
    # given
    make_conversation(owner=user, title="Trip to Lisbon")
    token = make_token(user)

    # when: open the docs, authorize, and try GET /api/v1/conversations
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("chatapi")
    page.locator(".auth-wrapper button.authorize").click()
    page.locator(".modal-ux input").fill(token)
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()
    operation = page.locator("#operations-conversations-conversations_list")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()

    # then: the live response is the caller's list
    response = operation.locator(".live-responses-table .response")
    expect(response.locator(".response-col_status")).to_have_text(re.compile(r"^\s*200"))
    expect(response.locator(".response-col_description")).to_contain_text(
        '"title": "Trip to Lisbon"'
    )
    screenshot(page, "swagger")
    screenshot(operation, "swagger-try-it-out")
    assert page.evaluate("ui.getConfigs().validatorUrl") is None
    assert outside_requests == []
    assert console_errors == []


def test_redoc_renders_the_operations(
    page: "Page", outside_requests: list[str], blocked: list[str], console_errors: list[str]
) -> None:
    # when
    page.goto("/redoc")

    # then
    expect(page.locator("h1").first).to_contain_text("chatapi")
    expect(page.locator("h2", has_text="List conversations")).to_be_visible()
    expect(page.locator("h2", has_text="Export a conversation")).to_be_visible()
    screenshot(page, "redoc")
    assert outside_requests == []
    # ReDoc's "API docs by Redocly" badge asks for its logo; the page's policy refuses it.
    assert blocked == ["https://cdn.redoc.ly/redoc/logo-mini.svg"]
    assert [error for error in console_errors if "cdn.redoc.ly" not in error] == []


@pytest.fixture
def staff() -> User:
    return User.objects.create_superuser("root", "root@example.com", "correct horse battery")


@pytest.fixture
def conversation(user: User) -> Conversation:
    return make_exchange(user)


def test_admin_login_and_a_conversation_transcript(
    page: "Page",
    outside_requests: list[str],
    console_errors: list[str],
    staff: User,
    conversation: Conversation,
) -> None:
    # when: log in
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct horse battery")
    screenshot(page, "admin-login")
    page.locator("input[type=submit]").click()

    # then
    expect(page.locator("#site-name")).to_be_visible()
    expect(page.locator("#content h1")).to_have_text("chatapi administration")

    # when: open the conversation
    page.goto(f"/admin/conversations/conversation/{conversation.pk}/change/")

    # then: a transcript, the reasoning collapsed until asked for
    turns = page.locator(".transcript article.turn")
    expect(turns).to_have_count(3)
    expect(turns.nth(1).locator(".turn-role")).to_have_text("User")
    answer = turns.nth(2)
    expect(answer.locator(".turn-role")).to_have_text("Assistant")
    expect(answer.locator(".turn-content")).to_have_text("Belem Tower, the Alfama, LX Factory.")
    expect(answer.locator(".turn-stats")).to_contain_text("42 in / 17 out tokens")
    expect(answer.locator(".turn-stats")).to_contain_text("$0.0000082500")
    expect(answer.locator(".turn-stats")).to_contain_text("first token 95 ms")
    reasoning = answer.locator(".turn-reasoning div")
    expect(reasoning).to_be_hidden()
    screenshot(page.locator(".transcript"), "admin-transcript")
    answer.locator(".turn-reasoning summary").click()
    expect(reasoning).to_have_text("Three sights, briefly.")
    expect(reasoning).to_be_visible()
    screenshot(page.locator(".transcript"), "admin-transcript-reasoning")

    # when: the usage dashboard, with a day of usage in the ledger
    make_usage(
        user=conversation.owner,
        at=timezone.now(),
        input_tokens=1200,
        output_tokens=300,
        cost_usd="0.0001800",
    )
    page.goto("/admin/usage/usagerecord/dashboard/")

    # then: the charts are drawn server-side, a bar a day
    expect(page.locator("#content h1")).to_have_text("Usage dashboard")
    expect(page.locator("#tokens-chart svg rect.bar")).to_have_count(30)
    expect(page.locator("#cost-chart svg rect.bar")).to_have_count(30)
    expect(page.locator("#top-users")).to_contain_text("ada@example.com")
    screenshot(page, "admin-usage-dashboard")
    assert outside_requests == []
    assert console_errors == []
