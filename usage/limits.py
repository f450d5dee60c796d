"""Rate-limit counters and concurrent-stream slots.

With ``REDIS_URL`` set the state lives in Redis, so every server process shares it; each
operation is one Lua script, atomic on the server. Without it, the state lives in this
process's memory, which is right for a single process. Keys start with
``RATE_LIMIT_KEY_PREFIX``.

If Redis fails, limits fail open (the request goes through, one warning per outage): a rate
limiter must not take the API down with it. A hung Redis costs a one-second timeout, then
these calls skip it for a few seconds at a time (chatapi.redis_breaker).
"""

import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

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
# Take a slot if fewer than the limit are held. KEYS[1]: a sorted set of slot ids scored by
# expiry (ms). ARGV: now, the new slot's expiry, the limit, the slot id, the key's lifetime.
_ACQUIRE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""
# Push a held slot's expiry further; 0 if it is not held (released or expired).
_REFRESH_SCRIPT = """
if redis.call('ZSCORE', KEYS[1], ARGV[2]) == false then
    return 0
end
redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


@dataclass(frozen=True, slots=True)
class _Redis:
    client: redis.Redis
    hit: Script
    acquire: Script
    refresh: Script
    breaker: Breaker


@cache
def _redis(url: str) -> _Redis:
    """One client (a thread-safe connection pool) per process, with its scripts."""
    client = redis.Redis.from_url(
        url,
        socket_timeout=1.0,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 1, supported_errors=RETRIED_ERRORS),
    )
    return _Redis(
        client=client,
        hit=client.register_script(_HIT_SCRIPT),
        acquire=client.register_script(_ACQUIRE_SCRIPT),
        refresh=client.register_script(_REFRESH_SCRIPT),
        breaker=Breaker("rate limits and stream slots"),
    )


def _client() -> _Redis | None:
    return _redis(settings.REDIS_URL) if settings.REDIS_URL else None


def _shared[T](shared: _Redis, call: Callable[[], T], fail_open: T) -> T:
    """``call()``'s result, or ``fail_open`` when Redis fails or is being skipped."""
    if not shared.breaker.allows():
        return fail_open
    try:
        result = call()
    except redis.RedisError as exc:
        shared.breaker.failed(exc)
        return fail_open
    shared.breaker.succeeded()
    return result


def _key(*parts: object) -> str:
    return settings.RATE_LIMIT_KEY_PREFIX + ":".join(str(part) for part in parts)


class _Memory:
    """This process's counters and slots (no Redis)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: dict[str, tuple[int, float]] = {}  # key -> (count, window end)
        self.slots: dict[str, dict[str, float]] = {}  # key -> {slot id: expiry}

    def clear(self) -> None:
        with self.lock:
            self.counters.clear()
            self.slots.clear()


_memory = _Memory()


def memory_state_clear() -> None:
    """Forget this process's in-memory counters and slots (tests; a restart does the same)."""
    _memory.clear()


# --- rate limits ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the window ends and the count starts again


def _hit_memory(key: str, window: float) -> tuple[int, float]:
    now = time.monotonic()
    with _memory.lock:
        count, ends = _memory.counters.get(key, (0, 0.0))
        if ends <= now:
            count, ends = 0, now + window
            if len(_memory.counters) > 10_000:  # drop finished windows now and then
                _memory.counters = {k: v for k, v in _memory.counters.items() if v[1] > now}
        _memory.counters[key] = (count + 1, ends)
        return count + 1, ends - now


def rate_limit_hit(*, scope: str, ident: str, limit: int, window_seconds: float) -> RateLimitResult:
    """Count one request of ``ident`` (a user id, an address) against ``limit`` per window
    of ``window_seconds``: a fixed window that starts at the first request."""
    key = _key(scope, ident)
    shared = _client()
    if shared is None:
        count, left = _hit_memory(key, float(window_seconds))
    else:
        reply = _shared(
            shared, lambda: shared.hit(keys=[key], args=[round(window_seconds * 1000)]), None
        )
        count, left = (int(reply[0]), int(reply[1]) / 1000) if reply else (0, window_seconds)
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
    never released (its process died) frees itself after RATE_LIMIT_STREAM_SLOT_TTL_SECONDS,
    unless ``stream_slot_refresh`` keeps it (call it from a long stream's heartbeat)."""
    limit = settings.RATE_LIMIT_CONCURRENT_STREAMS
    slot = uuid.uuid4().hex
    if limit == 0:
        return slot  # no limit: nothing to hold
    ttl: float = settings.RATE_LIMIT_STREAM_SLOT_TTL_SECONDS
    ttl_ms = round(ttl * 1000)
    key = _slots_key(user_id)
    shared = _client()
    if shared is None:
        now = time.monotonic()
        with _memory.lock:
            held = {s: t for s, t in _memory.slots.get(key, {}).items() if t > now}
            if len(held) >= limit:
                _memory.slots[key] = held
                return None
            held[slot] = now + ttl
            _memory.slots[key] = held
        return slot
    now_ms = int(time.time() * 1000)
    taken = _shared(
        shared,
        lambda: shared.acquire(keys=[key], args=[now_ms, now_ms + ttl_ms, limit, slot, ttl_ms]),
        1,
    )
    return slot if taken == 1 else None


def stream_slot_refresh(user_id: uuid.UUID | str, slot: str) -> bool:
    """Hold ``slot`` for another TTL from now; False if it is no longer held."""
    ttl: float = settings.RATE_LIMIT_STREAM_SLOT_TTL_SECONDS
    ttl_ms = round(ttl * 1000)
    key = _slots_key(user_id)
    shared = _client()
    if shared is None:
        now = time.monotonic()
        with _memory.lock:
            held = _memory.slots.get(key, {})
            if held.get(slot, 0.0) <= now:
                return False
            held[slot] = now + ttl
        return True
    now_ms = int(time.time() * 1000)
    refreshed = _shared(
        shared,
        lambda: shared.refresh(keys=[key], args=[now_ms + ttl_ms, slot, ttl_ms]),
        1,
    )
    return bool(refreshed == 1)


def stream_slot_release(user_id: uuid.UUID | str, slot: str) -> None:
    """Give ``slot`` back (idempotent)."""
    key = _slots_key(user_id)
    shared = _client()
    if shared is None:
        with _memory.lock:
            _memory.slots.get(key, {}).pop(slot, None)
        return
    _shared(shared, lambda: shared.client.zrem(key, slot), 0)  # if Redis fails, the slot expires
