"""GET /models (and its older path), and sending to a model that is no longer available."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from conversations.models import Message
from testsupport.assertions import assert_error
from testsupport.factories import make_chat_model, make_conversation, make_message
from usage.catalog import catalog_cache_clear
from usage.models import LanguageModel

pytestmark = pytest.mark.django_db

GPT_OSS_20B = {
    "id": "openai/gpt-oss-20b",
    "type": "model",
    "display_name": "GPT-OSS 20B",
    "provider": "groq",
    "context_window": 131072,
    "max_output_tokens": 65536,
    "reasoning": True,
    "pricing": {
        "input_usd_per_mtok": "0.075",
        "cached_input_usd_per_mtok": "0.0375",
        "output_usd_per_mtok": "0.3",
        "effective_from": "2026-12-04T00:00:00Z",
    },
}
AVAILABLE = "openai/gpt-oss-120b, openai/gpt-oss-20b, qwen/qwen3-32b, local/dev-echo"


@pytest.mark.parametrize("path", ["/api/v1/models", "/api/v1/usage/models"])
def test_models_lists_the_active_models_with_limits_and_prices(
    api_client: APIClient, path: str
) -> None:
    # when
    response = api_client.get(path)

    # then
    body = response.json()
    assert response.status_code == 200
    assert [model["id"] for model in body["data"]] == AVAILABLE.split(", ")
    assert body["data"][1] == GPT_OSS_20B
    assert body["data"][3]["pricing"]["input_usd_per_mtok"] == "0"
    assert (body["has_more"], body["first_id"], body["last_id"]) == (
        False,
        "openai/gpt-oss-120b",
        "local/dev-echo",
    )


def test_an_unpriced_active_model_is_listed_without_pricing(api_client: APIClient) -> None:
    make_chat_model("free/unknown", input_usd_per_mtok=None, output_usd_per_mtok=None)

    body = api_client.get("/api/v1/models").json()

    (unpriced,) = [model for model in body["data"] if model["id"] == "free/unknown"]
    assert unpriced["pricing"] is None


def test_models_need_a_token(anon_client: APIClient) -> None:
    assert_error(anon_client.get("/api/v1/models"), 401, "authentication_error")


def _send(client: APIClient, conversation_id: Any, **body: Any) -> Any:
    return client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        {"content": "Still there?", **body},
        format="json",
    )


@pytest.mark.parametrize(
    ("model_id", "reason"),
    [
        ("qwen/qwen3-32b", "The model 'qwen/qwen3-32b' is not available (inactive)."),
        (
            "llama-3.3-70b-versatile",
            (
                "The model 'llama-3.3-70b-versatile' has been decommissioned by its provider. "
                "Its replacement is 'openai/gpt-oss-120b'."
            ),
        ),
    ],
)
def test_sending_on_an_unavailable_model_is_a_400_and_the_history_stays(
    api_client: APIClient, user: User, model_id: str, reason: str
) -> None:
    # given: a conversation whose model was then deactivated
    conversation = make_conversation(owner=user, model=model_id)
    make_message(conversation=conversation, role=Message.Role.USER, content="Earlier")
    LanguageModel.objects.filter(model_id="qwen/qwen3-32b").update(active=False)
    catalog_cache_clear()
    available = AVAILABLE.replace("qwen/qwen3-32b, ", "")

    # when
    response = _send(api_client, conversation.pk)

    # then
    body = assert_error(response, 400, "invalid_request_error")
    assert body["error"]["message"] == (
        f"{reason} Available models: {available}. The conversation keeps its history; send "
        "with the model field to answer with another model."
    )
    assert body["error"]["details"] == {"fields": {"model": ["Not an available model."]}} | (
        {"replaced_by": "openai/gpt-oss-120b"} if model_id == "llama-3.3-70b-versatile" else {}
    )
    history = api_client.get(f"/api/v1/conversations/{conversation.pk}/messages").json()
    assert [message["content"] for message in history["data"]] == ["Earlier"]


def test_a_per_message_model_that_is_not_available_is_a_400(
    api_client: APIClient, user: User
) -> None:
    conversation = make_conversation(owner=user)

    response = _send(api_client, conversation.pk, model="gemma2-9b-it")

    body = assert_error(response, 400, "invalid_request_error")
    problem = (
        "The model 'gemma2-9b-it' has been decommissioned by its provider. "
        f"Available models: {AVAILABLE}."
    )
    assert body["error"]["details"] == {"fields": {"model": [problem]}}
