"""The fake Groq server from the tests, as a process of its own for the benchmark:
``python -m bench.upstream --port P --ttft 0.05 --rate 20 --chunks 200 --tokens-per-chunk 1``.
"""

import argparse
import signal
import threading

from testsupport.fake_groq import FakeGroq, Reply


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds to the first chunk")
    parser.add_argument("--rate", type=float, default=0.0, help="chunks per second (0: burst)")
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    args = parser.parse_args()
    word = " tok" * args.tokens_per_chunk
    fake = FakeGroq()
    fake.default_reply = Reply(
        text=[word] * args.chunks,
        ttft=args.ttft,
        interval=1.0 / args.rate if args.rate else 0.0,
        completion_tokens=args.chunks * args.tokens_per_chunk,
    )
    fake.start()
    print(fake.port, flush=True)  # noqa: T201 - the parent reads the port
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    fake.stop()


if __name__ == "__main__":
    main()
