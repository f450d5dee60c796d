"""The services the API depends on failing under a real server: a PostgreSQL cluster and a
redis-server of the test's own (testsupport.servers.PrivatePostgres / PrivateRedis; the
machine's shared servers are never touched), stopped and started again under a real daphne
process (LiveServer) talking to the fake Groq upstream.

PostgreSQL down: requests answer 503 in the envelope within the pool timeout, /health says
503, and a stream in flight keeps its answer (stored once the database is back); started
again, the same server process answers again. Redis down: the API degrades to what one
process can do on its own and never answers 500; started again, it is used again."""

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from messaging.endings import LOG_LOST_ERROR, NOT_STORED_MESSAGE
from testsupport.asgi import parse_sse
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.helpers import eventually
from testsupport.servers import LiveServer, PrivatePostgres, PrivateRedis, live_database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live_database]

MODEL = "openai/gpt-oss-20b"
WORDS = [f"w{i} " for i in range(6)]


@pytest.fixture
def auth(make_token) -> dict[str, str]:
    """A new user's token: the server creates the user on the first request."""
    return {"Authorization": f"Bearer {make_token(sub=str(uuid.uuid4()), email='f@example.com')}"}


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres(copy_of=live_database_url())
    yield cluster
    cluster.destroy()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(log_path=tmp_path / "redis.log")
    yield server
    server.kill()


@pytest.fixture
def start_server(fake_groq: FakeGroq, tmp_path: Path) -> Iterator[Any]:
    servers: list[LiveServer] = []

    def start(**env: str) -> LiveServer:
        server = LiveServer(
            env={
                "GROQ_BASE_URL": fake_groq.base_url,
                "GROQ_API_KEY": "gsk_test",
                "LLM_MAX_RETRIES": "0",
                "GENERATION_HEARTBEAT_SECONDS": "0.2",
                "LOG_LEVEL": "WARNING",
                **env,
            },
            log_path=tmp_path / f"server-{len(servers)}.log",
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def new_conversation(server: LiveServer, auth: dict[str, str]) -> str:
    response = httpx.post(
        f"{server.url}/api/v1/conversations", headers=auth, json={"model": MODEL}, timeout=10
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def messages(server: LiveServer, auth: dict[str, str], conversation: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.url}/api/v1/conversations/{conversation}/messages?limit=100",
        headers=auth,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def assert_503(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "api_error"
    assert body["request_id"] == response.headers["request-id"]


def test_postgres_restart_answers_503_then_recovers_and_keeps_the_answer_in_flight(
    postgres: PrivatePostgres,
    start_server: Any,
    fake_groq: FakeGroq,
    auth: dict[str, str],
) -> None:
    # given: a server on the private cluster, one conversation with a stored turn, and a
    # second answer streaming (its upstream held after two words)
    server = start_server(
        DATABASE_URL=postgres.url,
        DATABASE_POOL_TIMEOUT_SECONDS="2",
        GENERATION_STORE_GRACE_SECONDS="1",
    )
    conversation = new_conversation(server, auth)
    url = f"{server.url}/api/v1/conversations/{conversation}/messages"
    assert httpx.post(url, headers=auth, json={"content": "one"}, timeout=10).status_code == 201
    reply = Reply(text=WORDS, prompt_tokens=40, completion_tokens=6, hold_at=3)
    fake_groq.replies.append(reply)
    with httpx.stream(
        "POST", url, headers=auth, json={"content": "two", "stream": True}, timeout=30
    ) as stream:
        chunks = stream.iter_raw()
        head = next(chunks)
        assert fake_groq.wait_for_hold()

        # when: PostgreSQL stops; the upstream finishes the answer meanwhile
        postgres.stop()
        started = time.monotonic()
        health = httpx.get(f"{server.url}/api/v1/health", timeout=30)
        listing = httpx.get(f"{server.url}/api/v1/conversations", headers=auth, timeout=30)
        refused = httpx.post(url, headers=auth, json={"content": "three"}, timeout=30)
        during = time.monotonic() - started
        reply.hold.set()
        rest = b"".join(chunks)

    # then: 503s in the envelope, each within the pool timeout (never a hang)
    assert_503(health)
    assert health.json()["error"]["message"] == "The database is unreachable."
    assert_503(listing)
    assert listing.json()["error"]["message"] == ("The database is unreachable; try again shortly.")
    assert_503(refused)
    assert during < 3 * 15
    # the stream got the whole answer, and ends saying it is not stored yet
    events = parse_sse(head + rest)
    text = "".join(e.data["delta"]["text"] for e in events if e.event == "content_block_delta")
    assert text == "".join(WORDS)
    assert [e.event for e in events[-2:]] == ["message_delta", "error"]
    assert events[-1].data["error"] == {"type": "api_error", "message": NOT_STORED_MESSAGE}

    # when: PostgreSQL is back, with the same server process
    postgres.start()

    # then: it answers again, and the answer in flight was stored whole
    eventually(
        lambda: httpx.get(f"{server.url}/api/v1/health", timeout=30).status_code == 200,
        wait=60,
    )
    eventually(lambda: messages(server, auth, conversation)[-1]["status"] == "complete", wait=30)
    stored = messages(server, auth, conversation)
    assert [(m["role"], m["content"], m["status"]) for m in stored] == [
        ("user", "one", "complete"),
        ("assistant", "Hello there!", "complete"),
        ("user", "two", "complete"),
        ("assistant", "".join(WORDS), "complete"),
    ]
    assert stored[-1]["usage"] == {
        "input_tokens": 40,
        "cached_input_tokens": None,
        "output_tokens": 6,
        "estimated": False,
    }
    again = httpx.post(url, headers=auth, json={"content": "four"}, timeout=30)
    assert again.status_code == 201, again.text
    assert again.json()["content"] == [{"type": "text", "text": "Hello there!"}]
    assert server.process.poll() is None


def stream_text(raw: bytes) -> str:
    events = parse_sse(raw)
    return "".join(e.data["delta"]["text"] for e in events if e.event == "content_block_delta")


def test_redis_down_degrades_to_one_process_and_recovers(
    redis_server: PrivateRedis,
    start_server: Any,
    fake_groq: FakeGroq,
    auth: dict[str, str],
) -> None:
    # given: two servers sharing the private Redis (and the test database)
    a = start_server(REDIS_URL=redis_server.url)
    b = start_server(REDIS_URL=redis_server.url)
    conversation = new_conversation(a, auth)
    on_a = f"{a.url}/api/v1/conversations/{conversation}/messages"
    on_b = f"{b.url}/api/v1/conversations/{conversation}/messages"

    # when: Redis dies
    redis_server.kill()

    # then: sends stream and answer on their process, rate limits let them through uncounted
    streamed = httpx.post(on_a, headers=auth, json={"content": "one", "stream": True}, timeout=30)
    assert streamed.status_code == 200, streamed.text
    assert parse_sse(streamed.content)[-1].event == "message_stop"
    assert stream_text(streamed.content) == "Hello there!"
    assert streamed.headers["x-ratelimit-remaining"] == "30"
    answered = httpx.post(on_b, headers=auth, json={"content": "two"}, timeout=30)
    assert answered.status_code == 201, answered.text
    assert answered.headers["x-ratelimit-remaining"] == "30"
    # a resume on the other process, whose log it cannot read, replays the stored answer
    first_id = parse_sse(streamed.content)[0].data["message"]["id"]
    resumed = httpx.get(f"{on_b}/{first_id}/stream", headers=auth, timeout=30)
    assert resumed.status_code == 200, resumed.text
    assert stream_text(resumed.content) == "Hello there!"
    assert parse_sse(resumed.content)[-1].event == "message_stop"
    # a cancel reaches a generation on its own process, not on another (202: not confirmed)
    fake_groq.replies.append(Reply(text=WORDS, hold_at=2))
    with httpx.stream(
        "POST", on_a, headers=auth, json={"content": "three", "stream": True}, timeout=30
    ) as running:
        chunks = running.iter_raw()
        head = next(chunks)
        message_id = parse_sse(head.split(b"\n\n")[0] + b"\n\n")[0].data["message"]["id"]
        assert fake_groq.wait_for_hold()
        unconfirmed = httpx.post(f"{on_b}/{message_id}/cancel", headers=auth, timeout=30)
        cancelled = httpx.post(f"{on_a}/{message_id}/cancel", headers=auth, timeout=30)
        rest = b"".join(chunks)
    assert (unconfirmed.status_code, unconfirmed.json()["status"]) == (202, "in_progress")
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert parse_sse(head + rest)[-2].data["delta"]["stop_reason"] == "cancelled"

    # when: Redis is back, with nothing in it
    redis_server.start()

    # then: counters are shared again (once each process tries Redis again: within its 5 s
    # cooldown), a stream on A resumes on B from the log, and a cancel from B reaches A
    def counted_on(url: str) -> int | None:
        response = httpx.post(url, headers=auth, json={"content": "four"}, timeout=30)
        assert response.status_code == 201, response.text
        remaining = int(response.headers["x-ratelimit-remaining"])
        return remaining if remaining < 30 else None

    on_a_count = eventually(lambda: counted_on(on_a), wait=15, every=1.0)
    on_b_count = eventually(lambda: counted_on(on_b), wait=15, every=1.0)
    assert on_b_count < on_a_count
    fake_groq.replies.append(Reply(text=WORDS, hold_at=3))
    with httpx.stream(
        "POST", on_a, headers=auth, json={"content": "five", "stream": True}, timeout=30
    ) as running:
        chunks = running.iter_raw()
        head = next(chunks)
        message_id = parse_sse(head.split(b"\n\n")[0] + b"\n\n")[0].data["message"]["id"]
        assert fake_groq.wait_for_hold()

        def cancel_from_b() -> httpx.Response | None:
            response = httpx.post(f"{on_b}/{message_id}/cancel", headers=auth, timeout=30)
            return response if response.status_code == 200 else None

        cancel = eventually(cancel_from_b, wait=15)
        rest = b"".join(chunks)
    assert cancel.json()["status"] == "cancelled"
    full = httpx.get(f"{on_b}/{message_id}/stream", headers=auth, timeout=30).content
    assert full == head + rest
    assert stream_text(full) == "w0 w1 "

    # when: Redis dies again while B follows a stream of A's from the log
    reply = Reply(text=WORDS, hold_at=3)
    fake_groq.replies.append(reply)
    with httpx.stream(
        "POST", on_a, headers=auth, json={"content": "six", "stream": True}, timeout=30
    ) as running:
        chunks = running.iter_raw()
        head = next(chunks)
        message_id = parse_sse(head.split(b"\n\n")[0] + b"\n\n")[0].data["message"]["id"]
        assert fake_groq.wait_for_hold()
        with httpx.stream(
            "GET", f"{on_b}/{message_id}/stream", headers=auth, timeout=30
        ) as follower:
            followed = follower.iter_raw()
            followed_head = next(followed)
            redis_server.kill()
            reply.hold.set()
            rest = b"".join(chunks)
            followed_rest = b"".join(followed)

    # then: A's client gets the whole answer; B's follower ends once it is stored, saying
    # where the rest is; a resume replays the stored answer
    assert parse_sse(head + rest)[-1].event == "message_stop"
    assert stream_text(head + rest) == "".join(WORDS)
    ending = parse_sse(followed_head + followed_rest)[-1]
    assert ending.data == {"type": "error", "error": LOG_LOST_ERROR}
    replay = httpx.get(f"{on_b}/{message_id}/stream", headers=auth, timeout=30).content
    assert stream_text(replay) == "".join(WORDS)
    statuses = [m["status"] for m in messages(a, auth, conversation)]
    assert statuses.count("cancelled") == 2
    assert set(statuses) == {"complete", "cancelled"}


def test_a_hung_redis_delays_nothing_for_long_and_is_used_again_once_it_answers(
    redis_server: PrivateRedis, start_server: Any, auth: dict[str, str]
) -> None:
    # given: a server on the private Redis
    server = start_server(REDIS_URL=redis_server.url)
    conversation = new_conversation(server, auth)
    url = f"{server.url}/api/v1/conversations/{conversation}/messages"
    before = httpx.post(url, headers=auth, json={"content": "zero"}, timeout=30)
    assert before.headers["x-ratelimit-remaining"] == "29"

    # when: Redis hangs (it accepts connections and answers nothing)
    redis_server.pause()
    try:
        started = time.monotonic()
        streamed = httpx.post(
            url, headers=auth, json={"content": "one", "stream": True}, timeout=30
        )
        answered = [
            httpx.post(url, headers=auth, json={"content": f"n{i}"}, timeout=30) for i in range(10)
        ]
        elapsed = time.monotonic() - started
        first_id = parse_sse(streamed.content)[0].data["message"]["id"]
        resumed = httpx.get(f"{url}/{first_id}/stream", headers=auth, timeout=30)
    finally:
        redis_server.unpause()

    # then: every send answered in full, uncounted; the limits waited for Redis once (1 s),
    # not once per call (several calls a send: 40 s and more)
    assert stream_text(streamed.content) == "Hello there!"
    assert parse_sse(streamed.content)[-1].event == "message_stop"
    assert [r.status_code for r in answered] == [201] * 10
    assert {r.headers["x-ratelimit-remaining"] for r in answered} == {"30"}
    assert elapsed < 20, elapsed
    # a resume, whose log is out of reach, replays the stored answer
    assert resumed.status_code == 200, resumed.text
    assert stream_text(resumed.content) == "Hello there!"
    assert [m["status"] for m in messages(server, auth, conversation)] == ["complete"] * 24

    # when: Redis answers again; then: the counters count again (within the 5 s cooldown)
    def counted() -> str | None:
        response = httpx.post(url, headers=auth, json={"content": "again"}, timeout=30)
        assert response.status_code == 201, response.text
        remaining = response.headers["x-ratelimit-remaining"]
        return remaining if remaining != "30" else None

    assert int(eventually(counted, wait=15, every=1.0)) < 29
    log = server.log()
    assert log.count("rate limits and stream slots: Redis failed") == 1, log
    assert log.count("rate limits and stream slots: Redis answers again") == 1, log


def test_a_slow_reader_gets_the_whole_stream_and_the_answer_is_stored_meanwhile(
    start_server: Any, fake_groq: FakeGroq, auth: dict[str, str]
) -> None:
    # given: an upstream that sends a long answer at once, and a client with a small receive
    # buffer that reads 4 KiB at a time
    server = start_server()
    conversation = new_conversation(server, auth)
    words = [f"{i:04d}" + "x" * 996 for i in range(200)]
    fake_groq.replies.append(Reply(text=words, batch=50))
    body = json.dumps({"content": "Hi", "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.sendall(
            f"POST /api/v1/conversations/{conversation}/messages HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: {auth['Authorization']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        received = client.recv(4096)

        # when: the answer ends upstream while the client has read almost nothing
        stored = eventually(
            lambda: messages(server, auth, conversation)[-1]["status"] == "complete", wait=30
        )
        read_when_stored = len(received)
        while chunk := client.recv(4096):
            received += chunk
            time.sleep(0.001)

    # then: it was stored without waiting for the reader, who still gets every event
    assert stored
    assert read_when_stored < 50_000
    head, _, chunked = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    events = parse_sse(dechunk(chunked))
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "message_stop"
    assert stream_text(dechunk(chunked)) == "".join(words)
    assert messages(server, auth, conversation)[-1]["content"] == "".join(words)


def dechunk(data: bytes) -> bytes:
    """The body of a chunked HTTP/1.1 response."""
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return body
        body += data[:size]
        data = data[size + 2 :]
