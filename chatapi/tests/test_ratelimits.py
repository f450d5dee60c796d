"""Rate limits and stream slots, in process memory and (when REDIS_URL is set, as in CI) in
Redis; the 429s and X-RateLimit-* headers of the throttled routes."""

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from pytest_django import Settings
from rest_framework.test import APIClient

from accounts.models import User
from chatapi.ratelimits import rate_limit_hit, stream_slot_acquire, stream_slot_release
from conversations.services import conversation_create
from testsupport.assertions import assert_error
from testsupport.helpers import eventually

REDIS_URL = os.environ.get("REDIS_URL")


@pytest.fixture(
    params=[
        "memory",
        pytest.param(
            "redis",
            marks=pytest.mark.skipif(not REDIS_URL, reason="set REDIS_URL to test Redis (CI does)"),
        ),
    ]
)
def backend(request: pytest.FixtureRequest, settings: Settings) -> str:
    """Both stores; each test has a Redis key prefix of its own (the root conftest)."""
    settings.REDIS_URL = REDIS_URL if request.param == "redis" else None
    return str(request.param)


def _hits(count: int, *, ident: str = "u1", limit: int = 3, window: float = 60) -> list[int]:
    results = [
        rate_limit_hit(scope="test", ident=ident, limit=limit, window_seconds=window)
        for _ in range(count)
    ]
    return [result.remaining if result.allowed else -1 for result in results]


@pytest.mark.usefixtures("backend")
def test_a_window_allows_the_limit_then_refuses() -> None:
    # when
    remaining = _hits(5)
    other = _hits(1, ident="u2")

    # then: -1 is a refusal; another ident has its own count
    assert remaining == [2, 1, 0, -1, -1]
    assert other == [2]
    result = rate_limit_hit(scope="test", ident="u1", limit=3, window_seconds=60)
    assert (result.allowed, result.limit, result.remaining) == (False, 3, 0)
    assert 58 <= result.reset_seconds <= 60


@pytest.mark.usefixtures("backend")
def test_the_count_starts_again_when_the_window_ends() -> None:
    assert _hits(3, limit=2, window=1) == [1, 0, -1]

    # A refused hit counts for nothing: poll until the window has ended, however slow the
    # machine, then the count has started again.
    assert eventually(lambda: _hits(1, limit=2, window=1) == [1], wait=10, every=0.02)


@pytest.mark.usefixtures("backend")
def test_stream_slots_up_to_the_limit(settings: Settings) -> None:
    # given
    settings.RATE_LIMIT_CONCURRENT_STREAMS = 2
    user_id = uuid.uuid4()

    # when
    first = stream_slot_acquire(user_id)
    second = stream_slot_acquire(user_id)
    third = stream_slot_acquire(user_id)
    someone_else = stream_slot_acquire(uuid.uuid4())

    # then
    assert first is not None
    assert second is not None
    assert third is None
    assert someone_else is not None

    # when one ends (twice: release is idempotent)
    stream_slot_release(user_id, first)
    stream_slot_release(user_id, first)

    # then
    assert stream_slot_acquire(user_id) is not None
    assert stream_slot_acquire(user_id) is None


@pytest.mark.usefixtures("backend")
def test_a_slot_never_released_frees_itself_after_the_ttl(settings: Settings) -> None:
    # given: two slots held by a process that dies
    settings.RATE_LIMIT_CONCURRENT_STREAMS = 2
    settings.RATE_LIMIT_STREAM_SLOT_TTL_SECONDS = 1
    user_id = uuid.uuid4()
    stream_slot_acquire(user_id)
    stream_slot_acquire(user_id)
    assert stream_slot_acquire(user_id) is None

    # when the TTL has passed (polled: an attempt that finds no slot takes none)
    # then: both expired
    assert eventually(lambda: stream_slot_acquire(user_id), wait=10, every=0.02)
    assert eventually(lambda: stream_slot_acquire(user_id), wait=10, every=0.02)
    assert stream_slot_acquire(user_id) is None


@pytest.mark.usefixtures("backend")
def test_zero_concurrent_streams_means_no_limit(settings: Settings) -> None:
    settings.RATE_LIMIT_CONCURRENT_STREAMS = 0
    user_id = uuid.uuid4()

    slots = [stream_slot_acquire(user_id) for _ in range(50)]

    assert None not in slots


def test_limits_fail_open_when_redis_is_unreachable(settings: Settings) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.RATE_LIMIT_CONCURRENT_STREAMS = 1

    result = rate_limit_hit(scope="test", ident="u1", limit=1, window_seconds=60)

    assert result.allowed is True
    assert stream_slot_acquire("u1") is not None
    assert stream_slot_acquire("u1") is not None


class SilentServer:
    """Accepts connections and reads what they send, never answering: a hung Redis."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.connections.append(self.listener.accept()[0])

    def close(self) -> None:
        self.listener.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def hung_redis() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_a_hung_redis_costs_one_timeout_then_is_skipped(
    settings: Settings, hung_redis: SilentServer
) -> None:
    settings.REDIS_URL = hung_redis.url
    settings.RATE_LIMIT_CONCURRENT_STREAMS = 1

    results = [rate_limit_hit(scope="test", ident="u1", limit=1, window_seconds=60)]
    slots = [stream_slot_acquire("u1") for _ in range(10)]
    results += [rate_limit_hit(scope="test", ident="u1", limit=1, window_seconds=60)]
    for slot in slots:
        assert slot is not None
        stream_slot_release("u1", slot)

    # every call let through; only the first one went to Redis (and timed out, not retried)
    assert [result.allowed for result in results] == [True, True]
    assert len(hung_redis.connections) == 1


# --- throttled routes ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("backend")
def test_sends_per_minute_answer_429_with_retry_after(
    settings: Settings, api_client: APIClient, user: User
) -> None:
    # given: 2 sends a minute; sends that fail validation count too
    settings.RATE_LIMIT_SENDS_PER_MINUTE = 2
    conversation = conversation_create(owner=user, model="openai/gpt-oss-20b")
    url = f"/api/v1/conversations/{conversation.pk}/messages"

    # when
    first = api_client.post(url, {"content": ""}, format="json")
    second = api_client.post(f"{url}/stream", {"content": ""}, format="json")
    listing = api_client.get(url)
    third = api_client.post(url, {"content": "Hi"}, format="json")

    # then
    assert (first.status_code, first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"]) == (
        400,
        "2",
        "1",
    )
    assert (second.status_code, second["X-RateLimit-Remaining"]) == (400, "0")
    assert listing.status_code == 200
    assert "X-RateLimit-Limit" not in listing  # reading is not sending
    body = assert_error(third, 429, "rate_limit_error")
    retry = int(third["Retry-After"])
    assert 1 <= retry <= 60
    assert third["X-RateLimit-Remaining"] == "0"
    assert third["X-RateLimit-Reset"] == str(retry)
    assert body["error"]["message"] == (
        f"Too many messages: at most 2 per minute. Retry in {retry} s."
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("backend")
def test_login_and_register_attempts_are_limited_per_address(
    settings: Settings, anon_client: APIClient
) -> None:
    # given: 2 attempts a minute per address, login and sign-up together
    settings.RATE_LIMIT_AUTH_PER_MINUTE = 2

    def attempt(path: str, address: str, forwarded: str = "198.51.100.7") -> int:
        response = anon_client.post(
            f"/api/v1/auth/{path}",
            {"email": "not-an-email"},
            format="json",
            REMOTE_ADDR=address,
            HTTP_X_FORWARDED_FOR=forwarded,
        )
        return response.status_code

    # when: a forged X-Forwarded-For changes nothing (no trusted proxy by default)
    statuses = [
        attempt("login", "203.0.113.1"),
        attempt("register", "203.0.113.1", forwarded="198.51.100.8"),
        attempt("login", "203.0.113.1", forwarded="198.51.100.9"),
        attempt("login", "203.0.113.2"),
    ]

    # then
    assert statuses == [400, 400, 429, 400]


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_forwarded_address_counts(
    settings: Settings, anon_client: APIClient
) -> None:
    settings.RATE_LIMIT_AUTH_PER_MINUTE = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    def attempt(client_address: str) -> int:
        return anon_client.post(
            "/api/v1/auth/login",
            {},
            format="json",
            REMOTE_ADDR="10.0.0.2",  # the proxy
            HTTP_X_FORWARDED_FOR=f"198.51.100.1, {client_address}",
        ).status_code

    assert [attempt("203.0.113.1"), attempt("203.0.113.1"), attempt("203.0.113.2")] == [
        400,
        429,
        400,
    ]
