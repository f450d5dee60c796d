"""`manage.py sync_models` against the Groq stand-in on loopback."""

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from pytest_django import Settings

from testsupport.fake_groq import FakeGroq
from usage.catalog import chat_model_get
from usage.models import LanguageModel

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def groq_provider(settings: Settings, fake_groq: FakeGroq) -> None:
    settings.LLM_PROVIDERS = {
        **settings.LLM_PROVIDERS,
        "groq": {
            "class": "messaging.llm.openai_compat.GroqClient",
            "base_url": fake_groq.base_url,
            "api_key": "gsk_test",
        },
    }


def _listed(*models: tuple[str, int, int]) -> list[dict[str, Any]]:
    return [
        {"id": model_id, "context_window": context, "max_completion_tokens": output}
        for model_id, context, output in models
    ]


def _sync() -> list[str]:
    out = StringIO()
    call_command("sync_models", stdout=out)
    return out.getvalue().splitlines()


def _state(model_id: str) -> tuple[bool, bool, int, int]:
    row = LanguageModel.objects.get(model_id=model_id)
    return row.active, row.decommissioned, row.context_window, row.max_output_tokens


def test_sync_adds_deactivates_and_follows_limits(fake_groq: FakeGroq) -> None:
    # given: Groq lists a new model, changes one limit, and no longer lists qwen3-32b
    fake_groq.models = _listed(
        ("openai/gpt-oss-20b", 131_072, 65_536),
        ("openai/gpt-oss-120b", 131_072, 32_768),
        ("moonshotai/kimi-k2", 262_144, 16_384),
    )

    # when
    printed = _sync()

    # then
    assert printed == [
        "Added (inactive until priced): moonshotai/kimi-k2",
        "Deactivated (no longer listed): qwen/qwen3-32b",
        "Limits changed: openai/gpt-oss-120b (context 131072 -> 131072, output 65536 -> 32768)",
    ]
    assert _state("moonshotai/kimi-k2") == (False, False, 262_144, 16_384)
    assert _state("qwen/qwen3-32b") == (False, True, 131_072, 40_960)
    assert _state("openai/gpt-oss-120b") == (True, False, 131_072, 32_768)
    assert _state("local/dev-echo") == (True, False, 8192, 1024)  # another provider's
    assert chat_model_get("qwen/qwen3-32b") is None
    assert chat_model_get("moonshotai/kimi-k2") is None
    gpt = chat_model_get("openai/gpt-oss-120b")
    assert gpt is not None
    assert gpt.max_output_tokens == 32_768

    # when run again
    assert _sync() == ["No changes: 3 models listed by 'groq'."]


def test_a_retired_model_listed_again_stays_inactive(fake_groq: FakeGroq) -> None:
    fake_groq.models = [
        *fake_groq.models,
        *_listed(("llama-3.3-70b-versatile", 131_072, 32_768)),
    ]

    printed = _sync()

    assert printed == [
        "Listed again (still inactive: activate in the admin): llama-3.3-70b-versatile"
    ]
    assert _state("llama-3.3-70b-versatile") == (False, False, 131_072, 32_768)


def test_a_model_listed_as_inactive_counts_as_not_listed(fake_groq: FakeGroq) -> None:
    fake_groq.models = [
        {**model, "active": model["id"] != "qwen/qwen3-32b"} for model in fake_groq.models
    ]

    assert _sync() == ["Deactivated (no longer listed): qwen/qwen3-32b"]


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ([{"id": "x", "context_window": 0}], "The model 'x' has no valid context_window."),
        ([{"context_window": 8192}], "A model entry has no id"),
        ([], "The provider 'groq' listed no active models; nothing changed."),
    ],
)
def test_a_malformed_list_changes_nothing(
    fake_groq: FakeGroq, models: list[dict[str, Any]], message: str
) -> None:
    fake_groq.models = models
    before = list(LanguageModel.objects.values_list("model_id", "active", "decommissioned"))

    with pytest.raises(CommandError, match=message):
        _sync()

    assert list(LanguageModel.objects.values_list("model_id", "active", "decommissioned")) == (
        before
    )


def test_without_a_key_or_a_server_the_command_fails_clearly(settings: Settings) -> None:
    settings.LLM_PROVIDERS = {"groq": {"base_url": "http://127.0.0.1:1/openai/v1", "api_key": ""}}
    with pytest.raises(CommandError, match=r"has no API key on this server \(GROQ_API_KEY"):
        _sync()

    settings.LLM_PROVIDERS = {
        "groq": {"base_url": "http://127.0.0.1:1/openai/v1", "api_key": "gsk_test"}
    }
    with pytest.raises(
        CommandError, match=r"GET http://127.0.0.1:1/openai/v1/models failed: ConnectError"
    ):
        _sync()
