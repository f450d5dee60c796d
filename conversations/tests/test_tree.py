"""A conversation as a tree, read and reshaped through the API: the current branch and
another (?leaf_id=), the whole tree, switching branch (PATCH current_leaf_id), forking, and
the export of a tree. The sends that grow a tree are in messaging/tests/test_branches.py."""

import importlib
import json
import uuid
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import User
from conversations.models import Conversation, Message
from testsupport.assertions import app_queries, assert_error
from testsupport.factories import at, make_conversation, make_message, make_usage
from usage.models import UsageRecord

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("user_read_every_request")]

USER, ASSISTANT = Message.Role.USER, Message.Role.ASSISTANT


def _url(conversation: Conversation, rest: str = "") -> str:
    return f"/api/v1/conversations/{conversation.pk}{rest}"


def add(
    conversation: Conversation,
    role: Message.Role,
    content: str,
    parent: Message | None,
    seconds: float,
    **fields: object,
) -> Message:
    return make_message(
        conversation=conversation,
        role=role,
        content=content,
        parent=parent,
        created_at=at(seconds),
        **fields,
    )


# u1 - a1 - u2  - a2
#         \ u2b - a2b
#               \ a2c   (the current leaf: the last one added)
class Tree:
    """The conversation drawn above: Q2 asked twice, the second version answered twice."""

    def __init__(self, owner: User) -> None:
        self.conversation = make_conversation(
            owner=owner,
            title="Lisbon",
            system_prompt="Be brief.",
            temperature=0.4,
            max_output_tokens=900,
            reasoning_effort="low",
            metadata={"client": "web"},
            activity_at=at(0),
        )
        c = self.conversation
        self.u1 = add(c, USER, "Three sights?", None, 1)
        self.a1 = add(
            c,
            ASSISTANT,
            "Belem, Alfama, LX.",
            self.u1,
            2,
            model="openai/gpt-oss-20b",
            input_tokens=40,
            output_tokens=10,
            cost_usd=Decimal("0.0000060000"),
        )
        self.u2 = add(c, USER, "Food?", self.a1, 3)
        self.a2 = add(c, ASSISTANT, "Pasteis.", self.u2, 4, model="openai/gpt-oss-20b")
        self.u2b = add(c, USER, "Food, cheap?", self.a1, 5)
        self.a2b = add(c, ASSISTANT, "Bifanas.", self.u2b, 6, model="openai/gpt-oss-20b")
        self.a2c = add(c, ASSISTANT, "Sardines.", self.u2b, 7, model="openai/gpt-oss-120b",
                       status=Message.Status.CANCELLED)  # fmt: skip
        c.refresh_from_db()


@pytest.fixture
def tree(user: User) -> Tree:
    return Tree(user)


def contents(response_json: dict[str, object]) -> list[tuple[str, int, int]]:
    data = response_json["data"]
    assert isinstance(data, list)
    return [(m["content"], m["sibling_index"], m["sibling_count"]) for m in data]


# --- the branch -----------------------------------------------------------------------------


def test_messages_are_the_current_branch_with_sibling_positions(
    api_client: APIClient, tree: Tree
) -> None:
    response = api_client.get(_url(tree.conversation, "/messages"))

    assert response.status_code == 200
    body = response.json()
    assert contents(body) == [
        ("Three sights?", 1, 1),
        ("Belem, Alfama, LX.", 1, 1),
        ("Food, cheap?", 2, 2),
        ("Sardines.", 2, 2),
    ]
    assert [m["parent_id"] for m in body["data"]] == [
        None,
        str(tree.u1.pk),
        str(tree.a1.pk),
        str(tree.u2b.pk),
    ]
    assert (body["has_more"], body["first_id"], body["last_id"]) == (
        False,
        str(tree.u1.pk),
        str(tree.a2c.pk),
    )


def test_leaf_id_lists_the_branch_ending_at_another_message(
    api_client: APIClient, tree: Tree
) -> None:
    old = api_client.get(_url(tree.conversation, "/messages"), {"leaf_id": str(tree.a2.pk)})
    sibling = api_client.get(_url(tree.conversation, "/messages"), {"leaf_id": str(tree.a2b.pk)})
    inner = api_client.get(_url(tree.conversation, "/messages"), {"leaf_id": str(tree.u2b.pk)})

    assert contents(old.json()) == [
        ("Three sights?", 1, 1),
        ("Belem, Alfama, LX.", 1, 1),
        ("Food?", 1, 2),
        ("Pasteis.", 1, 1),
    ]
    assert contents(sibling.json())[-2:] == [("Food, cheap?", 2, 2), ("Bifanas.", 1, 2)]
    assert contents(inner.json())[-1] == ("Food, cheap?", 2, 2)


def test_a_branch_pages_forward_and_back_like_every_list(api_client: APIClient, tree: Tree) -> None:
    # when
    first = api_client.get(_url(tree.conversation, "/messages"), {"limit": "2"}).json()
    second = api_client.get(
        _url(tree.conversation, "/messages"), {"limit": "2", "after_id": first["last_id"]}
    ).json()
    back = api_client.get(
        _url(tree.conversation, "/messages"), {"limit": "1", "before_id": second["first_id"]}
    ).json()

    # then
    assert [m["content"] for m in first["data"]] == ["Three sights?", "Belem, Alfama, LX."]
    assert first["has_more"] is True
    assert [m["content"] for m in second["data"]] == ["Food, cheap?", "Sardines."]
    assert second["has_more"] is False
    assert [m["content"] for m in back["data"]] == ["Belem, Alfama, LX."]
    assert back["has_more"] is True


def test_a_cursor_off_the_branch_is_400(api_client: APIClient, tree: Tree) -> None:
    response = api_client.get(_url(tree.conversation, "/messages"), {"after_id": str(tree.u2.pk)})

    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["details"] == {
        "fields": {"after_id": ["No item with this id in this list."]}
    }


@pytest.mark.parametrize(
    "target", ["malformed", "missing", "another conversation's", "another user's"]
)
def test_a_leaf_id_that_is_not_a_message_of_this_conversation_is_400(
    api_client: APIClient, tree: Tree, user: User, other_user: User, target: str
) -> None:
    # given
    elsewhere = make_conversation(owner=user)
    theirs = make_conversation(owner=other_user)
    leaf_id = {
        "malformed": "not-a-uuid",
        "missing": str(uuid.uuid4()),
        "another conversation's": str(add(elsewhere, USER, "x", None, 1).pk),
        "another user's": str(add(theirs, USER, "x", None, 1).pk),
    }[target]

    # when
    response = api_client.get(_url(tree.conversation, "/messages"), {"leaf_id": leaf_id})

    # then
    problem = (
        "Must be a valid UUID."
        if target == "malformed"
        else ("No message with this id in this conversation.")
    )
    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": f"leaf_id: {problem}",
        "details": {"fields": {"leaf_id": [problem]}},
    }


def test_a_deep_branch_is_read_with_as_many_queries_as_a_shallow_one(
    api_client: APIClient, user: User
) -> None:
    # given: branches of 4 and of 400 messages
    def line(length: int) -> Conversation:
        conversation = make_conversation(owner=user)
        parent = None
        for i in range(length):
            parent = add(conversation, USER if i % 2 == 0 else ASSISTANT, f"m{i}", parent, i)
        return conversation

    shallow, deep = line(4), line(400)

    # when
    with CaptureQueriesContext(connection) as few:
        api_client.get(_url(shallow, "/messages"), {"limit": "100"})
    with CaptureQueriesContext(connection) as many:
        response = api_client.get(_url(deep, "/messages"), {"limit": "100"})

    # then: the caller, the conversation, the page (branch, siblings and all)
    assert len(app_queries(few)) == len(app_queries(many)) == 3
    assert [m["content"] for m in response.json()["data"]][:2] == ["m0", "m1"]


def test_messages_of_a_conversation_stored_as_a_line_are_that_line(
    api_client: APIClient, user: User
) -> None:
    # given: messages added without naming a parent follow the current leaf
    conversation = make_conversation(owner=user)
    for i in range(5):
        make_message(
            conversation=conversation, role=USER if i % 2 == 0 else ASSISTANT, content=f"m{i}"
        )

    # when
    body = api_client.get(_url(conversation, "/messages")).json()

    # then
    assert contents(body) == [(f"m{i}", 1, 1) for i in range(5)]
    assert [m["parent_id"] for m in body["data"]] == [None, *[m["id"] for m in body["data"][:-1]]]


def test_without_a_current_leaf_the_newest_message_ends_the_branch(
    api_client: APIClient, user: User
) -> None:
    # given: a line whose current leaf is gone (not backfilled yet, or deleted outside Django)
    conversation = make_conversation(owner=user)
    line = [make_message(conversation=conversation, role=USER, content=f"m{i}") for i in range(3)]
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=None)
    conversation.refresh_from_db()

    # when
    body = api_client.get(_url(conversation, "/messages")).json()
    after = make_message(conversation=conversation, role=ASSISTANT, content="next")

    # then
    assert [m["content"] for m in body["data"]] == ["m0", "m1", "m2"]
    assert after.parent_id == line[-1].pk


# --- the whole tree -------------------------------------------------------------------------


def test_tree_lists_every_message_with_its_parent_oldest_first(
    api_client: APIClient, tree: Tree
) -> None:
    response = api_client.get(_url(tree.conversation, "/tree"), {"limit": "100"})

    assert response.status_code == 200
    body = response.json()
    assert body["data"][:2] == [
        {
            "id": str(tree.u1.pk),
            "parent_id": None,
            "role": "user",
            "status": "complete",
            "model": None,
            "preview": "Three sights?",
            "created_at": "2026-11-01T09:00:01Z",
        },
        {
            "id": str(tree.a1.pk),
            "parent_id": str(tree.u1.pk),
            "role": "assistant",
            "status": "complete",
            "model": "openai/gpt-oss-20b",
            "preview": "Belem, Alfama, LX.",
            "created_at": "2026-11-01T09:00:02Z",
        },
    ]
    assert [(n["preview"], n["parent_id"]) for n in body["data"][2:]] == [
        ("Food?", str(tree.a1.pk)),
        ("Pasteis.", str(tree.u2.pk)),
        ("Food, cheap?", str(tree.a1.pk)),
        ("Bifanas.", str(tree.u2b.pk)),
        ("Sardines.", str(tree.u2b.pk)),
    ]
    assert body["data"][-1]["status"] == "cancelled"
    assert (body["has_more"], body["first_id"], body["last_id"]) == (
        False,
        str(tree.u1.pk),
        str(tree.a2c.pk),
    )


def test_a_preview_is_the_first_100_characters(api_client: APIClient, user: User) -> None:
    conversation = make_conversation(owner=user)
    add(conversation, USER, "é" * 150, None, 1)

    body = api_client.get(_url(conversation, "/tree")).json()

    assert body["data"][0]["preview"] == "é" * 100


def test_the_tree_pages_with_cursors(api_client: APIClient, tree: Tree) -> None:
    first = api_client.get(_url(tree.conversation, "/tree"), {"limit": "3"}).json()
    rest = api_client.get(
        _url(tree.conversation, "/tree"), {"limit": "10", "after_id": first["last_id"]}
    ).json()

    assert [n["preview"] for n in first["data"]] == ["Three sights?", "Belem, Alfama, LX.", "Food?"]
    assert first["has_more"] is True
    assert [n["preview"] for n in rest["data"]] == [
        "Pasteis.",
        "Food, cheap?",
        "Bifanas.",
        "Sardines.",
    ]
    assert rest["has_more"] is False


@pytest.mark.parametrize(
    ("query", "field"), [({"limit": "0"}, "limit"), ({"leaf_id": "x"}, "leaf_id")]
)
def test_invalid_tree_queries_are_400(
    api_client: APIClient, tree: Tree, query: dict[str, str], field: str
) -> None:
    response = api_client.get(_url(tree.conversation, "/tree"), query)

    body = assert_error(response, 400, "invalid_request_error")
    assert list(body["error"]["details"]["fields"]) == [field]


# --- switching branch -----------------------------------------------------------------------


def test_the_conversation_shows_its_current_leaf(api_client: APIClient, tree: Tree) -> None:
    body = api_client.get(_url(tree.conversation)).json()

    assert body["current_leaf_id"] == str(tree.a2c.pk)


def test_patch_current_leaf_id_switches_branch(api_client: APIClient, tree: Tree) -> None:
    # when
    response = api_client.patch(
        _url(tree.conversation), {"current_leaf_id": str(tree.a2.pk)}, format="json"
    )

    # then
    assert response.status_code == 200
    assert response.json()["current_leaf_id"] == str(tree.a2.pk)
    assert [m["content"] for m in api_client.get(_url(tree.conversation, "/messages")).json()[
        "data"
    ]] == ["Three sights?", "Belem, Alfama, LX.", "Food?", "Pasteis."]  # fmt: skip
    tree.conversation.refresh_from_db()
    assert tree.conversation.current_leaf_id == tree.a2.pk


def test_the_current_leaf_may_be_any_message_and_the_next_message_follows_it(
    api_client: APIClient, tree: Tree
) -> None:
    # when: an inner user message
    response = api_client.patch(
        _url(tree.conversation), {"current_leaf_id": str(tree.u2.pk)}, format="json"
    )
    tree.conversation.refresh_from_db()
    message = make_message(conversation=tree.conversation, role=ASSISTANT, content="Ginja.")

    # then
    assert response.status_code == 200
    assert message.parent_id == tree.u2.pk
    tree.conversation.refresh_from_db()
    assert tree.conversation.current_leaf_id == message.pk


@pytest.mark.parametrize(
    "target", ["malformed", "missing", "null", "another conversation's", "another user's"]
)
def test_a_current_leaf_that_is_not_a_message_of_this_conversation_is_400(
    api_client: APIClient, tree: Tree, user: User, other_user: User, target: str
) -> None:
    # given
    value = {
        "malformed": "not-a-uuid",
        "missing": str(uuid.uuid4()),
        "null": None,
        "another conversation's": str(add(make_conversation(owner=user), USER, "x", None, 1).pk),
        "another user's": str(add(make_conversation(owner=other_user), USER, "x", None, 1).pk),
    }[target]

    # when
    response = api_client.patch(
        _url(tree.conversation), {"current_leaf_id": value, "title": "New"}, format="json"
    )

    # then: refused as a whole
    problem = {
        "malformed": "Must be a valid UUID.",
        "null": "This field may not be null.",
    }.get(target, "No message with this id in this conversation.")
    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["details"] == {"fields": {"current_leaf_id": [problem]}}
    tree.conversation.refresh_from_db()
    assert (tree.conversation.current_leaf_id, tree.conversation.title) == (tree.a2c.pk, "Lisbon")


# --- fork -----------------------------------------------------------------------------------


def test_fork_copies_the_branch_into_a_new_conversation_with_the_same_settings(
    api_client: APIClient, tree: Tree, user: User
) -> None:
    # given: the ledger holds the original calls
    make_usage(user=user, at=at(2), input_tokens=40, output_tokens=10, cost_usd="0.000006",
               conversation_id=tree.conversation.pk)  # fmt: skip
    ledger_before = UsageRecord.objects.count()

    # when
    response = api_client.post(
        _url(tree.conversation, "/fork"), {"message_id": str(tree.a2b.pk)}, format="json"
    )

    # then
    assert response.status_code == 201
    body = response.json()
    fork = Conversation.objects.get(pk=body["id"])
    assert fork.pk != tree.conversation.pk
    assert fork.owner_id == user.pk
    assert {
        key: body[key]
        for key in (
            "title",
            "model",
            "system_prompt",
            "temperature",
            "max_output_tokens",
            "reasoning_effort",
            "metadata",
            "archived",
        )
    } == {
        "title": "Lisbon",
        "model": "openai/gpt-oss-20b",
        "system_prompt": "Be brief.",
        "temperature": 0.4,
        "max_output_tokens": 900,
        "reasoning_effort": "low",
        "metadata": {"client": "web"},
        "archived": False,
    }
    copies = list(Message.objects.filter(conversation=fork).order_by("created_at", "id"))
    assert [(m.role, m.content, m.created_at) for m in copies] == [
        ("user", "Three sights?", at(1)),
        ("assistant", "Belem, Alfama, LX.", at(2)),
        ("user", "Food, cheap?", at(5)),
        ("assistant", "Bifanas.", at(6)),
    ]
    assert [m.parent_id for m in copies] == [None, copies[0].pk, copies[1].pk, copies[2].pk]
    assert {m.pk for m in copies}.isdisjoint(
        Message.objects.filter(conversation=tree.conversation).values_list("pk", flat=True)
    )
    assert body["current_leaf_id"] == str(copies[-1].pk)
    assert body["last_message_at"] == "2026-11-01T09:00:06Z"
    # usage stays with the calls that were made
    assert [(m.input_tokens, m.output_tokens, m.cost_usd) for m in copies] == [
        (None, None, None)
    ] * 4
    assert UsageRecord.objects.count() == ledger_before
    # and the original is untouched
    assert Message.objects.filter(conversation=tree.conversation).count() == 7
    tree.conversation.refresh_from_db()
    assert tree.conversation.current_leaf_id == tree.a2c.pk


def test_a_fork_keeps_the_tool_settings_and_the_blocks_of_a_tool_round_trip(
    api_client: APIClient, user: User
) -> None:
    # given: a conversation with tools whose answer called one, and the result that answered it
    tool = {"name": "get_weather", "description": "", "input_schema": {"type": "object"}}
    conversation = make_conversation(
        owner=user,
        tools=[tool],
        tool_choice={"type": "any"},
        stop_sequences=["END"],
        service_tier="flex",
        fallback_models=["openai/gpt-oss-120b"],
    )
    call = {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Lisbon"}}
    result = {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C", "is_error": False}
    make_message(
        conversation=conversation, role=Message.Role.USER, content="Lisbon?", created_at=at(1)
    )
    make_message(conversation=conversation, role=Message.Role.ASSISTANT, content="",
                 blocks=[call], stop_reason="tool_use", created_at=at(2))  # fmt: skip
    make_message(conversation=conversation, role=Message.Role.USER, content="", blocks=[result],
                 created_at=at(3))  # fmt: skip
    answer = make_message(conversation=conversation, role=Message.Role.ASSISTANT,
                          content="18 C.", stop_reason="stop_sequence", stop_sequence="END",
                          created_at=at(4))  # fmt: skip

    # when
    response = api_client.post(
        _url(conversation, "/fork"), {"message_id": str(answer.pk)}, format="json"
    )

    # then
    assert response.status_code == 201
    fork = Conversation.objects.get(pk=response.json()["id"])
    assert (
        fork.tools,
        fork.tool_choice,
        fork.stop_sequences,
        fork.service_tier,
        fork.fallback_models,
    ) == ([tool], {"type": "any"}, ["END"], "flex", ["openai/gpt-oss-120b"])
    copies = list(Message.objects.filter(conversation=fork).order_by("created_at", "id"))
    assert [(m.blocks, m.stop_reason, m.stop_sequence) for m in copies] == [
        ([{"type": "text", "text": "Lisbon?"}], "", ""),
        ([call], "tool_use", ""),
        ([result], "", ""),
        ([{"type": "text", "text": "18 C."}], "stop_sequence", "END"),
    ]


def test_a_fork_is_listed_first_among_the_owners_conversations(
    api_client: APIClient, tree: Tree
) -> None:
    fork = api_client.post(
        _url(tree.conversation, "/fork"), {"message_id": str(tree.u1.pk)}, format="json"
    ).json()

    listed = api_client.get("/api/v1/conversations").json()

    assert [c["id"] for c in listed["data"]] == [fork["id"], str(tree.conversation.pk)]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"message_id": "not-a-uuid"}, "Must be a valid UUID."),
        ({"message_id": str(uuid.UUID(int=7))}, "No message with this id in this conversation."),
        ({}, "This field is required."),
        ({"message_id": None}, "This field may not be null."),
    ],
)
def test_a_fork_of_no_message_of_this_conversation_is_400(
    api_client: APIClient, tree: Tree, body: dict[str, object], problem: str
) -> None:
    response = api_client.post(_url(tree.conversation, "/fork"), body, format="json")

    payload = assert_error(response, 400, "invalid_request_error")
    assert payload["error"]["details"] == {"fields": {"message_id": [problem]}}
    assert Conversation.objects.count() == 1


def test_a_fork_of_another_users_message_is_the_same_400_as_a_missing_one(
    api_client: APIClient, tree: Tree, other_user: User
) -> None:
    theirs = add(make_conversation(owner=other_user), USER, "secret", None, 1)

    foreign = api_client.post(
        _url(tree.conversation, "/fork"), {"message_id": str(theirs.pk)}, format="json"
    )
    missing = api_client.post(
        _url(tree.conversation, "/fork"), {"message_id": str(uuid.uuid4())}, format="json"
    )

    assert (
        assert_error(foreign, 400, "invalid_request_error")["error"]
        == assert_error(missing, 400, "invalid_request_error")["error"]
    )
    assert Conversation.objects.count() == 2


def test_a_fork_through_an_answer_in_progress_is_409(api_client: APIClient, user: User) -> None:
    # given
    conversation = make_conversation(owner=user)
    question = add(conversation, USER, "Hi", None, 1)
    answer = add(conversation, ASSISTANT, "", question, 2, status=Message.Status.IN_PROGRESS)

    # when
    response = api_client.post(
        _url(conversation, "/fork"), {"message_id": str(answer.pk)}, format="json"
    )

    # then
    body = assert_error(response, 409, "invalid_request_error")
    assert body["error"]["message"] == (
        "The message is still being generated; fork once it has ended."
    )
    assert Conversation.objects.count() == 1


# --- export ---------------------------------------------------------------------------------


def test_json_export_carries_the_whole_tree_with_parent_ids(
    api_client: APIClient, tree: Tree
) -> None:
    response = api_client.get(_url(tree.conversation, "/export"))

    body = json.loads(response.content)
    assert body["conversation"]["current_leaf_id"] == str(tree.a2c.pk)
    assert [(m["content"], m["parent_id"]) for m in body["messages"]] == [
        ("Three sights?", None),
        ("Belem, Alfama, LX.", str(tree.u1.pk)),
        ("Food?", str(tree.a1.pk)),
        ("Pasteis.", str(tree.u2.pk)),
        ("Food, cheap?", str(tree.a1.pk)),
        ("Bifanas.", str(tree.u2b.pk)),
        ("Sardines.", str(tree.u2b.pk)),
    ]
    assert body["totals"]["messages"] == 7


def test_markdown_export_is_the_current_branch_and_counts_the_others(
    api_client: APIClient, tree: Tree
) -> None:
    response = api_client.get(_url(tree.conversation, "/export"), {"format": "markdown"})

    text = response.content.decode()
    assert "- Branches: the current one below, and 2 others (in the JSON export)" in text
    assert [line for line in text.splitlines() if line.startswith("## ")] == [
        "## System prompt",
        "## User · 2026-11-01 09:00:01 UTC",
        "## Assistant · 2026-11-01 09:00:02 UTC",
        "## User · 2026-11-01 09:00:05 UTC",
        "## Assistant · 2026-11-01 09:00:07 UTC · cancelled",
    ]
    assert "Pasteis." not in text
    assert "Bifanas." not in text


def test_markdown_export_of_a_line_mentions_no_branches(api_client: APIClient, user: User) -> None:
    conversation = make_conversation(owner=user)
    make_message(conversation=conversation, role=USER, content="Hi")

    text = api_client.get(_url(conversation, "/export"), {"format": "markdown"}).content.decode()

    assert "Branches" not in text


# --- the admin transcript -------------------------------------------------------------------


@pytest.fixture
def staff_client() -> Client:
    staff = User.objects.create_superuser("root", "root@example.com", "unused-password")
    client = Client()
    client.force_login(staff)
    return client


def test_the_admin_transcript_is_the_current_branch_with_sibling_markers(
    staff_client: Client, tree: Tree
) -> None:
    # when
    response = staff_client.get(f"/admin/conversations/conversation/{tree.conversation.pk}/change/")

    # then
    assert response.status_code == 200
    (inline,) = response.context["inline_admin_formsets"]
    assert [form.original.content for form in inline] == [
        "Three sights?",
        "Belem, Alfama, LX.",
        "Food, cheap?",
        "Sardines.",
    ]
    text = " ".join(response.content.decode().split())
    assert "7 messages" in text
    assert "· the current branch" in text
    assert (
        f'<span class="turn-siblings">2 of 2: <a href="?leaf={tree.u2.pk}">1</a> '
        "<strong>2</strong></span>"
    ) in text
    assert (
        f'<span class="turn-siblings">2 of 2: <a href="?leaf={tree.a2b.pk}">1</a> '
        "<strong>2</strong></span>"
    ) in text


def test_a_sibling_link_shows_its_branch_down_to_its_newest_answer(
    staff_client: Client, tree: Tree
) -> None:
    response = staff_client.get(
        f"/admin/conversations/conversation/{tree.conversation.pk}/change/",
        {"leaf": str(tree.u2.pk)},
    )

    (inline,) = response.context["inline_admin_formsets"]
    assert [form.original.content for form in inline] == [
        "Three sights?",
        "Belem, Alfama, LX.",
        "Food?",
        "Pasteis.",
    ]
    text = " ".join(response.content.decode().split())
    assert '· another branch (<a href="?">back to the current one</a>)' in text


@pytest.mark.parametrize("leaf", ["not-a-uuid", str(uuid.UUID(int=5))])
def test_an_unknown_leaf_in_the_admin_shows_the_current_branch(
    staff_client: Client, tree: Tree, leaf: str
) -> None:
    response = staff_client.get(
        f"/admin/conversations/conversation/{tree.conversation.pk}/change/", {"leaf": leaf}
    )

    (inline,) = response.context["inline_admin_formsets"]
    assert [form.original.content for form in inline][-1] == "Sardines."


# --- the migration's backfill ---------------------------------------------------------------

_migration = importlib.import_module("conversations.migrations.0003_message_tree")


def test_the_backfill_makes_each_stored_conversation_a_line_ending_at_its_newest_message(
    user: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: conversations stored before the tree (no parents, no leaf), more than a batch,
    # one with messages stored with equal times (ordered by id), one without messages
    monkeypatch.setattr(_migration, "BATCH_CONVERSATIONS", 2)
    lines = []
    for n in range(3):
        conversation = make_conversation(owner=user)
        made = [
            make_message(
                conversation=conversation,
                role=USER,
                content=f"{n}-{i}",
                parent=None,
                created_at=at(i if n != 1 else 0),
            )
            for i in range(4)
        ]
        lines.append((conversation, sorted(made, key=lambda m: (m.created_at, m.pk))))
    empty = make_conversation(owner=user)
    Conversation.objects.update(current_leaf=None)

    # when
    _migration.backfill(None, SimpleNamespace(connection=connection))
    _migration.backfill(None, SimpleNamespace(connection=connection))  # again: nothing changes

    # then
    for conversation, made in lines:
        stored = {m.pk: m.parent_id for m in Message.objects.filter(conversation=conversation)}
        assert [stored[m.pk] for m in made] == [None, made[0].pk, made[1].pk, made[2].pk]
        conversation.refresh_from_db()
        assert conversation.current_leaf_id == made[-1].pk
    empty.refresh_from_db()
    assert empty.current_leaf_id is None
