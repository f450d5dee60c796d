"""The conversation and message admin pages: who may see them, what they show, and that
their query count does not grow with the number of rows."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from conversations.models import Conversation
from conversations.tests.factories import at, make_conversation
from messaging.models import Message
from messaging.services import message_create

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/admin/conversations/conversation/"
MESSAGES = "/admin/messaging/message/"


@pytest.fixture
def staff_client() -> Client:
    staff = User.objects.create_superuser("root", "root@example.com", "unused-password")
    client = Client()
    client.force_login(staff)
    return client


def _add_conversation(owner: User, index: int, messages: int = 2) -> Conversation:
    conversation = make_conversation(
        owner=owner, title=f"Chat {index}", activity_at=at(index * 100)
    )
    for turn in range(messages):
        message_create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            content=f"answer {turn}",
            model="openai/gpt-oss-20b",
            input_tokens=10,
            output_tokens=5,
            latency_ms=300,
            cost_usd=Decimal("0.0000022500"),
            created_at=at(index * 100 + turn + 1),
        )
    return conversation


def test_conversation_list_shows_owner_counts_tokens_and_cost(
    staff_client: Client, user: User
) -> None:
    # given
    _add_conversation(user, 1, messages=3)

    # when
    response = staff_client.get(CONVERSATIONS)

    # then
    assert response.status_code == 200
    row = response.context["cl"].result_list[0]
    assert (row.message_count, row.input_tokens, row.output_tokens) == (3, 30, 15)
    assert row.cost_usd == Decimal("0.0000067500")
    html = response.content.decode()
    for text in ("Chat 1", "ada@example.com", "openai/gpt-oss-20b", "30 / 15", "0.0000067500"):
        assert text in html


def test_conversation_without_messages_shows_zero(staff_client: Client, user: User) -> None:
    make_conversation(owner=user, title="Quiet")

    response = staff_client.get(CONVERSATIONS)

    row = response.context["cl"].result_list[0]
    assert (row.message_count, row.input_tokens, row.cost_usd) == (0, None, None)
    assert "0 / 0" in response.content.decode()


def test_conversation_search_and_filters(
    staff_client: Client, user: User, other_user: User
) -> None:
    # given
    lisbon = make_conversation(owner=user, title="Lisbon", model="qwen/qwen3-32b")
    porto = make_conversation(owner=other_user, title="Porto", archived=True)

    # when / then
    def titles(**query: str) -> list[str]:
        response = staff_client.get(CONVERSATIONS, query)
        assert response.status_code == 200
        return sorted(row.title for row in response.context["cl"].result_list)

    assert titles(q="lisb") == [lisbon.title]
    assert titles(q="mallory") == [porto.title]
    assert titles(model="qwen/qwen3-32b") == [lisbon.title]
    assert titles(archived__exact="1") == [porto.title]
    assert titles(created_at__gte="2000-01-01 00:00:00+00:00") == ["Lisbon", "Porto"]
    assert titles(activity_at__lt="2000-01-01 00:00:00+00:00") == []


def test_conversation_page_shows_its_messages_in_order_read_only(
    staff_client: Client, user: User
) -> None:
    # given messages created out of order
    conversation = make_conversation(owner=user, activity_at=at(0))
    for second, content in ((3, "third"), (1, "first"), (2, "second")):
        message_create(
            conversation=conversation,
            role=Message.Role.USER,
            content=content,
            created_at=at(second),
        )

    # when
    response = staff_client.get(f"{CONVERSATIONS}{conversation.id}/change/")

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("first") < html.index("second") < html.index("third")
    (inline,) = response.context["inline_admin_formsets"]
    assert [form.original.content for form in inline] == ["first", "second", "third"]
    assert inline.has_add_permission is False
    assert inline.has_change_permission is False
    assert inline.has_delete_permission is False


def test_message_list_and_page_render(staff_client: Client, user: User) -> None:
    # given
    conversation = _add_conversation(user, 1, messages=1)
    message = conversation.messages.get()

    # when
    listing = staff_client.get(MESSAGES)
    filtered = staff_client.get(f"{MESSAGES}?role__exact=user")
    page = staff_client.get(f"{MESSAGES}{message.id}/change/")
    found = staff_client.get(f"{MESSAGES}?q={message.id}")
    not_an_id = staff_client.get(f"{MESSAGES}?q=hello")

    # then
    assert listing.status_code == 200
    assert [row.id for row in listing.context["cl"].result_list] == [message.id]
    assert "300" in listing.content.decode()  # latency
    assert list(filtered.context["cl"].result_list) == []
    assert page.status_code == 200
    assert [row.id for row in found.context["cl"].result_list] == [message.id]
    assert not_an_id.status_code == 200


@pytest.mark.parametrize("url", [CONVERSATIONS, MESSAGES])
def test_changelist_queries_do_not_grow_with_rows(
    staff_client: Client, user: User, other_user: User, url: str
) -> None:
    # given
    for index in range(2):
        _add_conversation(user, index)
    staff_client.get(url)
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(url).status_code == 200

    # when
    for index in range(2, 22):
        _add_conversation(other_user if index % 2 else user, index)
    with CaptureQueriesContext(connection) as many:
        assert staff_client.get(url).status_code == 200

    # then
    assert len(many) == len(few)


def test_conversation_page_queries_do_not_grow_with_messages(
    staff_client: Client, user: User
) -> None:
    # given
    small = _add_conversation(user, 1, messages=1)
    large = _add_conversation(user, 2, messages=25)
    staff_client.get(f"{CONVERSATIONS}{small.id}/change/")

    # when
    with CaptureQueriesContext(connection) as one:
        staff_client.get(f"{CONVERSATIONS}{small.id}/change/")
    with CaptureQueriesContext(connection) as many:
        staff_client.get(f"{CONVERSATIONS}{large.id}/change/")

    # then
    assert len(many) == len(one)


@pytest.mark.parametrize(
    "path",
    [
        CONVERSATIONS,
        f"{CONVERSATIONS}00000000-0000-0000-0000-000000000000/change/",
        MESSAGES,
    ],
)
@pytest.mark.parametrize("who", ["anonymous", "non-staff user"])
def test_admin_redirects_others_to_login(user: User, path: str, who: str) -> None:
    # given
    client = Client()
    if who == "non-staff user":
        client.force_login(user)

    # when
    response = client.get(path)

    # then
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={path}"
