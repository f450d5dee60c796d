"""GET /conversations/{id}/messages: shape, order, keyset pagination."""

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import User
from conversations.models import Conversation, Message
from testsupport.assertions import app_queries, assert_error
from testsupport.factories import at, make_conversation, make_message

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("user_read_every_request")]


@pytest.fixture
def conversation(user: User) -> Conversation:
    return make_conversation(owner=user, activity_at=at(0))


def _url(conversation: Conversation) -> str:
    return f"/api/v1/conversations/{conversation.id}/messages"


def _ids(response: Any) -> list[str]:
    return [item["id"] for item in response.json()["data"]]


def _make_many(conversation: Conversation, count: int) -> list[str]:
    """``count`` messages, alternating user and assistant; their ids oldest first."""
    return [
        str(
            make_message(
                conversation=conversation,
                role=Message.Role.USER if i % 2 == 0 else Message.Role.ASSISTANT,
                content=f"m{i}",
                created_at=at(i + 1),
            ).id
        )
        for i in range(count)
    ]


def test_empty_conversation(api_client: APIClient, conversation: Conversation) -> None:
    response = api_client.get(_url(conversation))

    assert response.status_code == 200
    assert response.json() == {"data": [], "has_more": False, "first_id": None, "last_id": None}


def test_message_shape(api_client: APIClient, conversation: Conversation) -> None:
    # given
    question = make_message(
        conversation=conversation,
        role=Message.Role.USER,
        content="Three things to see in Lisbon?",
        created_at=at(1),
        completed_at=at(1),
    )
    answer = make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="Belem Tower, the Alfama, the LX Factory.",
        reasoning="The user wants three sights.",
        stop_reason="end_turn",
        model="openai/gpt-oss-20b",
        input_tokens=42,
        output_tokens=17,
        latency_ms=812,
        ttft_ms=95,
        cost_usd=Decimal("0.00000825"),
        created_at=at(2),
        completed_at=at(2.812),
    )
    failed = make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="",
        status=Message.Status.ERROR,
        model="openai/gpt-oss-20b",
        input_tokens=40,
        output_tokens=0,
        usage_estimated=True,
        error={"type": "overloaded_error", "message": "Overloaded"},
        created_at=at(3),
    )

    # when
    response = api_client.get(_url(conversation))

    # then
    assert response.json() == {
        "data": [
            {
                "id": str(question.id),
                "conversation_id": str(conversation.id),
                "parent_id": None,
                "sibling_count": 1,
                "sibling_index": 1,
                "role": "user",
                "content": "Three things to see in Lisbon?",
                "reasoning": "",
                "blocks": [{"type": "text", "text": "Three things to see in Lisbon?"}],
                "status": "complete",
                "stop_reason": None,
                "stop_sequence": None,
                "model": None,
                "usage": {
                    "input_tokens": None,
                    "cached_input_tokens": None,
                    "output_tokens": None,
                    "estimated": False,
                },
                "latency_ms": None,
                "ttft_ms": None,
                "provider_timings": None,
                "cost_usd": None,
                "error": None,
                "created_at": "2026-11-01T09:00:01Z",
                "completed_at": "2026-11-01T09:00:01Z",
            },
            {
                "id": str(answer.id),
                "conversation_id": str(conversation.id),
                "parent_id": str(question.id),
                "sibling_count": 1,
                "sibling_index": 1,
                "role": "assistant",
                "content": "Belem Tower, the Alfama, the LX Factory.",
                "reasoning": "The user wants three sights.",
                "blocks": [
                    {"type": "thinking", "thinking": "The user wants three sights."},
                    {"type": "text", "text": "Belem Tower, the Alfama, the LX Factory."},
                ],
                "status": "complete",
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "model": "openai/gpt-oss-20b",
                "usage": {
                    "input_tokens": 42,
                    "cached_input_tokens": None,
                    "output_tokens": 17,
                    "estimated": False,
                },
                "latency_ms": 812,
                "ttft_ms": 95,
                "provider_timings": None,
                "cost_usd": "0.0000082500",
                "error": None,
                "created_at": "2026-11-01T09:00:02Z",
                "completed_at": "2026-11-01T09:00:02.812000Z",
            },
            {
                "id": str(failed.id),
                "conversation_id": str(conversation.id),
                "parent_id": str(answer.id),
                "sibling_count": 1,
                "sibling_index": 1,
                "role": "assistant",
                "content": "",
                "reasoning": "",
                "blocks": [],
                "status": "error",
                "stop_reason": None,
                "stop_sequence": None,
                "model": "openai/gpt-oss-20b",
                "usage": {
                    "input_tokens": 40,
                    "cached_input_tokens": None,
                    "output_tokens": 0,
                    "estimated": True,
                },
                "latency_ms": None,
                "ttft_ms": None,
                "provider_timings": None,
                "cost_usd": None,
                "error": {"type": "overloaded_error", "message": "Overloaded"},
                "created_at": "2026-11-01T09:00:03Z",
                "completed_at": None,
            },
        ],
        "has_more": False,
        "first_id": str(question.id),
        "last_id": str(failed.id),
    }


def test_oldest_first_with_the_default_limit_of_20(
    api_client: APIClient, conversation: Conversation
) -> None:
    ids = _make_many(conversation, 21)

    response = api_client.get(_url(conversation))

    assert _ids(response) == ids[:20]
    assert response.json()["has_more"] is True
    assert (response.json()["first_id"], response.json()["last_id"]) == (ids[0], ids[19])


def test_paging_forward_and_back(api_client: APIClient, conversation: Conversation) -> None:
    # given
    ids = _make_many(conversation, 5)
    url = _url(conversation)

    # when
    first = api_client.get(url, {"limit": "2"})
    second = api_client.get(url, {"limit": "2", "after_id": first.json()["last_id"]})
    third = api_client.get(url, {"limit": "2", "after_id": second.json()["last_id"]})
    past_end = api_client.get(url, {"limit": "2", "after_id": third.json()["last_id"]})
    back = api_client.get(url, {"limit": "2", "before_id": third.json()["first_id"]})

    # then
    assert [_ids(page) for page in (first, second, third)] == [ids[0:2], ids[2:4], ids[4:5]]
    assert [page.json()["has_more"] for page in (first, second, third)] == [True, True, False]
    assert past_end.json() == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    assert _ids(back) == ids[2:4]
    assert back.json()["has_more"] is True


def test_the_latest_messages_with_before_id_stay_put_while_new_ones_arrive(
    api_client: APIClient, conversation: Conversation
) -> None:
    # given a client reading history backwards from the newest message it has seen
    ids = _make_many(conversation, 4)

    # when the conversation grows meanwhile
    make_message(
        conversation=conversation, role=Message.Role.USER, content="new", created_at=at(10)
    )
    back = api_client.get(_url(conversation), {"limit": "2", "before_id": ids[3]})
    forward = api_client.get(_url(conversation), {"after_id": ids[3]})

    # then
    assert _ids(back) == ids[1:3]
    assert back.json()["has_more"] is True
    assert [item["content"] for item in forward.json()["data"]] == ["new"]


def test_a_cursor_from_another_conversation_is_400(
    api_client: APIClient, user: User, conversation: Conversation
) -> None:
    # given a message of the same user, in another conversation
    elsewhere = make_conversation(owner=user)
    (foreign,) = _make_many(elsewhere, 1)
    _make_many(conversation, 2)

    # when
    response = api_client.get(_url(conversation), {"after_id": foreign})
    missing = api_client.get(_url(conversation), {"after_id": str(uuid.uuid4())})

    # then
    for answer in (response, missing):
        body = assert_error(answer, 400, "invalid_request_error")
        assert body["error"]["details"] == {
            "fields": {"after_id": ["No item with this id in this list."]}
        }


@pytest.mark.parametrize(
    ("params", "field", "problem"),
    [
        ({"limit": "0"}, "limit", "Ensure this value is greater than or equal to 1."),
        ({"limit": "1000"}, "limit", "Ensure this value is less than or equal to 100."),
        ({"limit": "2.5"}, "limit", "A valid integer is required."),
        ({"after_id": "abc"}, "after_id", "Must be a valid UUID."),
        ({"archived": "true"}, "archived", "Unknown field."),
    ],
)
def test_invalid_query_parameters(
    api_client: APIClient,
    conversation: Conversation,
    params: dict[str, str],
    field: str,
    problem: str,
) -> None:
    response = api_client.get(_url(conversation), params)

    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["details"] == {"fields": {field: [problem]}}


def test_both_cursors_are_rejected(api_client: APIClient, conversation: Conversation) -> None:
    ids = _make_many(conversation, 3)

    response = api_client.get(_url(conversation), {"after_id": ids[0], "before_id": ids[2]})

    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["message"] == "Give after_id or before_id, not both."


def test_queries_do_not_grow_with_the_page(
    api_client: APIClient, conversation: Conversation
) -> None:
    # given
    ids = _make_many(conversation, 40)

    # when
    with CaptureQueriesContext(connection) as small:
        api_client.get(_url(conversation), {"limit": "1", "after_id": ids[0]})
    with CaptureQueriesContext(connection) as large:
        api_client.get(_url(conversation), {"limit": "30", "after_id": ids[0]})

    # then: the caller, the conversation, the cursor, the page
    assert len(app_queries(small)) == len(app_queries(large)) == 4
