"""Stop sequences on streamed text: the answer ends exactly before the first match, however
the text was cut into chunks, and the provider's stream is closed there."""

import asyncio
from collections.abc import AsyncGenerator

import pytest

from messaging.llm.base import Finish, Started, StreamEvent, TextDelta, Usage
from messaging.llm.stop_sequences import StopSequenceMatcher, stop_sequences_apply


def shown(sequences: list[str], chunks: list[str]) -> tuple[list[str], str | None]:
    """What the matcher lets out for each chunk (then the flushed tail, when no match)."""
    matcher = StopSequenceMatcher(sequences)
    out = [matcher.feed(chunk) for chunk in chunks]
    if matcher.matched is None:
        out.append(matcher.flush())
    return out, matcher.matched


def test_the_text_ends_before_a_match_inside_one_chunk() -> None:
    assert shown(["END"], ["Hello END world"]) == (["Hello "], "END")


def test_a_match_split_across_chunks_is_found_and_its_start_is_held_back() -> None:
    assert shown(["END"], ["Hello E", "N", "D world"]) == (["Hello ", "", ""], "END")


def test_a_held_back_start_that_is_no_match_comes_out_with_the_next_chunk() -> None:
    assert shown(["END"], ["Hello E", "NOUGH"]) == (["Hello ", "ENOUGH", ""], None)


def test_a_held_back_tail_comes_out_when_the_text_ends() -> None:
    assert shown(["END"], ["Hello EN"]) == (["Hello ", "EN"], None)


def test_without_a_match_the_text_is_unchanged() -> None:
    assert shown(["###"], ["one ", "two"]) == (["one ", "two", ""], None)


def test_the_match_that_ends_first_wins() -> None:
    # "bc" is complete before "abcd" is, as a model writing token by token meets them
    assert shown(["abcd", "bc"], ["xab", "cd"]) == (["x", "a"], "bc")


def test_of_two_matches_ending_together_the_longer_wins() -> None:
    assert shown(["c", "bc"], ["abc"]) == (["a"], "bc")


def test_nothing_comes_out_after_a_match() -> None:
    matcher = StopSequenceMatcher(["."])

    assert (matcher.feed("One. Two."), matcher.feed("Three."), matcher.flush()) == ("One", "", "")


def test_a_match_in_the_first_characters_leaves_an_empty_answer() -> None:
    assert shown(["\n\n"], ["\n", "\nHello"]) == (["", ""], "\n\n")


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_any_chunking_gives_the_same_answer(size: int) -> None:
    # given
    text = "The plan: step one; step two. <|stop|> never shown"
    chunks = [text[i : i + size] for i in range(0, len(text), size)]

    # when
    out, matched = shown(["<|stop|>", "step three"], chunks)

    # then
    assert ("".join(out), matched) == ("The plan: step one; step two. ", "<|stop|>")


def test_unicode_sequences_match_on_characters() -> None:
    assert shown(["🛑"], ["naïve ", "🛑 rest"]) == (["naïve ", ""], "🛑")


class Source:
    """A provider's stream that records whether it was closed."""

    def __init__(self, events: list[StreamEvent]) -> None:
        self.events = events
        self.closed = False

    async def stream(self) -> AsyncGenerator[StreamEvent]:
        try:
            for event in self.events:
                yield event
        finally:
            self.closed = True


async def drain(events: AsyncGenerator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in events]


def test_a_stream_stops_at_the_match_and_closes_the_provider() -> None:
    # given
    source = Source(
        [
            Started(model="m"),
            TextDelta("Answer: 42"),
            TextDelta(" STO"),
            TextDelta("P and more"),
            TextDelta("never read"),
            Usage(10, 5),
            Finish("end_turn"),
        ]
    )

    # when
    events = asyncio.run(drain(stop_sequences_apply(source.stream(), ["STOP"])))

    # then
    assert events == [
        Started(model="m"),
        TextDelta("Answer: 42"),
        TextDelta(" "),
        Finish("stop_sequence", stop_sequence="STOP"),
    ]
    assert source.closed


def test_a_stream_without_a_match_gives_back_what_it_held_before_it_ends() -> None:
    # given
    source = Source([Started(model="m"), TextDelta("ST"), Usage(10, 5), Finish("end_turn")])

    # when
    events = asyncio.run(drain(stop_sequences_apply(source.stream(), ["STOP"])))

    # then
    assert events == [Started(model="m"), TextDelta("ST"), Usage(10, 5), Finish("end_turn")]


def test_without_stop_sequences_the_stream_is_the_providers_own() -> None:
    source = Source([Started(model="m")])
    stream = source.stream()

    assert stop_sequences_apply(stream, []) is stream
