"""The provider layer against a real HTTP server speaking Groq's wire format."""

import asyncio
import gc
import json
import time
from collections.abc import Coroutine
from typing import Any

import httpx
import orjson
import pytest

from messaging.llm.base import (
    ChatMessage,
    ChatRequest,
    Finish,
    ProviderError,
    ReasoningDelta,
    Started,
    StreamEvent,
    StreamFailed,
    TextDelta,
    UpstreamTimings,
    Usage,
)
from messaging.llm.openai_compat import GroqClient, ProviderSettings
from testsupport.fake_groq import ErrorReply, FakeGroq, Reply

REQUEST = ChatRequest(
    model="openai/gpt-oss-20b",
    messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")),
    temperature=0.5,
    max_output_tokens=100,
    reasoning_effort="low",
)


def client_for(fake: FakeGroq, **overrides: object) -> GroqClient:
    config = {
        "name": "groq",
        "base_url": fake.base_url,
        "api_key": "gsk_test",
        "read_timeout": 2.0,
        "retry_base_delay": 0.01,
        "retry_max_delay": 0.5,
        **overrides,
    }
    return GroqClient(ProviderSettings(**config))  # type: ignore[arg-type]


async def collect(client: GroqClient, request: ChatRequest = REQUEST) -> list[StreamEvent]:
    try:
        return [event async for event in client.stream(request)]
    finally:
        await client.aclose()


def run[T](coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_streams_typed_events_and_sends_the_openai_body(fake_groq: FakeGroq) -> None:
    # given
    fake_groq.replies.append(Reply(reasoning=["Think."], text=["Hel", "lo"], prompt_tokens=21))

    # when
    events = run(collect(client_for(fake_groq)))

    # then
    assert events == [
        Started(model="openai/gpt-oss-20b", upstream_id="req_fake"),
        ReasoningDelta("Think."),
        TextDelta("Hel"),
        TextDelta("lo"),
        Usage(input_tokens=21, output_tokens=3, timings=UpstreamTimings(0.01, 0.002, 0.03)),
        Finish("end_turn"),
    ]
    received = fake_groq.received[0]
    assert received.headers["authorization"] == "Bearer gsk_test"
    assert received.headers["content-type"] == "application/json"
    # Never a compressed event stream: each event would wait for the compressor.
    assert received.headers["accept-encoding"] == "identity"
    assert received.body == {
        "model": "openai/gpt-oss-20b",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.5,
        "max_completion_tokens": 100,
        "reasoning_effort": "low",
    }


def test_the_body_is_the_bytes_httpx_json_would_send(fake_groq: FakeGroq) -> None:
    body = client_for(fake_groq).request_body(
        ChatRequest(
            model="m",
            messages=(
                ChatMessage(role="system", content='Say "hi"\n\t\\ \u2028'),
                ChatMessage(role="user", content="h\u00e9llo \U0001f600 \x01 </script>"),
            ),
            temperature=0.7,
            max_output_tokens=4096,
            reasoning_effort=None,
        )
    )

    sent = orjson.dumps(body)

    # httpx.Request(json=...) encodes with these options (httpx/_content.py, encode_json)
    expected = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert sent == expected.encode()


@pytest.mark.parametrize(
    ("usage_form", "timings"),
    [
        ("both", UpstreamTimings(0.01, 0.002, 0.03)),
        ("x_groq", UpstreamTimings(0.01, 0.002, 0.03)),
        ("usage", None),
    ],
)
def test_reads_usage_in_either_form(
    fake_groq: FakeGroq, usage_form: str, timings: UpstreamTimings | None
) -> None:
    fake_groq.replies.append(Reply(usage_form=usage_form, prompt_tokens=7, completion_tokens=9))  # type: ignore[arg-type]

    events = run(collect(client_for(fake_groq)))

    assert [e for e in events if isinstance(e, Usage)] == [Usage(7, 9, timings=timings)]


@pytest.mark.parametrize("usage_form", ["both", "x_groq", "usage"])
def test_cached_prompt_tokens_are_read_from_either_usage_form(
    fake_groq: FakeGroq, usage_form: str
) -> None:
    # given: 1,024 of the 1,500 prompt tokens came from Groq's prompt cache
    fake_groq.replies.append(
        Reply(usage_form=usage_form, prompt_tokens=1500, completion_tokens=9, cached_tokens=1024)  # type: ignore[arg-type]
    )

    # when
    events = run(collect(client_for(fake_groq)))

    # then
    [usage] = [e for e in events if isinstance(e, Usage)]
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (1500, 1024, 9)


def test_groq_timings_are_read_from_x_groq_usage(fake_groq: FakeGroq) -> None:
    fake_groq.replies.append(Reply(queue_time=0.125, prompt_time=0.0042, completion_time=1.5))

    events = run(collect(client_for(fake_groq)))

    [usage] = [e for e in events if isinstance(e, Usage)]
    assert usage.timings == UpstreamTimings(
        queue_seconds=0.125, prompt_seconds=0.0042, completion_seconds=1.5
    )


def test_no_usage_reported_yields_no_usage_event(fake_groq: FakeGroq) -> None:
    fake_groq.replies.append(Reply(usage_form="none"))

    events = run(collect(client_for(fake_groq)))

    assert not [e for e in events if isinstance(e, Usage)]
    assert events[-1] == Finish("end_turn")


@pytest.mark.parametrize(("batch", "split"), [(5, False), (1, True), (3, True)])
def test_batched_and_split_chunks_parse_the_same(
    fake_groq: FakeGroq, batch: int, split: bool
) -> None:
    text = [f"w{i} " for i in range(12)]
    fake_groq.replies.append(Reply(text=text, batch=batch, split=split))

    events = run(collect(client_for(fake_groq)))

    assert [e.text for e in events if isinstance(e, TextDelta)] == text


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_maps_finish_reasons(fake_groq: FakeGroq, finish_reason: str, stop_reason: str) -> None:
    fake_groq.replies.append(Reply(finish_reason=finish_reason))

    events = run(collect(client_for(fake_groq)))

    assert events[-1] == Finish(stop_reason)


def test_x_groq_error_mid_stream_is_a_stream_failure(fake_groq: FakeGroq) -> None:
    fake_groq.replies.append(Reply(text=["a", "b", "c"], groq_error_after=2))

    events = run(collect(client_for(fake_groq)))

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a", "b"]
    assert events[-1] == StreamFailed("The model provider failed: upstream model crashed")


def test_malformed_chunk_mid_stream_is_a_stream_failure(fake_groq: FakeGroq) -> None:
    fake_groq.replies.append(Reply(text=["a", "b"], malformed_after=1))

    events = run(collect(client_for(fake_groq)))

    assert events[-1] == StreamFailed("The model provider sent a malformed chunk.")


def test_dropped_connection_mid_stream_is_a_stream_failure(fake_groq: FakeGroq) -> None:
    fake_groq.replies.append(Reply(text=["a", "b", "c"], drop_after=1))

    events = run(collect(client_for(fake_groq)))

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a"]
    assert isinstance(events[-1], StreamFailed)
    assert events[-1].error_type == "api_error"


def test_stall_past_read_timeout_is_a_timeout_failure(fake_groq: FakeGroq) -> None:
    fake_groq.replies.append(Reply(text=["a", "b"], stall_after=1))

    events = run(collect(client_for(fake_groq, read_timeout=0.3)))

    assert events[-1] == StreamFailed("The model provider stopped sending.", "timeout_error")


def test_a_stalled_stream_times_out_while_another_on_the_same_client_keeps_streaming(
    fake_groq: FakeGroq,
) -> None:
    # given: one client (one connection pool, one read-timeout watch), two answers at once:
    # one that stops sending after its first delta, one that takes 1 s in 0.1 s steps, five
    # times the read timeout in all
    fake_groq.replies.append(Reply(text=["a", "b"], stall_after=1))
    fake_groq.replies.append(Reply(text=[f"{i} " for i in range(10)], interval=0.1))
    client = client_for(fake_groq, read_timeout=0.2)

    async def both() -> tuple[list[StreamEvent], list[StreamEvent]]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        stalled = asyncio.ensure_future(collect_one(client))
        stalled.add_done_callback(lambda _: ended.append(loop.time() - started))
        await asyncio.sleep(0.05)  # the stalling reply is the first one taken
        slow = await collect_one(client)
        ended.append(loop.time() - started)
        await client.aclose()
        return await stalled, slow

    ended: list[float] = []

    # when
    failed, slow = run(both())

    # then: the stalled one failed on its timeout; the slow one, never silent that long, did not
    assert failed[-1] == StreamFailed("The model provider stopped sending.", "timeout_error")
    assert "".join(e.text for e in slow if isinstance(e, TextDelta)) == "".join(
        f"{i} " for i in range(10)
    )
    assert slow[-1] == Finish("end_turn")
    stalled_ended, slow_ended = ended
    assert stalled_ended < 0.7  # on its timeout, not when the other ended
    assert slow_ended > 0.9


async def collect_one(client: GroqClient) -> list[StreamEvent]:
    return [event async for event in client.stream(REQUEST)]


def test_stream_without_done_or_finish_is_a_failure(fake_groq: FakeGroq) -> None:
    fake_groq.replies.append(Reply(text=["a"], done=False, finish_reason=""))

    events = run(collect(client_for(fake_groq)))

    assert events[-1] == StreamFailed("The model provider ended the stream early.")


@pytest.mark.parametrize(
    ("upstream", "status", "error_type"),
    [
        (400, 400, "invalid_request_error"),
        (404, 400, "invalid_request_error"),
        (413, 413, "request_too_large"),
        (422, 400, "invalid_request_error"),
    ],
)
def test_refusals_are_not_retried_and_keep_the_message(
    fake_groq: FakeGroq, upstream: int, status: int, error_type: str
) -> None:
    fake_groq.replies.append(ErrorReply(upstream, message="Please reduce the length."))

    with pytest.raises(ProviderError) as raised:
        run(collect(client_for(fake_groq)))

    assert (raised.value.status, raised.value.error_type) == (status, error_type)
    assert raised.value.message == "Please reduce the length."
    assert len(fake_groq.received) == 1


def test_decommissioned_model_keeps_code(fake_groq: FakeGroq) -> None:
    fake_groq.replies.append(
        ErrorReply(
            400,
            message="The model `llama3-8b-8192` has been decommissioned",
            code="model_decommissioned",
        )
    )

    with pytest.raises(ProviderError) as raised:
        run(collect(client_for(fake_groq)))

    assert raised.value.code == "model_decommissioned"
    assert raised.value.status == 400


def test_invalid_key_is_502_without_echoing_the_provider(fake_groq: FakeGroq) -> None:
    with pytest.raises(ProviderError) as raised:
        run(collect(client_for(fake_groq, api_key="gsk_wrong_secret")))

    assert raised.value.status == 502
    assert raised.value.message == "The model provider (groq) rejected this server's credentials."
    assert "gsk_wrong_secret" not in str(raised.value)


@pytest.mark.parametrize("upstream", [429, 498, 500, 502, 503])
def test_transient_errors_are_retried_before_the_first_token(
    fake_groq: FakeGroq, upstream: int
) -> None:
    fake_groq.replies.extend([ErrorReply(upstream), ErrorReply(upstream), Reply(text=["ok"])])

    events = run(collect(client_for(fake_groq, max_retries=2)))

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["ok"]
    assert len(fake_groq.received) == 3


def test_retries_give_up_with_the_mapped_error(fake_groq: FakeGroq) -> None:
    fake_groq.replies.extend([ErrorReply(503)] * 3)

    with pytest.raises(ProviderError) as raised:
        run(collect(client_for(fake_groq, max_retries=2)))

    assert (raised.value.status, raised.value.error_type) == (529, "overloaded_error")
    assert len(fake_groq.received) == 3


def test_retry_after_is_honoured(fake_groq: FakeGroq) -> None:
    fake_groq.replies.extend(
        [
            ErrorReply(
                429, type="tokens", code="rate_limit_exceeded", headers={"retry-after": "0.3"}
            ),
            Reply(text=["ok"]),
        ]
    )

    started = time.perf_counter()
    events = run(collect(client_for(fake_groq)))
    elapsed = time.perf_counter() - started

    assert [e.text for e in events if isinstance(e, TextDelta)] == ["ok"]
    assert elapsed >= 0.3


def test_retry_after_beyond_the_cap_is_passed_to_the_client(fake_groq: FakeGroq) -> None:
    fake_groq.replies.append(
        ErrorReply(429, message="Rate limit reached", headers={"retry-after": "30"})
    )

    with pytest.raises(ProviderError) as raised:
        run(collect(client_for(fake_groq, retry_max_delay=1.0)))

    assert (raised.value.status, raised.value.retry_after) == (429, 30.0)
    assert len(fake_groq.received) == 1


def test_unreachable_provider_is_502_after_retries() -> None:
    config = ProviderSettings(
        name="groq",
        base_url="http://127.0.0.1:9/v1",
        api_key="gsk_test",
        max_retries=1,
        retry_base_delay=0.01,
    )

    with pytest.raises(ProviderError) as raised:
        run(collect(GroqClient(config)))

    assert (raised.value.status, raised.value.error_type) == (502, "api_error")


def test_slow_first_token_past_read_timeout_is_504(fake_groq: FakeGroq) -> None:
    fake_groq.replies.extend([Reply(ttft=1.0)] * 2)

    with pytest.raises(ProviderError) as raised:
        run(collect(client_for(fake_groq, read_timeout=0.2, max_retries=1)))

    assert (raised.value.status, raised.value.error_type) == (504, "timeout_error")


def test_closing_the_stream_closes_the_upstream_connection(fake_groq: FakeGroq) -> None:
    fake_groq.replies.append(Reply(text=["a"] * 50, interval=0.05))
    client = client_for(fake_groq)

    async def read_two_then_close() -> list[StreamEvent]:
        stream = client.stream(REQUEST)
        events = [await anext(stream), await anext(stream)]
        await stream.aclose()
        await client.aclose()
        return events

    events = run(read_two_then_close())

    assert events[1] == TextDelta("a")
    assert fake_groq.wait_for_disconnect(timeout=2.0)


def test_a_client_whose_event_loop_ended_closes_its_connections_quietly(
    fake_groq: FakeGroq, caplog: pytest.LogCaptureFixture
) -> None:
    # given: an answer read on a loop that then ends, its pooled connection still open
    client = client_for(fake_groq)

    async def answer(provider: GroqClient) -> list[StreamEvent]:
        return [event async for event in provider.stream(REQUEST)]

    run(answer(client))

    # when
    del client
    gc.collect()

    # then: no "Unclosed client session" / "Unclosed connector" from aiohttp
    assert [r.getMessage() for r in caplog.records if "Unclosed" in r.getMessage()] == []


def test_the_request_is_the_one_httpx_builds_and_the_upstreams_cookies_are_not_kept(
    fake_groq: FakeGroq,
) -> None:
    # given: a first attempt refused with a cookie set, the retry answered
    fake_groq.replies.append(
        ErrorReply(429, headers={"retry-after": "0", "set-cookie": "session=1; Path=/"})
    )
    fake_groq.replies.append(Reply(text=["Hi"]))

    # when
    events = run(collect(client_for(fake_groq)))

    # then: both requests carry the headers httpx's own request building gives them, the
    # retry no cookie
    assert any(isinstance(event, TextDelta) for event in events)
    plain = httpx.AsyncClient(
        base_url=fake_groq.base_url,
        headers={
            "Authorization": "Bearer gsk_test",
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",
        },
    )
    sent = orjson.dumps(fake_groq.received[0].body)
    built = plain.build_request("POST", "/chat/completions", content=sent)
    expected = {name.decode().lower(): value.decode() for name, value in built.headers.raw}
    assert [received.headers for received in fake_groq.received] == [expected, expected]
