"""The relay's cost per chunk for two or more checkouts, alternated in one sitting:
``python -m bench.relay_ab --app /tmp/before --app /tmp/after [--rounds 4]``.

The full benchmark measures a change to the relay once per run, among minutes of other
loads, and a busy moment of the machine moves one run's figure by a third. This measures
only the relay (``bench.run``'s paced and burst loads, the same code), one checkout after the
other, ``--rounds`` times over, on one database and one fake upstream, and prints each
checkout's medians: server CPU per relayed chunk (paced and in bursts) and the fixed part
per stream. The machine's noise is then spread over every checkout alike.
"""

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import run
from bench.run import (
    PACED_STREAMS,
    RESULTS,
    Api,
    Bench,
    Upstream,
    _relay_body,
    _relay_round,
    bench_token,
    database_url,
    run_django,
    server_env,
)


async def measure(apps: list[Path], rounds: int, streams: int, chunks: tuple[int, int]) -> Any:
    db_url = database_url()
    upstream = Upstream()
    env = server_env(db_url, upstream.port)
    run.APP = apps[0]
    run_django(env, "manage.py", "migrate", "--no-input", "-v", "0")
    data = json.loads(run_django(env, "-m", "bench.seed", str(streams + 21), "1000"))
    workers = os.cpu_count() or 1
    figures: dict[str, dict[str, list[float]]] = {
        str(app): {"paced_us": [], "burst_us": [], "paced_fixed_ms": []} for app in apps
    }
    try:
        for round_ in range(rounds):
            for app in apps:
                run.APP = app
                api = Api(env, workers)
                bench = Bench(api, upstream.port, bench_token(data["user_id"]), data)
                try:
                    await bench.concurrent(20, 0, _relay_body(chunks[0], paced=False))  # warm up
                    burst = await _relay_round(bench, streams, chunks, paced=False)
                    paced = await _relay_round(bench, PACED_STREAMS, chunks, paced=True)
                finally:
                    api.stop()
                mine = figures[str(app)]
                mine["burst_us"].append(burst["cpu_us_per_chunk_marginal"])
                mine["paced_us"].append(paced["cpu_us_per_chunk_marginal"])
                mine["paced_fixed_ms"].append(paced["cpu_ms_per_stream_fixed"])
                print(  # noqa: T201
                    f"round {round_ + 1} {app}: paced {paced['cpu_us_per_chunk_marginal']} us, "
                    f"burst {burst['cpu_us_per_chunk_marginal']} us, "
                    f"fixed {paced['cpu_ms_per_stream_fixed']} ms",
                    flush=True,
                )
    finally:
        upstream.stop()
    return figures


def commit_of(app: Path) -> str:
    run.APP = app
    return run.app_commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", type=Path, action="append", required=True)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--streams", type=int, default=100, help="burst streams")
    args = parser.parse_args()
    apps = [app.resolve() for app in args.app]
    started = time.perf_counter()
    figures = asyncio.run(measure(apps, args.rounds, args.streams, (20, 120)))
    print("\ncheckout: median paced us / burst us / paced fixed ms per stream")  # noqa: T201
    summary = {}
    for app, values in figures.items():
        summary[app] = {name: statistics.median(v) for name, v in values.items()}
        print(  # noqa: T201
            f"{app} ({commit_of(Path(app))}): {summary[app]['paced_us']} / "
            f"{summary[app]['burst_us']} / {summary[app]['paced_fixed_ms']}"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-relay-ab.json"
    path.write_text(
        json.dumps(
            {
                "machine": run.machine(),
                "rounds": args.rounds,
                "figures": figures,
                "medians": summary,
                "commits": {app: commit_of(Path(app)) for app in figures},
                "duration_seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"{path.relative_to(run.REPO)}")  # noqa: T201


if __name__ == "__main__":
    main()
