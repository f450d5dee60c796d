"""The fake Groq fixture, shared by every app's tests (the root conftest loads
this module as a plugin)."""

from collections.abc import Iterator

import pytest

from testsupport.fake_groq import FakeGroq


@pytest.fixture
def fake_groq() -> Iterator[FakeGroq]:
    """The Groq stand-in on loopback (it also serves GET /models), fresh for each test."""
    server = FakeGroq().start()
    yield server
    server.stop()
