from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from pytest_django import Settings

from usage.catalog import ChatModel, chat_model_get, chat_models, default_chat_model

GPT_OSS_20B = ChatModel(
    id="openai/gpt-oss-20b",
    display_name="GPT-OSS 20B",
    context_window=131_072,
    max_output_tokens=65_536,
    input_usd_per_mtok=Decimal("0.075"),
    output_usd_per_mtok=Decimal("0.30"),
    reasoning=True,
)


def test_seed_catalog_has_the_three_groq_models_with_exact_prices() -> None:
    # when
    models = chat_models()

    # then
    assert models == [
        GPT_OSS_20B,
        ChatModel(
            id="openai/gpt-oss-120b",
            display_name="GPT-OSS 120B",
            context_window=131_072,
            max_output_tokens=65_536,
            input_usd_per_mtok=Decimal("0.15"),
            output_usd_per_mtok=Decimal("0.60"),
            reasoning=True,
        ),
        ChatModel(
            id="qwen/qwen3-32b",
            display_name="Qwen3 32B",
            context_window=131_072,
            max_output_tokens=40_960,
            input_usd_per_mtok=Decimal("0.29"),
            output_usd_per_mtok=Decimal("0.59"),
            reasoning=True,
        ),
    ]


def test_chat_model_get_finds_by_id_and_answers_none_for_unknown() -> None:
    assert chat_model_get("openai/gpt-oss-20b") == GPT_OSS_20B
    assert chat_model_get("llama-3.3-70b-versatile") is None


def test_default_chat_model_follows_the_setting(settings: Settings) -> None:
    # given
    settings.DEFAULT_CHAT_MODEL = "qwen/qwen3-32b"

    # when
    model = default_chat_model()

    # then
    assert model.id == "qwen/qwen3-32b"


def test_default_chat_model_not_in_catalog_is_a_configuration_error(
    settings: Settings,
) -> None:
    settings.DEFAULT_CHAT_MODEL = "gone/model"

    with pytest.raises(ImproperlyConfigured, match=r"DEFAULT_CHAT_MODEL='gone/model'"):
        default_chat_model()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input_usd_per_mtok": 0.075}, r"input_usd_per_mtok must be a decimal string"),
        ({"output_usd_per_mtok": "cheap"}, r"output_usd_per_mtok='cheap' is not a decimal"),
        ({"output_usd_per_mtok": "-1"}, r"output_usd_per_mtok='-1' must be a price >= 0"),
        ({"max_output_tokens": 0}, r"max_output_tokens must be a positive integer"),
        ({"context_window": "131072"}, r"context_window must be a positive integer"),
        ({"reasoning": "yes"}, r"reasoning must be a bool"),
        ({"id": ""}, r"has no id"),
    ],
)
def test_malformed_catalog_entry_is_a_configuration_error(
    settings: Settings, change: dict[str, object], message: str
) -> None:
    # given
    settings.CHAT_MODELS = [{**settings.CHAT_MODELS[0], **change}]

    # when / then
    with pytest.raises(ImproperlyConfigured, match=message):
        chat_models()
