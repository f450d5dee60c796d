"""The soak: ``make soak`` (3 minutes; ``--minutes``, ``--streams``).

A couple of hundred clients stream answers back to back for a few minutes against the API in
its production configuration (the benchmark's: daphne processes sharing one socket, the fake
Groq upstream in its own process, PostgreSQL from ``DATABASE_URL`` or the embedded one, Redis
when ``REDIS_URL`` is set), all on loopback. It passes when:

- no request failed: every stream is a 200 that ends with ``message_stop`` and carries every
  chunk the upstream sent;
- every answer is stored ``complete`` (none in progress, none failed) and the count of stored
  answers equals the count of streams;
- the server processes' memory is flat: the mean RSS of the last minute is within
  ``--rss-margin`` (5 %) of the mean of the first minute after the warm-up (a minute: a
  finished answer is kept in memory that long for resumes on the same process).

Results: a summary on stdout and JSON under bench/results/; the exit status says whether it
passed. Not part of CI (minutes long).
"""

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.client import request
from bench.run import (
    RESULTS,
    Api,
    Upstream,
    bench_token,
    database_url,
    progress,
    run_django,
)
from bench.run import server_env as bench_server_env

# A finished generation stays in memory a minute for same-process resumes
# (messaging.generation._KEEP_FINISHED_SECONDS_WITH_REDIS), so memory rises for the first
# minute of steady load by design: the warm-up.
WARM_UP_SECONDS = 60.0
SAMPLE_SECONDS = 5.0


class Soak:
    def __init__(self, api: Api, token: str, conversations: list[str], chunks: int) -> None:
        self.api = api
        self.auth = {"Authorization": f"Bearer {token}"}
        self.conversations = conversations
        self.chunks = chunks
        self.streams = 0
        self.errors: list[str] = []
        self.rss: list[tuple[float, int]] = []  # (seconds since start, bytes)

    async def client(self, conversation: str, until: float) -> None:
        """One client: a stream in its own conversation, again and again."""
        path = f"/api/v1/conversations/{conversation}/messages"
        while time.monotonic() < until:
            result = await request(
                "127.0.0.1",
                self.api.port,
                "POST",
                path,
                headers=self.auth,
                body={"content": "Hello", "stream": True},
                keep_body=True,
                limit_seconds=60,
            )
            self.streams += 1
            if result.error or result.status != 200:
                self.errors.append(f"{result.status} {result.error} {result.body[:200]!r}")
            elif not result.body.endswith(b'data: {"type":"message_stop"}\n\n'):
                self.errors.append(f"no message_stop: {result.body[-200:]!r}")
            elif result.chunks != self.chunks:
                self.errors.append(f"{result.chunks} chunks of {self.chunks}")

    async def sample(self, started: float, until: float) -> None:
        while time.monotonic() < until:
            self.rss.append((time.monotonic() - started, self.api.rss_bytes()))
            await asyncio.sleep(SAMPLE_SECONDS)

    async def run(self, seconds: float) -> None:
        started = time.monotonic()
        until = started + seconds
        clients = [
            # Spread over the first two seconds, so they do not all start in one burst.
            self._later(i * 2.0 / len(self.conversations), conversation, until)
            for i, conversation in enumerate(self.conversations)
        ]
        await asyncio.gather(self.sample(started, until), *clients)

    async def _later(self, delay: float, conversation: str, until: float) -> None:
        await asyncio.sleep(delay)
        await self.client(conversation, until)


def stored(db_url: str, user_id: str) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT m.status, count(*) FROM messaging_message m "
            "JOIN conversations_conversation c ON c.id = m.conversation_id "
            "WHERE c.owner_id = %s AND m.role = 'assistant' GROUP BY m.status",
            (user_id,),
        ).fetchall()
    return {str(status): int(count) for status, count in rows}


def rss_window(samples: list[tuple[float, int]], start: float, end: float) -> float:
    window = [rss for at, rss in samples if start <= at < end]
    return statistics.fmean(window) if window else float("nan")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    seconds = args.minutes * 60
    db_url = database_url("chatapi_soak")
    upstream = Upstream(ttft=0.05, rate=args.rate, chunks=args.chunks)
    env = bench_server_env(db_url, upstream.port)
    run_django(env, "manage.py", "migrate", "--no-input", "-v", "0")
    data = json.loads(run_django(env, "-m", "bench.seed", str(args.streams + 1), "0"))
    token = bench_token(data["user_id"])
    api = Api(env, args.workers)
    soak = Soak(api, token, data["conversations"][: args.streams], args.chunks)
    try:
        progress(f"soak: {args.streams} streams for {args.minutes} min on {args.workers} workers")
        await soak.run(seconds)
        # Let the last generations store their answers.
        await asyncio.sleep(2)
    finally:
        api.stop()
        upstream.stop()
    statuses = stored(db_url, data["user_id"])
    first = rss_window(soak.rss, WARM_UP_SECONDS, WARM_UP_SECONDS + 60)
    last = rss_window(soak.rss, seconds - 60, seconds)
    growth = (last - first) / first
    checks = {
        "no errors": not soak.errors,
        "every answer stored complete": statuses == {"complete": soak.streams},
        f"RSS flat (within {args.rss_margin:.0%})": abs(growth) <= args.rss_margin,
    }
    return {
        "mode": "soak",
        "started_at": datetime.now(UTC).isoformat(),
        "minutes": args.minutes,
        "concurrent_streams": args.streams,
        "workers": args.workers,
        "chunks_per_stream": args.chunks,
        "streams": soak.streams,
        "streams_per_second": round(soak.streams / seconds, 1),
        "errors": len(soak.errors),
        "first_errors": soak.errors[:5],
        "stored": statuses,
        "rss_mb_first_minute": round(first / 2**20, 1),
        "rss_mb_last_minute": round(last / 2**20, 1),
        "rss_growth": round(growth, 4),
        "rss_mb_samples": [[round(at), round(rss / 2**20, 1)] for at, rss in soak.rss],
        "checks": checks,
        "passed": all(checks.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--streams", type=int, default=200, help="concurrent clients")
    parser.add_argument("--workers", type=int, default=2, help="daphne processes")
    parser.add_argument("--chunks", type=int, default=40, help="chunks per answer")
    parser.add_argument("--rate", type=float, default=50.0, help="upstream chunks per second")
    parser.add_argument("--rss-margin", type=float, default=0.05)
    args = parser.parse_args()
    if args.minutes * 60 < WARM_UP_SECONDS + 120:
        parser.error("--minutes must leave a minute after the warm-up and a last minute (3+)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(main_async(args))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-soak.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    for name, ok in results["checks"].items():
        print(f"{'pass' if ok else 'FAIL'}  {name}")  # noqa: T201
    print(  # noqa: T201
        f"{results['streams']} streams ({results['streams_per_second']}/s), "
        f"{results['errors']} errors, stored {results['stored']}, RSS "
        f"{results['rss_mb_first_minute']} -> {results['rss_mb_last_minute']} MB "
        f"({results['rss_growth']:+.2%})\n{Path(path).relative_to(RESULTS.parent.parent)}"
    )
    sys.exit(0 if results["passed"] else 1)


if __name__ == "__main__":
    main()
