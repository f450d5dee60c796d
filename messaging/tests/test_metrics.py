"""The generation's metrics (chatapi/metrics.py): active streams, time to first token, upstream
latency and errors, tokens and cost, measured on real turns against the fake Groq."""

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from prometheus_client import REGISTRY

from conversations.models import Conversation, Message
from testsupport.asgi import ASGIRequest, parse_sse
from testsupport.fake_groq import ErrorReply, FakeGroq, Reply
from testsupport.helpers import MODEL

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("groq_providers", "close_worker_connection"),
]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Samples:
    """Metric values now, to compare with later ones (the registry is the process's)."""

    NAMES = {
        "input": ("chatapi_tokens_total", {"model": MODEL, "direction": "input"}),
        "output": ("chatapi_tokens_total", {"model": MODEL, "direction": "output"}),
        "cost": ("chatapi_cost_usd_total", {"model": MODEL}),
        "ttft": ("chatapi_time_to_first_token_seconds_count", {"model": MODEL}),
        "upstream": ("chatapi_upstream_latency_seconds_count", {"provider": "groq"}),
        "active": ("chatapi_active_streams", {}),
        "rate_limited": (
            "chatapi_upstream_errors_total",
            {"provider": "groq", "type": "rate_limit_error"},
        ),
        "refused": (
            "chatapi_upstream_errors_total",
            {"provider": "groq", "type": "invalid_request_error"},
        ),
        "failed": ("chatapi_upstream_errors_total", {"provider": "groq", "type": "api_error"}),
    }

    def __init__(self) -> None:
        self.values = {key: sample(name, **labels) for key, (name, labels) in self.NAMES.items()}

    def __sub__(self, earlier: "Samples") -> dict[str, float]:
        return {key: self.values[key] - earlier.values[key] for key in self.values}


async def send(conversation: Conversation, auth: dict[str, str], body: dict[str, Any]) -> Any:
    return await ASGIRequest(
        "POST",
        f"/api/v1/conversations/{conversation.pk}/messages",
        headers=auth,
        json_body=body,
    ).start()


async def settled(conversation: Conversation) -> None:
    @sync_to_async
    def in_progress() -> bool:
        return Message.objects.filter(
            conversation=conversation, status=Message.Status.IN_PROGRESS
        ).exists()

    for _ in range(250):
        if not await in_progress():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the generation never settled")


async def active_streams_back_to(value: float) -> float:
    """The gauge once it has come back to ``value`` (a generation's task ends a moment after
    its message is stored and its stream has ended), or what it is after 5 s."""
    for _ in range(250):
        if sample("chatapi_active_streams") == value:
            break
        await asyncio.sleep(0.02)
    return sample("chatapi_active_streams")


async def test_a_streamed_turn_counts_tokens_cost_and_latencies(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    fake_groq.replies.append(Reply(text=["Hel", "lo", "!"], prompt_tokens=42))
    before = Samples()

    # when
    response = await send(conversation, auth, {"content": "Hi", "stream": True})
    events = parse_sse(await response.read())
    await settled(conversation)
    await active_streams_back_to(before.values["active"])

    # then
    assert events[-1].event == "message_stop"
    delta = Samples() - before
    # $0.075 and $0.30 per million input and output tokens
    assert Decimal(42) * Decimal("0.075") / 10**6 + Decimal(3) * Decimal("0.30") / 10**6 == (
        Decimal("0.0000040500")
    )
    assert delta.pop("cost") == pytest.approx(0.00000405, rel=1e-9)
    assert delta == {
        "input": 42.0,
        "output": 3.0,
        "ttft": 1.0,
        "upstream": 1.0,
        "active": 0.0,
        "rate_limited": 0.0,
        "refused": 0.0,
        "failed": 0.0,
    }


async def test_a_running_generation_is_an_active_stream(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a slow answer
    fake_groq.replies.append(Reply(text=["a", "b", "c"], interval=0.1))
    before = sample("chatapi_active_streams")

    # when
    response = await send(conversation, auth, {"content": "Hi", "stream": True})
    during = sample("chatapi_active_streams")
    await response.read()
    await settled(conversation)

    # then
    assert during - before == 1.0
    assert await active_streams_back_to(before) == before


async def test_each_failed_upstream_attempt_is_counted_by_type(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: rate limited twice (the first try and its one retry)
    fake_groq.replies.extend([ErrorReply(429, type="tokens"), ErrorReply(429, type="tokens")])
    before = Samples()

    # when
    response = await send(conversation, auth, {"content": "Hi"})
    await response.read()

    # then
    assert response.status == 429
    delta = Samples() - before
    assert (delta["rate_limited"], delta["upstream"], delta["ttft"], delta["active"]) == (
        2.0,
        2.0,
        0.0,
        0.0,
    )


async def test_a_refusal_and_a_failure_mid_stream_are_counted(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    fake_groq.replies.extend([ErrorReply(400, message="Bad model"), Reply(drop_after=2)])
    before = Samples()

    # when
    refused = await send(conversation, auth, {"content": "Hi"})
    await refused.read()
    dropped = await send(conversation, auth, {"content": "Hi", "stream": True})
    events = parse_sse(await dropped.read())
    await settled(conversation)

    # then
    assert refused.status == 400
    assert events[-1].event == "error"
    delta = Samples() - before
    assert (delta["refused"], delta["failed"], delta["rate_limited"]) == (1.0, 1.0, 0.0)
