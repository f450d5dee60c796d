"""Bounded waits on Redis, for every Redis client of the API.

A dead Redis refuses connections at once; a hung one (stopped, overloaded, a network that
drops packets) accepts them and never answers. Each client therefore has socket timeouts, and
retries only a dropped connection, once, at once (a pooled connection to a restarted Redis),
never a timeout. The synchronous callers (rate limits and stream slots, which run on the
server's one thread for synchronous work) also go through a ``Breaker``: after a failure they
skip Redis for ``COOLDOWN_SECONDS``, so a hung Redis costs one timeout per process and
cooldown instead of one per request, and one warning per outage instead of one per request.
"""

import logging
import threading
import time
from collections.abc import Callable

from redis.exceptions import ConnectionError as RedisConnectionError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 1.0
COOLDOWN_SECONDS = 5.0
RETRIED_ERRORS = (RedisConnectionError,)


class Breaker:
    """Whether to call Redis now. Thread-safe; one per Redis use in a process."""

    def __init__(
        self,
        what: str,
        *,
        cooldown: float = COOLDOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` (seconds, monotonic) is there for tests to move time by hand."""
        self.what = what
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._retry_at = 0.0  # monotonic time of the next call allowed through while down
        self._down = False

    def allows(self) -> bool:
        """True when Redis is up, and once per cooldown while it is down (a probe)."""
        if not self._down:
            return True
        with self._lock:
            now = self._clock()
            if now < self._retry_at:
                return False
            self._retry_at = now + self.cooldown
            return True

    def failed(self, exc: Exception) -> None:
        with self._lock:
            self._retry_at = self._clock() + self.cooldown
            if self._down:
                return
            self._down = True
        logger.warning(
            "%s: Redis failed (%s: %s); trying it again every %g s meanwhile",
            self.what,
            type(exc).__name__,
            exc,
            self.cooldown,
        )

    def succeeded(self) -> None:
        if self._down:
            with self._lock:
                was_down, self._down = self._down, False
            if was_down:
                logger.warning("%s: Redis answers again", self.what)
