"""The breaker in front of synchronous Redis calls: one failure makes the calls skip Redis
for a cooldown, with one probe per cooldown, one warning per outage and one when it is back."""

import logging

import pytest

from chatapi.redis_breaker import Breaker


def test_a_failure_skips_redis_until_the_cooldown_then_lets_one_probe_through() -> None:
    now = [100.0]
    breaker = Breaker("test", cooldown=0.2, clock=lambda: now[0])
    assert breaker.allows()

    breaker.failed(TimeoutError("hung"))

    assert [breaker.allows() for _ in range(5)] == [False] * 5
    now[0] += 0.19
    assert breaker.allows() is False
    now[0] += 0.02
    assert [breaker.allows() for _ in range(3)] == [True, False, False]


def test_a_success_closes_it_again() -> None:
    breaker = Breaker("test", cooldown=60)
    breaker.failed(ConnectionError("refused"))
    assert not breaker.allows()

    breaker.succeeded()

    assert [breaker.allows() for _ in range(3)] == [True, True, True]


def test_one_warning_per_outage_and_one_when_it_is_over(caplog: pytest.LogCaptureFixture) -> None:
    breaker = Breaker("rate limits", cooldown=0)
    with caplog.at_level(logging.WARNING, logger="chatapi.redis_breaker"):
        for _ in range(3):
            breaker.failed(TimeoutError("Timeout reading from socket"))
        breaker.succeeded()
        breaker.succeeded()
        breaker.failed(ConnectionError("refused"))

    assert [record.getMessage() for record in caplog.records] == [
        (
            "rate limits: Redis failed (TimeoutError: Timeout reading from socket); trying it "
            "again every 0 s meanwhile"
        ),
        "rate limits: Redis answers again",
        "rate limits: Redis failed (ConnectionError: refused); trying it again every 0 s meanwhile",
    ]
