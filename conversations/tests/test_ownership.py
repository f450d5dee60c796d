"""Every conversation route answers another user's, a missing and a malformed id alike; the
usage routes take no filter that could name another user's rows."""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from conversations.models import Conversation, Message, Share
from testsupport.assertions import app_queries, assert_error
from testsupport.factories import make_conversation, make_message, make_usage
from usage.models import UsageRecord

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("user_read_every_request")]

Call = Callable[[APIClient, str], Any]
PRIVATE_MESSAGE_ID = uuid.UUID("5f0a2c1e-3b4d-4e6f-8a9b-0c1d2e3f4a5b")
PRIVATE_SHARE_ID = uuid.UUID("7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")

ROUTES: dict[str, Call] = {
    "GET conversation": lambda client, cid: client.get(f"/api/v1/conversations/{cid}"),
    "PATCH conversation": lambda client, cid: client.patch(
        f"/api/v1/conversations/{cid}", {"title": "pwned", "archived": True}, format="json"
    ),
    "DELETE conversation": lambda client, cid: client.delete(f"/api/v1/conversations/{cid}"),
    "GET messages": lambda client, cid: client.get(f"/api/v1/conversations/{cid}/messages"),
    "POST message": lambda client, cid: client.post(
        f"/api/v1/conversations/{cid}/messages", {"content": "hi"}, format="json"
    ),
    "POST message, streamed": lambda client, cid: client.post(
        f"/api/v1/conversations/{cid}/messages/stream", {"content": "hi"}, format="json"
    ),
    # The private conversation's own message id: whether it exists must not matter.
    "GET message stream (resume)": lambda client, cid: client.get(
        f"/api/v1/conversations/{cid}/messages/{PRIVATE_MESSAGE_ID}/stream"
    ),
    "POST cancel": lambda client, cid: client.post(
        f"/api/v1/conversations/{cid}/messages/{PRIVATE_MESSAGE_ID}/cancel"
    ),
    "GET export": lambda client, cid: client.get(f"/api/v1/conversations/{cid}/export"),
    "GET tree": lambda client, cid: client.get(f"/api/v1/conversations/{cid}/tree"),
    "GET messages of a branch": lambda client, cid: client.get(
        f"/api/v1/conversations/{cid}/messages", {"leaf_id": str(PRIVATE_MESSAGE_ID)}
    ),
    "PATCH current leaf": lambda client, cid: client.patch(
        f"/api/v1/conversations/{cid}", {"current_leaf_id": str(PRIVATE_MESSAGE_ID)}, format="json"
    ),
    "POST fork": lambda client, cid: client.post(
        f"/api/v1/conversations/{cid}/fork", {"message_id": str(PRIVATE_MESSAGE_ID)}, format="json"
    ),
    "POST message after a parent": lambda client, cid: client.post(
        f"/api/v1/conversations/{cid}/messages",
        {"content": "hi", "parent_id": str(PRIVATE_MESSAGE_ID)},
        format="json",
    ),
    "POST regenerate": lambda client, cid: client.post(
        f"/api/v1/conversations/{cid}/messages/{PRIVATE_MESSAGE_ID}/regenerate", {}, format="json"
    ),
    "GET shares": lambda client, cid: client.get(f"/api/v1/conversations/{cid}/shares"),
    "POST share": lambda client, cid: client.post(
        f"/api/v1/conversations/{cid}/shares", {"expires_at": None}, format="json"
    ),
    # The private conversation's own share id: whether it exists must not matter.
    "DELETE share": lambda client, cid: client.delete(
        f"/api/v1/conversations/{cid}/shares/{PRIVATE_SHARE_ID}"
    ),
}
# Routes whose success for the owner needs more than this fixture (a model provider, a
# generation in progress, an assistant message) are covered in their own suites.
OWNER_OK = [
    "GET conversation",
    "PATCH conversation",
    "DELETE conversation",
    "GET messages",
    "GET export",
    "GET tree",
    "GET messages of a branch",
    "PATCH current leaf",
    "POST fork",
    "GET shares",
    "POST share",
    "DELETE share",
]


NOT_FOUND = {"type": "not_found_error", "message": "Conversation not found."}


@pytest.fixture
def private_conversation(user: User) -> Conversation:
    """``user``'s conversation, with a message, that ``other_client`` tries to reach."""
    conversation = make_conversation(owner=user, title="Private", metadata={"k": "v"})
    message = make_message(conversation=conversation, role=Message.Role.USER, content="secret")
    Message.objects.filter(pk=message.pk).update(id=PRIVATE_MESSAGE_ID)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf_id=PRIVATE_MESSAGE_ID)
    conversation.refresh_from_db()
    Share.objects.create(
        id=PRIVATE_SHARE_ID, conversation=conversation, token="private", message_ids=[]
    )
    return conversation


def _snapshot() -> list[tuple[Any, ...]]:
    conversations = Conversation.objects.order_by("id").values_list(
        "id", "title", "archived", "updated_at", "metadata", "current_leaf_id"
    )
    messages = Message.objects.order_by("id").values_list("id", "content", "parent_id")
    shares = Share.objects.order_by("id").values_list("id", "conversation_id", "token")
    return [*conversations, *messages, *shares]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "target",
    ["another user's id", "a missing id", "a malformed id", "an upper-case missing id"],
)
def test_every_route_answers_404_and_changes_nothing(
    other_client: APIClient, private_conversation: Conversation, route: str, target: str
) -> None:
    # given
    conversation_id = {
        "another user's id": str(private_conversation.id),
        "a missing id": str(uuid.uuid4()),
        "a malformed id": "not-a-uuid",
        "an upper-case missing id": str(uuid.uuid4()).upper(),
    }[target]
    before = _snapshot()

    # when
    response = ROUTES[route](other_client, conversation_id)

    # then
    body = assert_error(response, 404, "not_found_error")
    assert body["error"] == NOT_FOUND
    assert set(body) == {"type", "error", "request_id"}
    assert _snapshot() == before


def _statements(context: CaptureQueriesContext, conversation_id: uuid.UUID) -> list[str]:
    return [
        query.replace(str(conversation_id), "<id>").replace(conversation_id.hex, "<id>")
        for query in app_queries(context)
    ]


@pytest.mark.parametrize("route", ROUTES)
def test_another_users_id_runs_the_same_queries_as_a_missing_one(
    other_client: APIClient, private_conversation: Conversation, route: str
) -> None:
    # given
    missing_id = uuid.uuid4()
    ROUTES[route](other_client, str(uuid.uuid4()))  # the caller's user row now exists

    # when
    with CaptureQueriesContext(connection) as foreign:
        ROUTES[route](other_client, str(private_conversation.id))
    with CaptureQueriesContext(connection) as missing:
        ROUTES[route](other_client, str(missing_id))

    # then: the same statements, differing only in the id
    assert len(app_queries(foreign)) == 2  # the caller, the conversation
    assert _statements(foreign, private_conversation.id) == _statements(missing, missing_id)


@pytest.mark.parametrize("route", OWNER_OK)
def test_the_owner_reaches_the_routes_this_fixture_serves(
    api_client: APIClient, private_conversation: Conversation, route: str
) -> None:
    response = ROUTES[route](api_client, str(private_conversation.id))

    assert response.status_code in {200, 201, 204}


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_requires_authentication(
    anon_client: APIClient, private_conversation: Conversation, route: str
) -> None:
    before = _snapshot()

    response = ROUTES[route](anon_client, str(private_conversation.id))

    assert_error(response, 401, "authentication_error")
    assert _snapshot() == before


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.get("/api/v1/conversations"),
        lambda client: client.post("/api/v1/conversations", {}, format="json"),
    ],
    ids=["GET conversations", "POST conversations"],
)
def test_collection_routes_require_authentication(
    anon_client: APIClient, call: Callable[[APIClient], Any]
) -> None:
    response = call(anon_client)

    assert_error(response, 401, "authentication_error")
    assert not Conversation.objects.exists()


# --- parameters that name a message: another user's is a missing one -----------------------
# On the caller's own conversation, a message id from another user's conversation in a
# parameter or body field gets the answer a missing id gets, after the same queries.

MESSAGE_PARAMETERS: dict[str, tuple[Callable[[APIClient, str, str], Any], str]] = {
    "GET messages ?leaf_id": (
        lambda client, cid, mid: client.get(
            f"/api/v1/conversations/{cid}/messages", {"leaf_id": mid}
        ),
        "leaf_id",
    ),
    "PATCH current_leaf_id": (
        lambda client, cid, mid: client.patch(
            f"/api/v1/conversations/{cid}", {"current_leaf_id": mid}, format="json"
        ),
        "current_leaf_id",
    ),
    "POST fork message_id": (
        lambda client, cid, mid: client.post(
            f"/api/v1/conversations/{cid}/fork", {"message_id": mid}, format="json"
        ),
        "message_id",
    ),
    "POST message parent_id": (
        lambda client, cid, mid: client.post(
            f"/api/v1/conversations/{cid}/messages",
            {"content": "hi", "parent_id": mid},
            format="json",
        ),
        "parent_id",
    ),
}


@pytest.mark.parametrize("parameter", MESSAGE_PARAMETERS)
def test_a_parameter_naming_another_users_message_is_answered_as_a_missing_one(
    other_client: APIClient,
    other_user: User,
    private_conversation: Conversation,
    parameter: str,
) -> None:
    # given: the caller's own conversation, with a message
    own = make_conversation(owner=other_user)
    make_message(conversation=own, role=Message.Role.USER, content="mine")
    call, field = MESSAGE_PARAMETERS[parameter]
    missing_id = uuid.uuid4()
    before = _snapshot()

    # when
    with CaptureQueriesContext(connection) as foreign_queries:
        foreign = call(other_client, str(own.pk), str(PRIVATE_MESSAGE_ID))
    with CaptureQueriesContext(connection) as missing_queries:
        missing = call(other_client, str(own.pk), str(missing_id))

    # then
    problem = "No message with this id in this conversation."
    for response in (foreign, missing):
        body = assert_error(response, 400, "invalid_request_error")
        assert body["error"] == {
            "type": "invalid_request_error",
            "message": f"{field}: {problem}",
            "details": {"fields": {field: [problem]}},
        }
    assert [
        q.replace(str(PRIVATE_MESSAGE_ID), "<id>").replace(PRIVATE_MESSAGE_ID.hex, "<id>")
        for q in app_queries(foreign_queries)
    ] == [
        q.replace(str(missing_id), "<id>").replace(missing_id.hex, "<id>")
        for q in app_queries(missing_queries)
    ]
    assert _snapshot() == before


# --- search: its conversation filter cannot reach another user's rows ---------------------


@pytest.mark.parametrize(
    ("q", "owner_finds"), [("secret", 1), ("private", 1), ("secret or private", 2)]
)
def test_search_never_finds_another_users_words_even_by_conversation_id(
    api_client: APIClient,
    other_client: APIClient,
    private_conversation: Conversation,
    q: str,
    owner_finds: int,
) -> None:
    # when
    everywhere = other_client.get("/api/v1/search", {"q": q})
    by_id = other_client.get(
        "/api/v1/search", {"q": q, "conversation_id": str(private_conversation.id)}
    )
    own = api_client.get("/api/v1/search", {"q": q})

    # then: nothing for the other user, either way; the owner finds them
    assert everywhere.json()["data"] == []
    assert by_id.json()["data"] == []
    assert len(own.json()["data"]) == owner_finds


def test_search_by_another_users_conversation_id_runs_the_same_query_as_a_missing_one(
    other_client: APIClient, private_conversation: Conversation
) -> None:
    # given
    missing_id = uuid.uuid4()
    other_client.get("/api/v1/search", {"q": "secret"})  # the caller's user row now exists

    # when
    with CaptureQueriesContext(connection) as foreign:
        other_client.get(
            "/api/v1/search", {"q": "secret", "conversation_id": str(private_conversation.id)}
        )
    with CaptureQueriesContext(connection) as missing:
        other_client.get("/api/v1/search", {"q": "secret", "conversation_id": str(missing_id)})

    # then
    assert _statements(foreign, private_conversation.id) == _statements(missing, missing_id)


# --- usage: no filter can name another user's rows -----------------------------------------
# GET /usage/stats and /usage/daily count the caller's own ledger only and take no
# conversation, model or user filter (usage/views.py): a parameter naming another user's
# conversation or the user is refused like any unknown parameter, the same whether the id
# is theirs or missing, and the caller's numbers never include theirs.


def _ledger_snapshot() -> list[tuple[Any, ...]]:
    return list(
        UsageRecord.objects.order_by("id").values_list(
            "id", "user_id", "conversation_id", "cost_usd"
        )
    )


@pytest.mark.parametrize("path", ["stats", "daily"])
@pytest.mark.parametrize("param", ["conversation_id", "conversation", "user_id", "user", "owner"])
def test_usage_takes_no_filter_that_names_another_users_rows(
    other_client: APIClient,
    private_conversation: Conversation,
    user: User,
    path: str,
    param: str,
) -> None:
    # given: the private conversation's owner has usage
    make_usage(user=user, at=timezone.now(), input_tokens=900, output_tokens=100,
               cost_usd="0.5", conversation_id=private_conversation.id)  # fmt: skip
    theirs = str(user.pk if param.startswith(("user", "owner")) else private_conversation.id)
    before = _ledger_snapshot()

    # when
    foreign = other_client.get(f"/api/v1/usage/{path}", {param: theirs})
    missing = other_client.get(f"/api/v1/usage/{path}", {param: str(uuid.uuid4())})
    own = other_client.get(f"/api/v1/usage/{path}")

    # then: the same refusal either way, and none of their usage in the caller's numbers
    for response in (foreign, missing):
        body = assert_error(response, 400, "invalid_request_error")
        assert body["error"] == {
            "type": "invalid_request_error",
            "message": f"{param}: Unknown field.",
            "details": {"fields": {param: ["Unknown field."]}},
        }
    assert own.status_code == 200
    if path == "stats":
        assert (own.json()["requests"], own.json()["cost_usd"]) == (0, "0.0000000000")
    else:
        assert {day["requests"] for day in own.json()["data"]} == {0}
    assert _ledger_snapshot() == before
