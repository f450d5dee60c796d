"""GET /search: what matches (titles and messages of both roles, the caller's only), the query
syntax, ranking, snippets, filters, pagination and bad input."""

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import User
from conversations.models import Conversation, Message
from testsupport.assertions import app_queries, assert_error
from testsupport.factories import at, make_conversation, make_message

pytestmark = pytest.mark.django_db

URL = "/api/v1/search"
USER = Message.Role.USER
ASSISTANT = Message.Role.ASSISTANT


def _search(client: APIClient, q: str, **params: Any) -> dict[str, Any]:
    response = client.get(URL, {"q": q, **params})
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def _snippets(body: dict[str, Any]) -> list[str]:
    return [hit["snippet"] for hit in body["data"]]


@pytest.fixture
def lisbon(user: User) -> Conversation:
    conversation = make_conversation(owner=user, title="Trip to Lisbon", activity_at=at(0))
    make_message(
        conversation=conversation, role=USER, content="Which tram goes to Belem?", created_at=at(1)
    )
    make_message(
        conversation=conversation,
        role=ASSISTANT,
        content="Tram 15 goes to Belem from Praca da Figueira.",
        created_at=at(2),
    )
    return conversation


def test_a_message_hit_names_its_conversation_message_and_role(
    api_client: APIClient, lisbon: Conversation
) -> None:
    # when
    body = _search(api_client, "figueira")

    # then
    answer = Message.objects.get(conversation=lisbon, role=ASSISTANT)
    assert body == {
        "data": [
            {
                "id": str(answer.id),
                "conversation": {"id": str(lisbon.id), "title": "Trip to Lisbon"},
                "message": {"id": str(answer.id), "role": "assistant"},
                "created_at": "2026-11-01T09:00:02Z",
                "snippet": "Tram 15 goes to Belem from Praca da <mark>Figueira</mark>.",
            }
        ],
        "has_more": False,
        "first_id": str(answer.id),
        "last_id": str(answer.id),
    }


def test_a_title_hit_has_no_message(api_client: APIClient, lisbon: Conversation) -> None:
    body = _search(api_client, "lisbon")

    assert body["data"] == [
        {
            "id": str(lisbon.id),
            "conversation": {"id": str(lisbon.id), "title": "Trip to Lisbon"},
            "message": None,
            "created_at": "2026-11-01T09:00:00Z",
            "snippet": "Trip to <mark>Lisbon</mark>",
        }
    ]


def test_messages_of_both_roles_match_and_ties_on_relevance_go_newest_first(
    api_client: APIClient, lisbon: Conversation
) -> None:
    body = _search(api_client, "belem")

    assert [hit["message"]["role"] for hit in body["data"]] == ["assistant", "user"]


def test_more_relevant_messages_come_before_newer_ones(api_client: APIClient, user: User) -> None:
    # given: the older message says "tram" three times
    conversation = make_conversation(owner=user, title="Trams")
    make_message(conversation=conversation, role=USER, content="tram tram tram", created_at=at(1))
    make_message(conversation=conversation, role=USER, content="a tram and a bus", created_at=at(2))

    # when
    body = _search(api_client, "tram")

    # then: with the `simple` configuration the title's "Trams" is another word
    assert _snippets(body) == [
        "<mark>tram</mark> <mark>tram</mark> <mark>tram</mark>",
        "a <mark>tram</mark> and a bus",
    ]


def test_the_snippet_escapes_the_text_and_marks_only_the_matched_words(
    api_client: APIClient, user: User
) -> None:
    # given
    conversation = make_conversation(owner=user)
    make_message(
        conversation=conversation,
        role=ASSISTANT,
        content="<script>alert(1)</script> if a<b then the tram & \x02bus\x03",
    )

    # when
    body = _search(api_client, "tram")

    # then: PostgreSQL's parser leaves tags out of headlines; the rest is escaped, and the
    # text's own marker characters are dropped
    assert _snippets(body) == ["alert(1)  if a&lt;b then the <mark>tram</mark> &amp; bus"]


def test_a_long_message_gives_a_snippet_of_the_passages_around_the_matches(
    api_client: APIClient, user: User
) -> None:
    # given: 200 words, "tram" the 100th
    words = [f"w{i}" for i in range(200)]
    words[99] = "tram"
    make_message(conversation=make_conversation(owner=user), role=USER, content=" ".join(words))

    # when
    (snippet,) = _snippets(_search(api_client, "tram"))

    # then: a run of at most 30 of the message's words, the match marked
    marked = [*words[:99], "<mark>tram</mark>", *words[100:]]
    start = marked.index(snippet.split()[0])
    assert snippet.split() == marked[start : start + len(snippet.split())]
    assert "<mark>tram</mark>" in snippet.split()
    assert len(snippet.split()) <= 30


QUERIES = {
    # web-search syntax: all words, a phrase, or, exclusion
    "tram belem": ["Which tram goes to Belem?", "Tram 15 goes to Belem from Praca da Figueira."],
    '"goes to belem"': [
        "Which tram goes to Belem?",
        "Tram 15 goes to Belem from Praca da Figueira.",
    ],
    '"belem tram"': [],
    "figueira or which": [
        "Which tram goes to Belem?",
        "Tram 15 goes to Belem from Praca da Figueira.",
    ],
    "tram -figueira": ["Which tram goes to Belem?"],
    "TRAM FIGUEIRA": ["Tram 15 goes to Belem from Praca da Figueira."],
    "trams": [],
    # no words at all: nothing matches (and no error)
    "-": [],
    "&|!()": [],
}


@pytest.mark.parametrize("q", QUERIES)
def test_the_query_syntax_of_web_search(
    api_client: APIClient, lisbon: Conversation, q: str
) -> None:
    # when
    body = _search(api_client, q)

    # then: the texts of the messages found
    found = Message.objects.filter(id__in=[hit["id"] for hit in body["data"]])
    assert sorted(found.values_list("content", flat=True), key=len) == sorted(QUERIES[q], key=len)


def test_another_users_words_never_match(
    api_client: APIClient, other_client: APIClient, lisbon: Conversation
) -> None:
    # when
    theirs = _search(other_client, "tram")
    by_id = _search(other_client, "tram", conversation_id=str(lisbon.id))

    # then
    assert theirs["data"] == []
    assert by_id["data"] == []
    assert len(_search(api_client, "tram")["data"]) == 2


def test_the_conversation_filter(api_client: APIClient, user: User, lisbon: Conversation) -> None:
    # given
    other = make_conversation(owner=user, title="Tram museum")
    make_message(conversation=other, role=USER, content="A tram museum?")

    # when
    everywhere = _search(api_client, "tram")
    in_other = _search(api_client, "tram", conversation_id=str(other.id))

    # then
    assert len(everywhere["data"]) == 4
    assert {hit["conversation"]["id"] for hit in in_other["data"]} == {str(other.id)}
    # its message and its title
    assert sorted(hit["message"] is None for hit in in_other["data"]) == [False, True]


def test_the_date_filters_take_after_inclusive_and_before_exclusive(
    api_client: APIClient, lisbon: Conversation
) -> None:
    # when
    after = _search(api_client, "belem", created_after="2026-11-01T09:00:02Z")
    before = _search(api_client, "belem", created_before="2026-11-01T09:00:02Z")

    # then
    assert [hit["created_at"] for hit in after["data"]] == ["2026-11-01T09:00:02Z"]
    assert [hit["created_at"] for hit in before["data"]] == ["2026-11-01T09:00:01Z"]


def test_pages_follow_each_other_forwards_and_backwards(api_client: APIClient, user: User) -> None:
    # given: five equally relevant messages, so newest first
    conversation = make_conversation(owner=user)
    made = [
        make_message(conversation=conversation, role=USER, content=f"tram {i}", created_at=at(i))
        for i in range(5)
    ]
    newest_first = [str(message.id) for message in reversed(made)]

    # when
    first = _search(api_client, "tram", limit=2)
    second = _search(api_client, "tram", limit=2, after_id=first["last_id"])
    third = _search(api_client, "tram", limit=2, after_id=second["last_id"])
    back = _search(api_client, "tram", limit=2, before_id=third["first_id"])

    # then
    assert [hit["id"] for hit in first["data"]] == newest_first[0:2]
    assert [hit["id"] for hit in second["data"]] == newest_first[2:4]
    assert [hit["id"] for hit in third["data"]] == newest_first[4:5]
    assert [first["has_more"], second["has_more"], third["has_more"]] == [True, True, False]
    assert [hit["id"] for hit in back["data"]] == newest_first[2:4]
    assert back["has_more"] is True


def test_a_cursor_that_is_not_a_result_of_this_search_is_a_400(
    api_client: APIClient, other_client: APIClient, lisbon: Conversation
) -> None:
    # given: a message of the caller that does not match, and another user's
    user_message = Message.objects.get(conversation=lisbon, role=USER)

    # when
    not_matching = api_client.get(URL, {"q": "figueira", "after_id": str(user_message.id)})
    theirs = other_client.get(URL, {"q": "tram", "before_id": str(user_message.id)})

    # then
    body = assert_error(not_matching, 400, "invalid_request_error")
    assert body["error"]["message"] == "after_id: No result with this id for this search."
    body = assert_error(theirs, 400, "invalid_request_error")
    assert body["error"]["message"] == "before_id: No result with this id for this search."


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "x" * 501}, "q"),
        ({"q": "tram", "conversation_id": "nope"}, "conversation_id"),
        ({"q": "tram", "created_after": "yesterday"}, "created_after"),
        ({"q": "tram", "limit": "0"}, "limit"),
        ({"q": "tram", "after_id": "nope"}, "after_id"),
        ({"q": "tram", "sort": "date"}, "sort"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(
    api_client: APIClient, params: dict[str, str], field: str
) -> None:
    response = api_client.get(URL, params)

    body = assert_error(response, 400, "invalid_request_error")
    assert list(body["error"]["details"]["fields"]) == [field]


def test_search_requires_authentication(anon_client: APIClient) -> None:
    assert_error(anon_client.get(URL, {"q": "tram"}), 401, "authentication_error")


def test_search_runs_one_full_text_query_and_no_like_scan(
    api_client: APIClient, user: User, lisbon: Conversation
) -> None:
    # when
    with CaptureQueriesContext(connection) as context:
        _search(api_client, "tram")

    # then: the caller, then the search
    (search_sql,) = app_queries(context)[1:]
    assert "websearch_to_tsquery" in search_sql
    assert "search_vector @@" in search_sql
    assert "LIKE" not in search_sql.upper()


def test_the_indexes_lead_with_the_owner_and_serve_the_search(user: User) -> None:
    # given: the owner leads the index where the server ships btree_gin (the machine's
    # PostgreSQL, Supabase); the embedded development server does not, and indexes the vector
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gin'")
        owner_led = cursor.fetchone() is not None

    # when: the planner is told not to scan whole tables
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM messaging_message WHERE search_owner = %s "
            "AND search_vector @@ websearch_to_tsquery('simple', 'tram')",
            [user.pk],
        )
        message_plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname IN "
            "('message_search', 'conversation_search') ORDER BY indexname"
        )
        definitions = [row[0] for row in cursor.fetchall()]

    # then: the index serves the search; with btree_gin, one condition on owner and words
    assert "Bitmap Index Scan on message_search" in message_plan
    conversation_key, message_key = (
        ("owner_id, search_vector", "search_owner, search_vector")
        if owner_led
        else ("search_vector", "search_vector")
    )
    if owner_led:
        assert "Index Cond: ((search_owner = " in message_plan
    assert definitions == [
        (
            "CREATE INDEX conversation_search ON public.conversations_conversation "
            f"USING gin ({conversation_key})"
        ),
        f"CREATE INDEX message_search ON public.messaging_message USING gin ({message_key})",
    ]


def test_a_message_carries_its_conversations_owner_for_the_index(
    user: User, lisbon: Conversation
) -> None:
    # when: stored through the ORM, which knows nothing of the column
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT search_owner FROM messaging_message WHERE conversation_id = %s",
            [lisbon.id],
        )
        owners = cursor.fetchall()

    # then
    assert owners == [(user.pk,)]


def test_another_configuration_stems_after_search_config_apply(
    api_client: APIClient, lisbon: Conversation, settings: Any
) -> None:
    # given: `simple` does not stem, so "trams" finds nothing
    assert _search(api_client, "trams")["data"] == []

    # when: the setting changes and the vectors are rebuilt (rolled back with the test)
    settings.SEARCH_CONFIG = "english"
    with connection.cursor() as cursor:  # the test's pending foreign key checks, first
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    output = io.StringIO()
    call_command("search_config_apply", stdout=output)

    # then: "trams" and "tram" share the stem "tram"
    assert output.getvalue() == "search vectors rebuilt with english\n"
    assert len(_search(api_client, "trams")["data"]) == 2
