"""What one turn costs the shared services, for the capacity model (docs/scaling.md):
``python -m bench.capacity`` (about a minute; not in CI).

One server process, the fake upstream, and a PostgreSQL cluster and a redis-server of the run's
own (as ``make chaos``: nothing else writes to them). Two rounds of ``--turns`` streamed turns
that differ only in chunks per answer; before and after each, the run reads:

- PostgreSQL: the WAL position (``pg_current_wal_lsn()``), committed transactions and rows
  written (``pg_stat_database``), the statements the server received (``log_statement = all``
  in the cluster's log), and the size of every table with its indexes;
- Redis: commands by name (``INFO commandstats``) and memory (``INFO memory``), and
  ``MEMORY USAGE`` of the kept event logs;
- the server process's CPU time.

Per turn (the fixed part) and per chunk (the marginal part, between the rounds), printed and
written to bench/results/capacity.json.
"""

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench.chaos import Server, private_services
from bench.client import request
from bench.run import RESULTS, Upstream, bench_token, machine, progress, run_django
from bench.run import server_env as bench_server_env

REPO = Path(__file__).resolve().parent.parent
TABLES = (
    "messaging_message",
    "conversations_conversation",
    "usage_usagerecord",
    "usage_usagedaily",
    "usage_usagehourly",
    "usage_usageconversationday",
    "usage_budgetreservation",
    "messaging_generationworker",
)


def redis_command(port: int, *words: str) -> bytes:
    """One command over a plain socket, its whole reply (INFO and MEMORY USAGE are small)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            b"*%d\r\n" % len(words)
            + b"".join(b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode()) for w in words)
        )
        reply = b""
        while True:
            data = conn.recv(65536)
            reply += data
            if not data or (reply.endswith(b"\r\n") and _complete(reply)):
                return reply


def _complete(reply: bytes) -> bool:
    if reply.startswith(b"$"):
        size = int(reply[1 : reply.index(b"\r\n")])
        return size < 0 or len(reply) >= reply.index(b"\r\n") + 2 + size + 2
    return True


def redis_info(port: int, section: str) -> dict[str, str]:
    text = redis_command(port, "INFO", section).decode().split("\r\n", 1)[1]
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def redis_calls(port: int) -> dict[str, int]:
    calls = {}
    for name, value in redis_info(port, "commandstats").items():
        fields = dict(part.split("=") for part in value.split(","))
        calls[name.removeprefix("cmdstat_")] = int(fields["calls"])
    return calls


class Probe:
    def __init__(self, db_url: str, log_path: Path, redis_port: int, server: Server) -> None:
        self.db_url = db_url
        self.log_path = log_path
        self.redis_port = redis_port
        self.server = server

    def snapshot(self) -> dict[str, Any]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
            stats = conn.execute(
                "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted "
                "FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
            sizes = {
                table: conn.execute("SELECT pg_total_relation_size(%s)", [table]).fetchone()
                for table in TABLES
            }
        if lsn is None or stats is None or self.server.process is None:
            raise RuntimeError("nothing to measure")
        log = self.log_path.read_text(errors="replace")
        fields = Path(f"/proc/{self.server.process.pid}/stat").read_text()
        ticks = fields.rsplit(")", 1)[1].split()
        return {
            "lsn": lsn[0],
            "commits": stats[0],
            "rows_written": stats[1] + stats[2] + stats[3],
            "statements": log.count("LOG:  statement: ") + log.count("LOG:  execute "),
            "sizes": {table: size[0] for table, size in sizes.items() if size is not None},
            "redis_calls": redis_calls(self.redis_port),
            "redis_memory": int(redis_info(self.redis_port, "memory")["used_memory"]),
            "cpu_seconds": (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK"),
        }

    def wal_bytes(self, before: str, after: str) -> int:
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute("SELECT pg_wal_lsn_diff(%s, %s)", [after, before]).fetchone()
        return int(row[0]) if row is not None else 0


def difference(probe: Probe, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    calls = {
        name: after["redis_calls"].get(name, 0) - before["redis_calls"].get(name, 0)
        for name in after["redis_calls"]
    }
    calls.pop("info", None)  # the probe's own
    return {
        "wal_bytes": probe.wal_bytes(before["lsn"], after["lsn"]),
        "commits": after["commits"] - before["commits"],
        "rows_written": after["rows_written"] - before["rows_written"],
        "statements": after["statements"] - before["statements"],
        "table_bytes": {
            table: after["sizes"][table] - before["sizes"][table] for table in after["sizes"]
        },
        "redis_calls": {name: count for name, count in sorted(calls.items()) if count},
        "redis_memory_bytes": after["redis_memory"] - before["redis_memory"],
        "cpu_seconds": round(after["cpu_seconds"] - before["cpu_seconds"], 3),
    }


async def turns(port: int, token: str, conversations: list[str], concurrency: int) -> int:
    """One streamed turn in each conversation, ``concurrency`` at a time; returns chunks."""
    gate = asyncio.Semaphore(concurrency)
    auth = {"Authorization": f"Bearer {token}"}

    async def one(conversation: str) -> int:
        async with gate:
            result = await request(
                "127.0.0.1",
                port,
                "POST",
                f"/api/v1/conversations/{conversation}/messages",
                headers=auth,
                body={"content": "Hello", "stream": True},
            )
            if result.status != 200 or result.error:
                raise RuntimeError(f"a turn failed: {result.status} {result.error}")
            return result.chunks

    return sum(await asyncio.gather(*(one(c) for c in conversations)))


def per_turn_and_chunk(
    rounds: list[tuple[int, int, dict[str, Any]]], key: str
) -> tuple[float, float]:
    """(fixed per turn, marginal per chunk) of a figure, from two rounds of equal turns."""
    (n1, c1, d1), (_, c2, d2) = rounds
    marginal = (d2[key] - d1[key]) / (c2 - c1)
    return (d1[key] - marginal * c1) / n1, marginal


def log_memory(port: int) -> list[int]:
    keys = redis_command(port, "KEYS", "chatapi:gen:*").split(b"\r\n")
    names = [k.decode() for k in keys[2::2] if k]
    return [
        int(redis_command(port, "MEMORY", "USAGE", name, "SAMPLES", "0")[1:].split(b"\r\n")[0])
        for name in names
    ]


async def main_async(args: argparse.Namespace, log_dir: Path, postgres: Any, redis: Any) -> Any:
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        conn.execute("SELECT pg_reload_conf()")
    redis_port = int(redis.url.rsplit(":", 1)[1].split("/")[0])
    results: dict[str, Any] = {
        "mode": "capacity",
        "started_at": datetime.now(UTC).isoformat(),
        "machine": machine(),
        "turns_per_round": args.turns,
        "concurrency": args.concurrency,
        "rounds": [],
    }
    rounds: list[tuple[int, int, dict[str, Any]]] = []
    for index, chunks in enumerate(args.chunks):
        upstream = Upstream(ttft=0.01, rate=0.0, chunks=chunks)
        env = bench_server_env(postgres.url, upstream.port) | {"REDIS_URL": redis.url}
        seeded = json.loads(run_django(env, "-m", "bench.seed", str(args.turns + 21), "0"))
        server = Server(f"capacity-{index}", env, log_dir)
        try:
            token = bench_token(seeded["user_id"])
            conversations = seeded["conversations"]
            await turns(server.port, token, conversations[:20], 10)  # warm up
            redis_command(redis_port, "FLUSHALL")
            await asyncio.sleep(1)
            probe = Probe(postgres.url, postgres.dir / "server.log", redis_port, server)
            before = probe.snapshot()
            relayed = await turns(server.port, token, conversations[20:], args.concurrency)
            await asyncio.sleep(1)  # the last stores and log writes
            delta = difference(probe, before, probe.snapshot())
            sizes = log_memory(redis_port)
        finally:
            server.stop()
            upstream.stop()
        progress(f"capacity: {args.turns} turns of {chunks} chunks: {delta}")
        delta["chunks_relayed"] = relayed
        delta["event_log_bytes_mean"] = round(sum(sizes) / len(sizes)) if sizes else None
        delta["event_logs_kept"] = len(sizes)
        rounds.append((args.turns, relayed, delta))
        results["rounds"].append({"chunks_per_answer": chunks, **delta})

    per: dict[str, Any] = {}
    for key in ("wal_bytes", "commits", "rows_written", "statements", "cpu_seconds"):
        fixed, marginal = per_turn_and_chunk(rounds, key)
        per[key] = {"per_turn": round(fixed, 2), "per_chunk": round(marginal, 4)}
    (n1, c1, d1), (_, c2, d2) = rounds
    calls1, calls2 = sum(d1["redis_calls"].values()), sum(d2["redis_calls"].values())
    marginal = (calls2 - calls1) / (c2 - c1)
    per["redis_calls"] = {
        "per_turn": round((calls1 - marginal * c1) / n1, 2),
        "per_chunk": round(marginal, 4),
    }
    log1, log2 = d1["event_log_bytes_mean"], d2["event_log_bytes_mean"]
    chunk_bytes = (log2 - log1) / ((c2 - c1) / n1)
    per["event_log_bytes"] = {
        "per_log": round(log1 - chunk_bytes * c1 / n1),
        "per_chunk": round(chunk_bytes, 1),
    }
    per["table_bytes_per_turn"] = {
        table: round(d1["table_bytes"][table] / n1) for table in d1["table_bytes"]
    }
    results["per"] = per
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=200, help="turns per round")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--chunks", type=int, nargs=2, default=[20, 120])
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="chatapi-capacity-"))
    started = time.monotonic()
    postgres, redis, _ = private_services(log_dir)
    try:
        results = asyncio.run(main_async(args, log_dir, postgres, redis))
    finally:
        redis.kill()
        postgres.destroy()
    results["duration_seconds"] = round(time.monotonic() - started, 1)
    path = RESULTS / "capacity.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["per"], indent=2))  # noqa: T201
    print(path.relative_to(REPO), file=sys.stderr)  # noqa: T201


if __name__ == "__main__":
    main()
