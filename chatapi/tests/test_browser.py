"""The pages a person opens, in a real browser: Debian's Chromium (/usr/bin/chromium), driven
by Playwright, against a daphne server on loopback. The index links the docs; Swagger UI
authorizes with a token and runs "Try it out"; ReDoc renders; the admin logs in and shows a
conversation's transcript. None of these pages may ask any other host for anything (even a
request the page's Content-Security-Policy refuses fails the test) or log an error to the
console (a policy violation included).

Screenshots are saved under test-artifacts/screenshots/ (git-ignored; CI keeps them as
artifacts). `.ci/run` installs the browser; without it these tests are skipped (never
downloaded: no `playwright install`).
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
ARTIFACTS = REPO / "test-artifacts" / "screenshots"

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
    # The same patience for assertions (5 s by default): ReDoc renders in about 2 s on a
    # quiet machine and took over 5 s on a busy one.
    expect.set_options(timeout=15_000)
    yield opened
    context.close()


@pytest.fixture
def outside_requests(page: "Page", server: LiveServer) -> list[str]:
    """URLs the page asked any other host for, whether or not its Content-Security-Policy
    then refused them (a refused request still shows the page depends on another host)."""
    outside: list[str] = []

    def record(request: "Request") -> None:
        if not request.url.startswith((f"{server.url}/", "data:", "blob:")):
            outside.append(request.url)

    page.on("request", record)
    return outside


@pytest.fixture
def console_errors(page: "Page") -> list[str]:
    """The page's console errors (a script that failed, a resource it could not load, a
    Content-Security-Policy violation) and its uncaught exceptions."""
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def screenshot(target: "Page | Locator", name: str) -> None:
    """A page's viewport, or one element of it, as test-artifacts/screenshots/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=ARTIFACTS / f"{name}.png")


def test_index_links_the_docs_the_reference_and_the_admin(
    page: "Page", outside_requests: list[str], console_errors: list[str]
) -> None:
    # when
    page.goto("/")

    # then
    expect(page.locator("h1")).to_have_text("chatapi")
    links = page.locator("main a")
    assert [links.nth(i).get_attribute("href") for i in range(links.count())] == [
        "/docs",
        "/redoc",
        "/api/v1/openapi.json",
        "/api/v1",
        "/api/v1/health",
        "/admin/",
    ]
    screenshot(page, "index")

    # when: follow the first link
    links.first.click()

    # then
    expect(page).to_have_url(re.compile(r"/docs$"))
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("chatapi")
    assert outside_requests == []
    assert console_errors == []


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
    expect(page.locator("#operations-auth-auth_login .opblock-summary-description")).to_have_text(
        "Log in with e-mail and password"
    )
    screenshot(page, "docs")
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
    page: "Page", outside_requests: list[str], console_errors: list[str]
) -> None:
    # when
    page.goto("/redoc")

    # then
    expect(page.locator("h1").first).to_contain_text("chatapi")
    expect(page.locator("h2", has_text="List conversations")).to_be_visible()
    expect(page.locator("h2", has_text="Export a conversation")).to_be_visible()
    # The "API docs by Redocly" badge keeps its text and drops its logo (chatapi/redoc.py).
    badge = page.locator("a[href='https://redocly.com/redoc/']")
    expect(badge).to_have_text("API docs by Redocly")
    expect(badge.locator("img")).to_have_count(0)
    screenshot(page, "redoc")

    # when: the login operation, as a user reads it
    page.goto("/redoc#tag/auth/operation/auth_login")

    # then: its own description, not a docstring of the code
    login = page.locator("[data-section-id='tag/auth/operation/auth_login']")
    expect(login.locator("h2")).to_have_text("Log in with e-mail and password")
    expect(login).to_contain_text("Trades an e-mail address and password for a session")
    screenshot(page, "redoc-login")
    assert outside_requests == []
    assert console_errors == []


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
