"""Branches through the API: edit (send with parent_id), regenerate, switch (PATCH
current_leaf_id) and fork, each asserting the exact history the model provider received.
The provider is the fake Groq server on loopback; the app runs in-process under ASGI."""

import asyncio
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from accounts.models import User
from conversations.models import Conversation, Message
from conversations.services import conversation_create
from testsupport.asgi import ASGIRequest, parse_sse
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.helpers import MODEL, settled, stored
from usage.models import UsageRecord

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("groq_providers", "close_worker_connection"),
]

OTHER_MODEL = "openai/gpt-oss-120b"


@pytest.fixture
def conversation(user: User) -> Conversation:
    return conversation_create(owner=user, model=MODEL, system_prompt="Be brief.")


def _path(conversation: Conversation | str, rest: str = "") -> str:
    cid = conversation if isinstance(conversation, str) else conversation.pk
    return f"/api/v1/conversations/{cid}{rest}"


async def call(
    method: str,
    path: str,
    auth: dict[str, str],
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    request = await ASGIRequest(
        method, path, headers={**auth, **(headers or {})}, json_body=body
    ).start()
    payload = await request.json()
    assert request.status is not None
    return request.status, payload


async def send(
    conversation: Conversation, auth: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    """A JSON send that must succeed: the answer (an Anthropic Message plus user_message)."""
    status, reply = await call("POST", _path(conversation, "/messages"), auth, body)
    assert status == 201, reply
    return dict(reply)


async def regenerate(
    conversation: Conversation,
    auth: dict[str, str],
    message_id: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    return await call(
        "POST",
        _path(conversation, f"/messages/{message_id}/regenerate"),
        auth,
        body if body is not None else {},
        headers,
    )


def history(fake_groq: FakeGroq, call_index: int = -1) -> list[tuple[str, str]]:
    """What the provider was sent for one turn, as (role, content) pairs."""
    return [(m["role"], m["content"]) for m in fake_groq.received[call_index].body["messages"]]


async def current_leaf(conversation: Conversation, auth: dict[str, str]) -> str | None:
    status, body = await call("GET", _path(conversation), auth)
    assert status == 200
    leaf: str | None = body["current_leaf_id"]
    return leaf


async def branch(
    conversation: Conversation, auth: dict[str, str], query: str = ""
) -> list[tuple[str, str, int, int]]:
    """GET messages: (content, role, sibling_index, sibling_count) of each, oldest first."""
    status, body = await call("GET", _path(conversation, f"/messages{query}"), auth)
    assert status == 200, body
    return [(m["content"], m["role"], m["sibling_index"], m["sibling_count"]) for m in body["data"]]


def answers(*texts: str) -> list[Reply]:
    return [Reply(text=[text]) for text in texts]


@pytest.fixture
def patient_provider(settings: Any, groq_providers: None) -> None:
    """A read timeout long enough for a test to hold an answer mid-stream."""
    settings.LLM_PROVIDERS = {"groq": {**settings.LLM_PROVIDERS["groq"], "read_timeout": 30.0}}


async def answer_held(
    fake_groq: FakeGroq,
    path: str,
    auth: dict[str, str],
    body: dict[str, Any],
    text: tuple[str, ...] = ("slow", "er"),
    hold_at: int = 1,
) -> tuple[ASGIRequest, Reply]:
    """A streamed turn whose provider holds before chunk ``hold_at`` (0 is the head, 1 the
    first word): in progress until the test sets the reply's ``hold``."""
    reply = Reply(text=list(text), hold_at=hold_at)
    fake_groq.replies.append(reply)
    request = await ASGIRequest("POST", path, headers=auth, json_body=body).start()
    assert request.status == 200
    assert await asyncio.to_thread(fake_groq.wait_for_hold)
    return request, reply


# --- the whole story ----------------------------------------------------------------------


async def test_edit_regenerate_switch_and_new_root_each_send_only_their_branch(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: two turns in a line
    fake_groq.replies.extend(answers("A1", "A2", "A2 edited", "A2 again", "A3", "A4", "Fresh"))
    a1 = await send(conversation, auth, {"content": "Q1"})
    a2 = await send(conversation, auth, {"content": "Q2"})
    assert history(fake_groq) == [
        ("system", "Be brief."),
        ("user", "Q1"),
        ("assistant", "A1"),
        ("user", "Q2"),
    ]

    # when: Q2 is edited (sent again after A1)
    edited = await send(conversation, auth, {"content": "Q2 edited", "parent_id": a1["id"]})

    # then: the model saw Q1, A1 and the new Q2, not the old one
    assert history(fake_groq) == [
        ("system", "Be brief."),
        ("user", "Q1"),
        ("assistant", "A1"),
        ("user", "Q2 edited"),
    ]
    assert edited["user_message"]["parent_id"] == a1["id"]
    assert (edited["user_message"]["sibling_index"], edited["user_message"]["sibling_count"]) == (
        2,
        2,
    )
    assert await current_leaf(conversation, auth) == edited["id"]

    # when: another answer to the edited question
    status, again = await regenerate(conversation, auth, edited["id"])

    # then: the same history, a sibling of the first answer, now the current leaf
    assert status == 201, again
    assert history(fake_groq) == history(fake_groq, -2)
    assert again["user_message"]["id"] == edited["user_message"]["id"]
    assert again["content"] == [{"type": "text", "text": "A2 again"}]
    assert await current_leaf(conversation, auth) == again["id"]

    # when: a send without parent_id continues the current branch
    await send(conversation, auth, {"content": "Q3"})

    # then
    assert history(fake_groq) == [
        ("system", "Be brief."),
        ("user", "Q1"),
        ("assistant", "A1"),
        ("user", "Q2 edited"),
        ("assistant", "A2 again"),
        ("user", "Q3"),
    ]
    assert await branch(conversation, auth) == [
        ("Q1", "user", 1, 1),
        ("A1", "assistant", 1, 1),
        ("Q2 edited", "user", 2, 2),
        ("A2 again", "assistant", 2, 2),
        ("Q3", "user", 1, 1),
        ("A3", "assistant", 1, 1),
    ]

    # when: back to the first version of Q2, and a send from there
    status, switched = await call("PATCH", _path(conversation), auth, {"current_leaf_id": a2["id"]})
    assert (status, switched["current_leaf_id"]) == (200, a2["id"])
    await send(conversation, auth, {"content": "Q4"})

    # then: the old branch, untouched by the edit
    assert history(fake_groq) == [
        ("system", "Be brief."),
        ("user", "Q1"),
        ("assistant", "A1"),
        ("user", "Q2"),
        ("assistant", "A2"),
        ("user", "Q4"),
    ]

    # when: a new root
    fresh = await send(conversation, auth, {"content": "Start over", "parent_id": None})

    # then: nothing before it
    assert history(fake_groq) == [("system", "Be brief."), ("user", "Start over")]
    assert fresh["user_message"]["parent_id"] is None
    assert (fresh["user_message"]["sibling_index"], fresh["user_message"]["sibling_count"]) == (
        2,
        2,
    )
    assert await branch(conversation, auth) == [
        ("Start over", "user", 2, 2),
        ("Fresh", "assistant", 1, 1),
    ]
    assert len(await stored(conversation)) == 13


async def test_a_fork_continues_with_the_branch_it_copied(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: Q1 A1, then two versions of Q2
    fake_groq.replies.extend(answers("A1", "A2", "A2b", "A3"))
    a1 = await send(conversation, auth, {"content": "Q1"})
    await send(conversation, auth, {"content": "Q2"})
    a2b = await send(conversation, auth, {"content": "Q2b", "parent_id": a1["id"]})

    # when: the branch up to A2b is forked, and the fork goes on
    status, fork = await call("POST", _path(conversation, "/fork"), auth, {"message_id": a2b["id"]})
    assert status == 201, fork
    forked = await sync_to_async(Conversation.objects.get)(pk=fork["id"])
    await send(forked, auth, {"content": "Q3 in the fork"})

    # then: the fork's model saw the copied branch only
    assert history(fake_groq) == [
        ("system", "Be brief."),
        ("user", "Q1"),
        ("assistant", "A1"),
        ("user", "Q2b"),
        ("assistant", "A2b"),
        ("user", "Q3 in the fork"),
    ]
    assert await branch(forked, auth) == [
        ("Q1", "user", 1, 1),
        ("A1", "assistant", 1, 1),
        ("Q2b", "user", 1, 1),
        ("A2b", "assistant", 1, 1),
        ("Q3 in the fork", "user", 1, 1),
        ("A3", "assistant", 1, 1),
    ]
    # and the original is as it was
    assert len(await stored(conversation)) == 6
    assert await current_leaf(conversation, auth) == a2b["id"]


# --- send with parent_id ------------------------------------------------------------------


async def test_a_send_after_a_stored_answer_stores_its_parents_and_moves_the_leaf(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    first = await send(conversation, auth, {"content": "Q1"})

    # when
    second = await send(conversation, auth, {"content": "Q2"})

    # then
    q1, a1, q2, a2 = await stored(conversation)
    assert (q1.parent_id, a1.parent_id, q2.parent_id, a2.parent_id) == (None, q1.pk, a1.pk, q2.pk)
    assert str(a1.pk) == first["id"]
    assert second["user_message"]["parent_id"] == first["id"]
    assert await current_leaf(conversation, auth) == str(a2.pk)


async def test_a_streamed_edit_streams_like_a_send(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    fake_groq.replies.extend(answers("A1", "A2", "A2b"))
    a1 = await send(conversation, auth, {"content": "Q1"})
    await send(conversation, auth, {"content": "Q2"})

    # when
    response = await ASGIRequest(
        "POST",
        _path(conversation, "/messages"),
        headers=auth,
        json_body={"content": "Q2b", "parent_id": a1["id"], "stream": True},
    ).start()
    events = parse_sse(await response.read())

    # then
    messages = await settled(conversation)
    edit, answer = messages[-2:]
    assert response.status == 200
    assert response.headers["user-message-id"] == str(edit.pk)
    assert events[0].data["message"]["id"] == str(answer.pk)
    assert events[-1].event == "message_stop"
    assert (edit.parent_id, answer.parent_id, answer.content) == (
        uuid.UUID(a1["id"]),
        edit.pk,
        "A2b",
    )


@pytest.mark.parametrize(
    "target", ["malformed", "missing", "a user message", "another conversation's", "another user's"]
)
async def test_a_parent_that_is_not_an_answer_of_this_conversation_is_400_and_stores_nothing(
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
    user: User,
    other_user: User,
    target: str,
) -> None:
    # given: a turn here, a turn in another conversation of the user's and one of another user
    first = await send(conversation, auth, {"content": "Q1"})
    mine = await sync_to_async(conversation_create)(owner=user, model=MODEL)
    theirs = await sync_to_async(conversation_create)(owner=other_user, model=MODEL)
    elsewhere = await send(mine, auth, {"content": "Elsewhere"})

    @sync_to_async
    def their_answer() -> str:
        message = Message.objects.create(
            conversation=theirs, role=Message.Role.ASSISTANT, content="theirs"
        )
        return str(message.pk)

    parent_id = {
        "malformed": "not-a-uuid",
        "missing": str(uuid.uuid4()),
        "a user message": first["user_message"]["id"],
        "another conversation's": elsewhere["id"],
        "another user's": await their_answer(),
    }[target]
    before = await stored(conversation)
    calls = len(fake_groq.received)

    # when
    status, body = await call(
        "POST", _path(conversation, "/messages"), auth, {"content": "Q2", "parent_id": parent_id}
    )

    # then
    problem = {
        "malformed": "Must be a valid UUID.",
        "a user message": "Must be an assistant message: a user message follows an answer "
        "(or starts a new branch with null).",
    }.get(target, "No message with this id in this conversation.")
    assert status == 400
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": f"parent_id: {problem}",
        "details": {"fields": {"parent_id": [problem]}},
    }
    assert await stored(conversation) == before
    assert len(fake_groq.received) == calls
    assert await current_leaf(conversation, auth) == first["id"]


async def test_a_send_on_another_branch_while_an_answer_is_generated_is_409(
    fake_groq: FakeGroq, patient_provider: None, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: an answer being generated on the current branch
    first = await send(conversation, auth, {"content": "Q1"})
    running, slow = await answer_held(
        fake_groq, _path(conversation, "/messages"), auth, {"content": "Q2", "stream": True}
    )

    # when: an edit of Q1's answer's follow-up on another branch
    status, body = await call(
        "POST",
        _path(conversation, "/messages"),
        auth,
        {"content": "Q2b", "parent_id": first["id"]},
    )

    # then
    assert status == 409
    assert body["error"]["type"] == "invalid_request_error"
    slow.hold.set()
    await running.read()
    assert len(await settled(conversation)) == 4


# --- regenerate ---------------------------------------------------------------------------


async def test_a_regeneration_takes_a_response_format_of_its_own(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    fake_groq.replies.extend([Reply(text=["Lisbon."]), Reply(text=['{"city": "Lisbon"}'])])
    first = await send(conversation, auth, {"content": "A city?"})

    status, _ = await regenerate(
        conversation, auth, first["id"], {"response_format": {"type": "json_object"}}
    )

    assert status == 201
    assert "response_format" not in fake_groq.received[0].body
    assert fake_groq.received[1].body["response_format"] == {"type": "json_object"}


async def test_regenerate_answers_json_like_a_send_with_the_same_user_message(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    fake_groq.replies.append(Reply(text=["First"]))
    fake_groq.replies.append(
        Reply(reasoning=["Again."], text=["Second"], prompt_tokens=20, completion_tokens=4)
    )
    first = await send(conversation, auth, {"content": "Hi"})

    # when
    status, body = await regenerate(conversation, auth, first["id"])

    # then
    question, old, new = await stored(conversation)
    assert status == 201
    assert body["id"] == str(new.pk)
    assert body["type"] == "message"
    assert body["content"] == [
        {"type": "thinking", "thinking": "Again."},
        {"type": "text", "text": "Second"},
    ]
    assert body["model"] == MODEL
    assert body["usage"] == {
        "input_tokens": 20,
        "output_tokens": 4,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert body["conversation_id"] == str(conversation.pk)
    assert body["user_message"]["id"] == str(question.pk)
    assert body["user_message"]["content"] == "Hi"
    assert body["cost_usd"] == "0.0000027000"
    assert (old.parent_id, new.parent_id) == (question.pk, question.pk)
    assert (old.content, new.content, new.status) == ("First", "Second", "complete")
    assert (
        history(fake_groq, 0)
        == history(fake_groq, 1)
        == [
            ("system", "Be brief."),
            ("user", "Hi"),
        ]
    )
    assert await branch(conversation, auth) == [
        ("Hi", "user", 1, 1),
        ("Second", "assistant", 2, 2),
    ]
    assert await branch(conversation, auth, f"?leaf_id={old.pk}") == [
        ("Hi", "user", 1, 1),
        ("First", "assistant", 1, 2),
    ]


async def test_regenerate_streams_with_stream_true(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    fake_groq.replies.extend(answers("First", "Second"))
    first = await send(conversation, auth, {"content": "Hi"})

    # when
    response = await ASGIRequest(
        "POST",
        _path(conversation, f"/messages/{first['id']}/regenerate"),
        headers=auth,
        json_body={"stream": True},
    ).start()
    events = parse_sse(await response.read())

    # then
    question, _, new = await settled(conversation)
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["conversation-id"] == str(conversation.pk)
    assert response.headers["user-message-id"] == str(question.pk)
    assert [e.event for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0].data["message"]["id"] == str(new.pk)
    assert events[2].data["delta"] == {"type": "text_delta", "text": "Second"}


async def test_regenerate_with_another_model_and_settings_sends_them_upstream(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    first = await send(conversation, auth, {"content": "Hi"})

    # when
    status, body = await regenerate(
        conversation,
        auth,
        first["id"],
        {"model": OTHER_MODEL, "temperature": 0.3, "max_output_tokens": 100},
    )

    # then
    assert status == 201, body
    sent = fake_groq.received[-1].body
    assert (sent["model"], sent["temperature"], sent["max_completion_tokens"]) == (
        OTHER_MODEL,
        0.3,
        100,
    )
    assert body["model"] == OTHER_MODEL
    refreshed = await sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert refreshed.model == MODEL  # the conversation's own settings stay


async def test_regenerating_an_earlier_answer_sends_the_history_before_it(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: two turns
    fake_groq.replies.extend(answers("A1", "A2", "A1 again"))
    a1 = await send(conversation, auth, {"content": "Q1"})
    await send(conversation, auth, {"content": "Q2"})

    # when
    status, _ = await regenerate(conversation, auth, a1["id"])

    # then: Q1 only, and the new answer is the branch's end
    assert status == 201
    assert history(fake_groq) == [("system", "Be brief."), ("user", "Q1")]
    assert await branch(conversation, auth) == [
        ("Q1", "user", 1, 1),
        ("A1 again", "assistant", 2, 2),
    ]


async def test_every_regeneration_is_in_the_ledger(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    first = await send(conversation, auth, {"content": "Hi"})

    # when
    _, second = await regenerate(conversation, auth, first["id"])
    _, third = await regenerate(conversation, auth, first["id"])

    # then
    recorded = await sync_to_async(
        lambda: set(UsageRecord.objects.values_list("message_id", flat=True))
    )()
    assert recorded == {uuid.UUID(first["id"]), uuid.UUID(second["id"]), uuid.UUID(third["id"])}


async def test_regenerating_a_user_message_is_400(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    first = await send(conversation, auth, {"content": "Hi"})

    status, body = await regenerate(conversation, auth, first["user_message"]["id"])

    assert status == 400
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "Only an assistant message can be regenerated; this is a user message "
        "(to change it, send the new text with its parent_id).",
    }
    assert len(await stored(conversation)) == 2
    assert len(fake_groq.received) == 1


async def test_regenerating_an_answer_in_progress_is_409(
    fake_groq: FakeGroq, patient_provider: None, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: an answer being generated
    running, slow = await answer_held(
        fake_groq, _path(conversation, "/messages"), auth, {"content": "Hi", "stream": True}
    )
    answer_id = (await stored(conversation))[1].pk

    # when
    status, body = await regenerate(conversation, auth, str(answer_id))

    # then
    assert status == 409
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": "The message is still being generated; cancel it, or wait for it to end.",
        "details": {"status": "in_progress"},
    }
    slow.hold.set()
    await running.read()
    assert len(await settled(conversation)) == 2


async def test_regenerating_while_another_answer_is_generated_is_409(
    fake_groq: FakeGroq, patient_provider: None, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a finished answer, then another one being generated
    first = await send(conversation, auth, {"content": "Q1"})
    running, slow = await answer_held(
        fake_groq, _path(conversation, "/messages"), auth, {"content": "Q2", "stream": True}
    )

    # when
    status, body = await regenerate(conversation, auth, first["id"])

    # then
    assert status == 409
    assert body["error"]["type"] == "invalid_request_error"
    assert "in_progress_message_id" in body["error"]["details"]
    slow.hold.set()
    await running.read()
    assert len(await settled(conversation)) == 4


@pytest.mark.parametrize("target", ["malformed", "missing", "another conversation's"])
async def test_regenerating_a_message_of_no_concern_is_404(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str], user: User, target: str
) -> None:
    # given
    await send(conversation, auth, {"content": "Hi"})
    mine = await sync_to_async(conversation_create)(owner=user, model=MODEL)
    elsewhere = await send(mine, auth, {"content": "Elsewhere"})
    message_id = {
        "malformed": "not-a-uuid",
        "missing": str(uuid.uuid4()),
        "another conversation's": elsewhere["id"],
    }[target]

    # when
    status, body = await regenerate(conversation, auth, message_id)

    # then
    assert status == 404
    assert body["error"] == {"type": "not_found_error", "message": "Message not found."}
    assert len(fake_groq.received) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "Other text"}, "content"),
        ({"parent_id": None}, "parent_id"),
        ({"temperature": 3}, "temperature"),
        ({"model": "no/such-model"}, "model"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ],
)
async def test_invalid_regenerations_are_400_and_store_nothing(
    fake_groq: FakeGroq,
    conversation: Conversation,
    auth: dict[str, str],
    body: dict[str, Any],
    field: str,
) -> None:
    first = await send(conversation, auth, {"content": "Hi"})

    status, payload = await regenerate(conversation, auth, first["id"], body)

    assert status == 400
    assert payload["error"]["type"] == "invalid_request_error"
    assert list(payload["error"]["details"]["fields"]) == [field]
    assert len(await stored(conversation)) == 2
    assert len(fake_groq.received) == 1


async def test_a_regenerate_retried_with_its_idempotency_key_is_the_same_turn(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given
    first = await send(conversation, auth, {"content": "Hi"})

    # when
    status, original = await regenerate(
        conversation, auth, first["id"], {}, {"idempotency-key": "again-1"}
    )
    retry_status, repeated = await regenerate(
        conversation, auth, first["id"], {}, {"idempotency-key": "again-1"}
    )

    # then
    assert (status, retry_status) == (201, 201)
    assert repeated == original
    assert len(await stored(conversation)) == 3
    assert len(fake_groq.received) == 2


async def test_an_idempotency_key_of_a_send_reused_for_a_regenerate_is_422(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a send with a key
    status, first = await call(
        "POST", _path(conversation, "/messages"), auth, {"content": "Hi"}, {"idempotency-key": "k"}
    )
    assert status == 201

    # when
    status, body = await regenerate(conversation, auth, first["id"], {}, {"idempotency-key": "k"})

    # then
    assert status == 422
    assert body["error"]["message"] == (
        "This Idempotency-Key was already used with a different request; use a new key."
    )
    assert len(await stored(conversation)) == 2


# --- resume and cancel on a branch --------------------------------------------------------


async def test_a_regeneration_resumes_after_a_disconnect(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a streamed regeneration whose client leaves after the first event
    first = await send(conversation, auth, {"content": "Hi"})
    fake_groq.replies.append(Reply(text=[f"t{i}" for i in range(6)], interval=0.03))
    request = await ASGIRequest(
        "POST",
        _path(conversation, f"/messages/{first['id']}/regenerate"),
        headers=auth,
        json_body={"stream": True},
    ).start()
    chunks = request.chunks()
    received = b""
    while b"\n\n" not in received:
        received += await anext(chunks)
    seen = parse_sse(received.split(b"\n\n")[0] + b"\n\n")
    await request.disconnect()

    # when
    new_id = seen[0].data["message"]["id"]
    resumed = await ASGIRequest(
        "GET",
        _path(conversation, f"/messages/{new_id}/stream"),
        headers={**auth, "last-event-id": "1"},
    ).start()
    events = parse_sse(await resumed.read())

    # then: the rest of the one answer
    assert resumed.status == 200
    assert events[0].id == 2
    assert events[-1].event == "message_stop"
    messages = await settled(conversation)
    assert (messages[-1].pk, messages[-1].content) == (
        uuid.UUID(new_id),
        "t0t1t2t3t4t5",
    )
    assert await current_leaf(conversation, auth) == new_id


async def test_a_regeneration_can_be_cancelled_and_stays_the_current_leaf(
    fake_groq: FakeGroq, patient_provider: None, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a regeneration held by the provider after its first chunk
    first = await send(conversation, auth, {"content": "Hi"})
    request, slow = await answer_held(
        fake_groq,
        _path(conversation, f"/messages/{first['id']}/regenerate"),
        auth,
        {"stream": True},
        text=("par", "tial"),
        hold_at=2,
    )
    chunks = request.chunks()
    received = b""
    while b"text_delta" not in received:
        received += await anext(chunks)
    new_id = parse_sse(received.split(b"\n\n")[0] + b"\n\n")[0].data["message"]["id"]

    # when
    status, body = await call("POST", _path(conversation, f"/messages/{new_id}/cancel"), auth)
    await asyncio.wait_for(request.read(), 10)

    # then
    assert status == 200
    assert (body["status"], body["content"]) == ("cancelled", "par")
    assert await current_leaf(conversation, auth) == new_id
    slow.hold.set()
    assert len(await settled(conversation)) == 3
