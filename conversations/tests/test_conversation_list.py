"""GET /conversations: order, keyset pagination edges, filters, query-parameter errors."""

import uuid
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

URL = "/api/v1/conversations"


def _make_many(user: User, count: int) -> list[str]:
    """``count`` conversations; returns their ids newest activity first."""
    made = [make_conversation(owner=user, title=f"c{i}", activity_at=at(i)) for i in range(count)]
    return [str(conversation.id) for conversation in reversed(made)]


def _ids(response: Any) -> list[str]:
    return [item["id"] for item in response.json()["data"]]


def _envelope(response: Any) -> dict[str, Any]:
    body = response.json()
    return {key: body[key] for key in ("has_more", "first_id", "last_id")}


def test_empty_list(api_client: APIClient) -> None:
    response = api_client.get(URL)

    assert response.status_code == 200
    assert response.json() == {"data": [], "has_more": False, "first_id": None, "last_id": None}


def test_newest_activity_first_with_the_default_limit_of_20(
    api_client: APIClient, user: User
) -> None:
    # given
    ids = _make_many(user, 21)

    # when
    response = api_client.get(URL)

    # then
    assert _ids(response) == ids[:20]
    assert _envelope(response) == {"has_more": True, "first_id": ids[0], "last_id": ids[19]}


def test_ties_on_activity_are_broken_by_id(api_client: APIClient, user: User) -> None:
    # given three conversations active at the same instant
    made = [make_conversation(owner=user, activity_at=at(0)) for _ in range(3)]
    expected = sorted((str(c.id) for c in made), reverse=True)

    # when
    first = api_client.get(URL, {"limit": "2"})
    rest = api_client.get(URL, {"limit": "2", "after_id": first.json()["last_id"]})

    # then
    assert _ids(first) + _ids(rest) == expected
    assert rest.json()["has_more"] is False


def test_exact_page_has_no_more_and_the_next_page_is_empty(
    api_client: APIClient, user: User
) -> None:
    # given
    ids = _make_many(user, 3)

    # when
    page = api_client.get(URL, {"limit": "3"})
    after = api_client.get(URL, {"limit": "3", "after_id": ids[2]})

    # then
    assert _ids(page) == ids
    assert _envelope(page) == {"has_more": False, "first_id": ids[0], "last_id": ids[2]}
    assert after.json() == {"data": [], "has_more": False, "first_id": None, "last_id": None}


def test_walking_forward_visits_every_conversation_once(api_client: APIClient, user: User) -> None:
    # given
    ids = _make_many(user, 7)

    # when
    pages: list[list[str]] = []
    params: dict[str, Any] = {"limit": "3"}
    while True:
        response = api_client.get(URL, params)
        pages.append(_ids(response))
        if not response.json()["has_more"]:
            break
        params = {"limit": "3", "after_id": response.json()["last_id"]}

    # then
    assert pages == [ids[0:3], ids[3:6], ids[6:7]]


def test_before_id_returns_the_previous_page_in_list_order(
    api_client: APIClient, user: User
) -> None:
    # given
    ids = _make_many(user, 7)

    # when
    middle = api_client.get(URL, {"limit": "2", "before_id": ids[5]})
    first = api_client.get(URL, {"limit": "2", "before_id": ids[2]})
    short = api_client.get(URL, {"limit": "5", "before_id": ids[2]})

    # then
    assert _ids(middle) == [ids[3], ids[4]]
    assert _envelope(middle) == {"has_more": True, "first_id": ids[3], "last_id": ids[4]}
    assert _ids(first) == [ids[0], ids[1]]
    assert _envelope(first) == {"has_more": False, "first_id": ids[0], "last_id": ids[1]}
    assert _ids(short) == [ids[0], ids[1]]
    assert short.json()["has_more"] is False


def test_cursor_at_either_end_gives_an_empty_page(api_client: APIClient, user: User) -> None:
    ids = _make_many(user, 2)
    empty = {"data": [], "has_more": False, "first_id": None, "last_id": None}

    assert api_client.get(URL, {"after_id": ids[-1]}).json() == empty
    assert api_client.get(URL, {"before_id": ids[0]}).json() == empty


def test_pages_are_stable_while_conversations_are_created(
    api_client: APIClient, user: User
) -> None:
    # given a first page already read
    ids = _make_many(user, 4)
    first = api_client.get(URL, {"limit": "2"})

    # when two newer conversations arrive before the next page is read
    newer = [make_conversation(owner=user, activity_at=at(100 + i)) for i in range(2)]
    second = api_client.get(URL, {"limit": "2", "after_id": first.json()["last_id"]})
    back = api_client.get(URL, {"limit": "2", "before_id": second.json()["first_id"]})

    # then
    assert _ids(first) == ids[0:2]
    assert _ids(second) == ids[2:4]
    assert second.json()["has_more"] is False
    assert _ids(back) == ids[0:2]
    assert back.json()["has_more"] is True  # the two newer ones
    assert _ids(api_client.get(URL, {"limit": "2"})) == [str(newer[1].id), str(newer[0].id)]


def test_a_new_message_moves_its_conversation_to_the_top(api_client: APIClient, user: User) -> None:
    # given
    ids = _make_many(user, 3)
    oldest = Conversation.objects.get(pk=ids[2])

    # when
    make_message(conversation=oldest, role=Message.Role.USER, content="hi", created_at=at(50))

    # then
    assert _ids(api_client.get(URL)) == [ids[2], ids[0], ids[1]]


def test_other_users_conversations_are_not_listed(
    api_client: APIClient, user: User, other_user: User
) -> None:
    mine = make_conversation(owner=user)
    make_conversation(owner=other_user)

    assert _ids(api_client.get(URL)) == [str(mine.id)]


# --- filters -------------------------------------------------------------------------------


def test_archived_filter(api_client: APIClient, user: User) -> None:
    # given
    active = make_conversation(owner=user, activity_at=at(2))
    archived = make_conversation(owner=user, activity_at=at(1), archived=True)

    # then
    assert _ids(api_client.get(URL)) == [str(active.id), str(archived.id)]
    assert _ids(api_client.get(URL, {"archived": "true"})) == [str(archived.id)]
    assert _ids(api_client.get(URL, {"archived": "false"})) == [str(active.id)]


def test_title_search_is_case_insensitive_and_literal(api_client: APIClient, user: User) -> None:
    # given
    lisbon = make_conversation(owner=user, title="Trip to LISBON", activity_at=at(3))
    percent = make_conversation(owner=user, title="100% done", activity_at=at(2))
    make_conversation(owner=user, title="Porto", activity_at=at(1))

    # then
    assert _ids(api_client.get(URL, {"q": "lisbon"})) == [str(lisbon.id)]
    assert _ids(api_client.get(URL, {"q": "0%"})) == [str(percent.id)]
    assert _ids(api_client.get(URL, {"q": "_"})) == []
    assert len(_ids(api_client.get(URL, {"q": ""}))) == 3


def test_filters_combine_with_pagination(api_client: APIClient, user: User) -> None:
    # given five archived "a" conversations interleaved with others
    expected: list[str] = []
    for i in range(10):
        conversation = make_conversation(
            owner=user, title=f"a{i}" if i % 2 else f"b{i}", archived=bool(i % 2), activity_at=at(i)
        )
        if i % 2:
            expected.insert(0, str(conversation.id))

    # when
    first = api_client.get(URL, {"archived": "true", "q": "A", "limit": "3"})
    second = api_client.get(
        URL, {"archived": "true", "q": "A", "limit": "3", "after_id": first.json()["last_id"]}
    )

    # then
    assert _ids(first) + _ids(second) == expected
    assert (first.json()["has_more"], second.json()["has_more"]) == (True, False)


def test_a_cursor_that_left_the_filter_still_pages(api_client: APIClient, user: User) -> None:
    # given a page of active conversations, then its last item gets archived
    ids = _make_many(user, 4)
    first = api_client.get(URL, {"archived": "false", "limit": "2"})
    Conversation.objects.filter(pk=ids[1]).update(archived=True)

    # when
    second = api_client.get(
        URL, {"archived": "false", "limit": "2", "after_id": first.json()["last_id"]}
    )

    # then
    assert _ids(second) == ids[2:4]


# --- query-parameter errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field", "problem"),
    [
        ({"limit": "0"}, "limit", "Ensure this value is greater than or equal to 1."),
        ({"limit": "101"}, "limit", "Ensure this value is less than or equal to 100."),
        ({"limit": "ten"}, "limit", "A valid integer is required."),
        ({"after_id": "42"}, "after_id", "Must be a valid UUID."),
        ({"before_id": "not-a-uuid"}, "before_id", "Must be a valid UUID."),
        ({"archived": "maybe"}, "archived", "Must be a valid boolean."),
        ({"q": "q" * 201}, "q", "Ensure this field has no more than 200 characters."),
        ({"order": "asc"}, "order", "Unknown field."),
    ],
)
def test_invalid_query_parameters_are_400_with_field_details(
    api_client: APIClient, params: dict[str, str], field: str, problem: str
) -> None:
    response = api_client.get(URL, params)

    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"] == {
        "type": "invalid_request_error",
        "message": f"{field}: {problem}",
        "details": {"fields": {field: [problem]}},
    }


def test_limit_bounds_are_inclusive(api_client: APIClient, user: User) -> None:
    ids = _make_many(user, 2)

    assert _ids(api_client.get(URL, {"limit": "1"})) == ids[:1]
    assert _ids(api_client.get(URL, {"limit": "100"})) == ids


def test_both_cursors_are_rejected(api_client: APIClient, user: User) -> None:
    ids = _make_many(user, 3)

    response = api_client.get(URL, {"after_id": ids[0], "before_id": ids[2]})

    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["message"] == "Give after_id or before_id, not both."
    assert body["error"]["details"] == {
        "fields": {"non_field_errors": ["Give after_id or before_id, not both."]}
    }


@pytest.mark.parametrize("param", ["after_id", "before_id"])
def test_cursor_of_another_user_is_answered_like_a_missing_one(
    api_client: APIClient, user: User, other_user: User, param: str
) -> None:
    # given
    make_conversation(owner=user)
    theirs = make_conversation(owner=other_user)

    # when
    foreign = api_client.get(URL, {param: str(theirs.id)})
    missing = api_client.get(URL, {param: str(uuid.uuid4())})

    # then
    problem = "No item with this id in this list."
    for response in (foreign, missing):
        body = assert_error(response, 400, "invalid_request_error")
        assert body["error"] == {
            "type": "invalid_request_error",
            "message": f"{param}: {problem}",
            "details": {"fields": {param: [problem]}},
        }


def test_list_queries_do_not_grow_with_the_page(api_client: APIClient, user: User) -> None:
    # given
    ids = _make_many(user, 30)

    # when
    with CaptureQueriesContext(connection) as small:
        api_client.get(URL, {"limit": "2", "after_id": ids[0]})
    with CaptureQueriesContext(connection) as large:
        api_client.get(URL, {"limit": "25", "after_id": ids[0]})

    # then: the caller, the cursor, the page
    assert len(app_queries(small)) == len(app_queries(large)) == 3
