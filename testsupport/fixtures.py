"""The fake Groq and webhook receiver fixtures, shared by every app's tests (the root
conftest loads this module as a plugin)."""

from collections.abc import Iterator
from typing import Any

import pytest

from testsupport.fake_groq import FakeGroq
from testsupport.webhook_receiver import WebhookReceiver


@pytest.fixture
def fake_groq() -> Iterator[FakeGroq]:
    """The Groq stand-in on loopback (it also serves GET /models), fresh for each test."""
    server = FakeGroq().start()
    yield server
    server.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver on loopback that answers 200; queue other statuses on
    ``statuses`` before the deliveries come."""
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def user_read_every_request(settings: Any) -> None:
    """No per-process copy of the caller's user row (AUTH_USER_CACHE_SECONDS=0): for tests
    that count or compare the statements of requests, the caller's read among them."""
    settings.AUTH_USER_CACHE_SECONDS = 0
