"""The chaos run: ``make chaos`` (about 3 minutes; not in CI).

Two daphne processes, each on a port of its own, behind one address (a round-robin TCP proxy
in this script, which skips a process that refuses connections, as a load balancer does), a
PostgreSQL cluster and a redis-server of the run's own (``testsupport.servers``' PrivatePostgres
and PrivateRedis: the machine's shared services are never touched), the fake Groq upstream,
and ``--streams`` clients streaming answers back to back, each in a conversation of its own.
While they run:

- server A is SIGKILLed mid-stream and started again ``RESTART_AFTER`` seconds later; each
  client whose stream was cut resumes it from server B (the survivor) with Last-Event-ID;
- PostgreSQL is restarted (fast shutdown: every session ends);
- Redis is killed and started again, empty, ``REDIS_DOWN_SECONDS`` later.

Then the clients stop, the servers get the sweep window (``GENERATION_STALE_SECONDS`` is short
here) to finish what the dead process left, and the run checks the books:

- no assistant message is left ``in_progress``;
- every stream a client saw end with ``message_stop`` is stored ``complete`` with its text;
- every cut stream, resumed from B, is the stored answer: event ids 1..n without a gap, its
  text the stored content, its last event ``message_stop`` or ``error`` as stored;
- every message replayed from the start on B (all cut ones and a sample of the rest) is the
  stored answer, event for event;
- every finished turn has exactly one ledger row (none when it used no tokens), with the
  message's tokens and a cost equal to the model's price times them, and the message's cost;
- no budget reservation is left, and the budgets' daily rollup holds what the ledger holds;
- a send refused with 409 (an answer still in progress in its conversation) is not refused
  for longer than the sweep window.

Figures on stdout, the JSON in bench/results/chaos.json; exit status 1 on any mismatch.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from bench.client import request
from bench.run import (
    RESULTS,
    Upstream,
    bench_token,
    database_url,
    machine,
    progress,
    run_django,
)
from bench.run import server_env as bench_server_env

REPO = Path(__file__).resolve().parent.parent
HEARTBEAT_SECONDS = 0.5
STALE_SECONDS = 4.0
# The sweeper finishes a dead process's message within the stale period plus one beat; the
# slack is for a loaded machine.
SWEEP_WINDOW_SECONDS = STALE_SECONDS + HEARTBEAT_SECONDS + 3.0
# The faults, in seconds after the load started.
KILL_AT = 15.0
RESTART_AFTER = 5.0
POSTGRES_RESTART_AT = 40.0
REDIS_DROP_AT = 65.0
REDIS_DOWN_SECONDS = 5.0
LOAD_SECONDS = 90.0
REPLAY_SAMPLE = 300
_COST_QUANTUM = Decimal("0.0000000001")


# --- processes -----------------------------------------------------------------------------------


class Server:
    """``daphne chatapi.asgi:application`` on a fixed loopback port, so that it can be killed
    and started again at the same address."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = env
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.log_path = log_dir / f"server-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    *(sys.executable, "-m", "daphne", "-v", "0"),
                    *("-b", "127.0.0.1", "-p", str(self.port), "chatapi.asgi:application"),
                ],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 60
        while not self.healthy():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"server {self.name} did not start; see {self.log_path}")
            time.sleep(0.1)

    def healthy(self) -> bool:
        with socket.socket() as probe:
            probe.settimeout(2)
            try:
                probe.connect(("127.0.0.1", self.port))
                probe.sendall(
                    b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )
                return probe.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                return False

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class Proxy:
    """One address for both servers: each connection goes to the next server in turn, or to
    the one after it when that one refuses (it is dead), and bytes are copied both ways until
    either side closes."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._next = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for _ in self.ports:
            port = self.ports[self._next % len(self.ports)]
            self._next += 1
            with contextlib.suppress(OSError):
                upstream = await asyncio.open_connection("127.0.0.1", port)
                break
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


# --- the clients ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    data: dict[str, Any]


def parse_events(body: bytes) -> list[Event]:
    """The whole events in an SSE body (a cut one may end in the middle of one)."""
    events = []
    for block in body[: body.rfind(b"\n\n") + 2].split(b"\n\n"):
        if not block.startswith(b"id: "):
            continue  # a keepalive comment, or the end
        fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
        events.append(
            Event(int(fields[b"id"]), fields[b"event"].decode(), json.loads(fields[b"data"]))
        )
    return events


def log_lost(event: Event) -> bool:
    """The event a follower gets when Redis fails under it (resume again: a replay)."""
    return event.type == "error" and "event log became unavailable" in str(event.data)


def text_of(events: list[Event]) -> str:
    return "".join(
        e.data["delta"]["text"]
        for e in events
        if e.type == "content_block_delta" and e.data["delta"]["type"] == "text_delta"
    )


@dataclass
class Turn:
    conversation: str
    started: float  # seconds since the load started
    status: int = 0
    error: str | None = None
    error_type: str | None = None  # the error envelope's, for a refused send
    events: list[Event] = field(default_factory=list)
    resumed: list[Event] | None = None  # a cut stream's rest, from server B
    resume_error: str | None = None
    resume_head: bytes = b""  # the resume's first bytes, for a mismatch's report
    ended: float = 0.0  # when the send's response ended (seconds since the load started)
    resume_ended: float = 0.0

    @property
    def message_id(self) -> str | None:
        first = self.events[0] if self.events else None
        return first.data["message"]["id"] if first and first.type == "message_start" else None

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1].type in ("message_stop", "error")

    @property
    def cut(self) -> bool:
        return self.status == 200 and not self.finished


class Load:
    def __init__(self, proxy: Proxy, survivor: Server, token: str, chunks: int) -> None:
        self.proxy = proxy
        self.survivor = survivor
        self.auth = {"Authorization": f"Bearer {token}"}
        self.chunks = chunks
        self.turns: list[Turn] = []
        self.started = 0.0

    def now(self) -> float:
        return time.monotonic() - self.started

    async def client(self, conversation: str, until: float) -> None:
        """One client: answers in its own conversation, one after the other; a cut stream
        is resumed on the survivor before the next send, as a chat client would."""
        path = f"/api/v1/conversations/{conversation}/messages"
        while self.now() < until:
            turn = Turn(conversation=conversation, started=self.now())
            self.turns.append(turn)
            result = await request(
                "127.0.0.1",
                self.proxy.port,
                "POST",
                path,
                headers=self.auth,
                body={"content": "Hello", "stream": True},
                keep_body=True,
                limit_seconds=90,
            )
            turn.status, turn.error = result.status, result.error
            turn.ended = self.now()
            if result.status == 200:
                turn.events = parse_events(result.body)
            elif result.body:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    turn.error_type = json.loads(result.body)["error"]["type"]
            if turn.cut and turn.message_id is not None:
                await self.resume(turn, path)
                # The log was lost while followed: "resume again to replay it".
                if turn.resumed and log_lost(turn.resumed[-1]):
                    await self.resume(turn, path)
            if result.status != 200:
                await asyncio.sleep(0.5)  # a refused send: retry soon, not at once

    async def resume(self, turn: Turn, path: str) -> None:
        last = (turn.resumed or turn.events)[-1].id
        result = await request(
            "127.0.0.1",
            self.survivor.port,
            "GET",
            f"{path}/{turn.message_id}/stream",
            headers={**self.auth, "Last-Event-ID": str(last)},
            keep_body=True,
            limit_seconds=90,
        )
        turn.resumed = parse_events(result.body) if result.status == 200 else []
        turn.resume_head = result.body[:200]
        turn.resume_ended = self.now()
        if result.error or result.status != 200:
            turn.resume_error = f"{result.status} {result.error}"

    async def run(self, conversations: list[str], seconds: float) -> None:
        self.started = time.monotonic()
        spread = 5.0  # the clients start over the first seconds, not in one burst

        async def later(index: int, conversation: str) -> None:
            await asyncio.sleep(spread * index / len(conversations))
            await self.client(conversation, seconds)

        await asyncio.gather(*(later(i, c) for i, c in enumerate(conversations)))


# --- the faults -----------------------------------------------------------------------------------


@dataclass
class Faults:
    log: list[dict[str, Any]] = field(default_factory=list)
    kills: int = 0
    killed_at: datetime | None = None  # wall clock, to compare with the stored messages

    def note(self, load: Load, what: str, **extra: Any) -> None:
        self.log.append({"at_seconds": round(load.now(), 2), "fault": what, **extra})
        progress(f"chaos: {what} at {load.now():.1f} s")


async def faults(load: Load, victim: Server, postgres: Any, redis: Any, record: Faults) -> None:
    loop = asyncio.get_running_loop()

    async def at(seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds - load.now()))

    await at(KILL_AT)
    open_streams = sum(1 for t in load.turns if t.status in (0, 200) and not t.finished)
    victim.kill()
    record.killed_at = datetime.now(UTC)
    record.kills += 1
    record.note(load, "SIGKILL server A", client_streams_open=open_streams)
    await at(KILL_AT + RESTART_AFTER)
    await loop.run_in_executor(None, victim.start)
    record.note(load, "server A started again")
    await at(POSTGRES_RESTART_AT)
    started = time.monotonic()
    await loop.run_in_executor(None, postgres.stop)
    await loop.run_in_executor(None, postgres.start)
    record.note(load, "PostgreSQL restarted", seconds=round(time.monotonic() - started, 2))
    await at(REDIS_DROP_AT)
    redis.kill()
    record.note(load, "Redis killed")
    await at(REDIS_DROP_AT + REDIS_DOWN_SECONDS)
    await loop.run_in_executor(None, redis.start)
    record.note(load, "Redis started again (empty)")


# --- the books -----------------------------------------------------------------------------------


def db_rows(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql, params).fetchall()


def wait_for_sweep(db_url: str, seconds: float) -> float:
    """Seconds until no assistant message is in progress (or the window ended)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        left = db_rows(
            db_url,
            "SELECT count(*) FROM messaging_message "
            "WHERE role = 'assistant' AND status = 'in_progress'",
        )[0][0]
        if not left:
            break
        time.sleep(0.2)
    return round(time.monotonic() - started, 2)


@dataclass(frozen=True)
class Stored:
    status: str
    content: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None
    worker_id: str
    completed_at: datetime | None


def stored_messages(db_url: str) -> dict[str, Stored]:
    rows = db_rows(
        db_url,
        "SELECT id, status, content, coalesce(input_tokens, 0), coalesce(output_tokens, 0), "
        "cost_usd, worker_id, completed_at FROM messaging_message WHERE role = 'assistant'",
    )
    return {str(r[0]): Stored(*r[1:]) for r in rows}


def check_ledger(db_url: str, messages: dict[str, Stored], mismatch: Any) -> dict[str, Any]:
    """One ledger row per finished turn that used tokens, at the price's cost; the budgets'
    view of spending equal to the ledger's; no reservation left."""
    rows = db_rows(
        db_url,
        "SELECT u.message_id, u.input_tokens, u.output_tokens, u.cost_usd, "
        "p.input_usd_per_mtok, p.output_usd_per_mtok FROM usage_usagerecord u "
        "LEFT JOIN usage_modelprice p ON p.id = u.price_id WHERE u.kind = 'chat'",
    )
    ledger: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        ledger.setdefault(str(row[0]), []).append(row)
    for message_id, message in messages.items():
        found = ledger.get(message_id, [])
        expected = 1 if message.input_tokens + message.output_tokens else 0
        if len(found) != expected:
            mismatch("ledger rows", message_id, f"{len(found)} rows, expected {expected}")
            continue
        if not found:
            continue
        _, input_tokens, output_tokens, cost, input_price, output_price = found[0]
        priced = (
            (input_tokens * input_price + output_tokens * output_price) / Decimal(1_000_000)
        ).quantize(_COST_QUANTUM)
        if (input_tokens, output_tokens) != (message.input_tokens, message.output_tokens):
            mismatch("ledger tokens", message_id, f"{input_tokens}/{output_tokens}")
        if not cost == priced == message.cost_usd:
            mismatch("ledger cost", message_id, f"{cost} vs {priced} vs {message.cost_usd}")
    extra = set(ledger) - set(messages)
    for message_id in extra:
        mismatch("ledger row without a message", message_id, "")
    reservations = db_rows(
        db_url, "SELECT count(*), coalesce(sum(cost_usd), 0) FROM usage_budgetreservation"
    )[0]
    if reservations[0]:
        mismatch("budget reservations left", "-", f"{reservations[0]} ({reservations[1]} USD)")
    ledger_total = db_rows(
        db_url,
        "SELECT count(*), coalesce(sum(cost_usd), 0) FROM usage_usagerecord WHERE kind = 'chat'",
    )[0]
    rollup_total = db_rows(
        db_url,
        "SELECT coalesce(sum(requests), 0), coalesce(sum(cost_usd), 0) FROM usage_usagedaily "
        "WHERE kind = 'chat'",
    )[0]
    if tuple(ledger_total) != tuple(rollup_total):
        mismatch("budget spend != ledger", "-", f"{rollup_total} vs {ledger_total}")
    messages_total = sum((m.cost_usd or Decimal(0) for m in messages.values()), Decimal(0))
    if messages_total != ledger_total[1]:
        mismatch("messages' cost != ledger", "-", f"{messages_total} vs {ledger_total[1]}")
    return {
        "ledger_rows": ledger_total[0],
        "ledger_cost_usd": str(ledger_total[1]),
        "budget_spent_usd": str(rollup_total[1]),
        "budget_reservations_left": reservations[0],
    }


def well_formed(events: list[Event]) -> bool:
    return (
        bool(events)
        and [e.id for e in events] == list(range(1, len(events) + 1))
        and events[0].type == "message_start"
        and events[-1].type in ("message_stop", "error")
    )


def ending_matches(events: list[Event], status: str) -> bool:
    if status in ("complete", "cancelled"):
        return events[-1].type == "message_stop"
    return events[-1].type == "error"


async def replay_all(load: Load, message_ids: list[tuple[str, str]]) -> dict[str, list[Event]]:
    """Each message's stream from the start, from the survivor, 20 at a time."""
    gate = asyncio.Semaphore(20)
    out: dict[str, list[Event]] = {}

    async def one(conversation: str, message_id: str) -> None:
        async with gate:
            result = await request(
                "127.0.0.1",
                load.survivor.port,
                "GET",
                f"/api/v1/conversations/{conversation}/messages/{message_id}/stream",
                headers=load.auth,
                keep_body=True,
                limit_seconds=30,
            )
            out[message_id] = parse_events(result.body) if result.status == 200 else []

    await asyncio.gather(*(one(c, m) for c, m in message_ids))
    return out


def summary(events: list[Event]) -> str:
    """Ids and types at both ends of a list of events, for a mismatch's report."""
    ends = events if len(events) <= 4 else [*events[:2], *events[-2:]]
    return " ".join(f"{e.id}:{e.type}" for e in ends) or "none"


def check_streams(
    load: Load, messages: dict[str, Stored], replays: dict[str, list[Event]], mismatch: Any
) -> None:
    for turn in load.turns:
        message_id = turn.message_id
        if message_id is None:
            continue
        stored = messages.get(message_id)
        if stored is None:
            mismatch("streamed message not stored", message_id, "")
            continue
        if turn.finished:
            if turn.events[-1].type == "message_stop" and (
                stored.status != "complete" or stored.content != text_of(turn.events)
            ):
                mismatch(
                    "complete stream != stored",
                    message_id,
                    f"started {turn.started:.1f} s, stored {stored.status}, "
                    f"{len(text_of(turn.events))} vs {len(stored.content)} chars",
                )
        elif turn.resumed is not None:
            # Where the log is gone, or goes while followed, the resume (from there on) is
            # the stored answer replayed from id 1 (documented); else it continues the cut
            # stream.
            starts = [i for i, e in enumerate(turn.resumed) if e.type == "message_start"]
            events = turn.resumed[starts[-1] :] if starts else turn.events + turn.resumed
            where = (
                f"started {turn.started:.1f} s, cut at {turn.ended:.1f} s, resume ended at "
                f"{turn.resume_ended:.1f} s, stored at {stored.completed_at:%H:%M:%S} by "
                f"{stored.worker_id}, cut after {len(turn.events)} events "
                f"({summary(turn.events)}), resumed {summary(turn.resumed)}, "
                f"stored {stored.status}"
            )
            if not well_formed(events) or not ending_matches(events, stored.status):
                mismatch(
                    "resumed stream malformed",
                    message_id,
                    f"{where} {turn.resume_error} {turn.resume_head!r}",
                )
            elif text_of(events) != stored.content:
                mismatch(
                    "resumed stream != stored",
                    message_id,
                    f"{where}: {len(text_of(events))} vs {len(stored.content)} chars",
                )
    for message_id, events in replays.items():
        stored = messages[message_id]
        if not well_formed(events) or not ending_matches(events, stored.status):
            mismatch(
                "replay malformed",
                message_id,
                f"ids {[e.id for e in events][:3]}..., {len(events)} events, {stored.status}",
            )
        elif text_of(events) != stored.content:
            mismatch("replay != stored", message_id, stored.status)


def conflict_spans(turns: list[Turn]) -> list[float]:
    """For each run of 409s in one conversation, seconds from the first to the next send
    that was not refused."""
    spans = []
    by_conversation: dict[str, list[Turn]] = {}
    for turn in turns:
        by_conversation.setdefault(turn.conversation, []).append(turn)
    for conversation_turns in by_conversation.values():
        first: float | None = None
        for turn in conversation_turns:
            if turn.status == 409 and first is None:
                first = turn.started
            elif turn.status != 409 and first is not None:
                spans.append(turn.started - first)
                first = None
    return spans


# --- main -----------------------------------------------------------------------------------------


def private_services(log_dir: Path) -> tuple[Any, Any, str]:
    """A migrated database copied into a private PostgreSQL cluster, and a private Redis."""
    source = database_url("chatapi_chaos")
    env = {**os.environ, "CHATAPI_ENV": "test", "DATABASE_URL": source}
    run_django(env, "manage.py", "migrate", "--no-input", "-v", "0")
    # PrivatePostgres reads the source's server version through Django's connection.
    os.environ |= {"CHATAPI_ENV": "test", "DATABASE_URL": source}
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapi.settings")
    django.setup()
    from testsupport.servers import PrivatePostgres, PrivateRedis

    postgres = PrivatePostgres(copy_of=source)
    try:
        redis = PrivateRedis(log_path=log_dir / "redis.log")
    except BaseException:
        postgres.destroy()
        raise
    return postgres, redis, source


async def main_async(
    args: argparse.Namespace, log_dir: Path, postgres: Any, redis: Any
) -> dict[str, Any]:
    upstream = Upstream(ttft=0.05, rate=args.rate, chunks=args.chunks)
    servers: list[Server] = []
    proxy: Proxy | None = None
    mismatches: list[dict[str, str]] = []

    def mismatch(check: str, message_id: str, detail: str) -> None:
        mismatches.append({"check": check, "message_id": message_id, "detail": detail})

    try:
        env = bench_server_env(postgres.url, upstream.port) | {
            "REDIS_URL": redis.url,
            "GENERATION_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "GENERATION_STALE_SECONDS": str(STALE_SECONDS),
            # A limit far above what the run spends: every send reserves its worst case.
            "USAGE_DAILY_USD_LIMIT": "1000000",
            "DATABASE_POOL_MAX_SIZE": "30",
        }
        data = json.loads(run_django(env, "-m", "bench.seed", str(args.streams + 1), "0"))
        token = bench_token(data["user_id"])
        servers = [Server("A", env, log_dir), Server("B", env, log_dir)]
        proxy = Proxy([s.port for s in servers])
        await proxy.start()
        load = Load(proxy, servers[1], token, args.chunks)
        record = Faults()
        progress(
            f"chaos: {args.streams} streams for {LOAD_SECONDS:.0f} s through one address "
            f"on 2 servers (logs in {log_dir})"
        )
        await asyncio.gather(
            load.run(data["conversations"][: args.streams], LOAD_SECONDS),
            faults(load, servers[0], postgres, redis, record),
        )
        load_seconds = round(load.now(), 1)
        progress("chaos: load done; waiting for the sweep")
        sweep_seconds = await asyncio.to_thread(wait_for_sweep, postgres.url, SWEEP_WINDOW_SECONDS)
        messages = await asyncio.to_thread(stored_messages, postgres.url)
        conversation_of = {t.message_id: t.conversation for t in load.turns if t.message_id}
        cut = [m for m in (t.message_id for t in load.turns if t.cut) if m is not None]
        others = sorted(set(conversation_of) - set(cut))
        sample = cut + random.Random(18).sample(  # noqa: S311 - a sample, not a secret
            others, min(REPLAY_SAMPLE, len(others))
        )
        progress(f"chaos: replaying {len(sample)} messages from server B")
        replays = await replay_all(load, [(conversation_of[m], m) for m in sample])
        by_status = Counter(m.status for m in messages.values())
        if by_status.get("in_progress"):
            mismatch("in_progress after the sweep window", "-", str(by_status["in_progress"]))
        ledger = await asyncio.to_thread(check_ledger, postgres.url, messages, mismatch)
    finally:
        if proxy is not None:
            await proxy.stop()
        for server in servers:
            server.stop()
        upstream.stop()
    check_streams(load, messages, replays, mismatch)
    spans = conflict_spans(load.turns)
    # The answers the kill left in progress (on the process whose streams were cut),
    # finished by a sweeper: when, after the kill.
    cut_on = Counter(
        messages[t.message_id].worker_id for t in load.turns if t.cut and t.message_id in messages
    )
    killed_worker = cut_on.most_common(1)[0][0] if cut_on else None
    swept_after = sorted(
        (m.completed_at - record.killed_at).total_seconds()
        for m in messages.values()
        if m.status == "incomplete"
        and m.completed_at
        and record.killed_at
        and m.completed_at > record.killed_at
        and m.worker_id == killed_worker
    )
    if spans and max(spans) > SWEEP_WINDOW_SECONDS:
        mismatch("refused with 409 past the sweep window", "-", f"{max(spans):.1f} s")
    refused = Counter(
        f"{t.status} {t.error_type or t.error or ''}".strip() for t in load.turns if t.status != 200
    )
    return {
        "mode": "chaos",
        "started_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "concurrent_streams": args.streams,
        "chunks_per_stream": args.chunks,
        "upstream_chunks_per_second": args.rate,
        "generation_heartbeat_seconds": HEARTBEAT_SECONDS,
        "generation_stale_seconds": STALE_SECONDS,
        "load_seconds": load_seconds,
        "faults": record.log,
        "streams": sum(1 for t in load.turns if t.status == 200),
        "sends": len(load.turns),
        "kills": record.kills,
        "streams_completed": sum(
            1 for t in load.turns if t.finished and t.events[-1].type == "message_stop"
        ),
        "streams_ended_with_error_event": sum(
            1 for t in load.turns if t.finished and t.events[-1].type == "error"
        ),
        "streams_cut": sum(1 for t in load.turns if t.cut),
        "streams_cut_and_resumed": sum(1 for t in load.turns if t.resumed is not None),
        "sends_refused": dict(refused.most_common()),
        # When each refused send began (seconds into the load), to set beside the faults'.
        "sends_refused_at_seconds": sorted(
            round(t.started, 1) for t in load.turns if t.status != 200
        ),
        "longest_409_refusal_seconds": round(max(spans), 2) if spans else 0.0,
        "killed_answers_swept": len(swept_after),
        "killed_answers_swept_after_seconds": (
            [round(swept_after[0], 1), round(swept_after[-1], 1)] if swept_after else None
        ),
        "sweep_seconds_after_load": sweep_seconds,
        "messages_by_status": dict(sorted(by_status.items())),
        "replayed_from_survivor": len(replays),
        **ledger,
        "mismatches": len(mismatches),
        "first_mismatches": mismatches[:20],
        "mismatches_by_check": dict(Counter(m["check"] for m in mismatches)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=200, help="concurrent clients")
    parser.add_argument("--chunks", type=int, default=60, help="chunks per answer")
    parser.add_argument("--rate", type=float, default=10.0, help="upstream chunks per second")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="chatapi-chaos-"))
    started = time.monotonic()
    postgres, redis, _ = private_services(log_dir)
    try:
        results = asyncio.run(main_async(args, log_dir, postgres, redis))
    finally:
        redis.kill()
        postgres.destroy()
    results["duration_seconds"] = round(time.monotonic() - started, 1)
    path = RESULTS / "chaos.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    for name in (
        "sends",
        "streams",
        "kills",
        "streams_completed",
        "streams_ended_with_error_event",
        "streams_cut",
        "streams_cut_and_resumed",
        "sends_refused",
        "longest_409_refusal_seconds",
        "killed_answers_swept",
        "killed_answers_swept_after_seconds",
        "messages_by_status",
        "replayed_from_survivor",
        "ledger_rows",
        "budget_reservations_left",
        "mismatches",
    ):
        print(f"{name.replace('_', ' ')}: {results.get(name)}")  # noqa: T201
    for item in results["first_mismatches"]:
        print(f"  MISMATCH {item['check']}: {item['message_id']} {item['detail']}")  # noqa: T201
    print(  # noqa: T201
        f"{path.relative_to(REPO)} ({results['duration_seconds']} s; server logs in {log_dir})"
    )
    sys.exit(1 if results["mismatches"] else 0)


if __name__ == "__main__":
    main()
