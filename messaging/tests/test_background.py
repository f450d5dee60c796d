"""Background sends: 202 at once, the answer generated with no client attached, followed by
GET .../messages/{id}, resumed, cancelled; and that message's own route. The app runs
in-process under ASGI against the fake Groq server on loopback."""

import asyncio
import uuid
from typing import Any

import pytest

from accounts.models import User
from conversations.models import Conversation
from conversations.services import conversation_create
from testsupport.asgi import ASGIRequest, parse_sse
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.helpers import MODEL, settled

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("groq_providers", "close_worker_connection"),
]


def base(conversation: Conversation) -> str:
    return f"/api/v1/conversations/{conversation.pk}/messages"


async def call(
    method: str,
    path: str,
    auth: dict[str, str],
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    request = await ASGIRequest(
        method, path, headers={**auth, **(headers or {})}, json_body=body
    ).start()
    payload = await request.json()
    assert request.status is not None
    return request.status, payload, request.headers


def held(fake_groq: FakeGroq, *, at: int = 1) -> Reply:
    """The next answer: "Hello there!" held by the provider before chunk ``at``."""
    reply = Reply(text=["Hello", " there", "!"], hold_at=at)
    fake_groq.replies.append(reply)
    return reply


async def message(conversation: Conversation, auth: dict[str, str], message_id: str) -> Any:
    status, body, _ = await call("GET", f"{base(conversation)}/{message_id}", auth)
    assert status == 200, body
    return body


async def once_ended(conversation: Conversation, auth: dict[str, str], message_id: str) -> Any:
    """The message as the API shows it once no answer of the conversation is in progress."""
    await settled(conversation, wait=10)
    return await message(conversation, auth, message_id)


async def test_a_background_send_answers_202_at_once_and_its_answer_completes(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: an answer the provider holds after its first chunk
    reply = held(fake_groq)

    # when
    status, body, headers = await call(
        "POST", base(conversation), auth, {"content": "Hi", "background": True}
    )

    # then: accepted while the provider still holds the answer
    assert status == 202
    assistant_id = body["assistant_message_id"]
    assert body["status"] == "in_progress"
    assert body["conversation_id"] == str(conversation.pk)
    assert body["user_message"]["content"] == "Hi"
    assert body["user_message"]["role"] == "user"
    assert headers["location"] == f"{base(conversation)}/{assistant_id}"
    assert await asyncio.to_thread(fake_groq.wait_for_hold, 5)
    in_progress = await message(conversation, auth, assistant_id)
    assert (in_progress["status"], in_progress["role"]) == ("in_progress", "assistant")
    assert in_progress["parent_id"] == body["user_message"]["id"]
    reply.hold.set()
    done = await once_ended(conversation, auth, assistant_id)
    assert done["status"] == "complete"
    assert done["content"] == "Hello there!"
    assert done["usage"]["input_tokens"] == 42
    assert done["cost_usd"] is not None


async def test_a_background_answer_is_resumed_from_its_stream(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a background answer under way
    reply = held(fake_groq, at=2)
    _, body, _ = await call("POST", base(conversation), auth, {"content": "Hi", "background": True})
    assert await asyncio.to_thread(fake_groq.wait_for_hold, 5)

    # when: a client follows it from the start
    follower = await ASGIRequest(
        "GET", f"{base(conversation)}/{body['assistant_message_id']}/stream", headers=auth
    ).start()
    reply.hold.set()
    events = parse_sse(await follower.read())

    # then
    assert follower.status == 200
    assert events[0].data["message"]["id"] == body["assistant_message_id"]
    text = "".join(e.data["delta"]["text"] for e in events if e.event == "content_block_delta")
    assert text == "Hello there!"
    assert events[-1].event == "message_stop"


async def test_a_background_answer_can_be_cancelled(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    reply = held(fake_groq, at=2)
    _, body, _ = await call("POST", base(conversation), auth, {"content": "Hi", "background": True})
    assert await asyncio.to_thread(fake_groq.wait_for_hold, 5)

    # when
    status, cancelled, _ = await call(
        "POST", f"{base(conversation)}/{body['assistant_message_id']}/cancel", auth
    )

    # then
    assert status == 200
    assert (cancelled["status"], cancelled["content"]) == ("cancelled", "Hello")
    reply.hold.set()
    _, assistant = await settled(conversation)
    assert (assistant.status, assistant.content) == ("cancelled", "Hello")


@pytest.mark.parametrize(
    ("hold_at", "leaves"), [(0, "before the provider answers"), (2, "mid-answer")]
)
async def test_the_client_going_away_does_not_stop_a_background_answer(
    hold_at: int,
    leaves: str,
    settings: Any,
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
) -> None:
    # given: streamed answers stop when their client goes away
    settings.GENERATION_CONTINUE_ON_DISCONNECT = False
    reply = held(fake_groq, at=hold_at)
    request = await ASGIRequest(
        "POST", base(conversation), headers=auth, json_body={"content": "Hi", "background": True}
    ).start()
    assert request.status == 202
    await request.read()

    # when: the client goes away while the provider holds the answer
    assert await asyncio.to_thread(fake_groq.wait_for_hold, 5)
    await request.disconnect()
    reply.hold.set()

    # then
    _, assistant = await settled(conversation)
    assert (assistant.status, assistant.content) == ("complete", "Hello there!")


async def test_a_retry_with_the_same_idempotency_key_is_the_same_background_turn(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    reply = held(fake_groq)
    key = {"Idempotency-Key": "report-1"}
    _, first, _ = await call(
        "POST", base(conversation), auth, {"content": "Hi", "background": True}, key
    )

    # when: the same key again, and a send without one while the answer runs
    again_status, again, _ = await call(
        "POST", base(conversation), auth, {"content": "Hi", "background": True}, key
    )
    conflict_status, conflict, _ = await call(
        "POST", base(conversation), auth, {"content": "Other", "background": True}
    )
    reply.hold.set()

    # then
    assert again_status == 202
    assert again["assistant_message_id"] == first["assistant_message_id"]
    assert again["user_message"]["id"] == first["user_message"]["id"]
    assert conflict_status == 409
    assert conflict["error"]["details"]["in_progress_message_id"] == (first["assistant_message_id"])
    assert len(await settled(conversation)) == 2


async def test_a_regeneration_runs_in_the_background_too(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a finished answer
    fake_groq.replies.append(Reply(text=["First."]))
    _, first, _ = await call("POST", base(conversation), auth, {"content": "Hi"})

    # when
    status, body, _ = await call(
        "POST", f"{base(conversation)}/{first['id']}/regenerate", auth, {"background": True}
    )

    # then
    assert status == 202
    assert body["user_message"]["id"] == first["user_message"]["id"]
    done = await once_ended(conversation, auth, body["assistant_message_id"])
    assert done["status"] == "complete"
    assert done["content"] == "Hello there!"
    assert done["sibling_count"] == 2


async def test_background_with_stream_is_a_400(
    conversation: Conversation, auth: dict[str, str]
) -> None:
    status, body, _ = await call(
        "POST", base(conversation), auth, {"content": "Hi", "background": True, "stream": True}
    )

    assert status == 400
    assert "background" in body["error"]["details"]["fields"]


@pytest.mark.parametrize("which", ["another user's", "missing", "malformed"])
async def test_a_message_that_is_not_the_callers_is_the_same_404(
    which: str, other_user: User, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    theirs = await asyncio.to_thread(conversation_create, owner=other_user, model=MODEL)
    path = {
        "another user's": f"/api/v1/conversations/{theirs.pk}/messages/{uuid.uuid4()}",
        "missing": f"{base(conversation)}/{uuid.uuid4()}",
        "malformed": f"{base(conversation)}/not-an-id",
    }[which]

    # when
    status, body, _ = await call("GET", path, auth)

    # then
    assert status == 404
    assert body["error"]["type"] == "not_found_error"
