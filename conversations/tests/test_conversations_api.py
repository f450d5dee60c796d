"""Create, read, change and delete conversations; validation errors in the envelope."""

import uuid
from datetime import datetime
from typing import Any

import pytest
from pytest_django import Settings
from rest_framework.test import APIClient

from accounts.models import User
from conversations.models import Conversation, Message
from testsupport.assertions import assert_error
from testsupport.factories import make_chat_model, make_conversation, make_message

pytestmark = pytest.mark.django_db


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _expected(conversation: Conversation) -> dict[str, Any]:
    conversation.refresh_from_db()
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
        "temperature": conversation.temperature,
        "max_output_tokens": conversation.max_output_tokens,
        "reasoning_effort": conversation.reasoning_effort or None,
        "tools": conversation.tools,
        "tool_choice": conversation.tool_choice,
        "stop_sequences": conversation.stop_sequences,
        "service_tier": conversation.service_tier or None,
        "fallback_models": conversation.fallback_models,
        "metadata": conversation.metadata,
        "archived": conversation.archived,
        "created_at": _iso(conversation.created_at),
        "updated_at": _iso(conversation.updated_at),
        "last_message_at": (
            _iso(conversation.last_message_at) if conversation.last_message_at else None
        ),
        "current_leaf_id": (
            str(conversation.current_leaf_id) if conversation.current_leaf_id else None
        ),
    }


def test_create_with_no_fields_uses_the_defaults(api_client: APIClient, user: User) -> None:
    # when
    response = api_client.post("/api/v1/conversations", {}, format="json")

    # then
    assert response.status_code == 201
    conversation = Conversation.objects.get()
    assert conversation.owner == user
    assert response.json() == _expected(conversation)
    assert response.json() | {"id": "-", "created_at": "-", "updated_at": "-"} == {
        "id": "-",
        "title": "",
        "model": "openai/gpt-oss-20b",
        "system_prompt": "",
        "temperature": None,
        "max_output_tokens": None,
        "reasoning_effort": None,
        "tools": [],
        "tool_choice": None,
        "stop_sequences": [],
        "service_tier": None,
        "fallback_models": [],
        "metadata": {},
        "archived": False,
        "created_at": "-",
        "updated_at": "-",
        "last_message_at": None,
        "current_leaf_id": None,
    }
    assert conversation.activity_at == conversation.created_at


def test_create_with_every_setting_then_retrieve_round_trips(api_client: APIClient) -> None:
    # given
    body = {
        "title": "Trip to Lisbon",
        "model": "qwen/qwen3-32b",
        "system_prompt": "  Be brief.\n",
        "temperature": 0.7,
        "max_output_tokens": 40_960,
        "reasoning_effort": "high",
        "metadata": {"client": "web", "tags": ["travel"], "pinned": True},
    }

    # when
    created = api_client.post("/api/v1/conversations", body, format="json")
    fetched = api_client.get(f"/api/v1/conversations/{created.json()['id']}")

    # then
    assert created.status_code == 201
    assert fetched.status_code == 200
    assert fetched.json() == created.json()
    assert {key: created.json()[key] for key in body} == body


def test_default_model_follows_the_setting(api_client: APIClient, settings: Settings) -> None:
    # given
    settings.DEFAULT_CHAT_MODEL = "openai/gpt-oss-120b"

    # when
    response = api_client.post("/api/v1/conversations", {"title": "x"}, format="json")

    # then
    assert response.json()["model"] == "openai/gpt-oss-120b"


def test_trailing_slash_is_accepted(api_client: APIClient, user: User) -> None:
    conversation = make_conversation(owner=user)

    assert api_client.post("/api/v1/conversations/", {}, format="json").status_code == 201
    assert api_client.get("/api/v1/conversations/").status_code == 200
    assert api_client.get(f"/api/v1/conversations/{conversation.id}/").status_code == 200
    assert api_client.get(f"/api/v1/conversations/{conversation.id}/messages/").status_code == 200


def test_patch_changes_only_the_fields_sent(api_client: APIClient, user: User) -> None:
    # given
    conversation = make_conversation(
        owner=user,
        title="Old",
        system_prompt="Be brief.",
        temperature=0.2,
        max_output_tokens=1000,
        reasoning_effort="low",
        metadata={"a": 1},
    )
    before = _expected(conversation)

    # when
    response = api_client.patch(
        f"/api/v1/conversations/{conversation.id}", {"title": "New"}, format="json"
    )

    # then
    assert response.status_code == 200
    after = _expected(conversation)
    assert response.json() == after
    assert after == before | {"title": "New", "updated_at": after["updated_at"]}
    assert after["updated_at"] > before["updated_at"]


def test_patch_null_resets_the_generation_settings(api_client: APIClient, user: User) -> None:
    # given
    conversation = make_conversation(
        owner=user, temperature=0.2, max_output_tokens=1000, reasoning_effort="low"
    )

    # when
    response = api_client.patch(
        f"/api/v1/conversations/{conversation.id}",
        {"temperature": None, "max_output_tokens": None, "reasoning_effort": None},
        format="json",
    )

    # then
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.temperature, conversation.max_output_tokens) == (None, None)
    assert conversation.reasoning_effort == ""
    assert response.json()["reasoning_effort"] is None


def test_patch_archives_and_unarchives(api_client: APIClient, user: User) -> None:
    conversation = make_conversation(owner=user)
    url = f"/api/v1/conversations/{conversation.id}"

    archived = api_client.patch(url, {"archived": True}, format="json")
    assert archived.json()["archived"] is True
    assert Conversation.objects.get().archived is True

    restored = api_client.patch(url, {"archived": False}, format="json")
    assert restored.json()["archived"] is False
    assert Conversation.objects.get().archived is False


def test_patch_archived_must_be_a_json_boolean(api_client: APIClient, user: User) -> None:
    # given
    conversation = make_conversation(owner=user)

    # when: strings and numbers DRF alone would read as booleans
    answers = [
        api_client.patch(
            f"/api/v1/conversations/{conversation.id}", {"archived": value}, format="json"
        )
        for value in ("true", 1, "yes")
    ]

    # then
    for response in answers:
        body = assert_error(response, 400, "invalid_request_error")
        assert body["error"]["details"] == {"fields": {"archived": ["Must be a valid boolean."]}}
    assert Conversation.objects.get().archived is False


def test_patch_with_empty_body_changes_nothing(api_client: APIClient, user: User) -> None:
    conversation = make_conversation(owner=user, title="Same")
    before = _expected(conversation)

    response = api_client.patch(f"/api/v1/conversations/{conversation.id}", {}, format="json")

    assert response.status_code == 200
    assert response.json() == before
    assert _expected(conversation) == before


def test_patch_model_and_a_fitting_max_output_tokens_together(
    api_client: APIClient, user: User
) -> None:
    # given a limit that only the current model allows
    conversation = make_conversation(owner=user, max_output_tokens=65_536)

    # when
    response = api_client.patch(
        f"/api/v1/conversations/{conversation.id}",
        {"model": "qwen/qwen3-32b", "max_output_tokens": 40_960},
        format="json",
    )

    # then
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.model, conversation.max_output_tokens) == ("qwen/qwen3-32b", 40_960)


def test_delete_removes_the_conversation_and_its_messages(
    api_client: APIClient, user: User
) -> None:
    # given
    conversation = make_conversation(owner=user)
    kept = make_conversation(owner=user)
    make_message(conversation=conversation, role=Message.Role.USER, content="hi")
    make_message(conversation=kept, role=Message.Role.USER, content="stay")

    # when
    response = api_client.delete(f"/api/v1/conversations/{conversation.id}")

    # then
    assert response.status_code == 204
    assert response.content == b""
    assert list(Conversation.objects.values_list("id", flat=True)) == [kept.id]
    assert list(Message.objects.values_list("content", flat=True)) == ["stay"]
    gone = api_client.get(f"/api/v1/conversations/{conversation.id}")
    assert_error(gone, 404, "not_found_error")
    again = api_client.delete(f"/api/v1/conversations/{conversation.id}")
    assert_error(again, 404, "not_found_error")


# --- validation ----------------------------------------------------------------------------

# The seeded catalog, by provider and id (local/dev-echo: the test settings configure "local").
AVAILABLE = "openai/gpt-oss-120b, openai/gpt-oss-20b, qwen/qwen3-32b, local/dev-echo"


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"model": "nope/model"}, "model",
         f"Unknown model 'nope/model'. Available models: {AVAILABLE}."),
        ({"model": "llama-3.3-70b-versatile"}, "model",
         ("The model 'llama-3.3-70b-versatile' has been decommissioned by its provider. "
          "Its replacement is 'openai/gpt-oss-120b'. "
          f"Available models: {AVAILABLE}.")),
        ({"temperature": 2.01}, "temperature", "Ensure this value is less than or equal to 2.0."),
        ({"temperature": -0.1}, "temperature", "Ensure this value is greater than or equal to 0."),
        ({"temperature": "hot"}, "temperature", "A valid number is required."),
        ({"max_output_tokens": 0}, "max_output_tokens",
         "Ensure this value is greater than or equal to 1."),
        ({"max_output_tokens": 65_537}, "max_output_tokens",
         "openai/gpt-oss-20b allows at most 65536 output tokens; max_output_tokens is 65537."),
        ({"model": "qwen/qwen3-32b", "max_output_tokens": 40_961}, "max_output_tokens",
         "qwen/qwen3-32b allows at most 40960 output tokens; max_output_tokens is 40961."),
        ({"max_output_tokens": 1.5}, "max_output_tokens", "A valid integer is required."),
        ({"reasoning_effort": "extreme"}, "reasoning_effort",
         '"extreme" is not a valid choice.'),
        ({"title": "t" * 201}, "title", "Ensure this field has no more than 200 characters."),
        ({"title": None}, "title", "This field may not be null."),
        ({"title": "a\u0000b"}, "title", "Null characters are not allowed."),
        ({"system_prompt": "s" * 32_001}, "system_prompt",
         "Ensure this field has no more than 32000 characters."),
        ({"metadata": ["a"]}, "metadata", 'Expected a dictionary of items but got type "list".'),
        ({"metadata": {f"k{i}": i for i in range(65)}}, "metadata",
         "At most 64 keys are allowed."),
        ({"metadata": {"a": "x" * 16_380}}, "metadata",
         "At most 16384 bytes of JSON are allowed (got 16388)."),
        ({"metadata": {"a": {"b": ["\u0000"]}}}, "metadata", "Null characters are not allowed."),
        # JSON types as documented, never coerced: 0 is not "0", "5" is not 5
        ({"system_prompt": 0}, "system_prompt", "Not a valid string."),
        ({"title": 12}, "title", "Not a valid string."),
        ({"model": 1.5}, "model", "Not a valid string."),
        ({"temperature": True}, "temperature", "A valid number is required."),
        ({"temperature": "1"}, "temperature", "A valid number is required."),
        ({"max_output_tokens": "5"}, "max_output_tokens", "A valid integer is required."),
        ({"max_output_tokens": False}, "max_output_tokens", "A valid integer is required."),
        ({"owner": "someone-else"}, "owner", "Unknown field."),
        ({"archived": True}, "archived", "Unknown field."),
    ],
)  # fmt: skip
def test_create_rejects_invalid_fields_in_the_envelope(
    api_client: APIClient, body: dict[str, Any], field: str, problem: str
) -> None:
    # when
    response = api_client.post("/api/v1/conversations", body, format="json")

    # then
    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error == {
        "type": "invalid_request_error",
        "message": f"{field}: {problem}",
        "details": {"fields": {field: [problem]}},
    }
    assert not Conversation.objects.exists()


def test_metadata_with_a_lone_surrogate_is_rejected(api_client: APIClient) -> None:
    # given JSON that parses to a string PostgreSQL cannot store
    body = '{"metadata": {"a": "\\ud800"}}'

    # when
    response = api_client.post("/api/v1/conversations", body, content_type="application/json")

    # then
    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert error["details"] == {"fields": {"metadata": ["Surrogate characters are not allowed."]}}
    assert not Conversation.objects.exists()


def test_metadata_of_exactly_the_caps_is_accepted(api_client: APIClient) -> None:
    # given 64 keys and 16384 bytes serialized
    metadata = {f"k{i:02}": "" for i in range(63)}
    used = len('{"k00":""') + 62 * len(',"k00":""') + len(',"pad":""}')
    metadata["pad"] = "x" * (16_384 - used)

    response = api_client.post("/api/v1/conversations", {"metadata": metadata}, format="json")

    assert response.status_code == 201
    assert response.json()["metadata"] == metadata


def test_create_reports_every_invalid_field(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/v1/conversations", {"temperature": 3, "title": "t" * 201}, format="json"
    )

    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["details"] == {
        "fields": {
            "title": ["Ensure this field has no more than 200 characters."],
            "temperature": ["Ensure this value is less than or equal to 2.0."],
        }
    }


def test_create_rejects_a_body_that_is_not_an_object(api_client: APIClient) -> None:
    response = api_client.post("/api/v1/conversations", ["title"], format="json")

    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["message"] == "Invalid data. Expected a dictionary, but got list."


def test_patch_model_alone_is_checked_against_the_stored_max_output_tokens(
    api_client: APIClient, user: User
) -> None:
    # given
    conversation = make_conversation(owner=user, max_output_tokens=65_536)

    # when
    response = api_client.patch(
        f"/api/v1/conversations/{conversation.id}", {"model": "qwen/qwen3-32b"}, format="json"
    )

    # then
    body = assert_error(response, 400, "invalid_request_error")
    problem = "qwen/qwen3-32b allows at most 40960 output tokens; max_output_tokens is 65536."
    assert body["error"]["details"] == {"fields": {"model": [problem]}}
    conversation.refresh_from_db()
    assert conversation.model == "openai/gpt-oss-20b"


def test_patch_rejects_unknown_fields_and_changes_nothing(
    api_client: APIClient, user: User
) -> None:
    conversation = make_conversation(owner=user, title="Same")
    before = _expected(conversation)

    response = api_client.patch(
        f"/api/v1/conversations/{conversation.id}",
        {"title": "New", "id": str(uuid.uuid4())},
        format="json",
    )

    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["details"] == {"fields": {"id": ["Unknown field."]}}
    assert _expected(conversation) == before


@pytest.fixture
def with_plain_model(db: None) -> None:
    make_chat_model(
        "plain/model",
        context_window=8192,
        max_output_tokens=4096,
        input_usd_per_mtok="0.05",
        output_usd_per_mtok="0.08",
    )


@pytest.mark.usefixtures("with_plain_model")
def test_reasoning_effort_is_rejected_for_a_non_reasoning_model(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/v1/conversations",
        {"model": "plain/model", "reasoning_effort": "low"},
        format="json",
    )

    body = assert_error(response, 400, "invalid_request_error")
    problem = "plain/model is not a reasoning model; reasoning_effort must be null."
    assert body["error"]["details"] == {"fields": {"reasoning_effort": [problem]}}


@pytest.mark.usefixtures("with_plain_model")
def test_patch_to_a_non_reasoning_model_must_clear_reasoning_effort(
    api_client: APIClient, user: User
) -> None:
    # given
    conversation = make_conversation(owner=user, reasoning_effort="high")
    url = f"/api/v1/conversations/{conversation.id}"

    # when
    refused = api_client.patch(url, {"model": "plain/model"}, format="json")
    accepted = api_client.patch(
        url, {"model": "plain/model", "reasoning_effort": None}, format="json"
    )

    # then
    body = assert_error(refused, 400, "invalid_request_error")
    problem = "plain/model is not a reasoning model; reasoning_effort must be null."
    assert body["error"]["details"] == {"fields": {"model": [problem]}}
    assert accepted.status_code == 200
    assert (accepted.json()["model"], accepted.json()["reasoning_effort"]) == ("plain/model", None)


def test_patch_of_other_fields_is_not_judged_by_a_retired_model(
    api_client: APIClient, user: User
) -> None:
    # given a conversation on a model that has left the catalog
    conversation = make_conversation(owner=user, model="llama-3.3-70b-versatile")

    # when
    response = api_client.patch(
        f"/api/v1/conversations/{conversation.id}", {"title": "Renamed"}, format="json"
    )

    # then
    assert response.status_code == 200
    assert response.json()["model"] == "llama-3.3-70b-versatile"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stop_sequences": [0]}, "stop_sequences"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"stop_sequences": [""]}, "stop_sequences"),
        ({"fallback_models": [1]}, "fallback_models"),
        ({"fallback_models": ["llama3-8b-8192"]}, "fallback_models"),
        ({"tools": [{"name": 5, "input_schema": {"type": "object"}}]}, "tools"),
        ({"tools": [{"name": "f", "input_schema": {"type": "object", "x": "\u0000"}}]}, "tools"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice"),
        ({"service_tier": "performance"}, "service_tier"),
    ],
)
def test_tool_stop_and_fallback_settings_are_validated(
    api_client: APIClient, body: dict[str, Any], field: str
) -> None:
    response = api_client.post("/api/v1/conversations", body, format="json")

    error = assert_error(response, 400, "invalid_request_error")["error"]
    assert list(error["details"]["fields"]) == [field]
    assert not Conversation.objects.exists()


def test_tools_stop_sequences_tier_and_fallbacks_round_trip(api_client: APIClient) -> None:
    body = {
        "tools": [
            {"name": "get_weather", "input_schema": {"type": "object"}},
            {"name": "now", "description": "The time.", "input_schema": {"type": "object"}},
        ],
        "tool_choice": {"type": "any"},
        "stop_sequences": ["\n\n", "END"],
        "service_tier": "flex",
        "fallback_models": ["openai/gpt-oss-120b"],
    }

    created = api_client.post("/api/v1/conversations", body, format="json").json()
    patched = api_client.patch(
        f"/api/v1/conversations/{created['id']}", {"tool_choice": None}, format="json"
    ).json()

    assert {key: created[key] for key in body} == {
        **body,
        "tools": [
            {"name": "get_weather", "description": "", "input_schema": {"type": "object"}},
            {"name": "now", "description": "The time.", "input_schema": {"type": "object"}},
        ],
    }
    assert patched["tool_choice"] is None
    assert patched["tools"] == created["tools"]
