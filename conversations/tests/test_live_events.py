"""Live events over a real WebSocket (the ``websockets`` client) to real daphne servers on
loopback, sharing the test PostgreSQL and Redis: authentication, the events of the caller's
own conversations from any process, the connection cap, and SIGTERM's 1012."""

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from accounts.models import User
from accounts.services import api_key_create
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.helpers import eventually
from testsupport.servers import LiveServer, PrivateRedis

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live_database]

REDIS_URL = os.environ.get("REDIS_URL")
MODEL = "openai/gpt-oss-20b"
WAIT = 15.0  # seconds: an upper bound on a busy machine, never the expected time


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeGroq]:
    fake = FakeGroq().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def fresh_upstream(upstream: FakeGroq) -> None:
    upstream.replies.clear()


def _server(upstream: FakeGroq, log_path: Path, **env: str) -> LiveServer:
    return LiveServer(
        env={
            "GROQ_BASE_URL": upstream.base_url,
            "GROQ_API_KEY": "gsk_test",
            "LLM_MAX_RETRIES": "0",
            "RATE_LIMIT_SENDS_PER_MINUTE": "0",
            "LIVE_EVENTS_AUTH_TIMEOUT_SECONDS": "1",
            "LIVE_EVENTS_MAX_CONNECTIONS_PER_USER": "2",
            "SUPABASE_JWT_LEEWAY_SECONDS": "0",
            "LOG_LEVEL": "INFO",
        }
        | ({"REDIS_URL": REDIS_URL} if REDIS_URL else {})
        | env,
        log_path=log_path,
    )


@pytest.fixture(scope="module")
def server(
    django_db_setup: None, upstream: FakeGroq, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    live = _server(upstream, tmp_path_factory.mktemp("live") / "server.log")
    yield live
    live.stop()


def _open(server: LiveServer, query: str = "") -> ClientConnection:
    return connect(f"ws://127.0.0.1:{server.port}/ws/v1/events{query}", open_timeout=WAIT)


def _authenticate(ws: ClientConnection, token: str) -> dict[str, Any]:
    ws.send(json.dumps({"type": "authenticate", "token": token}))
    answer: dict[str, Any] = json.loads(ws.recv(timeout=WAIT))
    return answer


def _events(
    ws: ClientConnection, until: Callable[[list[dict[str, Any]]], bool], wait: float = WAIT
) -> list[Any]:
    """The frames received (pings left out) until ``until(frames)`` holds; TimeoutError when
    none comes for ``wait`` seconds."""
    frames: list[dict[str, Any]] = []
    while not until(frames):
        frame = json.loads(ws.recv(timeout=wait))
        if frame["type"] != "ping":
            frames.append(frame)
    return frames


def _close_code(ws: ClientConnection) -> int | None:
    """The code the server closed ``ws`` with (frames before the close are read and dropped)."""
    try:
        while True:
            ws.recv(timeout=WAIT)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


def _has(kind: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda frames: any(frame["type"] == kind for frame in frames)


def _create_and_send(server: LiveServer, headers: dict[str, str]) -> tuple[str, str]:
    """A new conversation and a message sent in it: their ids (the conversation's, the
    answer's)."""
    created = httpx.post(f"{server.url}/api/v1/conversations", headers=headers, json={})
    assert created.status_code == 201, created.text
    conversation_id = created.json()["id"]
    sent = httpx.post(
        f"{server.url}/api/v1/conversations/{conversation_id}/messages",
        headers=headers,
        json={"content": "Hi"},
        timeout=WAIT,
    )
    assert sent.status_code == 201, sent.text
    return conversation_id, sent.json()["id"]


def test_a_session_sees_its_own_conversations_events_and_never_another_users(
    server: LiveServer, user: User, other_user: User, make_token: Any
) -> None:
    # given: a socket of the user and one of another user, both authenticated
    with _open(server) as mine, _open(server) as theirs:
        welcome = _authenticate(mine, make_token(user))
        _authenticate(theirs, make_token(other_user))

        # when: the user creates a conversation and sends a message in it
        conversation_id, answer = _create_and_send(
            server, {"Authorization": f"Bearer {make_token(user)}"}
        )
        events = _events(mine, _has("message.completed"))

        # ... and the other user then creates a conversation of their own
        own = httpx.post(
            f"{server.url}/api/v1/conversations",
            headers={"Authorization": f"Bearer {make_token(other_user)}"},
            json={},
        ).json()
        their_events = _events(theirs, lambda frames: len(frames) == 1)

    # then: the user saw the conversation, both messages and the answer's end with its usage
    assert welcome == {"type": "authenticated", "user_id": str(user.pk)}
    kinds = [event["type"] for event in events]
    assert kinds[0] == "conversation.created"
    assert events[0]["data"]["id"] == conversation_id
    created = [event["data"] for event in events if event["type"] == "message.created"]
    assert [(m["role"], m["status"]) for m in created] == [
        ("user", "complete"),
        ("assistant", "in_progress"),
    ]
    assert {m["conversation_id"] for m in created} == {conversation_id}
    titled = [e["data"] for e in events if e["type"] == "conversation.updated"]
    assert [(c["id"], c["title"]) for c in titled] == [(conversation_id, "Hi")]
    completed = events[-1]
    assert completed["type"] == "message.completed"
    assert completed["data"]["id"] == answer
    assert completed["data"]["status"] == "complete"
    assert completed["data"]["usage"]["input_tokens"] == 42
    assert completed["data"]["usage"]["output_tokens"] == 3
    assert completed["data"]["model"] == "openai/gpt-oss-20b"
    assert "content" not in completed["data"]
    assert all(isinstance(event["id"], str) and event["created_at"] for event in events)
    # ... and the other user, whose socket was open all along, saw only their own
    assert [(e["type"], e["data"]["id"]) for e in their_events] == [
        ("conversation.created", own["id"])
    ]


def test_updates_and_deletes_are_told(server: LiveServer, user: User, make_token: Any) -> None:
    auth = {"Authorization": f"Bearer {make_token(user)}"}
    conversation_id = httpx.post(
        f"{server.url}/api/v1/conversations", headers=auth, json={}
    ).json()["id"]
    with _open(server) as ws:
        _authenticate(ws, make_token(user))

        httpx.patch(
            f"{server.url}/api/v1/conversations/{conversation_id}",
            headers=auth,
            json={"title": "T"},
        )
        httpx.delete(f"{server.url}/api/v1/conversations/{conversation_id}", headers=auth)
        events = _events(ws, _has("conversation.deleted"))

    assert [(e["type"], e["data"]["id"], e["data"]["title"]) for e in events] == [
        ("conversation.updated", conversation_id, "T"),
        ("conversation.deleted", conversation_id, "T"),
    ]


def test_an_api_key_with_the_read_scope_authenticates_and_one_without_it_is_refused(
    server: LiveServer, user: User
) -> None:
    _, reader = api_key_create(user=user, name="r", scopes=["conversations:read"])
    _, usage_only = api_key_create(user=user, name="u", scopes=["usage:read"])

    with _open(server) as ws:
        accepted = _authenticate(ws, reader)
    with _open(server) as ws:
        ws.send(json.dumps({"type": "authenticate", "token": usage_only}))
        refused = _close_code(ws)

    assert accepted == {"type": "authenticated", "user_id": str(user.pk)}
    assert refused == 4403


@pytest.mark.parametrize(
    "first_message",
    [
        {"type": "authenticate", "token": "not-a-token"},
        {"type": "authenticate", "token": "sk-chatapi-unknown"},
        {"type": "authenticate"},
        {"type": "ping"},
        "not json",
    ],
)
def test_a_bad_first_message_is_closed_with_4401(server: LiveServer, first_message: Any) -> None:
    with _open(server) as ws:
        ws.send(first_message if isinstance(first_message, str) else json.dumps(first_message))
        code = _close_code(ws)

    assert code == 4401


def test_an_expired_token_is_closed_with_4401(
    server: LiveServer, user: User, make_token: Any
) -> None:
    with _open(server) as ws:
        ws.send(json.dumps({"type": "authenticate", "token": make_token(user, exp=1)}))
        code = _close_code(ws)

    assert code == 4401


def test_silence_and_a_token_in_the_url_are_closed_with_4401(
    server: LiveServer, user: User, make_token: Any
) -> None:
    # A valid token in the query string is never read: the socket waits for its message.
    with _open(server, f"?token={make_token(user)}") as ws:
        code = _close_code(ws)

    assert code == 4401


def test_a_client_may_ping(server: LiveServer, user: User, make_token: Any) -> None:
    with _open(server) as ws:
        _authenticate(ws, make_token(user))
        ws.send(json.dumps({"type": "ping"}))
        frames = _events(ws, _has("pong"))

    assert frames == [{"type": "pong"}]


def test_a_user_has_at_most_the_configured_connections(
    server: LiveServer, user: User, make_token: Any
) -> None:
    token = make_token(user)
    with _open(server) as first, _open(server) as second:
        _authenticate(first, token)
        _authenticate(second, token)
        with _open(server) as third:
            third.send(json.dumps({"type": "authenticate", "token": token}))
            over = _close_code(third)
        first.close()

        # once one closed, a new one gets its place
        def fourth_accepted() -> bool:
            with _open(server) as fourth:
                fourth.send(json.dumps({"type": "authenticate", "token": token}))
                try:
                    return bool(json.loads(fourth.recv(timeout=WAIT))["type"] == "authenticated")
                except ConnectionClosed:
                    return False

        accepted = eventually(fourth_accepted, wait=WAIT)

    assert over == 4429
    assert accepted


def test_a_socket_is_closed_with_4401_when_its_token_expires(
    server: LiveServer, user: User, make_token: Any
) -> None:
    with _open(server) as ws:
        welcome = _authenticate(ws, make_token(user, exp=int(time.time()) + 2))
        code = _close_code(ws)

    assert welcome["type"] == "authenticated"
    assert code == 4401


def test_a_browser_page_of_another_origin_is_refused(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        connect(
            f"ws://127.0.0.1:{server.port}/ws/v1/events",
            origin=Origin("https://elsewhere.example"),
            open_timeout=WAIT,
        )

    assert refused.value.response.status_code == 403


@pytest.mark.skipif(not REDIS_URL, reason="events cross processes through Redis (REDIS_URL)")
def test_an_event_caused_on_one_process_reaches_a_socket_on_another(
    server: LiveServer, upstream: FakeGroq, user: User, make_token: Any, tmp_path: Path
) -> None:
    other = _server(upstream, tmp_path / "other.log")
    try:
        with _open(other) as ws:
            _authenticate(ws, make_token(user))

            _, answer = _create_and_send(server, {"Authorization": f"Bearer {make_token(user)}"})
            events = _events(ws, _has("message.completed"))
    finally:
        other.stop()

    assert events[-1]["data"]["id"] == answer


def test_sigterm_closes_open_sockets_with_1012(
    upstream: FakeGroq, user: User, make_token: Any, tmp_path: Path
) -> None:
    stopping = _server(upstream, tmp_path / "stopping.log")
    try:
        with _open(stopping) as ws:
            _authenticate(ws, make_token(user))

            stopping.process.send_signal(signal.SIGTERM)
            code = _close_code(ws)
        stopping.process.wait(timeout=WAIT)
    finally:
        stopping.stop()

    assert code == 1012


def test_forks_regenerations_compatible_routes_and_cancels_are_told(
    server: LiveServer, upstream: FakeGroq, user: User, make_token: Any
) -> None:
    auth = {"Authorization": f"Bearer {make_token(user)}"}
    _, key = api_key_create(
        user=user, name="k", scopes=["conversations:read", "conversations:write"]
    )
    with _open(server) as ws:
        _authenticate(ws, make_token(user))
        conversation_id, answer_id = _create_and_send(server, auth)
        _events(ws, _has("message.completed"))
        base = f"{server.url}/api/v1/conversations/{conversation_id}"

        # a fork
        fork = httpx.post(f"{base}/fork", headers=auth, json={"message_id": answer_id}).json()
        forked = _events(ws, _has("conversation.created"))

        # a regeneration: one new message, the answer
        regenerated = httpx.post(
            f"{base}/messages/{answer_id}/regenerate", headers=auth, json={}, timeout=WAIT
        ).json()
        regeneration = _events(ws, _has("message.completed"))

        # the Anthropic-compatible route, with an API key
        httpx.post(
            f"{server.url}/v1/messages",
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
            json={
                "model": MODEL,
                "max_tokens": 50,
                "messages": [{"role": "user", "content": "Hi"}],
            },
            timeout=WAIT,
        )
        compatible = _events(ws, _has("message.completed"))

        # a cancel, while the answer is held upstream
        upstream.replies.append(Reply(hold_at=1))
        with httpx.stream(
            "POST", f"{base}/messages", headers=auth, json={"content": "More", "stream": True}
        ) as stream:
            held = _events(ws, lambda frames: len(frames) == 2)  # the two new messages
            held_id = held[1]["data"]["id"]
            upstream.wait_for_hold()
            httpx.post(f"{base}/messages/{held_id}/cancel", headers=auth, timeout=WAIT)
            cancelled = _events(ws, _has("message.cancelled"))
            stream.close()

    assert [(e["type"], e["data"]["id"]) for e in forked] == [("conversation.created", fork["id"])]
    assert [e["type"] for e in regeneration] == ["message.created", "message.completed"]
    assert regeneration[-1]["data"]["id"] == regenerated["id"]
    assert compatible[0]["type"] == "conversation.created"
    assert [e["type"] for e in compatible].count("message.created") == 2
    assert cancelled[-1]["data"]["id"] == held_id
    assert cancelled[-1]["data"]["status"] == "cancelled"


@pytest.mark.skipif(not REDIS_URL, reason="events cross processes through Redis (REDIS_URL)")
def test_an_answer_whose_process_died_is_told_failed_by_the_process_that_sweeps_it(
    upstream: FakeGroq, user: User, make_token: Any, tmp_path: Path
) -> None:
    beat = {"GENERATION_HEARTBEAT_SECONDS": "0.2", "GENERATION_STALE_SECONDS": "2"}
    dying = _server(upstream, tmp_path / "dying.log", **beat)
    sweeping = _server(upstream, tmp_path / "sweeping.log", **beat)
    auth = {"Authorization": f"Bearer {make_token(user)}"}
    try:
        with _open(sweeping) as ws:
            _authenticate(ws, make_token(user))
            conversation_id = httpx.post(
                f"{dying.url}/api/v1/conversations", headers=auth, json={}
            ).json()["id"]
            upstream.replies.append(Reply(hold_at=1))
            with httpx.stream(
                "POST",
                f"{dying.url}/api/v1/conversations/{conversation_id}/messages",
                headers=auth,
                json={"content": "Hi", "stream": True},
            ) as stream:
                upstream.wait_for_hold()
                dying.kill()
                stream.close()
            events = _events(ws, _has("message.failed"))
    finally:
        dying.stop()
        sweeping.stop()

    assistant = [e["data"] for e in events if e["type"] == "message.created"][-1]
    failed = events[-1]["data"]
    assert failed["id"] == assistant["id"]
    assert failed["status"] == "incomplete"
    assert failed["usage"]["estimated"] is True


def test_a_dead_redis_costs_the_sends_nothing_and_events_flow_again_once_it_is_back(
    upstream: FakeGroq, user: User, make_token: Any, tmp_path: Path
) -> None:
    redis = PrivateRedis(log_path=tmp_path / "redis.log")
    server = _server(upstream, tmp_path / "server.log", REDIS_URL=redis.url)
    auth = {"Authorization": f"Bearer {make_token(user)}"}
    try:
        with _open(server) as ws:
            _authenticate(ws, make_token(user))

            # when: Redis dies; then: sends answer in full all the same
            redis.kill()
            conversation_id, answer_id = _create_and_send(server, auth)
            listed = httpx.get(
                f"{server.url}/api/v1/conversations/{conversation_id}/messages", headers=auth
            ).json()["data"]

        # when: Redis is back; then: a new socket hears events again
        redis.start()

        def heard() -> bool:
            with _open(server) as ws:
                _authenticate(ws, make_token(user))
                httpx.patch(
                    f"{server.url}/api/v1/conversations/{conversation_id}",
                    headers=auth,
                    json={"title": "Back"},
                )
                try:
                    return bool(_events(ws, _has("conversation.updated"), wait=2.0))
                except TimeoutError:
                    return False

        back = eventually(heard, wait=WAIT * 2, every=0.5)
        log = server.log()
    finally:
        server.stop()
        redis.kill()

    assert [(m["id"], m["status"]) for m in listed if m["role"] == "assistant"] == [
        (answer_id, "complete")
    ]
    assert back
    assert log.count("live events: Redis failed") == 1, log


def test_the_server_pings_and_closes_the_socket_of_a_revoked_key_with_4401(
    upstream: FakeGroq, user: User, make_token: Any, tmp_path: Path
) -> None:
    pinging = _server(upstream, tmp_path / "pinging.log", LIVE_EVENTS_PING_SECONDS="0.5")
    api_key, secret = api_key_create(user=user, name="r", scopes=["conversations:read"])
    try:
        with _open(pinging) as ws:
            _authenticate(ws, secret)
            ping = json.loads(ws.recv(timeout=WAIT))

            httpx.delete(
                f"{pinging.url}/api/v1/api-keys/{api_key.pk}",
                headers={"Authorization": f"Bearer {make_token(user)}"},
            ).raise_for_status()
            code = _close_code(ws)
    finally:
        pinging.stop()

    assert ping == {"type": "ping"}
    assert code == 4401


def test_the_title_model_s_title_is_told(
    upstream: FakeGroq, user: User, make_token: Any, tmp_path: Path
) -> None:
    titling = _server(upstream, tmp_path / "titling.log", TITLE_MODEL=MODEL)
    upstream.replies.extend([Reply(), Reply(text=["Lisbon", " trip"])])
    try:
        with _open(titling) as ws:
            _authenticate(ws, make_token(user))
            conversation_id, _ = _create_and_send(
                titling, {"Authorization": f"Bearer {make_token(user)}"}
            )
            events = _events(
                ws,
                lambda frames: any(
                    e["type"] == "conversation.updated" and e["data"]["title"] == "Lisbon trip"
                    for e in frames
                ),
            )
    finally:
        titling.stop()

    titles = [e["data"]["title"] for e in events if e["type"] == "conversation.updated"]
    assert titles == ["Hi", "Lisbon trip"]
    assert {e["data"]["id"] for e in events if e["type"] == "conversation.updated"} == {
        conversation_id
    }
