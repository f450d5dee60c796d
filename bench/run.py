"""The benchmark: ``make bench`` (quick, under 5 minutes) or ``make bench-full``.

Everything runs on loopback: the fake Groq server from the tests (its own process), the API in
its production configuration (one daphne process per core sharing one listening socket),
PostgreSQL (``DATABASE_URL``, or the embedded one), Redis when ``REDIS_URL`` is set, and this
asyncio load client. Every figure is a ratio or a difference against a baseline measured in
the same run: the client talking to the fake upstream directly (so the client is shown not to
be the bottleneck), and a hello-world endpoint on the same server.

Results: a table on stdout and JSON under bench/results/.
"""

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import jwt
import psycopg

from bench.client import Result, request
from bench.upstream import PACED_TEMPERATURE

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
# The checkout whose API is measured (``--app``): this one, or another commit's worktree, so
# that a before and an after are measured by the same harness in one sitting.
APP = REPO
SECRET = "bench-only-jwt-secret-0123456789abcdef0123456789"  # noqa: S105 - the bench server's
MODEL = "openai/gpt-oss-20b"
DIRECT_BODY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Hello"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}


@dataclass(frozen=True)
class Mode:
    sequential_turns: int
    relay_streams: int
    relay_chunks: tuple[int, int]
    capacity_streams: int
    capacity_ramp: float
    capacity_chunks: int
    capacity_rate: float
    crud_seconds: float
    crud_clients: int
    ledger_rows: int
    memory_streams: int


QUICK = Mode(50, 100, (20, 120), 300, 5.0, 60, 20.0, 4.0, 32, 20_000, 200)
FULL = Mode(200, 200, (50, 250), 1000, 10.0, 200, 20.0, 15.0, 32, 100_000, 1000)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)  # noqa: T201


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# --- processes ---------------------------------------------------------------------------------


def database_url(name: str = "chatapi_bench") -> str:
    """A fresh database ``name`` for a benchmark, on DATABASE_URL's server or the embedded
    one."""
    base = os.environ.get("DATABASE_URL")
    if base is None:
        os.environ.setdefault("CHATAPI_ENV", "development")
        from chatapi.embedded_db import embedded_database

        db = embedded_database(REPO / ".devdata" / "postgres")
        base = f"postgresql://postgres@/postgres?host={quote(db['HOST'])}"
    parts = urlsplit(base)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return urlunsplit(parts._replace(path=f"/{name}"))


def bench_token(user_id: str) -> str:
    """A day-long access token for the benchmark's user, signed with the servers' secret."""
    now = int(time.time())
    claims = {
        "sub": user_id,
        "aud": "authenticated",
        "role": "authenticated",
        "email": "bench@example.com",
        "iat": now,
        "exp": now + 86400,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def server_env(db_url: str, upstream_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CHATAPI_ENV", "DATABASE_URL")}
    env |= {
        "CHATAPI_ENV": "production",
        "DJANGO_SECRET_KEY": "bench-only-django-secret",
        "API_KEY_PEPPER": "bench-only-api-key-pepper",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": db_url,
        "GROQ_API_KEY": "gsk_test",
        "GROQ_BASE_URL": f"http://127.0.0.1:{upstream_port}/openai/v1",
        "SUPABASE_JWT_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
        "DATABASE_POOL_MAX_SIZE": "40",
    }
    env |= {k: v for k, v in BENCH_LIMITS.items() if k not in os.environ}
    return env


# Limits that would throttle a load test of one user; production keeps its own defaults.
BENCH_LIMITS = {
    "RATE_LIMIT_SENDS_PER_MINUTE": "1000000",
    "RATE_LIMIT_CONCURRENT_STREAMS": "100000",
}


class Upstream:
    def __init__(self, *, ttft: float = 0.0, rate: float = 0.0, chunks: int = 20) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own module
            [
                sys.executable,
                "-m",
                "bench.upstream",
                "--ttft",
                str(ttft),
                "--rate",
                str(rate),
                "--chunks",
                str(chunks),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            env={**os.environ, "CHATAPI_ENV": "test"},
        )
        if self.process.stdout is None:
            raise RuntimeError("no pipe to the upstream")
        self.port = int(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


DEFAULT_APPLICATION = "chatapi.asgi:application"
SERVERS = {
    # As documented (docs/deployment.md): -v 0, the app writes its own access log.
    "daphne": ["-m", "daphne", "--fd", "{fd}", "-v", "0", "chatapi.asgi:application"],
    # The same daphne with uvloop as the event loop under Twisted's asyncio reactor.
    "daphne-uvloop": [
        "-c",
        (
            "import uvloop; uvloop.install(); from daphne.cli import CommandLineInterface; "
            "CommandLineInterface.entrypoint()"
        ),
        "--fd",
        "{fd}",
        "-v",
        "0",
        "chatapi.asgi:application",
    ],
    "uvicorn": [
        "-m",
        "uvicorn",
        "--fd",
        "{fd}",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--lifespan",
        "off",
        "--no-access-log",
        "chatapi.asgi:application",
    ],
}


class Api:
    """``workers`` server processes accepting on one listening socket (kernel-balanced)."""

    server = "daphne"  # the documented production server (docs/deployment.md)

    def __init__(
        self, env: dict[str, str], workers: int, application: str = "chatapi.asgi:application"
    ) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.port = self.sock.getsockname()[1]
        fd = self.sock.fileno()
        log = (RESULTS / "server.log").open("ab")
        self.processes = [
            subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    *(
                        application if arg == DEFAULT_APPLICATION else arg.format(fd=fd)
                        for arg in SERVERS[self.server]
                    ),
                ],
                cwd=APP,
                env=env,
                pass_fds=(fd,),
                stdout=log,
                stderr=log,
            )
            for _ in range(workers)
        ]
        deadline = time.monotonic() + 60
        while not self._healthy():
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                raise RuntimeError("the API did not start; see bench/results/server.log")
            time.sleep(0.2)

    def _healthy(self) -> bool:
        with socket.socket() as probe:
            try:
                probe.connect(("127.0.0.1", self.port))
                probe.sendall(
                    b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )
                return probe.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                return False

    def cpu_seconds(self) -> float:
        total = 0
        for process in self.processes:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        return total / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        total = 0
        for process in self.processes:
            for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.sock.close()


def app_commit() -> str:
    done = subprocess.run(
        ["/usr/bin/git", "rev-parse", "--short", "HEAD"],
        cwd=APP,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def run_django(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter and scripts
        [sys.executable, *args], cwd=APP, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


# --- scenarios ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, api: Api, upstream_port: int, token: str, data: dict[str, Any]) -> None:
        self.api = api
        self.upstream_port = upstream_port
        self.auth = {"Authorization": f"Bearer {token}"}
        self.conversations: list[str] = data["conversations"]
        self.history_conversation: str = data["history_conversation"]

    async def direct(self) -> Result:
        return await request(
            "127.0.0.1",
            self.upstream_port,
            "POST",
            "/openai/v1/chat/completions",
            headers={"Authorization": "Bearer gsk_test"},
            body=DIRECT_BODY,
        )

    async def send(
        self, conversation: str, *, stream: bool = True, extra: dict[str, Any] | None = None
    ) -> Result:
        return await request(
            "127.0.0.1",
            self.api.port,
            "POST",
            f"/api/v1/conversations/{conversation}/messages",
            headers=self.auth,
            body={"content": "Hello", "stream": stream, **(extra or {})},
        )

    async def sequential(self, turns: int, *, stream: bool) -> dict[str, Any]:
        direct: list[Result] = []
        api: list[Result] = []
        for turn in range(turns):
            direct.append(await self.direct())
            api.append(await self.send(self.conversations[turn % 20], stream=stream))
        errors = [r for r in direct + api if r.error or r.status not in (200, 201)]
        key = "ttft" if stream else "total"
        d = [getattr(r, key) for r in direct if getattr(r, key) is not None]
        a = [getattr(r, key) for r in api if getattr(r, key) is not None]
        out = {
            "turns": turns,
            "errors": len(errors),
            "direct_p50_ms": ms(percentile(d, 50)),
            "direct_p99_ms": ms(percentile(d, 99)),
            "api_p50_ms": ms(percentile(a, 50)),
            "api_p99_ms": ms(percentile(a, 99)),
            "added_p50_ms": ms(percentile(a, 50) - percentile(d, 50)),
            "added_p99_ms": ms(percentile(a, 99) - percentile(d, 99)),
        }
        if stream:
            dt = [r.total for r in direct]
            at = [r.total for r in api]
            out |= {
                "added_total_p50_ms": ms(percentile(at, 50) - percentile(dt, 50)),
                "added_total_p99_ms": ms(percentile(at, 99) - percentile(dt, 99)),
            }
        return out

    async def concurrent(
        self, streams: int, ramp: float, extra: dict[str, Any] | None = None
    ) -> list[Result]:
        async def one(index: int) -> Result:
            await asyncio.sleep(ramp * index / streams)
            return await self.send(self.conversations[index % len(self.conversations)], extra=extra)

        return list(await asyncio.gather(*(one(i) for i in range(streams))))


# The relay's loads: how many rounds of (fewer chunks, more chunks) are measured, and the
# paced loads' size (each stream's chunks 20 ms apart, so that each arrives in a read of its
# own; the aggregate rate stays well below what the server can relay).
RELAY_ROUNDS = 3
PACED_STREAMS = 50


def _relay_body(chunks: int, *, paced: bool) -> dict[str, Any]:
    """A send whose answer has ``chunks`` chunks, paced or in a burst (bench/upstream.py)."""
    return {"max_output_tokens": chunks, "temperature": PACED_TEMPERATURE if paced else 0.0}


async def _relay_round(
    bench: Bench, streams: int, chunks: tuple[int, int], *, paced: bool
) -> dict[str, Any]:
    measured = []
    for count in chunks:
        before = bench.api.cpu_seconds()
        results = await bench.concurrent(streams, 0, _relay_body(count, paced=paced))
        cpu = bench.api.cpu_seconds() - before
        relayed = sum(r.chunks for r in results)
        errors = sum(1 for r in results if r.error or r.status != 200)
        measured.append((cpu, relayed, errors))
    (cpu1, n1, e1), (cpu2, n2, e2) = measured
    marginal = (cpu2 - cpu1) / (n2 - n1) if n2 > n1 else float("nan")
    return {
        "errors": e1 + e2,
        "cpu_us_per_chunk_marginal": round(marginal * 1e6, 2),
        "cpu_ms_per_stream_fixed": round((cpu1 - marginal * n1) / streams * 1e3, 3),
        "cpu_us_per_chunk_average": round(cpu2 / n2 * 1e6, 2) if n2 else None,
    }


async def relay_cost(
    bench: Bench, streams: int, chunks: tuple[int, int], env: dict[str, str]
) -> dict[str, Any]:
    """Server CPU per relayed chunk: the marginal cost between two loads that differ only in
    chunks per stream (so per-request costs cancel out), and what is left per stream (the
    fixed part of a turn). Both loads run on one server process set, alternated
    ``RELAY_ROUNDS`` times; the medians are reported. In bursts (the upstream writes chunks
    back to back: several arrive in one read) and paced (one per read)."""
    upstream = Upstream()
    bench.upstream_port = upstream.port
    bench.api = Api(server_env(env["DATABASE_URL"], upstream.port), int(env["_WORKERS"]))
    out: dict[str, Any] = {"streams": streams, "chunks_per_stream": list(chunks)}
    try:
        await bench.concurrent(20, 0, _relay_body(chunks[0], paced=False))  # warm up
        for name, paced, count in (("burst", False, streams), ("paced", True, PACED_STREAMS)):
            rounds = [
                await _relay_round(bench, count, chunks, paced=paced) for _ in range(RELAY_ROUNDS)
            ]
            out[name] = {
                "streams": count,
                "errors": sum(r["errors"] for r in rounds),
                "cpu_us_per_chunk_marginal": round(
                    statistics.median(r["cpu_us_per_chunk_marginal"] for r in rounds), 2
                ),
                "cpu_ms_per_stream_fixed": round(
                    statistics.median(r["cpu_ms_per_stream_fixed"] for r in rounds), 3
                ),
                "rounds": rounds,
            }
    finally:
        bench.api.stop()
        upstream.stop()
    out["errors"] = out["burst"]["errors"] + out["paced"]["errors"]
    return out


async def stream_memory(
    bench: Bench, env: dict[str, str], workers: int, streams: int, frames: int = 0
) -> dict[str, Any]:
    """Memory per open stream, accounted for by Python's allocator: the API runs with
    tracemalloc (bench/tracing/chatapi_traced.py); each process reports what it has
    allocated and not freed while idle, then with ``streams`` streams open (paced so that
    they are all open at once), and the difference is divided by the open requests."""
    trace = RESULTS / "trace"
    for old in RESULTS.glob("trace.*"):
        old.unlink()
    upstream = Upstream(rate=10.0, chunks=80)  # 8 s an answer
    traced_env = server_env(env["DATABASE_URL"], upstream.port) | {
        "PYTHONPATH": str(REPO / "bench" / "tracing"),
        "CHATAPI_TRACE_FILE": str(trace),
    }
    if frames:  # allocation tracebacks and snapshots, for bench.memory
        traced_env["CHATAPI_TRACE_FRAMES"] = str(frames)
    api = Api(traced_env, workers, application="chatapi_traced:application")
    bench.api, bench.upstream_port = api, upstream.port

    def report() -> list[dict[str, int]]:
        before = {p.pid: _trace_lines(trace, p.pid) for p in api.processes}
        for process in api.processes:
            os.kill(process.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 10
        while any(_trace_lines(trace, p.pid) == before[p.pid] for p in api.processes):
            if time.monotonic() > deadline:
                raise RuntimeError("a traced server did not report")
            time.sleep(0.05)
        return [
            json.loads((Path(f"{trace}.{p.pid}")).read_text().splitlines()[-1])
            for p in api.processes
        ]

    try:
        await bench.concurrent(20, 0, {"max_output_tokens": 5})  # warm up
        idle = report()
        load = asyncio.ensure_future(bench.concurrent(streams, 2.0))
        await asyncio.sleep(4.0)  # all started (2 s ramp), none finished (8 s answers)
        busy = report()
        results = await load
    finally:
        api.stop()
        upstream.stop()
    opened = sum(b["open"] - i["open"] for b, i in zip(busy, idle, strict=True))
    grown = sum(b["traced"] - i["traced"] for b, i in zip(busy, idle, strict=True))
    return {
        "streams": streams,
        "open_at_snapshot": opened,
        "errors": sum(1 for r in results if r.error or r.status != 200),
        "traced_bytes_growth": grown,
        "memory_per_stream_kib": round(grown / opened / 1024, 1) if opened else None,
    }


def _trace_lines(trace: Path, pid: int) -> int:
    path = Path(f"{trace}.{pid}")
    return len(path.read_text().splitlines()) if path.exists() else 0


async def capacity(
    bench: Bench, mode: Mode, direct_ttft_p50: float, direct_ttft_p99: float
) -> dict[str, Any]:
    rss_before = bench.api.rss_bytes()
    peak = {"rss": rss_before}

    async def sample() -> None:
        while True:
            peak["rss"] = max(peak["rss"], bench.api.rss_bytes())
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    results = await bench.concurrent(mode.capacity_streams, mode.capacity_ramp)
    elapsed = time.perf_counter() - started
    sampler.cancel()
    ok = [r for r in results if not r.error and r.status == 200]
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    expected = mode.capacity_chunks
    upstream_seconds = (expected - 1) / mode.capacity_rate
    # The rate content arrived at, first token to last, against the upstream's schedule;
    # and to the stream's end (which also waits for the upstream's last chunks, the end's
    # statement and message_stop).
    shares = [
        min(1.0, upstream_seconds / max((r.last_token or 0) - (r.ttft or 0), 1e-9))
        for r in ok
        if r.chunks == expected
    ]
    shares_to_end = [
        min(1.0, upstream_seconds / max(r.total - (r.ttft or 0), 1e-9))
        for r in ok
        if r.chunks == expected
    ]
    return {
        "streams": mode.capacity_streams,
        "ramp_seconds": mode.capacity_ramp,
        "chunks_per_stream": expected,
        "chunks_per_second": mode.capacity_rate,
        "elapsed_seconds": round(elapsed, 2),
        "errors": len(results) - len(ok),
        "error_samples": sorted(
            {r.error or str(r.status) for r in results if r.error or r.status != 200}
        )[:5],
        "incomplete_streams": sum(1 for r in ok if r.chunks != expected),
        "added_ttft_p50_ms": ms(percentile(ttfts, 50) - direct_ttft_p50),
        "added_ttft_p99_ms": ms(percentile(ttfts, 99) - direct_ttft_p99),
        "delivered_rate_share_p50": round(percentile(shares, 50), 4) if shares else None,
        "delivered_rate_share_min": round(min(shares), 4) if shares else None,
        "delivered_rate_share_to_end_p50": (
            round(percentile(shares_to_end, 50), 4) if shares_to_end else None
        ),
        "memory_per_stream_kib": round(
            (peak["rss"] - rss_before) / mode.capacity_streams / 1024, 1
        ),
    }


_CRUD_SEQUENTIAL = 50


async def crud(bench: Bench, mode: Mode) -> dict[str, Any]:
    paths = {
        "hello_world": "/api/v1/ping",
        "list_conversations": "/api/v1/conversations?limit=20",
        "list_messages": f"/api/v1/conversations/{bench.history_conversation}/messages?limit=20",
        "usage_stats": "/api/v1/usage/stats",
    }
    out: dict[str, Any] = {}

    async def client(path: str, deadline: float, latencies: list[float], failed: list[int]) -> None:
        while time.perf_counter() < deadline:
            result = await request("127.0.0.1", bench.api.port, "GET", path, headers=bench.auth)
            if result.error or result.status != 200:
                failed.append(result.status)
            else:
                latencies.append(result.total)

    for name, path in paths.items():
        # Unloaded latency first: one request at a time. At 32 concurrent clients the p50 is
        # the queue (Little's law: clients / throughput), not the request.
        alone: list[float] = []
        for _ in range(_CRUD_SEQUENTIAL):
            result = await request("127.0.0.1", bench.api.port, "GET", path, headers=bench.auth)
            if not result.error and result.status == 200:
                alone.append(result.total)
        latencies: list[float] = []
        failed: list[int] = []
        started = time.perf_counter()
        deadline = started + mode.crud_seconds
        await asyncio.gather(
            *(client(path, deadline, latencies, failed) for _ in range(mode.crud_clients))
        )
        elapsed = time.perf_counter() - started
        out[name] = {
            "requests_per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": ms(percentile(latencies, 50)),
            "p99_ms": ms(percentile(latencies, 99)),
            "errors": len(failed),
            "sequential_p50_ms": ms(percentile(alone, 50)),
            "sequential_p99_ms": ms(percentile(alone, 99)),
        }
    hello = out["hello_world"]["requests_per_second"] or 1
    for name in paths:
        out[name]["ratio_to_hello_world"] = round(out[name]["requests_per_second"] / hello, 3)
    return out


def stored_complete(db_url: str) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM messaging_message WHERE role = 'assistant' "
            "GROUP BY status"
        ).fetchall()
    return dict(rows)


# --- main --------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    versions = {
        name: metadata.version(name)
        for name in ("django", "djangorestframework", "daphne", "psycopg", "httpx", "redis")
    }
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "redis": bool(os.environ.get("REDIS_URL")),
    }


def print_table(results: dict[str, Any], baseline: dict[str, Any] | None = None) -> None:
    """The targets (bench/README.md), each a ratio within the run; the fixed CPU per turn
    against ``baseline`` (the same harness's run at the starting commit), when given."""
    seq, relay, cap = results["sequential_stream"], results["relay"], results["capacity"]
    send, crud_r = results["non_streaming_send"], results["crud"]
    hello = crud_r["hello_world"]["sequential_p50_ms"]
    fixed = relay["burst"]["cpu_ms_per_stream_fixed"]
    start_fixed = baseline["relay"]["burst"]["cpu_ms_per_stream_fixed"] if baseline else None
    rows = [
        (
            "server CPU per turn, fixed part",
            f"{fixed} ms",
            f"<= {round(start_fixed / 3, 2)} ms" if start_fixed else "<= 1/3 start",
            start_fixed is not None and fixed <= start_fixed / 3,
        ),
        (
            "added TTFT p50 (sequential)",
            f"{seq['added_p50_ms']} ms",
            f"<= {round(2 * hello, 2)} ms",
            seq["added_p50_ms"] <= 2 * hello,
        ),
        (
            "added TTFT p99 (sequential)",
            f"{seq['added_p99_ms']} ms",
            f"<= {round(4 * hello, 2)} ms",
            seq["added_p99_ms"] <= 4 * hello,
        ),
        *(
            (
                f"server CPU per relayed chunk, {name}",
                f"{relay[name]['cpu_us_per_chunk_marginal']} us",
                "<= 25 us",
                relay[name]["cpu_us_per_chunk_marginal"] <= 25,
            )
            for name in ("burst", "paced")
        ),
        ("capacity errors", str(cap["errors"]), "0", cap["errors"] == 0),
        (
            "capacity unfinished messages",
            str(results["capacity_stored"].get("unfinished", 0)),
            "0",
            results["capacity_stored"].get("unfinished", 0) == 0,
        ),
        (
            "capacity delivered rate share p50",
            str(cap["delivered_rate_share_p50"]),
            ">= 0.95",
            (cap["delivered_rate_share_p50"] or 0) >= 0.95,
        ),
        (
            "capacity delivered rate share p50, to the end",
            str(cap["delivered_rate_share_to_end_p50"]),
            "-",
            True,
        ),
        (
            "capacity added TTFT p99",
            f"{cap['added_ttft_p99_ms']} ms",
            "<= 2000 ms",
            cap["added_ttft_p99_ms"] <= 2000,
        ),
        (
            "memory per open stream (tracemalloc)",
            f"{results['stream_memory']['memory_per_stream_kib']} KiB",
            "<= 64 KiB",
            (results["stream_memory"]["memory_per_stream_kib"] or 1e9) <= 64,
        ),
        (
            "capacity memory per open stream (peak RSS)",
            f"{cap['memory_per_stream_kib']} KiB",
            "-",
            True,
        ),
        (
            "list conversations / hello world",
            str(crud_r["list_conversations"]["ratio_to_hello_world"]),
            ">= 0.40",
            crud_r["list_conversations"]["ratio_to_hello_world"] >= 0.4,
        ),
        (
            "list messages / hello world",
            str(crud_r["list_messages"]["ratio_to_hello_world"]),
            ">= 0.40",
            crud_r["list_messages"]["ratio_to_hello_world"] >= 0.4,
        ),
        (
            "usage stats p50 (one client)",
            f"{crud_r['usage_stats']['sequential_p50_ms']} ms",
            "<= 50 ms",
            crud_r["usage_stats"]["sequential_p50_ms"] <= 50,
        ),
        (
            "hello world p50 (sequential) / requests a second",
            f"{hello} ms / {crud_r['hello_world']['requests_per_second']}",
            "-",
            True,
        ),
        (
            "non-streaming added latency p50 / p99",
            f"{send['added_p50_ms']} / {send['added_p99_ms']} ms",
            "-",
            True,
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure'.ljust(width)}  {'value':>16}  {'target':>9}  met")  # noqa: T201
    for name, value, target, met in rows:
        print(f"{name.ljust(width)}  {value:>16}  {target:>9}  {'yes' if met else 'NO'}")  # noqa: T201


async def main_async(mode: Mode, workers: int, label: str) -> dict[str, Any]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    db_url = database_url()
    upstream = Upstream(chunks=20)
    env = server_env(db_url, upstream.port)
    run_django(env, "manage.py", "migrate", "--no-input", "-v", "0")
    data = json.loads(
        run_django(env, "-m", "bench.seed", str(mode.capacity_streams + 21), str(mode.ledger_rows))
    )
    token = bench_token(data["user_id"])
    api = Api(env, workers)
    bench = Bench(api, upstream.port, token, data)
    results: dict[str, Any] = {
        "label": label,
        "app": str(APP),
        "mode": "full" if mode is FULL else "quick",
        "server": Api.server,
        "workers": workers,
        "started_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
    }
    try:
        # Warm-up: every server process's first turn (imports, connections, the upstream
        # client; 40-130 ms) would otherwise fall into the sequential runs, whose p99 is
        # their slowest turn. Sequential requests may all reach one process; 20 at once
        # reach each of them.
        await bench.concurrent(20, 0)
        await bench.sequential(10, stream=True)
        progress("sequential streaming")
        results["sequential_stream"] = await bench.sequential(mode.sequential_turns, stream=True)
        progress("non-streaming sends")
        results["non_streaming_send"] = await bench.sequential(mode.sequential_turns, stream=False)
        progress("CRUD")
        results["crud"] = await crud(bench, mode)
    finally:
        api.stop()
        upstream.stop()
    env["_WORKERS"] = str(workers)
    progress("relay cost")
    results["relay"] = await relay_cost(bench, mode.relay_streams, mode.relay_chunks, env)
    progress("memory per open stream")
    results["stream_memory"] = await stream_memory(bench, env, workers, mode.memory_streams)

    upstream = Upstream(rate=mode.capacity_rate, chunks=mode.capacity_chunks)
    api = Api(server_env(db_url, upstream.port), workers)
    bench.api, bench.upstream_port = api, upstream.port
    try:
        direct = [await bench.direct() for _ in range(20)]
        d = [r.ttft for r in direct if r.ttft is not None]
        await bench.concurrent(20, 0)
        progress("capacity")
        results["capacity"] = await capacity(bench, mode, percentile(d, 50), percentile(d, 99))
    finally:
        api.stop()
        upstream.stop()
    stored = stored_complete(db_url)
    results["capacity_stored"] = stored | {
        "unfinished": sum(v for k, v in stored.items() if k != "complete")
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="the full sizes (about 10 min)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--label", default="")
    parser.add_argument("--server", choices=sorted(SERVERS), default=Api.server)
    parser.add_argument(
        "--app", type=Path, default=REPO, help="the checkout whose API is measured (a worktree)"
    )
    parser.add_argument(
        "--baseline", type=Path, help="a results JSON of the starting commit, for the ratios"
    )
    args = parser.parse_args()
    Api.server = args.server
    global APP  # noqa: PLW0603 - set once, before anything starts
    APP = args.app.resolve()
    mode = FULL if args.full else QUICK
    started = time.perf_counter()
    results = asyncio.run(main_async(mode, args.workers, args.label))
    results["app_commit"] = app_commit()
    results["duration_seconds"] = round(time.perf_counter() - started, 1)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-{results['mode']}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results, json.loads(args.baseline.read_text()) if args.baseline else None)
    print(f"\n{path.relative_to(REPO)}  ({results['duration_seconds']} s)")  # noqa: T201


if __name__ == "__main__":
    main()
