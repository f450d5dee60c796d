"""Tool use on a conversation tree: the open tool calls a send must answer are those of the
answer it follows on its branch, the history sent upstream is that branch with its tool round
trips, and a regenerated answer to tool results is asked with the same results."""

from typing import Any

import pytest

from accounts.models import User
from conversations.models import Conversation
from conversations.services import conversation_create
from testsupport.asgi import ASGIRequest
from testsupport.fake_groq import FakeGroq, Reply, ToolCallReply
from testsupport.helpers import MODEL

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.asyncio,
    pytest.mark.usefixtures("groq_providers", "close_worker_connection"),
]

WEATHER = {
    "name": "get_weather",
    "description": "The weather now in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Lisbon"}'},
        }
    ],
}
RESULT = [{"type": "tool_result", "tool_use_id": "call_1", "content": "18 C, sunny"}]


@pytest.fixture
def conversation(user: User) -> Conversation:
    return conversation_create(owner=user, model=MODEL, system_prompt="Be brief.", tools=[WEATHER])


async def post(auth: dict[str, str], path: str, body: dict[str, Any]) -> tuple[int | None, Any]:
    response = await ASGIRequest("POST", path, headers=auth, json_body=body).start()
    return response.status, await response.json()


def messages_path(conversation: Conversation) -> str:
    return f"/api/v1/conversations/{conversation.pk}/messages"


async def test_a_send_answers_the_tool_calls_of_its_parent_not_of_the_newest_answer(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a plain answer, then an answer after it that called a tool (the newest message)
    fake_groq.replies.extend(
        [
            Reply(text=["Which city?"]),
            Reply(
                text=[],
                tool_calls=[ToolCallReply("get_weather", ['{"city":"Lisbon"}'], id="call_1")],
            ),
            Reply(text=["Porto: ask again later."]),
            Reply(text=["18 C in Lisbon."]),
        ]
    )
    path = messages_path(conversation)
    _, plain = await post(auth, path, {"content": "Weather?"})
    _, called = await post(auth, path, {"content": "Lisbon."})

    # when: a new version of "Lisbon." after the plain answer, in plain text...
    edit_status, _ = await post(auth, path, {"content": "Porto.", "parent_id": plain["id"]})
    # ...and the results of the call on the other branch, after the answer that called
    results_status, _ = await post(auth, path, {"content": RESULT, "parent_id": called["id"]})

    # then: each was checked against its own parent, and sent with its own branch
    assert (edit_status, results_status) == (201, 201)
    assert fake_groq.received[2].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Which city?"},
        {"role": "user", "content": "Porto."},
    ]
    assert fake_groq.received[3].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "Which city?"},
        {"role": "user", "content": "Lisbon."},
        CALL,
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
    ]


async def test_a_plain_send_after_an_answer_with_open_calls_on_its_branch_is_a_400(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: the current leaf is a plain answer, an earlier branch's answer called a tool
    fake_groq.replies.extend(
        [
            Reply(
                text=[],
                tool_calls=[ToolCallReply("get_weather", ['{"city":"Lisbon"}'], id="call_1")],
            ),
            Reply(text=["Hello."]),
        ]
    )
    path = messages_path(conversation)
    _, called = await post(auth, path, {"content": "Lisbon?"})
    await post(auth, path, {"content": "Hi", "parent_id": None})

    # when
    status, body = await post(auth, path, {"content": "And now?", "parent_id": called["id"]})

    # then
    assert status == 400
    assert body["error"]["details"]["open_tool_use_ids"] == ["call_1"]
    assert len(fake_groq.received) == 2


async def test_regenerating_the_answer_to_tool_results_sends_the_results_again(
    fake_groq: FakeGroq, conversation: Conversation, auth: dict[str, str]
) -> None:
    # given: a round trip: the call, the results, the answer to them
    fake_groq.replies.extend(
        [
            Reply(
                text=[],
                tool_calls=[ToolCallReply("get_weather", ['{"city":"Lisbon"}'], id="call_1")],
            ),
            Reply(text=["18 C."]),
            Reply(text=["Sunny, 18 C."]),
        ]
    )
    path = messages_path(conversation)
    await post(auth, path, {"content": "Lisbon?"})
    _, answer = await post(auth, path, {"content": RESULT})

    # when
    status, again = await post(auth, f"{path}/{answer['id']}/regenerate", {})

    # then: the same question, results included, went upstream again
    assert status == 201
    assert again["content"] == [{"type": "text", "text": "Sunny, 18 C."}]
    expected = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Lisbon?"},
        CALL,
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
    ]
    assert fake_groq.received[1].body["messages"] == expected
    assert fake_groq.received[2].body["messages"] == expected
