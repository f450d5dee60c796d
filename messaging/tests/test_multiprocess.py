"""Generations across real server processes: two daphne servers on loopback sharing the test
PostgreSQL and Redis, with the fake Groq upstream. Start a stream on one and resume it on the
other, cancel from the other, SIGKILL the generating one and watch the sweeper, retry an
idempotent send across them; and the single-process, in-memory mode.

These need Redis for the cross-process cases (CI sets REDIS_URL); the in-memory case always
runs."""

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from accounts.models import User
from conversations.models import Conversation, Message
from conversations.services import conversation_create
from messaging.eventlog import log_key
from testsupport.asgi import parse_sse
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.servers import LiveServer
from usage.models import UsageRecord

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live_database]

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="cross-process generations need Redis (set REDIS_URL; CI does)"
)
MODEL = "openai/gpt-oss-20b"
STALE_SECONDS = 3.0  # the servers' GENERATION_STALE_SECONDS (start_server)
# Room for a loaded machine (several test runs share two cores) on top of a bound.
SLACK_SECONDS = 2.0


@pytest.fixture
def start_server(fake_groq: FakeGroq, tmp_path: Path) -> Iterator[Any]:
    servers: list[LiveServer] = []

    def start(*, redis: bool = True, **overrides: str) -> LiveServer:
        env = {
            "GROQ_BASE_URL": fake_groq.base_url,
            "GROQ_API_KEY": "gsk_test",
            "LLM_MAX_RETRIES": "0",
            "GENERATION_HEARTBEAT_SECONDS": "0.2",
            "GENERATION_STALE_SECONDS": str(STALE_SECONDS),
            "LOG_LEVEL": "WARNING",
        }
        if redis and REDIS_URL:
            env["REDIS_URL"] = REDIS_URL
        server = LiveServer(env=env | overrides, log_path=tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def conversation(user: User) -> Conversation:
    return conversation_create(owner=user, model=MODEL)


@pytest.fixture
def auth(make_token, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user)}"}


def messages_url(server: LiveServer, conversation: Conversation) -> str:
    return f"{server.url}/api/v1/conversations/{conversation.pk}/messages"


def send_streaming(
    server: LiveServer, conversation: Conversation, auth: dict[str, str]
) -> contextlib.AbstractContextManager[httpx.Response]:
    """A streamed send of "Hi" to ``server``."""
    return httpx.stream(
        "POST",
        messages_url(server, conversation),
        headers=auth,
        json={"content": "Hi", "stream": True},
        timeout=10,
    )


def read_events(chunks: Iterator[bytes], count: int) -> bytes:
    """Read from a streaming response until ``count`` whole events have arrived."""
    received = b""
    for chunk in chunks:
        received += chunk
        if received.count(b"\n\n") >= count:
            break
    return received


def wait_for_status(message_id: uuid.UUID, wait: float = 10.0) -> Message:
    deadline = time.monotonic() + wait
    while True:
        message = Message.objects.get(pk=message_id)
        if message.status != Message.Status.IN_PROGRESS:
            return message
        assert time.monotonic() < deadline, f"{message_id} still in progress"
        time.sleep(0.05)


def assistant_id(received: bytes) -> uuid.UUID:
    return uuid.UUID(parse_sse(received.split(b"\n\n")[0] + b"\n\n")[0].data["message"]["id"])


@needs_redis
def test_stream_started_on_one_process_resumes_on_another(
    start_server: Any, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a stream on server A, dropped after four events
    a, b = start_server(), start_server()
    fake_groq.replies.append(Reply(text=[f"t{i} " for i in range(30)], interval=0.03))
    with send_streaming(a, conversation, auth) as response:
        head = read_events(response.iter_raw(), 4)
    head = head[: head.index(b"\n\n", head.index(b"id: 4\n")) + 2]
    message_id = assistant_id(head)

    # when: the client resumes on server B from the last event it got
    resumed = httpx.get(
        f"{messages_url(b, conversation)}/{message_id}/stream",
        headers={**auth, "Last-Event-ID": "4"},
        timeout=10,
    )

    # then: no gap, no duplicate; the answer completed on A and is stored
    full = httpx.get(
        f"{messages_url(b, conversation)}/{message_id}/stream", headers=auth, timeout=10
    ).content
    assert head + resumed.content == full
    events = parse_sse(full)
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "message_stop"
    assert wait_for_status(message_id).status == "complete"


@needs_redis
def test_cancel_from_another_process(
    start_server: Any, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a long answer generating on A, followed by a client
    a, b = start_server(), start_server()
    fake_groq.replies.append(Reply(text=[f"w{i} " for i in range(500)], interval=0.02))
    with send_streaming(a, conversation, auth) as response:
        chunks = response.iter_raw()
        head = read_events(chunks, 4)
        message_id = assistant_id(head)

        # when: B is asked to cancel it
        started = time.monotonic()
        cancel = httpx.post(
            f"{messages_url(b, conversation)}/{message_id}/cancel", headers=auth, timeout=10
        )
        elapsed = time.monotonic() - started
        rest = b"".join(chunks)

    # then: A closed the upstream, stored the message cancelled, and ended the stream
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["status"] == "cancelled"
    assert fake_groq.wait_for_disconnect(2.0)
    assert elapsed < 2.0
    events = parse_sse(head + rest)
    assert events[-1].event == "message_stop"
    assert events[-2].data["delta"]["stop_reason"] == "cancelled"
    message = Message.objects.get(pk=message_id)
    assert message.status == "cancelled"
    assert message.content.startswith("w0 w1 ")


@needs_redis
def test_sweeper_finishes_the_message_of_a_killed_process(
    start_server: Any, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: A generating a slow answer, B alive
    a, b = start_server(), start_server()
    fake_groq.replies.append(Reply(text=[f"w{i} " for i in range(500)], interval=0.02))
    with send_streaming(a, conversation, auth) as response:
        head = read_events(response.iter_raw(), 6)
        message_id = assistant_id(head)

        # when: A dies without a chance to clean up, and a client follows on B
        a.kill()
    follower = httpx.get(
        f"{messages_url(b, conversation)}/{message_id}/stream", headers=auth, timeout=20
    )

    # then: B's sweeper stored the partial answer as incomplete and ended the log
    message = wait_for_status(message_id, wait=15)
    assert message.status == "incomplete"
    assert message.content.startswith("w0 w1 ")
    assert message.error == {
        "type": "api_error",
        "message": "The server generating this answer stopped; the partial answer was kept.",
    }
    events = parse_sse(follower.content)
    assert events[-1].event == "error"


def start_slow_answer_then_kill(
    server: LiveServer, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> tuple[uuid.UUID, float]:
    """A long answer streaming on ``server``, which is SIGKILLed once six events are in the
    answer's Redis log (what its client saw may not all be there yet); returns the message's
    id and when the process died (``time.monotonic()``)."""
    fake_groq.replies.append(Reply(text=[f"w{i} " for i in range(500)], interval=0.02))
    with send_streaming(server, conversation, auth) as response:
        message_id = assistant_id(read_events(response.iter_raw(), 6))
        logged = redis.Redis.from_url(str(REDIS_URL))
        deadline = time.monotonic() + 10
        while logged.xlen(log_key(message_id)) < 6:
            assert time.monotonic() < deadline, "the log never got six events"
            time.sleep(0.02)
        logged.close()
        server.kill()
    return message_id, time.monotonic()


@needs_redis
def test_a_survivor_that_only_answers_health_checks_finishes_a_killed_process_s_answer(
    start_server: Any, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: A generating, B alive but sent nothing except what a load balancer sends
    a, b = start_server(), start_server()
    message_id, died_at = start_slow_answer_then_kill(a, fake_groq, conversation, auth)

    # when: only health checks reach B while the stale period passes
    deadline = died_at + STALE_SECONDS + 0.2 + SLACK_SECONDS  # plus one heartbeat
    while Message.objects.get(pk=message_id).status == Message.Status.IN_PROGRESS:
        assert httpx.get(f"{b.url}/api/v1/health", timeout=5).status_code == 200
        assert time.monotonic() < deadline, "the answer of the killed process is in progress"
        time.sleep(0.05)

    # then: B's sweeper stored the partial answer as incomplete
    message = Message.objects.get(pk=message_id)
    assert message.status == "incomplete"
    assert message.content.startswith("w0 w1 ")
    assert message.error == {
        "type": "api_error",
        "message": "The server generating this answer stopped; the partial answer was kept.",
    }


@needs_redis
def test_a_send_that_meets_a_dead_process_s_answer_is_refused_no_longer_than_the_stale_period(
    start_server: Any, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: A generating and then killed; B, whose sweeper beats only once a minute, so
    # that only the send itself can finish the dead process's answer in time (and whose send
    # rate limit leaves room for the refused attempts, every 50 ms for seconds)
    a = start_server()
    b = start_server(GENERATION_HEARTBEAT_SECONDS="60", RATE_LIMIT_SENDS_PER_MINUTE="0")
    old_id, died_at = start_slow_answer_then_kill(a, fake_groq, conversation, auth)

    # when: the user sends on B until the send is taken
    refusals = 0
    while True:
        response = httpx.post(
            messages_url(b, conversation), headers=auth, json={"content": "Again"}, timeout=10
        )
        if response.status_code != 409:
            break
        refusals += 1
        assert time.monotonic() < died_at + STALE_SECONDS + SLACK_SECONDS, response.text
        time.sleep(0.05)

    # then: refused while A might have been alive, then answered; A's answer was kept
    assert refusals > 0
    assert response.status_code == 201, response.text
    assert response.json()["content"] == [{"type": "text", "text": "Hello there!"}]
    old = Message.objects.get(pk=old_id)
    assert old.status == "incomplete"
    assert old.content.startswith("w0 w1 ")
    assert UsageRecord.objects.filter(message_id=old_id).count() == 1


@needs_redis
def test_idempotent_retry_on_another_process(
    start_server: Any, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    a, b = start_server(), start_server()
    headers = {**auth, "Idempotency-Key": "retry-1"}

    first = httpx.post(
        messages_url(a, conversation), headers=headers, json={"content": "Hi"}, timeout=10
    )
    retry = httpx.post(
        messages_url(b, conversation), headers=headers, json={"content": "Hi"}, timeout=10
    )

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert Message.objects.filter(conversation=conversation).count() == 2
    assert len(fake_groq.received) == 1


def test_single_process_in_memory_mode_resumes(
    start_server: Any, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: one server without Redis, a stream dropped after three events
    server = start_server(redis=False)
    fake_groq.replies.append(Reply(text=[f"t{i} " for i in range(20)], interval=0.03))
    with send_streaming(server, conversation, auth) as response:
        head = read_events(response.iter_raw(), 3)
    head = head[: head.index(b"\n\n", head.index(b"id: 3\n")) + 2]
    message_id = assistant_id(head)

    # when
    resumed = httpx.get(
        f"{messages_url(server, conversation)}/{message_id}/stream",
        headers={**auth, "Last-Event-ID": "3"},
        timeout=10,
    )

    # then
    events = parse_sse(head + resumed.content)
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "message_stop"
    text = "".join(e.data["delta"]["text"] for e in events if e.event == "content_block_delta")
    assert text == "".join(f"t{i} " for i in range(20))
    assert json.loads(json.dumps(wait_for_status(message_id).status)) == "complete"


@pytest.mark.parametrize("continue_on_disconnect", [True, False])
def test_a_client_that_goes_away_mid_stream_leaves_the_documented_outcome(
    start_server: Any,
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
    continue_on_disconnect: bool,
) -> None:
    # given: one daphne server (whose streams the generation writes to the connection itself)
    server = start_server(
        redis=False, GENERATION_CONTINUE_ON_DISCONNECT=str(continue_on_disconnect).lower()
    )
    words = [f"w{i} " for i in range(60)]
    fake_groq.replies.append(Reply(text=words, interval=0.02))

    # when: the client reads four events and closes its connection
    with send_streaming(server, conversation, auth) as response:
        message_id = assistant_id(read_events(response.iter_raw(), 4))

    # then: the answer goes on and is stored whole, or stops, closes the upstream and is
    # stored incomplete with what it had; the server answers the next send either way
    message = wait_for_status(message_id)
    if continue_on_disconnect:
        assert message.status == "complete"
        assert message.content == "".join(words)
    else:
        assert fake_groq.wait_for_disconnect(2.0)
        assert message.status == "incomplete"
        assert message.content.startswith("w0 ")
        assert len(message.content) < len("".join(words))
    fake_groq.replies.append(Reply(text=["Again"]))
    again = httpx.post(
        messages_url(server, conversation), headers=auth, json={"content": "Hi"}, timeout=10
    )
    assert again.status_code == 201, again.text
    assert again.json()["content"][0]["text"] == "Again"
