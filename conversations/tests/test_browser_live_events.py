"""Live events in a real browser: Debian's Chromium (/usr/bin/chromium), driven by
Playwright, against a daphne server on loopback with the fake Groq upstream. Two pages of the
same user (two browser contexts: two devices) open ``/ws/v1/events`` from the API's own
origin, under its Content-Security-Policy; a message sent from one page shows up in the
other's events, with no console error on either. Skipped without the browser, as the other
browser tests (never downloaded: no `playwright install`)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from accounts.models import User
from testsupport.fake_groq import FakeGroq
from testsupport.servers import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; "
        ".ci/run installs it)",
    ),
    pytest.mark.django_db(transaction=True),
]

if CHROMIUM.exists():
    from playwright.sync_api import Browser, Page, sync_playwright

# Opens the socket, keeps every frame in window.events, authenticates with the token.
CONNECT = """async (token) => {
    window.events = [];
    const socket = new WebSocket(`ws://${location.host}/ws/v1/events`);
    await new Promise((resolve, reject) => {
        socket.onopen = resolve;
        socket.onerror = reject;
    });
    socket.onmessage = (message) => window.events.push(JSON.parse(message.data));
    socket.send(JSON.stringify({type: "authenticate", token}));
    window.liveSocket = socket;
}"""
# A new conversation and a message in it, through the REST API: the answer's id.
SEND = """async (token) => {
    const headers = {Authorization: `Bearer ${token}`, "Content-Type": "application/json"};
    const created = await fetch("/api/v1/conversations", {method: "POST", headers, body: "{}"});
    const conversation = await created.json();
    const sent = await fetch(`/api/v1/conversations/${conversation.id}/messages`, {
        method: "POST", headers, body: JSON.stringify({content: "Hi"}),
    });
    return (await sent.json()).id;
}"""
SEEN = "(kind) => window.events.some((event) => event.type === kind)"
COMPLETED = """(id) => window.events.some(
    (event) => event.type === "message.completed" && event.data.id === id
)"""


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    upstream = FakeGroq().start()
    live = LiveServer(
        env={
            "GROQ_BASE_URL": upstream.base_url,
            "GROQ_API_KEY": "gsk_test",
            "LOG_LEVEL": "WARNING",
        },
        log_path=tmp_path_factory.mktemp("browser-live") / "server.log",
    )
    yield live
    live.stop()
    upstream.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    # Playwright's sync API runs an asyncio loop on this thread, which Django takes for an
    # async context (and then refuses the test's ORM calls): see chatapi/tests/test_browser.py.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield launched
            launched.close()


def _device(browser: "Browser", server: LiveServer, errors: list[str]) -> "Page":
    page = browser.new_context(base_url=server.url).new_page()
    page.set_default_timeout(15_000)
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto("/")
    return page


def test_a_message_sent_on_one_page_shows_up_in_the_other_pages_events(
    browser: "Browser", server: LiveServer, user: User, make_token: Any
) -> None:
    errors: list[str] = []
    token = make_token(user)
    sender, watcher = _device(browser, server, errors), _device(browser, server, errors)
    for page in (sender, watcher):
        page.evaluate(CONNECT, token)
        page.wait_for_function(SEEN, arg="authenticated")

    answer_id = sender.evaluate(SEND, token)

    watcher.wait_for_function(COMPLETED, arg=answer_id)
    sender.wait_for_function(COMPLETED, arg=answer_id)
    kinds = watcher.evaluate("() => window.events.map((event) => event.type)")
    assert kinds[:2] == ["authenticated", "conversation.created"]
    assert kinds.count("message.created") == 2
    assert errors == []
