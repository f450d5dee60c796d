"""Graceful shutdown of a real daphne process (chatapi/shutdown.py): SIGTERM with 50 streams
open. Answers that end within the grace period are delivered and stored complete; the rest
are stopped, stored ``incomplete`` with their partial text and an estimated ledger row, and
their clients get an ``error`` event; new requests meanwhile get a 503; nothing is left
``in_progress``; the process exits."""

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from accounts.models import User
from conversations.models import Message
from conversations.services import conversation_create
from testsupport.asgi import parse_sse
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.servers import LiveServer
from usage.models import UsageRecord

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live_database]

MODEL = "openai/gpt-oss-20b"
GRACE_SECONDS = 6.0
# Far longer than opening 50 streams can take on a loaded machine: cut by the grace period.
LONG_CHUNKS, SHORT_CHUNKS = 2000, 30
LONG, SHORT = 25, 25


def server(fake_groq: FakeGroq, tmp_path: Path, **env: str) -> LiveServer:
    return LiveServer(
        env={
            "GROQ_BASE_URL": fake_groq.base_url,
            "GROQ_API_KEY": "gsk_test",
            "LLM_MAX_RETRIES": "0",
            "RATE_LIMIT_CONCURRENT_STREAMS": "100",
            "RATE_LIMIT_SENDS_PER_MINUTE": "1000",
            "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
            "LOG_LEVEL": "WARNING",
            **env,
        },
        log_path=tmp_path / "server.log",
    )


class Stream:
    def __init__(self) -> None:
        self.body = b""
        self.ended_at: float | None = None


async def open_stream(
    client: httpx.AsyncClient, url: str, auth: dict[str, str], stream: Stream
) -> asyncio.Task[None]:
    """Start a streamed send; returns once its first event arrived, reading on in a task."""
    request = client.build_request(
        "POST", url, headers=auth, json={"content": "Hi", "stream": True}
    )
    response = await client.send(request, stream=True)
    assert response.status_code == 200, await response.aread()
    chunks = response.aiter_raw()
    while b"\n\n" not in stream.body:
        stream.body += await anext(chunks)

    async def read_rest() -> None:
        try:
            async for chunk in chunks:
                stream.body += chunk
        except httpx.HTTPError:
            pass  # the server closed the connection: what arrived is asserted on
        finally:
            stream.ended_at = time.monotonic()
            await response.aclose()

    return asyncio.create_task(read_rest())


async def first_refusal(
    client: httpx.AsyncClient, url: str, auth: dict[str, str], wait: float = 10.0
) -> httpx.Response:
    """GET ``url`` until the server answers 503 (it handles the signal a moment after it is
    sent), or the answer at ``wait``."""
    deadline = time.monotonic() + wait
    while True:
        response = await client.get(url, headers=auth)
        if response.status_code == 503 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.02)


def test_sigterm_lets_answers_finish_within_the_grace_then_stores_the_rest_incomplete(
    fake_groq: FakeGroq, tmp_path: Path, user: User, make_token
) -> None:
    # given: 25 long answers (100 s) and then 25 that end within the grace period (1.5 s)
    live = server(fake_groq, tmp_path)
    conversations = [conversation_create(owner=user, model=MODEL) for _ in range(LONG + SHORT)]
    fake_groq.replies.extend(
        [Reply(text=[f"l{i} " for i in range(LONG_CHUNKS)], interval=0.05) for _ in range(LONG)]
        + [Reply(text=[f"s{i} " for i in range(SHORT_CHUNKS)], interval=0.05) for _ in range(SHORT)]
    )
    auth = {"Authorization": f"Bearer {make_token(user)}"}
    streams = [Stream() for _ in conversations]

    async def scenario() -> tuple[float, httpx.Response, float]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            readers = [
                await open_stream(
                    client,
                    f"{live.url}/api/v1/conversations/{conversation.pk}/messages",
                    auth,
                    stream,
                )
                for conversation, stream in zip(conversations, streams, strict=True)
            ]
            # when: SIGTERM with all 50 streams open
            signalled_at = time.monotonic()
            live.process.send_signal(signal.SIGTERM)
            refused = await first_refusal(client, f"{live.url}/api/v1/conversations", auth)
            await asyncio.gather(*readers)
            exited = await asyncio.to_thread(live.process.wait, 30)
            assert exited == 0, exited
            return signalled_at, refused, time.monotonic()

    signalled_at, refused, exited_at = asyncio.run(scenario())

    # then: new work was refused while draining
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["message"].startswith("This server process is shutting")
    assert "shutdown drain done (0 streams still open)" in live.log()
    # the short answers were delivered whole, some of them after the signal
    for stream in streams[LONG:]:
        events = parse_sse(stream.body)
        assert [e.event for e in events][-2:] == ["message_delta", "message_stop"]
    assert any(s.ended_at is not None and s.ended_at > signalled_at for s in streams[LONG:])
    # the long ones ended with an error event once the grace period was over
    for stream in streams[:LONG]:
        events = parse_sse(stream.body)
        assert events[-1].event == "error"
        assert events[-1].data["error"]["message"].startswith("The server shut down")
        assert stream.ended_at is not None
        assert stream.ended_at - signalled_at >= GRACE_SECONDS - 0.5
    assert exited_at - signalled_at < GRACE_SECONDS + 20
    # and storage agrees: nothing in progress, every answer accounted for
    answers = {m.conversation_id: m for m in Message.objects.filter(role=Message.Role.ASSISTANT)}
    assert len(answers) == LONG + SHORT
    for conversation in conversations[LONG:]:
        answer = answers[conversation.pk]
        assert answer.status == Message.Status.COMPLETE
        assert answer.content == "".join(f"s{i} " for i in range(SHORT_CHUNKS))
    for conversation in conversations[:LONG]:
        answer = answers[conversation.pk]
        assert answer.status == Message.Status.INCOMPLETE
        assert answer.error == {
            "type": "api_error",
            "message": "The server shut down before the answer was finished; "
            "the partial answer was kept.",
        }
        assert answer.content.startswith("l0 l1 ")
        assert answer.content != "".join(f"l{i} " for i in range(LONG_CHUNKS))
        assert answer.usage_estimated is True
    ledger = UsageRecord.objects.filter(user=user)
    assert ledger.count() == LONG + SHORT
    assert ledger.filter(usage_estimated=True).count() == LONG
    assert not Message.objects.filter(status=Message.Status.IN_PROGRESS).exists()
