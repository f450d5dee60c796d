"""Where an open stream's memory is: ``python -m bench.memory [--streams N] [--frames F]``.

Runs the benchmark's memory measure (``bench.run``'s tracemalloc accounting) on one API
process with allocation tracebacks kept (``CHATAPI_TRACE_FRAMES``), then prints the lines of
code whose allocations grew between the idle snapshot and the one with the streams open,
per open stream, largest first. Slower than ``bench.run`` (tracebacks cost), and only for
reading: the figure of record is ``bench.run``'s.
"""

import argparse
import asyncio
import json
import tracemalloc
from pathlib import Path
from typing import Any

from bench import run


class _NoApi:
    """Stands for the API until ``stream_memory`` starts its traced one."""


_IGNORED = (tracemalloc.Filter(False, tracemalloc.__file__),)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    db_url = run.database_url()
    upstream = run.Upstream(chunks=20)
    env = run.server_env(db_url, upstream.port)
    run.run_django(env, "manage.py", "migrate", "--no-input", "-v", "0")
    data: dict[str, Any] = json.loads(
        run.run_django(env, "-m", "bench.seed", str(args.streams + 21), "0")
    )
    bench = run.Bench(_NoApi(), upstream.port, run.bench_token(data["user_id"]), data)  # type: ignore[arg-type]
    try:
        result = asyncio.run(run.stream_memory(bench, env, 1, args.streams, args.frames))
    finally:
        upstream.stop()
    print(json.dumps(result))  # noqa: T201
    idle, busy = sorted(run.RESULTS.glob("trace.*.snapshot"), key=lambda p: p.stat().st_mtime)[-2:]
    opened = int(busy.name.split(".")[-2]) - int(idle.name.split(".")[-2])
    before = tracemalloc.Snapshot.load(str(idle)).filter_traces(_IGNORED)
    after = tracemalloc.Snapshot.load(str(busy)).filter_traces(_IGNORED)
    for key in ("lineno", "traceback"):
        print(f"\nper open stream ({opened}), by {key}:")  # noqa: T201
        for stat in after.compare_to(before, key)[: args.top]:
            if stat.size_diff <= 0:
                continue
            where = stat.traceback.format(most_recent_first=True)[: 2 * args.frames]
            text = "\n      ".join(line.strip() for line in where)
            print(f"{stat.size_diff / opened:9.0f} B {stat.count_diff / opened:6.1f}  {text}")  # noqa: T201
    for path in run.RESULTS.glob("trace.*"):
        Path(path).unlink()


if __name__ == "__main__":
    main()
