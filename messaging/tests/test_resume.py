"""Detached generations in one process: resume from Last-Event-ID, replay, cancel, the
sweeper. Each test runs with the in-memory log and, when REDIS_URL is set (CI), with Redis.
The multi-process behaviour is in test_multiprocess.py."""

import asyncio
import gc
import os
import uuid
import weakref
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from accounts.models import User
from conversations.models import Conversation, Message
from messaging import eventlog, live, sse
from messaging.eventlog import log_key, redis_client
from messaging.generation import EndedGeneration
from messaging.live import generation_get
from messaging.process import WORKER_ID
from messaging.resume import message_events
from messaging.sweeper import sweep_once
from testsupport.asgi import ASGIRequest, parse_sse
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.helpers import MODEL, settled, stored
from usage.models import UsageRecord

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("close_worker_connection"),
]

LOG_MODES = ["memory"] + (["redis"] if os.environ.get("REDIS_URL") else [])


@pytest.fixture(params=LOG_MODES)
def log_mode(request, settings, groq_providers: None) -> str:
    settings.REDIS_URL = os.environ.get("REDIS_URL") if request.param == "redis" else None
    return str(request.param)


def base(conversation: Conversation) -> str:
    return f"/api/v1/conversations/{conversation.pk}/messages"


async def start_stream(
    conversation: Conversation, auth: dict[str, str], *, until_events: int
) -> tuple[ASGIRequest, bytes, uuid.UUID]:
    """Start a streamed send and read until at least ``until_events`` events arrived."""
    request = ASGIRequest(
        "POST", base(conversation), headers=auth, json_body={"content": "Hi", "stream": True}
    )
    await request.start()
    assert request.status == 200
    chunks = request.chunks()
    received = b""
    while received.count(b"\n\n") < until_events:
        received += await anext(chunks)
    message_id = uuid.UUID(parse_sse(received)[0].data["message"]["id"])
    return request, received, message_id


async def resume(
    conversation: Conversation,
    auth: dict[str, str],
    message_id: uuid.UUID,
    *,
    after: int | None = None,
    query: str = "",
) -> ASGIRequest:
    headers = dict(auth)
    if after is not None:
        headers["last-event-id"] = str(after)
    request = ASGIRequest(
        "GET", f"{base(conversation)}/{message_id}/stream{query}", headers=headers
    )
    return await request.start()


async def test_disconnect_and_resume_equal_one_uninterrupted_stream(
    log_mode: str, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a stream dropped after its first four events
    fake_groq.replies.append(
        Reply(reasoning=["r1", "r2"], text=[f"t{i}" for i in range(8)], interval=0.03)
    )
    first, received, message_id = await start_stream(conversation, auth, until_events=4)
    await first.disconnect()
    head = b"".join(event.raw for event in parse_sse_raw(received))
    last_id = parse_sse(received)[-1].id

    # when: the client resumes from the last event it got
    second = await resume(conversation, auth, message_id, after=last_id)
    tail = await second.read()

    # then: together they are the whole stream, byte for byte, with no gap or duplicate
    await settled(conversation)
    full = await (await resume(conversation, auth, message_id, after=0)).read()
    assert head + tail == full
    events = parse_sse(full)
    assert [e.id for e in events] == list(range(1, len(events) + 1))
    assert events[-1].event == "message_stop"
    assert second.headers["content-type"] == "text/event-stream"


def parse_sse_raw(received: bytes) -> list[sse.SSEEvent]:
    """The complete events in ``received`` as their raw bytes (a read may end mid-event)."""
    blocks = received.split(b"\n\n")[:-1]
    return [sse.SSEEvent(id=0, type="", raw=block + b"\n\n") for block in blocks]


async def test_resume_with_the_after_query_parameter(
    log_mode: str, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    fake_groq.replies.append(Reply(text=["a", "b", "c"]))
    first, _, message_id = await start_stream(conversation, auth, until_events=1)
    await first.read()
    await settled(conversation)

    events = parse_sse(
        await (await resume(conversation, auth, message_id, query="?after=5")).read()
    )

    assert [(e.id, e.event) for e in events] == [
        (6, "content_block_stop"),
        (7, "message_delta"),
        (8, "message_stop"),
    ]


async def test_resume_when_up_to_date_ends_at_once(
    log_mode: str, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    first, received, message_id = await start_stream(conversation, auth, until_events=1)
    # Coalesced writes may have brought the whole stream with the first read.
    everything = parse_sse(received + await first.read())
    await settled(conversation)

    response = await resume(conversation, auth, message_id, after=everything[-1].id)

    assert await response.read(wait=3.0) == b""


async def test_an_ended_generation_is_let_go_and_what_is_kept_replays_its_events(
    log_mode: str, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: an answer streaming, its generation watched by a weak reference
    fake_groq.replies.append(Reply(text=["a", "b", "c"], interval=0.05))
    first, received, message_id = await start_stream(conversation, auth, until_events=1)
    running = generation_get(message_id)
    assert running is not None
    assert not running.finished
    watched = weakref.ref(running)
    del running

    # when: it ends
    received += await first.read()
    await settled(conversation)
    del first
    gc.collect()

    # then: nothing holds the generation any more; what the process keeps replays the
    # answer's events byte for byte, and the resume route serves them
    assert watched() is None
    kept = generation_get(message_id)
    assert kept is not None
    assert kept.finished
    assert kept.task is None
    assert b"".join([chunk async for chunk in kept.follow(0)]) == received
    assert b"".join([chunk async for chunk in kept.follow(3)]) == b"".join(
        event.raw for event in parse_sse_raw(received)[3:]
    )
    assert await (await resume(conversation, auth, message_id, after=0)).read() == received


async def test_ended_generations_are_dropped_when_their_time_comes_in_any_order() -> None:
    ids = [uuid.uuid4() for _ in range(4)]
    for message_id, seconds in zip(ids, [0.3, 0.1, 0.2, 30.0], strict=True):
        live.generation_forget(
            message_id, ended=EndedGeneration(sse.EventBuffer()), after_seconds=seconds
        )

    def kept() -> list[bool]:
        return [generation_get(message_id) is not None for message_id in ids]

    assert kept() == [True, True, True, True]
    await asyncio.sleep(0.15)
    assert kept() == [True, False, True, True]
    await asyncio.sleep(0.25)
    assert kept() == [False, False, False, True]
    live._generations.pop(ids[3])


@pytest.mark.skipif("redis" not in LOG_MODES, reason="needs Redis (set REDIS_URL; CI does)")
async def test_a_log_that_redis_lost_mid_answer_is_not_begun_again_from_the_middle(
    settings, groq_providers: None, fake_groq: FakeGroq, conversation: Conversation, auth: Any
) -> None:
    # given: an answer streaming, its log in Redis
    settings.REDIS_URL = os.environ["REDIS_URL"]
    words = [f"w{i} " for i in range(40)]
    fake_groq.replies.append(Reply(text=words, interval=0.02))
    first, received, message_id = await start_stream(conversation, auth, until_events=4)

    # when: Redis loses the log (a restart comes back empty) while the answer goes on
    await redis_client().delete(log_key(message_id))
    events = parse_sse(received + await first.read())
    await settled(conversation)
    live._generations.pop(message_id)  # the in-memory retention ends

    # then: no log holds the answer's second half only; a replay is the stored answer
    assert events[-1].event == "message_stop"
    assert await redis_client().exists(log_key(message_id)) == 0
    replay = parse_sse(await (await resume(conversation, auth, message_id, after=0)).read())
    assert [e.id for e in replay] == [1, 2, 3, 4, 5, 6]
    assert replay[2].data["delta"]["text"] == "".join(words)


async def test_expired_log_replays_the_stored_message(
    log_mode: str, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a finished answer whose log is gone
    fake_groq.replies.append(
        Reply(reasoning=["why"], text=["Hel", "lo"], prompt_tokens=9, completion_tokens=3)
    )
    first, _, message_id = await start_stream(conversation, auth, until_events=1)
    await first.read()
    await settled(conversation)
    assert generation_get(message_id) is not None
    live._generations.pop(message_id)  # the in-memory retention ends
    if log_mode == "redis":
        await redis_client().delete(log_key(message_id))

    # when
    events = parse_sse(await (await resume(conversation, auth, message_id, after=0)).read())

    # then
    assert [e.data for e in events] == [
        {
            "type": "message_start",
            "message": {
                "id": str(message_id),
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": MODEL,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 9, "output_tokens": 0},
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "why"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"input_tokens": 9, "output_tokens": 3},
        },
        {"type": "message_stop"},
    ]


async def test_cancel_stops_the_upstream_and_ends_followers_cleanly(
    log_mode: str, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a long answer in progress, with a client following it
    fake_groq.replies.append(Reply(text=[f"w{i} " for i in range(200)], interval=0.02))
    follower, received, message_id = await start_stream(conversation, auth, until_events=4)

    # when
    loop = asyncio.get_running_loop()
    started = loop.time()
    cancel = ASGIRequest("POST", f"{base(conversation)}/{message_id}/cancel", headers=auth)
    await cancel.start()
    body: dict[str, Any] = await cancel.json()
    cancelled_in = loop.time() - started

    # then
    assert cancel.status == 200
    assert body["status"] == "cancelled"
    assert body["content"].startswith("w0 w1 ")
    assert await asyncio.to_thread(fake_groq.wait_for_disconnect, 1.0)
    assert cancelled_in < 1.0
    rest = parse_sse(received + await follower.read())
    assert [e.event for e in rest[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
    assert rest[-2].data["delta"] == {"stop_reason": "cancelled", "stop_sequence": None}
    (_, assistant) = await stored(conversation)
    assert assistant.status == "cancelled"
    assert assistant.usage_estimated is True
    assert assistant.output_tokens is not None
    assert assistant.output_tokens > 0


async def test_cancel_a_finished_message_is_409(
    log_mode: str, fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    first, _, message_id = await start_stream(conversation, auth, until_events=1)
    await first.read()
    await settled(conversation)

    cancel = await ASGIRequest(
        "POST", f"{base(conversation)}/{message_id}/cancel", headers=auth
    ).start()
    body = await cancel.json()

    assert cancel.status == 409
    assert body["error"]["message"] == "The message is not in progress (it is complete)."


async def test_resume_and_cancel_of_another_users_message_are_404(
    log_mode: str,
    other_user: User,
    fake_groq: FakeGroq,
    conversation: Conversation,
    make_token,
    auth: dict[str, str],
) -> None:
    first, _, message_id = await start_stream(conversation, auth, until_events=1)
    await first.read()
    await settled(conversation)
    theirs = {"authorization": f"Bearer {make_token(other_user)}"}

    replay = await ASGIRequest(
        "GET", f"{base(conversation)}/{message_id}/stream", headers=theirs
    ).start()
    cancel = await ASGIRequest(
        "POST", f"{base(conversation)}/{message_id}/cancel", headers=theirs
    ).start()

    assert (replay.status, cancel.status) == (404, 404)
    assert (await replay.json())["error"]["message"] == "Conversation not found."


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("-1", "Must be a non-negative integer."),
        ("abc", "Must be a non-negative integer."),
        # Redis stream ids are 64-bit: XREAD would fail once the stream had started
        (str(2**64), "Must be at most 9223372036854775807."),
    ],
)
async def test_bad_last_event_id_is_400(
    log_mode: str,
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
    value: str,
    problem: str,
) -> None:
    first, _, message_id = await start_stream(conversation, auth, until_events=1)
    await first.read()
    await settled(conversation)

    response = await ASGIRequest(
        "GET",
        f"{base(conversation)}/{message_id}/stream",
        headers={**auth, "last-event-id": value},
    ).start()

    assert response.status == 400
    assert (await response.json())["error"]["details"] == {"fields": {"after": [problem]}}


async def test_sweeper_finishes_a_dead_workers_message(
    log_mode: str, settings, conversation: Conversation
) -> None:
    # given: a message in progress on a worker that never beat, with two deltas logged
    settings.GENERATION_STALE_SECONDS = 1.0

    message = await assistant_message(
        conversation,
        status=Message.Status.IN_PROGRESS,
        worker_id="dead-host:1:gone",
        created_at=timezone.now() - timedelta(seconds=5),
    )
    logged = [
        sse.SSEEvent.build(
            1, sse.message_start(message_id=str(message.pk), model=MODEL, input_tokens=3)
        ),
        sse.SSEEvent.build(2, sse.content_block_start(index=0, block_type="text")),
        sse.SSEEvent.build(3, sse.content_block_delta(index=0, block_type="text", text="Par")),
        sse.SSEEvent.build(4, sse.content_block_delta(index=0, block_type="text", text="tial")),
    ]
    if log_mode == "redis":
        await write_log(message.pk, logged)

    # when
    swept = await sweep_once()

    # then
    assert message.pk in swept
    await _refresh(message)
    assert message.status == "incomplete"
    assert message.error == {
        "type": "api_error",
        "message": "The server generating this answer stopped; the partial answer was kept.",
    }
    ledger = await _ledger(message.pk)
    if log_mode == "redis":
        assert message.content == "Partial"
        assert ledger is not None
        assert (ledger.output_tokens, ledger.usage_estimated) == (2, True)
        # Followers replay the stored answer instead (the dead process's clients may have
        # had more events than the log)
        assert await redis_client().exists(log_key(message.pk)) == 0
    else:
        assert ledger is None  # nothing was produced that the server knows of


@pytest.mark.skipif("redis" not in LOG_MODES, reason="needs Redis (set REDIS_URL; CI does)")
async def test_a_client_ahead_of_the_log_of_a_dead_process_gets_the_stored_answer_replayed(
    settings, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a dead process's message whose last events never reached its log (the client
    # got eight, the log four), finished by the sweeper from the log
    settings.REDIS_URL = os.environ["REDIS_URL"]
    settings.GENERATION_STALE_SECONDS = 1.0

    message = await assistant_message(
        conversation,
        status=Message.Status.IN_PROGRESS,
        worker_id="dead-host:1:gone",
        created_at=timezone.now() - timedelta(seconds=5),
    )
    await write_log(
        message.pk,
        [
            sse.SSEEvent.build(
                1, sse.message_start(message_id=str(message.pk), model=MODEL, input_tokens=3)
            ),
            sse.SSEEvent.build(2, sse.content_block_start(index=0, block_type="text")),
            sse.SSEEvent.build(3, sse.content_block_delta(index=0, block_type="text", text="Par")),
            sse.SSEEvent.build(4, sse.content_block_delta(index=0, block_type="text", text="t")),
        ],
    )
    assert await sweep_once() == [message.pk]

    # when: the client resumes after the eighth event
    body = await (await resume(conversation, auth, message.pk, after=8)).read()

    # then: the stored answer, from event 1
    events = parse_sse(body)
    assert [(e.id, e.event) for e in events] == [
        (1, "message_start"),
        (2, "content_block_start"),
        (3, "content_block_delta"),
        (4, "content_block_stop"),
        (5, "error"),
    ]
    assert events[2].data["delta"]["text"] == "Part"


@pytest.mark.skipif("redis" not in LOG_MODES, reason="needs Redis (set REDIS_URL; CI does)")
async def test_a_follower_of_a_log_that_will_never_end_gets_the_stored_answer_replayed(
    settings, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: an answer stored complete by a process that died before logging its end
    settings.REDIS_URL = os.environ["REDIS_URL"]

    message = await assistant_message(
        conversation,
        status=Message.Status.COMPLETE,
        content="Hello",
        input_tokens=3,
        output_tokens=1,
    )
    await write_log(
        message.pk,
        [
            sse.SSEEvent.build(
                1, sse.message_start(message_id=str(message.pk), model=MODEL, input_tokens=3)
            ),
            sse.SSEEvent.build(2, sse.content_block_start(index=0, block_type="text")),
            sse.SSEEvent.build(
                3, sse.content_block_delta(index=0, block_type="text", text="Hello")
            ),
        ],
    )

    # when: a client resumes after the second event
    body = await (await resume(conversation, auth, message.pk, after=2)).read(wait=5.0)

    # then: what the log has, then the stored answer from event 1, not a wait for an end
    # that never comes
    assert [(e.id, e.event) for e in parse_sse(body)] == [
        (3, "content_block_delta"),
        (1, "message_start"),
        (2, "content_block_start"),
        (3, "content_block_delta"),
        (4, "content_block_stop"),
        (5, "message_delta"),
        (6, "message_stop"),
    ]


@pytest.mark.skipif("redis" not in LOG_MODES, reason="needs Redis (set REDIS_URL; CI does)")
async def test_more_followers_than_the_redis_pool_has_connections_all_follow_to_the_end(
    settings, conversation: Conversation
) -> None:
    # given: an answer in progress on another process (its log in Redis) and 150 followers in
    # this one, more than the client's pool of 100 connections
    settings.REDIS_URL = os.environ["REDIS_URL"]

    message = await assistant_message(
        conversation,
        status=Message.Status.IN_PROGRESS,
        worker_id=WORKER_ID,
    )
    events = [
        sse.SSEEvent.build(
            1, sse.message_start(message_id=str(message.pk), model=MODEL, input_tokens=3)
        ),
        sse.SSEEvent.build(2, sse.content_block_start(index=0, block_type="text")),
        *(
            sse.SSEEvent.build(n, sse.content_block_delta(index=0, block_type="text", text=f"{n} "))
            for n in range(3, 23)
        ),
        sse.SSEEvent.build(23, sse.content_block_stop(index=0)),
        sse.SSEEvent.build(
            24, sse.message_delta(stop_reason="end_turn", input_tokens=3, output_tokens=20)
        ),
        sse.SSEEvent.build(25, sse.message_stop()),
    ]
    await write_log(message.pk, events[:2])

    async def follow() -> bytes:
        return b"".join([chunk async for chunk in message_events(message, after=0)])

    def waiting() -> int:
        reader = eventlog._readers.get(asyncio.get_running_loop())
        return 0 if reader is None else reader.waiting()

    followers = [asyncio.ensure_future(follow()) for _ in range(150)]
    deadline = asyncio.get_running_loop().time() + 10
    while waiting() < 150:  # until all of them have caught up and wait
        assert asyncio.get_running_loop().time() < deadline, f"{waiting()} waiting"
        await asyncio.sleep(0.01)
    waiting_on = len(redis_client().connection_pool._in_use_connections)

    # when: the rest of the answer arrives, an event every 20 ms
    for event in events[2:]:
        await write_log(message.pk, [event])
        await asyncio.sleep(0.02)

    # then: every follower has the whole answer, byte for byte (none cut off with the log
    # lost for want of a connection), and their waits held one connection, not one each
    expected = b"".join(event.raw for event in events)
    received = await asyncio.wait_for(asyncio.gather(*followers), timeout=10)
    assert received == [expected] * 150
    assert waiting_on <= 2  # the shared read and this process's cancel listener


async def assistant_message(conversation: Conversation, **fields: Any) -> Message:
    """An assistant message stored as another process left it."""
    return await sync_to_async(Message.objects.create)(
        conversation=conversation, role=Message.Role.ASSISTANT, model=MODEL, **fields
    )


async def write_log(message_id: uuid.UUID, events: list[sse.SSEEvent]) -> None:
    """A log as a process that died would have left it."""
    for event in events:
        await redis_client().xadd(
            log_key(message_id), {"t": event.type, "b": event.raw}, id=f"{event.id}-0"
        )


@sync_to_async
def _ledger(message_id: uuid.UUID) -> UsageRecord | None:
    return UsageRecord.objects.filter(message_id=message_id).first()


@sync_to_async
def _refresh(message: Message) -> None:
    message.refresh_from_db()
