"""Rate limits and concurrent-stream slots: the counters and slots, the DRF throttles that
use them, and the middleware that reports a limit's state in ``X-RateLimit-*`` headers.

With ``REDIS_URL`` set the state lives in Redis, so every server process shares it; each
operation is one Lua script, atomic on the server. Without it, the state lives in this
process's memory, which is right for a single process. Both are a ``_Store``; keys start
with ``RATE_LIMIT_KEY_PREFIX``.

If Redis fails, limits fail open (the request goes through, one warning per outage): a rate
limiter must not take the API down with it. A hung Redis costs a one-second timeout, then
these calls skip it for a few seconds at a time (chatapi.redis_breaker).

Over the limit, a throttle raises ``RateLimitedError`` itself (rather than answering False
and letting DRF build its generic ``Throttled``) so that the 429 names the limit. Headers:
``Retry-After`` on the 429; on every throttled route's answer ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (seconds until the window restarts).
"""

import math
import threading
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from redis.backoff import NoBackoff
from redis.retry import Retry
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from chatapi.errors import RateLimitedError
from chatapi.middleware import sync_and_async
from chatapi.redis_breaker import CONNECT_TIMEOUT_SECONDS, RETRIED_ERRORS, Breaker

# Count a hit in a fixed window that starts at the key's first hit; returns the count and the
# milliseconds left in the window. KEYS[1]: the counter; ARGV[1]: the window in ms.
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""
# Take a slot if fewer than the limit are held, or renew it if held. KEYS[1]: a sorted set of
# slot ids scored by expiry (ms). ARGV: now, the new slot's expiry, the limit, the slot id,
# the key's lifetime.
_ACQUIRE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[4])
        and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class _Store(Protocol):
    """Where counters and slots live. Every operation is atomic."""

    def hit(self, key: str, window: float) -> tuple[int, float]:
        """Count a hit on ``key``'s window (``window`` seconds from its first hit): the
        count so far and the seconds left in the window."""
        ...

    def acquire(self, key: str, slot: str, *, limit: int, ttl: float) -> bool:
        """Hold ``slot`` for ``ttl`` seconds if fewer than ``limit`` slots of ``key`` are,
        or if it is already held (a renewal)."""
        ...

    def release(self, key: str, slot: str) -> None:
        """Stop holding ``slot`` (idempotent)."""
        ...


class _MemoryStore:
    """This process's counters and slots (no Redis)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: dict[str, tuple[int, float]] = {}  # key -> (count, window end)
        self.slots: dict[str, dict[str, float]] = {}  # key -> {slot id: expiry}

    def clear(self) -> None:
        with self.lock:
            self.counters.clear()
            self.slots.clear()

    def hit(self, key: str, window: float) -> tuple[int, float]:
        now = time.monotonic()
        with self.lock:
            count, ends = self.counters.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window
                if len(self.counters) > 10_000:  # drop finished windows now and then
                    self.counters = {k: v for k, v in self.counters.items() if v[1] > now}
            self.counters[key] = (count + 1, ends)
            return count + 1, ends - now

    def acquire(self, key: str, slot: str, *, limit: int, ttl: float) -> bool:
        now = time.monotonic()
        with self.lock:
            held = {s: t for s, t in self.slots.get(key, {}).items() if t > now}
            taken = slot in held or len(held) < limit
            if taken:
                held[slot] = now + ttl
            self.slots[key] = held
            return taken

    def release(self, key: str, slot: str) -> None:
        with self.lock:
            self.slots.get(key, {}).pop(slot, None)


class _RedisStore:
    """Counters and slots shared by every process through Redis, failing open: a hit that
    cannot be counted counts as none, a slot that cannot be taken is granted, and one that
    cannot be released expires."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=1.0,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 1, supported_errors=RETRIED_ERRORS),
        )
        self.hit_script = self.client.register_script(_HIT_SCRIPT)
        self.acquire_script = self.client.register_script(_ACQUIRE_SCRIPT)
        self.breaker = Breaker("rate limits and stream slots")

    def _call[T](self, call: Callable[[], T], fail_open: T) -> T:
        """``call()``'s result, or ``fail_open`` when Redis fails or is being skipped."""
        if not self.breaker.allows():
            return fail_open
        try:
            result = call()
        except redis.RedisError as exc:
            self.breaker.failed(exc)
            return fail_open
        self.breaker.succeeded()
        return result

    def hit(self, key: str, window: float) -> tuple[int, float]:
        reply = self._call(lambda: self.hit_script(keys=[key], args=[round(window * 1000)]), None)
        return (int(reply[0]), int(reply[1]) / 1000) if reply else (0, window)

    def acquire(self, key: str, slot: str, *, limit: int, ttl: float) -> bool:
        ttl_ms = round(ttl * 1000)
        now_ms = int(time.time() * 1000)
        taken = self._call(
            lambda: self.acquire_script(
                keys=[key], args=[now_ms, now_ms + ttl_ms, limit, slot, ttl_ms]
            ),
            1,
        )
        return bool(taken == 1)

    def release(self, key: str, slot: str) -> None:
        self._call(lambda: self.client.zrem(key, slot), 0)


@cache
def _redis_store(url: str) -> _RedisStore:
    """One client (a thread-safe connection pool) per process, with its scripts."""
    return _RedisStore(url)


_memory = _MemoryStore()


def _store() -> _Store:
    return _redis_store(settings.REDIS_URL) if settings.REDIS_URL else _memory


def memory_state_clear() -> None:
    """Forget this process's in-memory counters and slots (tests; a restart does the same)."""
    _memory.clear()


def _key(*parts: object) -> str:
    return settings.RATE_LIMIT_KEY_PREFIX + ":".join(str(part) for part in parts)


# --- rate limits ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the window ends and the count starts again


def rate_limit_hit(*, scope: str, ident: str, limit: int, window_seconds: float) -> RateLimitResult:
    """Count one request of ``ident`` (a user id, an address) against ``limit`` per window
    of ``window_seconds``: a fixed window that starts at the first request."""
    count, left = _store().hit(_key(scope, ident), float(window_seconds))
    return RateLimitResult(
        allowed=count <= limit,
        limit=limit,
        remaining=max(limit - count, 0),
        reset_seconds=max(math.ceil(left), 1),
    )


# --- concurrent streams --------------------------------------------------------------------


def _slots_key(user_id: uuid.UUID | str) -> str:
    return _key("streams", user_id)


def stream_slot_acquire(user_id: uuid.UUID | str) -> str | None:
    """Take one of ``user_id``'s RATE_LIMIT_CONCURRENT_STREAMS slots: the slot's id, or None
    when all are held. Release it with ``stream_slot_release`` when the stream ends; a slot
    never released (its process died) frees itself after RATE_LIMIT_STREAM_SLOT_TTL_SECONDS."""
    limit = settings.RATE_LIMIT_CONCURRENT_STREAMS
    slot = uuid.uuid4().hex
    if limit == 0:
        return slot  # no limit: nothing to hold
    ttl: float = settings.RATE_LIMIT_STREAM_SLOT_TTL_SECONDS
    taken = _store().acquire(_slots_key(user_id), slot, limit=limit, ttl=ttl)
    return slot if taken else None


def stream_slot_release(user_id: uuid.UUID | str, slot: str) -> None:
    """Give ``slot`` back (idempotent)."""
    _store().release(_slots_key(user_id), slot)


# --- live event sockets ----------------------------------------------------------------------

# A socket renews its slot with every heartbeat; the slot of one whose process died frees
# itself after this many heartbeats.
_LIVE_SLOT_HEARTBEATS = 3


def _live_key(user_id: uuid.UUID | str) -> str:
    return _key("live", user_id)


def live_slot_acquire(user_id: uuid.UUID | str, slot: str) -> bool:
    """Hold (or renew) ``slot``, one of ``user_id``'s LIVE_EVENTS_MAX_CONNECTIONS_PER_USER
    open live event sockets; False when all are held. It lasts a few heartbeats
    (LIVE_EVENTS_PING_SECONDS) unless renewed."""
    limit: int = settings.LIVE_EVENTS_MAX_CONNECTIONS_PER_USER
    if limit == 0:
        return True
    ttl = max(settings.LIVE_EVENTS_PING_SECONDS * _LIVE_SLOT_HEARTBEATS, 1.0)
    return _store().acquire(_live_key(user_id), slot, limit=limit, ttl=ttl)


def live_slot_release(user_id: uuid.UUID | str, slot: str) -> None:
    """Give ``slot`` back (idempotent)."""
    _store().release(_live_key(user_id), slot)


# --- throttles -------------------------------------------------------------------------------

_WINDOW_SECONDS = 60


class _PerMinuteThrottle(BaseThrottle):
    scope: str

    def limit(self) -> int:
        raise NotImplementedError

    def ident(self, request: Request) -> str | None:
        """Whose requests are counted together; None: this request is not counted."""
        raise NotImplementedError

    def message(self, result: RateLimitResult) -> str:
        raise NotImplementedError

    def allow_request(self, request: Request, view: APIView | None) -> bool:
        limit = self.limit()
        ident = self.ident(request)
        if limit == 0 or ident is None:
            return True
        result = rate_limit_hit(
            scope=self.scope, ident=ident, limit=limit, window_seconds=_WINDOW_SECONDS
        )
        request._request.rate_limit = result  # type: ignore[attr-defined]  # for the headers
        if not result.allowed:
            raise RateLimitedError(
                f"{self.message(result)} Retry in {result.reset_seconds} s.",
                headers={"Retry-After": str(result.reset_seconds)},
            )
        return True


class SendRateThrottle(_PerMinuteThrottle):
    """Message sends (POST) per user per minute: RATE_LIMIT_SENDS_PER_MINUTE. DRF checks
    throttles after authentication and permissions, so the user is an authenticated one."""

    scope = "send"

    def limit(self) -> int:
        limit: int = settings.RATE_LIMIT_SENDS_PER_MINUTE
        return limit

    def ident(self, request: Request) -> str | None:
        return str(request.user.pk) if request.method == "POST" else None

    def message(self, result: RateLimitResult) -> str:
        return f"Too many messages: at most {result.limit} per minute."


class AuthRateThrottle(_PerMinuteThrottle):
    """Sign-up and login attempts per client address per minute, together:
    RATE_LIMIT_AUTH_PER_MINUTE. The address honours TRUSTED_PROXY_COUNT."""

    scope = "auth"

    def limit(self) -> int:
        limit: int = settings.RATE_LIMIT_AUTH_PER_MINUTE
        return limit

    def ident(self, request: Request) -> str | None:
        return self.get_ident(request) or "unknown"

    def message(self, result: RateLimitResult) -> str:
        return (
            f"Too many sign-up or login attempts from this address: at most {result.limit} "
            "per minute."
        )


class SharedReadThrottle(_PerMinuteThrottle):
    """Reads of share links, JSON and page together, per client address per minute:
    RATE_LIMIT_SHARED_PER_MINUTE. They need no account, so the address is what is counted
    (honouring TRUSTED_PROXY_COUNT); the limit slows down anyone guessing tokens."""

    scope = "shared"

    def limit(self) -> int:
        limit: int = settings.RATE_LIMIT_SHARED_PER_MINUTE
        return limit

    def ident(self, request: Request) -> str | None:
        return self.get_ident(request) or "unknown"

    def message(self, result: RateLimitResult) -> str:
        return (
            f"Too many shared conversations read from this address: at most {result.limit} "
            "per minute."
        )


@sync_and_async
def rate_limit_headers_middleware(
    request: HttpRequest,
) -> Generator[None, HttpResponseBase, HttpResponseBase]:
    """Add the X-RateLimit-* headers of the limit a throttle checked, if any (also before a
    stream's first byte: headers go out with the response start)."""
    response = yield
    result: RateLimitResult | None = getattr(request, "rate_limit", None)
    if result is not None:
        response["X-RateLimit-Limit"] = str(result.limit)
        response["X-RateLimit-Remaining"] = str(result.remaining)
        response["X-RateLimit-Reset"] = str(result.reset_seconds)
    return response
