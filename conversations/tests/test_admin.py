"""The conversation and message admin pages: who may see them, what they show, and that
their query count does not grow with the number of rows."""

import io
import json
import zipfile
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import User
from conversations.models import Conversation, Message
from testsupport.factories import at, make_conversation, make_exchange, make_message

pytestmark = pytest.mark.django_db

CONVERSATIONS = "/admin/conversations/conversation/"
MESSAGES = "/admin/conversations/message/"


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
        make_message(
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
    for text in ("Chat 1", "ada@example.com", "openai/gpt-oss-20b", "30 / 15"):
        assert text in html
    # to the cent on the screen, the exact amount on hover
    assert '<td class="field-cost"><span title="0.00000675 USD">&lt;$0.01</span></td>' in html


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
        make_message(
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


class _FormFields(HTMLParser):
    """What a browser would submit for a page's form: inputs, checked boxes, textareas and
    selected options (enough for the admin's change form)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = {key: value or "" for key, value in attrs}
        name = fields.get("name")
        if tag == "input" and name and fields.get("type") not in ("submit", "button"):
            if fields.get("type") != "checkbox":
                self.data[name] = fields.get("value", "")
            elif "checked" in fields:
                self.data[name] = fields.get("value", "on")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in fields:
            self.data[self._select] = fields.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea] += data


def test_conversation_page_reads_like_a_transcript(staff_client: Client, user: User) -> None:
    # given
    conversation = make_exchange(user)

    # when
    response = staff_client.get(f"{CONVERSATIONS}{conversation.id}/change/")

    # then
    assert response.status_code == 200
    text = " ".join(response.content.decode().split())
    assert "2 messages · 42 in / 17 out tokens · $0.0000082500" in text
    assert (
        '<article class="turn turn-system"> <header><strong>System prompt</strong></header> '
        '<div class="turn-content">Be brief.</div>'
    ) in text
    assert '<strong class="turn-role">User</strong>' in text
    assert '<div class="turn-content">Three things to see?</div>' in text
    assert '<strong class="turn-role">Assistant</strong>' in text
    # the reasoning is there, collapsed
    assert (
        '<details class="turn-reasoning"> <summary>Reasoning</summary> '
        "<div>Three sights, briefly.</div> </details>"
    ) in text
    assert (
        '<footer class="turn-stats"> <span>openai/gpt-oss-20b</span> '
        "<span>42 in / 17 out tokens</span> <span>$0.0000082500</span> <span>812 ms</span> "
        "<span>first token 95 ms</span> <span>end_turn</span> </footer>"
    ) in text
    assert text.index("Three things to see?") < text.index("Belem Tower")


def test_transcript_shows_status_and_error_of_a_failed_answer(
    staff_client: Client, user: User
) -> None:
    # given
    conversation = make_conversation(owner=user)
    make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="Partial",
        status=Message.Status.ERROR,
        model="openai/gpt-oss-20b",
        input_tokens=12,
        output_tokens=3,
        usage_estimated=True,
        error={"type": "api_error", "message": "The model provider closed the connection."},
    )

    # when
    text = " ".join(
        staff_client.get(f"{CONVERSATIONS}{conversation.id}/change/").content.decode().split()
    )

    # then
    assert '<span class="turn-status turn-status-error">Error</span>' in text
    assert (
        '<p class="turn-error errornote">api_error: The model provider closed the connection.</p>'
    ) in text
    assert "<span>12 in / 3 out tokens (estimated)</span> <span>cost unknown</span>" in text


def test_transcript_shows_tool_calls_results_and_the_providers_timings(
    staff_client: Client, user: User
) -> None:
    # given: a call (one with arguments that are not JSON), its results, Groq's timings
    conversation = make_conversation(owner=user)
    make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="Checking.",
        blocks=[
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "call_1",
                "name": "get_weather",
                "input": {"city": "Zürich"},
            },
            {
                "type": "tool_use",
                "id": "call_2",
                "name": "get_weather",
                "input": {},
                "is_error": True,
                "raw_input": "{city: Bern",
            },
        ],
        model="openai/gpt-oss-20b",
        stop_reason="tool_use",
        input_tokens=2000,
        cached_input_tokens=1500,
        output_tokens=20,
        latency_ms=300,
        ttft_ms=120,
        provider_timings={"queue": 0.0125, "prompt": 0.0042, "completion": 0.25},
    )
    make_message(
        conversation=conversation,
        role=Message.Role.USER,
        content="",
        blocks=[
            {"type": "tool_result", "tool_use_id": "call_1", "content": "4 C", "is_error": False},
            {
                "type": "tool_result",
                "tool_use_id": "call_2",
                "content": [{"type": "text", "text": "bad arguments"}],
                "is_error": True,
            },
        ],
    )

    # when
    text = " ".join(
        staff_client.get(f"{CONVERSATIONS}{conversation.id}/change/").content.decode().split()
    )

    # then
    assert (
        '<strong>Tool call</strong> <code>get_weather</code> <code class="turn-tool-id">call_1'
        "</code> <pre>{ &quot;city&quot;: &quot;Zürich&quot; }</pre>"
    ) in text
    assert (
        '<code class="turn-tool-id">call_2</code> <span class="turn-status">arguments are not '
        "JSON</span> <pre>{city: Bern</pre>"
    ) in text
    assert (
        '<strong>Tool result</strong> <code class="turn-tool-id">call_1</code> <pre>4 C</pre>'
    ) in text
    assert (
        '<code class="turn-tool-id">call_2</code> <span class="turn-status">error</span> '
        "<pre>bad arguments</pre>"
    ) in text
    assert (
        "<span>2000 in (1500 cached) / 20 out tokens</span> <span>cost unknown</span> "
        "<span>300 ms</span> <span>first token 120 ms</span> "
        "<span>provider: queue 12.5 ms · prompt 4.2 ms · completion 250.0 ms</span> "
        "<span>tool_use</span>"
    ) in text


def test_saving_the_conversation_from_the_transcript_page(staff_client: Client, user: User) -> None:
    # given: the change form as a browser would submit it, with a new title
    conversation = make_exchange(user)
    page = staff_client.get(f"{CONVERSATIONS}{conversation.id}/change/")
    form = _FormFields()
    form.feed(page.content.decode())
    form.data["title"] = "Lisbon, 3 days"

    # when
    response = staff_client.post(f"{CONVERSATIONS}{conversation.id}/change/", form.data)

    # then
    assert response.status_code == 302, response.context and response.context["errors"]
    conversation.refresh_from_db()
    assert conversation.title == "Lisbon, 3 days"
    assert conversation.messages.count() == 2


def test_export_action_for_one_conversation_is_the_apis_file(
    staff_client: Client, user: User, api_client: APIClient
) -> None:
    # given
    conversation = make_exchange(user)
    api_file = api_client.get(f"/api/v1/conversations/{conversation.id}/export?format=markdown")

    # when
    response = staff_client.post(
        CONVERSATIONS, {"action": "export_markdown", "_selected_action": [str(conversation.id)]}
    )

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == api_file["Content-Disposition"]
    assert response.content == api_file.content


def test_export_action_for_several_conversations_is_a_zip(
    staff_client: Client, user: User, other_user: User, api_client: APIClient
) -> None:
    # given
    mine = make_exchange(user, title="Lisbon", offset=0)
    theirs = make_exchange(other_user, title="Porto", offset=100)

    # when
    response = staff_client.post(
        CONVERSATIONS,
        {"action": "export_json", "_selected_action": [str(mine.id), str(theirs.id)]},
    )

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="conversations-json-')
    assert disposition.endswith('.zip"')
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == [f"porto-{theirs.id}.json", f"lisbon-{mine.id}.json"]
    mine_file = api_client.get(f"/api/v1/conversations/{mine.id}/export?format=json")
    assert archive.read(f"lisbon-{mine.id}.json") == mine_file.content
    assert json.loads(archive.read(f"porto-{theirs.id}.json"))["totals"] == {
        "messages": 2,
        "input_tokens": 42,
        "output_tokens": 17,
        "cost_usd": "0.0000082500",
    }


def test_change_page_links_to_its_exports(
    staff_client: Client, user: User, api_client: APIClient
) -> None:
    # given
    conversation = make_exchange(user)
    export = f"{CONVERSATIONS}{conversation.id}/export/"

    # when
    page = staff_client.get(f"{CONVERSATIONS}{conversation.id}/change/").content.decode()
    exported = staff_client.get(f"{export}?format=json")
    unknown = staff_client.get(f"{export}?format=pdf")
    missing = staff_client.get(f"{CONVERSATIONS}00000000-0000-0000-0000-000000000000/export/")

    # then
    assert f'<a href="{export}?format=markdown">Export Markdown</a>' in page
    assert f'<a href="{export}?format=json">Export JSON</a>' in page
    api_file = api_client.get(f"/api/v1/conversations/{conversation.id}/export?format=json")
    assert exported.content == api_file.content
    assert exported["Content-Disposition"] == api_file["Content-Disposition"]
    assert unknown.status_code == 404
    assert missing.status_code == 404


@pytest.mark.parametrize("who", ["anonymous", "non-staff user"])
def test_admin_export_redirects_others_to_login(user: User, who: str) -> None:
    # given
    conversation = make_exchange(user)
    path = f"{CONVERSATIONS}{conversation.id}/export/"
    client = Client()
    if who == "non-staff user":
        client.force_login(user)

    # when
    response = client.get(path)

    # then
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={path}"
