"""Where a server process spends its CPU, per scenario: ``python -m bench.profile <scenario>``.

Starts the benchmark's fake upstream and one API process (the production configuration of
``bench.run``), drives one scenario at it, samples the process with py-spy (``--gil``: only
stacks holding the GIL, i.e. Python CPU), and prints the functions with the largest share of
samples, inclusive (the function and what it calls) and exclusive (the function itself).
The summary is also written to bench/results/profile-<scenario>.txt; the raw stacks go to
profile-<scenario>.raw.txt (not committed) for a flame graph (speedscope reads them). Needs
py-spy (requirements-dev.txt) and the right to ptrace the server (root, or
``kernel.yama.ptrace_scope=0``).

Scenarios: hello (GET /api/v1/ping), me (GET /api/v1/auth/me), list_one (a page of one
conversation), list_conversations, list_messages, usage_stats,
stream (sequential streamed turns in one conversation), turns (32 clients each sending in the
next of the seeded conversations: short histories), relay (concurrent streams of many chunks:
the per-chunk path; ``--rate`` paces them).
"""

import argparse
import asyncio
import collections
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.client import request
from bench.run import (
    REPO,
    RESULTS,
    Api,
    Bench,
    Upstream,
    bench_token,
    database_url,
    run_django,
    server_env,
)

PATHS = {
    "hello": "/api/v1/ping",
    "list_conversations": "/api/v1/conversations?limit=20",
    "list_one": "/api/v1/conversations?limit=1",
    "me": "/api/v1/auth/me",
    "list_messages": "/api/v1/conversations/{history}/messages?limit=20",
    "usage_stats": "/api/v1/usage/stats",
}


async def drive(bench: Bench, scenario: str, seconds: float, clients: int) -> int:
    """Run the scenario for ``seconds``; the number of requests (or streams) completed."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def get(path: str) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            result = await request("127.0.0.1", bench.api.port, "GET", path, headers=bench.auth)
            done += result.status == 200

    async def stream(index: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            result = await bench.send(bench.conversations[index % len(bench.conversations)])
            done += result.status == 200

    if scenario in PATHS:
        path = PATHS[scenario].format(history=bench.history_conversation)
        await asyncio.gather(*(get(path) for _ in range(clients)))
    elif scenario == "stream":
        await stream(0)
    elif scenario == "turns":
        # Short histories: client i sends in conversations i, i + clients, ... in turn (its
        # own, so that no two clients meet in one conversation).

        async def rotating(index: int) -> None:
            nonlocal done
            mine = bench.conversations[index :: max(clients, 1)]
            turn = 0
            while time.perf_counter() < deadline:
                done += (await bench.send(mine[turn % len(mine)])).status == 200
                turn += 1

        await asyncio.gather(*(rotating(i) for i in range(clients)))
    else:
        await asyncio.gather(*(stream(i) for i in range(clients)))
    return done


def summarize(raw: Path, top: int) -> list[str]:
    """Inclusive and exclusive shares of the samples by function, from py-spy's raw stacks
    (``frame;frame;... count`` per line, outermost first)."""
    inclusive: collections.Counter[str] = collections.Counter()
    exclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [
            frame.split(" (")[0]
            + " ("
            + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
            + ")"
            for frame in stack.split(";")
        ]
        exclusive[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples"]
    for title, counter in (("inclusive", inclusive), ("exclusive", exclusive)):
        lines.append(f"\n{title}:")
        lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in counter.most_common(top)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=[*PATHS, "stream", "turns", "relay"])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--chunks", type=int, default=200, help="upstream chunks per answer")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="chunks a second per answer (0: in bursts)"
    )
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

    db_url = database_url()
    upstream = Upstream(chunks=args.chunks if args.scenario == "relay" else 20, rate=args.rate)
    env = server_env(db_url, upstream.port)
    run_django(env, "manage.py", "migrate", "--no-input", "-v", "0")
    data: dict[str, Any] = json.loads(run_django(env, "-m", "bench.seed", "60", "20000"))
    api = Api(env, 1)
    bench = Bench(api, upstream.port, bench_token(data["user_id"]), data)
    raw = RESULTS / f"profile-{args.scenario}.raw.txt"
    try:
        asyncio.run(drive(bench, args.scenario, 3.0, args.clients))  # warm-up
        record = ["record", "--gil", "--format", "raw", "--rate", "200", "--output", str(raw)]
        target = ["--duration", str(int(args.seconds)), "--pid", str(api.processes[0].pid)]
        spy = subprocess.Popen(  # noqa: S603 - py-spy from this venv
            [py_spy, *record, *target],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cpu_before = api.cpu_seconds()
        done = asyncio.run(drive(bench, args.scenario, args.seconds, args.clients))
        cpu = api.cpu_seconds() - cpu_before
        spy.wait(timeout=60)
    finally:
        api.stop()
        upstream.stop()
    head = f"{args.scenario}: {done} completed, {1000 * cpu / max(done, 1):.2f} ms CPU each"
    head += f" (sampled by py-spy, so slower than unprofiled), {args.clients} clients"
    summary = "\n".join([head, *summarize(raw, args.top)])
    (RESULTS / f"profile-{args.scenario}.txt").write_text(summary + "\n")
    print(summary)  # noqa: T201
    print(f"\nraw stacks: {raw.relative_to(REPO)}")  # noqa: T201


if __name__ == "__main__":
    main()
