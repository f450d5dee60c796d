"""The fake Groq server from the tests, as a process of its own for the benchmark:
``python -m bench.upstream --port P --ttft 0.05 --rate 20 --chunks 200 --tokens-per-chunk 1``.

Two knobs ride on request fields the API forwards as they are, so that one server can serve
loads that differ only in them (the relay measurement alternates them on one API process):
``max_completion_tokens`` (the send's ``max_output_tokens``) is the number of chunks, and a
``temperature`` of exactly 1 paces them at ``--paced-rate`` a second instead of ``--rate``.
"""

import argparse
import asyncio
import signal
import threading
from typing import Any

from testsupport.fake_groq import FakeGroq, Reply

PACED_TEMPERATURE = 1.0


class BenchUpstream(FakeGroq):
    def __init__(self, *, tokens_per_chunk: int, rate: float, paced_rate: float) -> None:
        super().__init__()
        self._word = " tok" * tokens_per_chunk
        self._tokens_per_chunk = tokens_per_chunk
        self._interval = 1.0 / rate if rate else 0.0
        self._paced_interval = 1.0 / paced_rate if paced_rate else 0.0
        self._replies: dict[tuple[int, float], Reply] = {}
        self._encoded_by_reply: dict[tuple[str, int], list[tuple[str, bytes]]] = {}

    def reply(self, chunks: int, interval: float, ttft: float) -> Reply:
        key = (chunks, interval)
        if key not in self._replies:
            self._replies[key] = Reply(
                text=[self._word] * chunks,
                ttft=ttft,
                interval=interval,
                completion_tokens=chunks * self._tokens_per_chunk,
            )
        return self._replies[key]

    async def _stream(
        self, writer: asyncio.StreamWriter, request: dict[str, Any], reply: Reply
    ) -> bool:
        if reply is self.default_reply and not self.replies:
            chunks = request.get("max_completion_tokens") or len(reply.text)
            paced = request.get("temperature") == PACED_TEMPERATURE
            reply = self.reply(
                int(chunks), self._paced_interval if paced else self._interval, reply.ttft
            )
        return await super()._stream(writer, request, reply)

    def _encoded_chunks(self, model: str, reply: Reply) -> list[tuple[str, bytes]]:
        # Each reply encoded once (the base class keeps one reply per model).
        key = (model, id(reply))
        if key not in self._encoded_by_reply:
            self._encoded_by_reply[key] = list(self._chunks(model, reply))
        return self._encoded_by_reply[key]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds to the first chunk")
    parser.add_argument("--rate", type=float, default=0.0, help="chunks per second (0: burst)")
    parser.add_argument(
        "--paced-rate", type=float, default=50.0, help="chunks per second at temperature 1"
    )
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    args = parser.parse_args()
    fake = BenchUpstream(
        tokens_per_chunk=args.tokens_per_chunk, rate=args.rate, paced_rate=args.paced_rate
    )
    fake.default_reply = fake.reply(args.chunks, fake._interval, args.ttft)
    fake.start()
    print(fake.port, flush=True)  # noqa: T201 - the parent reads the port
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    fake.stop()


if __name__ == "__main__":
    main()
