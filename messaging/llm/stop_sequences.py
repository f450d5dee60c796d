"""Stop sequences, enforced on the streamed text.

Providers take a ``stop`` list too, but cut the text without saying which sequence matched,
and Anthropic's answer names it (``stop_reason: "stop_sequence"``, ``stop_sequence``). So the
sequences are not sent upstream: the answer's text is watched as it streams, ends exactly
before the first match, and the upstream request is closed there.

"First" is the match that ends first, as a model writing one token at a time would meet it
(of ``["bc", "abcd"]`` in ``"abcd"``, ``"bc"``); of two ending at the same place, the longer.
The result does not depend on how the text was cut into chunks.
"""

import contextlib
from collections.abc import AsyncGenerator, Sequence

from messaging.llm.base import Finish, StreamEvent, TextDelta

STOP_SEQUENCE_REASON = "stop_sequence"


class StopSequenceMatcher:
    """Text in, chunk by chunk; out comes the text that can be shown now. A tail that could
    still begin a match is held back until the next chunk settles it (``flush`` gives it
    back when the text ends); after a match, ``matched`` names the sequence and nothing
    more comes out."""

    __slots__ = ("_held", "_sequences", "matched")

    def __init__(self, sequences: Sequence[str]) -> None:
        self._sequences = tuple(sequence for sequence in sequences if sequence)
        self._held = ""
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        if self.matched is not None:
            return ""
        # A match that ended in earlier text was found then; one that started there began in
        # the held tail (everything before it could start no sequence).
        buffer = self._held + text
        best: tuple[int, int, str] | None = None  # (end, start, sequence)
        for sequence in self._sequences:
            start = buffer.find(sequence)
            if start >= 0:
                candidate = (start + len(sequence), start, sequence)
                if best is None or candidate < best:
                    best = candidate
        if best is not None:
            self.matched = best[2]
            self._held = ""
            return buffer[: best[1]]
        held = self._open_prefix(buffer)
        self._held = buffer[len(buffer) - held :]
        return buffer[: len(buffer) - held]

    def flush(self) -> str:
        """The held tail, once no more text will come (it was no match after all)."""
        held, self._held = self._held, ""
        return held

    def _open_prefix(self, buffer: str) -> int:
        """The length of the longest end of ``buffer`` that begins some sequence."""
        longest = 0
        for sequence in self._sequences:
            for length in range(min(len(sequence) - 1, len(buffer)), longest, -1):
                if buffer.endswith(sequence[:length]):
                    longest = length
                    break
        return longest


def stop_sequences_apply(
    events: AsyncGenerator[StreamEvent], sequences: Sequence[str]
) -> AsyncGenerator[StreamEvent]:
    """A provider's stream with ``sequences`` enforced on its text: at a match, the text
    before it, then ``Finish("stop_sequence", stop_sequence=...)``, and the provider's stream
    is closed (with it, the upstream request). Without sequences, ``events`` itself."""
    if not any(sequences):
        return events
    return _enforce(events, StopSequenceMatcher(sequences))


async def _enforce(
    events: AsyncGenerator[StreamEvent], matcher: StopSequenceMatcher
) -> AsyncGenerator[StreamEvent]:
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, TextDelta):
                shown = matcher.feed(event.text)
                if shown:
                    yield TextDelta(shown)
                if matcher.matched is not None:
                    yield Finish(STOP_SEQUENCE_REASON, stop_sequence=matcher.matched)
                    return
                continue
            # Anything else ends the text (for now): what was held back was no match.
            held = matcher.flush()
            if held:
                yield TextDelta(held)
            yield event
