"""GET /api/v1/conversations/{id}/export: the conversation as a JSON or Markdown file."""

import json
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from conversations.models import Conversation, Message
from testsupport.assertions import assert_error
from testsupport.factories import at, make_conversation, make_exchange, make_message

pytestmark = pytest.mark.django_db


def export_url(conversation_id: object, query: str = "") -> str:
    return f"/api/v1/conversations/{conversation_id}/export{query}"


@pytest.fixture
def conversation(user: User) -> Conversation:
    """A finished exchange, and an answer that was cancelled mid-way."""
    conversation = make_exchange(user)
    make_message(
        conversation=conversation,
        role=Message.Role.USER,
        content="And food?",
        created_at=at(3),
    )
    make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="Pasteis",
        status=Message.Status.CANCELLED,
        model="openai/gpt-oss-20b",
        input_tokens=70,
        output_tokens=2,
        usage_estimated=True,
        latency_ms=300,
        ttft_ms=120,
        cost_usd=None,
        created_at=at(4),
    )
    return conversation


def test_json_export_is_the_apis_shapes_with_totals(
    api_client: APIClient, conversation: Conversation
) -> None:
    # given: what the API itself returns for the conversation and its messages
    detail = api_client.get(f"/api/v1/conversations/{conversation.pk}").json()
    messages = api_client.get(f"/api/v1/conversations/{conversation.pk}/messages").json()

    # when
    response = api_client.get(export_url(conversation.pk, "?format=json"))

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == (
        f'attachment; filename="trip-to-lisbon-{conversation.pk}.json"'
    )
    body = json.loads(response.content)
    assert body == {
        "conversation": detail,
        "messages": messages["data"],
        "totals": {
            "messages": 4,
            "input_tokens": 112,
            "output_tokens": 19,
            "cost_usd": "0.0000082500",
        },
    }
    assert [message["role"] for message in body["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]


def test_json_is_the_default_format(api_client: APIClient, conversation: Conversation) -> None:
    default = api_client.get(export_url(conversation.pk))
    explicit = api_client.get(export_url(conversation.pk, "?format=json"))

    assert default.status_code == 200
    assert default.content == explicit.content


def test_markdown_export_is_a_transcript(api_client: APIClient, conversation: Conversation) -> None:
    # when
    response = api_client.get(export_url(conversation.pk, "?format=markdown"))

    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="trip-to-lisbon-{conversation.pk}.md"'
    )
    assert response.content.decode() == (
        "# Trip to Lisbon\n"
        "\n"
        f"- Conversation: `{conversation.pk}`\n"
        "- Model: openai/gpt-oss-20b\n"
        "- Created: 2026-11-01 09:00:00 UTC\n"
        "- Messages: 4 · Tokens: 112 in / 19 out · Cost: $0.0000082500\n"
        "\n"
        "## System prompt\n"
        "\n"
        "Be brief.\n"
        "\n"
        "## User · 2026-11-01 09:00:01 UTC\n"
        "\n"
        "Three things to see?\n"
        "\n"
        "## Assistant · 2026-11-01 09:00:02 UTC\n"
        "\n"
        "<details>\n"
        "<summary>Reasoning</summary>\n"
        "\n"
        "Three sights, briefly.\n"
        "\n"
        "</details>\n"
        "\n"
        "Belem Tower, the Alfama, LX Factory.\n"
        "\n"
        "*openai/gpt-oss-20b · 42 in / 17 out tokens · $0.0000082500 · 812 ms · "
        "first token 95 ms · end_turn*\n"
        "\n"
        "## User · 2026-11-01 09:00:03 UTC\n"
        "\n"
        "And food?\n"
        "\n"
        "## Assistant · 2026-11-01 09:00:04 UTC · cancelled\n"
        "\n"
        "Pasteis\n"
        "\n"
        "*openai/gpt-oss-20b · 70 in / 2 out tokens (estimated) · cost unknown · 300 ms · "
        "first token 120 ms*\n"
    )


def test_markdown_of_an_empty_untitled_conversation(api_client: APIClient, user: User) -> None:
    conversation = make_conversation(owner=user, activity_at=at(0), archived=True)

    response = api_client.get(export_url(conversation.pk, "?format=markdown"))

    assert response["Content-Disposition"] == (
        f'attachment; filename="conversation-{conversation.pk}.md"'
    )
    assert response.content.decode() == (
        "# Untitled conversation\n"
        "\n"
        f"- Conversation: `{conversation.pk}`\n"
        "- Model: openai/gpt-oss-20b\n"
        "- Created: 2026-11-01 09:00:00 UTC\n"
        "- Messages: 0 · Tokens: 0 in / 0 out · Cost: unknown\n"
        "- Archived\n"
    )


def test_failed_answer_shows_its_error(api_client: APIClient, user: User) -> None:
    # given
    conversation = make_conversation(owner=user, title="x", activity_at=at(0))
    make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="",
        status=Message.Status.ERROR,
        model="openai/gpt-oss-20b",
        input_tokens=0,
        output_tokens=0,
        cost_usd=Decimal("0E-10"),
        error={"type": "overloaded_error", "message": "The model provider failed (HTTP 503)."},
        created_at=at(1),
    )

    # when
    markdown = api_client.get(export_url(conversation.pk, "?format=markdown")).content.decode()

    # then
    assert markdown.endswith(
        "## Assistant · 2026-11-01 09:00:01 UTC · error\n"
        "\n"
        "*(no content)*\n"
        "\n"
        "> **Error** (overloaded_error): The model provider failed (HTTP 503).\n"
        "\n"
        "*openai/gpt-oss-20b · 0 in / 0 out tokens · $0.0000000000*\n"
    )


def test_markdown_shows_tool_calls_results_and_the_providers_timings(
    api_client: APIClient, user: User
) -> None:
    # given: an answer that called a tool (once with arguments that are not JSON)
    conversation = make_conversation(owner=user, title="x", activity_at=at(0))
    make_message(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="",
        blocks=[
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
        cost_usd=Decimal("0.0001237500"),
        provider_timings={"queue": 0.0125, "prompt": 0.0042, "completion": 0.25},
        created_at=at(1),
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
        created_at=at(2),
    )

    # when
    markdown = api_client.get(export_url(conversation.pk, "?format=markdown")).content.decode()

    # then
    assert markdown.endswith(
        "## Assistant · 2026-11-01 09:00:01 UTC\n"
        "\n"
        "**Tool call** `get_weather` (`call_1`)\n"
        "\n"
        '```json\n{\n  "city": "Zürich"\n}\n```\n'
        "\n"
        "**Tool call** `get_weather` (`call_2`) (arguments are not JSON)\n"
        "\n"
        "```\n{city: Bern\n```\n"
        "\n"
        "*openai/gpt-oss-20b · 2000 in (1500 cached) / 20 out tokens · $0.0001237500 · "
        "provider: queue 12.5 ms, prompt 4.2 ms, completion 250.0 ms · tool_use*\n"
        "\n"
        "## User · 2026-11-01 09:00:02 UTC\n"
        "\n"
        "**Tool result** for `call_1`\n"
        "\n"
        "```\n4 C\n```\n"
        "\n"
        "**Tool result** for `call_2` (error)\n"
        "\n"
        "```\nbad arguments\n```\n"
    )


@pytest.mark.parametrize(
    ("title", "filename"),
    [
        ('Quarterly "plan"; rm -rf /\r\nX-Evil: 1', "quarterly-plan-rm-rf-x-evil-1"),
        ("Café à Lisboa ☕", "cafe-a-lisboa"),
        ("日本語のタイトル", "conversation"),
        ("x" * 200, "x" * 60),
    ],
)
def test_filename_is_a_safe_ascii_slug(
    api_client: APIClient, user: User, title: str, filename: str
) -> None:
    conversation = make_conversation(owner=user, title=title)

    response = api_client.get(export_url(conversation.pk))

    assert response["Content-Disposition"] == (
        f'attachment; filename="{filename}-{conversation.pk}.json"'
    )


def test_another_users_conversation_is_the_same_404(
    other_client: APIClient, conversation: Conversation
) -> None:
    # when
    theirs = other_client.get(export_url(conversation.pk, "?format=markdown"))
    missing = other_client.get(export_url("00000000-0000-0000-0000-000000000000"))
    malformed = other_client.get(export_url("not-an-id"))

    # then
    for response in (theirs, missing, malformed):
        body = assert_error(response, 404, "not_found_error")
        assert body["error"]["message"] == "Conversation not found."
        assert "Content-Disposition" not in response


def test_unknown_format_or_parameter_is_400(
    api_client: APIClient, conversation: Conversation
) -> None:
    pdf = api_client.get(export_url(conversation.pk, "?format=pdf"))
    typo = api_client.get(export_url(conversation.pk, "?fromat=json"))

    body = assert_error(pdf, 400, "invalid_request_error")
    assert body["error"]["message"] == 'format: "pdf" is not a valid choice.'
    body = assert_error(typo, 400, "invalid_request_error")
    assert body["error"]["details"] == {"fields": {"fromat": ["Unknown field."]}}


def test_export_needs_a_token(anon_client: APIClient, conversation: Conversation) -> None:
    response = anon_client.get(export_url(conversation.pk))

    assert_error(response, 401, "authentication_error")
