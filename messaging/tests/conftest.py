from collections.abc import Iterator

import pytest

from messaging.tests.fake_groq import FakeGroq


@pytest.fixture
def fake_groq() -> Iterator[FakeGroq]:
    """A Groq stand-in on loopback, fresh for each test."""
    server = FakeGroq().start()
    yield server
    server.stop()
