"""Where a streamed turn's time to first token goes: ``python -m bench.timeline``.

Starts the benchmark's fake upstream and one API process whose send path marks its steps
(``bench/tracing/chatapi_timeline.py``), sends sequential streamed turns (each after a call
to the upstream directly, as ``bench.run``'s sequential run does) and prints, for each step,
the median time from the client's send, and the step's own median share. The summary goes to
``bench/results/timeline.txt``. ``--app DIR`` measures another checkout.
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import time
from pathlib import Path
from typing import Any

from bench import run
from bench.run import RESULTS, Api, Bench, Upstream, bench_token, database_url, run_django

TRACE_FILE = RESULTS / "timeline"


async def turns(bench: Bench, count: int) -> list[tuple[int, int, float]]:
    """``(sent, first token, direct time to first token)`` per turn, in ns and seconds."""
    for index in range(20):  # warm-up: connections, caches, prepared statements
        await bench.send(bench.conversations[index % 20])
    out = []
    for index in range(count):
        direct = await bench.direct()
        sent = time.perf_counter_ns()
        result = await bench.send(bench.conversations[index % 20])
        if result.ttft is None or direct.ttft is None:
            raise RuntimeError(f"turn {index} failed: {result.status} {result.error}")
        out.append((sent, sent + int(result.ttft * 1e9), direct.ttft))
    return out


def steps(
    marks: list[tuple[str, int]], sent: list[tuple[int, int, float]]
) -> dict[str, list[float]]:
    """Each step's times (ms after the client's send), the first of each label in a turn."""
    times: dict[str, list[float]] = {}
    position = 0
    for index, (start, first_token, _) in enumerate(sent):
        end = sent[index + 1][0] if index + 1 < len(sent) else 1 << 62
        while position < len(marks) and marks[position][1] < start:
            position += 1
        seen: dict[str, int] = {}
        while position < len(marks) and marks[position][1] < end:
            seen.setdefault(*marks[position])
            position += 1
        seen["the first token at the client"] = first_token
        for label, at in seen.items():
            times.setdefault(label, []).append((at - start) / 1e6)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--app", type=Path, help="another checkout's API (a git worktree)")
    args = parser.parse_args()
    if args.app:
        run.APP = args.app.resolve()

    db_url = database_url()
    upstream = Upstream(chunks=20)
    env = run.server_env(db_url, upstream.port)
    env["PYTHONPATH"] = str(run.REPO / "bench" / "tracing")
    env["CHATAPI_TIMELINE_FILE"] = str(TRACE_FILE)
    run_django(env, "manage.py", "migrate", "--no-input", "-v", "0")
    data: dict[str, Any] = json.loads(run_django(env, "-m", "bench.seed", "60", "2000"))
    api = Api(env, 1, application="chatapi_timeline:application")
    bench = Bench(api, upstream.port, bench_token(data["user_id"]), data)
    pid = api.processes[0].pid
    dump = Path(f"{TRACE_FILE}.{pid}")
    try:
        sent = asyncio.run(turns(bench, args.turns))
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not dump.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the dump is written whole
        marks = [(label, at) for label, at in json.loads(dump.read_text())]
    finally:
        api.stop()
        upstream.stop()
        dump.unlink(missing_ok=True)
    times = steps(marks, sent)
    order = sorted(times, key=lambda label: statistics.median(times[label]))
    direct = statistics.median(d for _, _, d in sent) * 1000
    head = (
        f"{args.turns} sequential streamed turns, one server process; direct upstream time "
        f"to first token {direct:.2f} ms p50 (what a client of the upstream waits)"
    )
    lines = [
        head,
        "",
        f"{'step':58} {'ms after send':>13} {'step':>7}",
    ]
    previous = 0.0
    for label in order:
        at = statistics.median(times[label])
        share = f"{at - previous:+.2f}" if len(times[label]) * 2 >= args.turns else "(some)"
        lines.append(f"{label:58} {at:13.2f} {share:>7}")
        previous = at
    first = statistics.median(times["the first token at the client"])
    lines += ["", f"added time to first token p50: {first - direct:.2f} ms"]
    summary = "\n".join(lines)
    (RESULTS / "timeline.txt").write_text(summary + "\n")
    print(summary)  # noqa: T201


if __name__ == "__main__":
    main()
