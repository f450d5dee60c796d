"""The model catalog read from the database: what is usable, the prices in force, the cache."""

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from pytest_django import Settings

from testsupport.factories import make_chat_model
from usage.catalog import (
    ChatModel,
    chat_model_get,
    chat_model_replacement,
    chat_model_unavailable,
    chat_models,
    default_chat_model,
)
from usage.models import LanguageModel, ModelPrice
from usage.services import model_price_add

pytestmark = pytest.mark.django_db


def _seed_price_id(model_id: str) -> int:
    """The seeded price in force now: the latest of the model's rows."""
    return ModelPrice.objects.filter(language_model__model_id=model_id).latest("effective_from").pk


def test_seeded_catalog_has_groq_models_with_exact_prices_and_the_local_model() -> None:
    # when
    models = chat_models()

    # then: by provider, then id; local/dev-echo because the test settings configure "local"
    since = datetime(2026, 8, 1, tzinfo=UTC)
    cached_since = datetime(2026, 12, 4, tzinfo=UTC)
    added = {row.model_id: row.created_at for row in LanguageModel.objects.all()}
    assert [model.created_at for model in models] == [added[model.id] for model in models]
    assert [replace(model, created_at=None) for model in models] == [
        ChatModel(
            id="openai/gpt-oss-120b",
            display_name="GPT-OSS 120B",
            context_window=131_072,
            max_output_tokens=65_536,
            input_usd_per_mtok=Decimal("0.15"),
            output_usd_per_mtok=Decimal("0.60"),
            reasoning=True,
            provider="groq",
            cached_input_usd_per_mtok=Decimal("0.075"),
            price_id=_seed_price_id("openai/gpt-oss-120b"),
            price_effective_from=cached_since,
        ),
        ChatModel(
            id="openai/gpt-oss-20b",
            display_name="GPT-OSS 20B",
            context_window=131_072,
            max_output_tokens=65_536,
            input_usd_per_mtok=Decimal("0.075"),
            output_usd_per_mtok=Decimal("0.30"),
            reasoning=True,
            provider="groq",
            cached_input_usd_per_mtok=Decimal("0.0375"),
            price_id=_seed_price_id("openai/gpt-oss-20b"),
            price_effective_from=cached_since,
        ),
        ChatModel(
            id="qwen/qwen3-32b",
            display_name="Qwen3 32B",
            context_window=131_072,
            max_output_tokens=40_960,
            input_usd_per_mtok=Decimal("0.29"),
            output_usd_per_mtok=Decimal("0.59"),
            reasoning=True,
            provider="groq",
            price_id=_seed_price_id("qwen/qwen3-32b"),
            price_effective_from=since,
        ),
        ChatModel(
            id="local/dev-echo",
            display_name="Local development model (canned replies, no network)",
            context_window=8192,
            max_output_tokens=1024,
            input_usd_per_mtok=Decimal(0),
            output_usd_per_mtok=Decimal(0),
            reasoning=False,
            provider="local",
            price_id=_seed_price_id("local/dev-echo"),
            price_effective_from=since,
        ),
    ]


def test_retired_models_are_seeded_inactive_and_decommissioned() -> None:
    retired = LanguageModel.objects.filter(decommissioned=True).order_by("model_id")

    assert [(m.model_id, m.active) for m in retired] == [
        ("gemma-7b-it", False),
        ("gemma2-9b-it", False),
        ("llama-3.1-8b-instant", False),
        ("llama-3.3-70b-versatile", False),
        ("llama3-70b-8192", False),
        ("llama3-8b-8192", False),
        ("mixtral-8x7b-32768", False),
    ]


def test_local_model_is_usable_only_where_its_provider_is_configured(settings: Settings) -> None:
    # given: production's providers (no "local" entry)
    settings.LLM_PROVIDERS = {"groq": settings.LLM_PROVIDERS["groq"]}

    # then
    assert chat_model_get("local/dev-echo") is None
    assert [m.id for m in chat_models()] == [
        "openai/gpt-oss-120b",
        "openai/gpt-oss-20b",
        "qwen/qwen3-32b",
    ]
    assert chat_model_unavailable("local/dev-echo") == (
        "The model 'local/dev-echo' is not served here: its provider 'local' is not configured. "
        "Available models: openai/gpt-oss-120b, openai/gpt-oss-20b, qwen/qwen3-32b."
    )


AVAILABLE = "openai/gpt-oss-120b, openai/gpt-oss-20b, qwen/qwen3-32b, local/dev-echo"


@pytest.mark.parametrize(
    ("model_id", "reason"),
    [
        ("nope/nope", "Unknown model 'nope/nope'."),
        (
            "llama-3.3-70b-versatile",
            (
                "The model 'llama-3.3-70b-versatile' has been decommissioned by its provider. "
                "Its replacement is 'openai/gpt-oss-120b'."
            ),
        ),
        ("new/unpriced", "The model 'new/unpriced' is not available (inactive)."),
    ],
)
def test_unusable_models_are_none_with_a_reason(model_id: str, reason: str) -> None:
    # given: a model the sync added, not yet activated
    make_chat_model("new/unpriced", active=False, input_usd_per_mtok=None)

    # then
    assert chat_model_get(model_id) is None
    assert chat_model_unavailable(model_id) == f"{reason} Available models: {AVAILABLE}."


def test_the_gpt_oss_models_cached_input_costs_half_from_2026_12_04() -> None:
    # the August rows stay: they explain what earlier calls were charged
    prices = ModelPrice.objects.filter(language_model__model_id="openai/gpt-oss-20b").order_by(
        "effective_from"
    )

    assert [
        (p.effective_from.date().isoformat(), p.input_usd_per_mtok, p.cached_input_usd_per_mtok)
        for p in prices
    ] == [
        ("2026-08-01", Decimal("0.075"), None),
        ("2026-12-04", Decimal("0.075"), Decimal("0.0375")),
    ]


def test_a_retired_models_replacement_is_followed_to_a_usable_model() -> None:
    # given: a model retired in favour of one that was retired in turn
    old = make_chat_model("old/model", active=False)
    middle = make_chat_model("middle/model", active=False)
    LanguageModel.objects.filter(pk=old.pk).update(decommissioned=True, replaced_by=middle)
    LanguageModel.objects.filter(pk=middle.pk).update(
        decommissioned=True,
        replaced_by=LanguageModel.objects.get(model_id="openai/gpt-oss-20b"),
    )

    # then
    assert chat_model_replacement("old/model") == "openai/gpt-oss-20b"
    assert chat_model_unavailable("old/model") == (
        "The model 'old/model' has been decommissioned by its provider. Its replacement is "
        f"'openai/gpt-oss-20b'. Available models: {AVAILABLE}."
    )


def test_a_replacement_loop_or_none_names_no_replacement() -> None:
    a = make_chat_model("loop/a", active=False)
    b = make_chat_model("loop/b", active=False)
    LanguageModel.objects.filter(pk=a.pk).update(replaced_by=b)
    LanguageModel.objects.filter(pk=b.pk).update(replaced_by=a)

    assert chat_model_replacement("loop/a") is None
    assert chat_model_replacement("gemma2-9b-it") is None


def test_an_active_model_without_a_price_is_usable_with_unknown_prices() -> None:
    make_chat_model("free/unknown", input_usd_per_mtok=None, output_usd_per_mtok=None)

    model = chat_model_get("free/unknown")

    assert model is not None
    assert (model.input_usd_per_mtok, model.output_usd_per_mtok, model.price_id) == (
        None,
        None,
        None,
    )


def test_default_chat_model_follows_the_setting(settings: Settings) -> None:
    settings.DEFAULT_CHAT_MODEL = "qwen/qwen3-32b"

    assert default_chat_model().id == "qwen/qwen3-32b"


def test_default_chat_model_not_usable_is_a_configuration_error(settings: Settings) -> None:
    settings.DEFAULT_CHAT_MODEL = "llama-3.3-70b-versatile"

    with pytest.raises(ImproperlyConfigured, match=r"DEFAULT_CHAT_MODEL='llama-3.3-70b-versatile'"):
        default_chat_model()


def test_reads_within_the_ttl_cost_no_query(settings: Settings) -> None:
    # given
    settings.MODEL_CATALOG_CACHE_SECONDS = 60
    with CaptureQueriesContext(connection) as first:
        chat_models()

    # when
    with CaptureQueriesContext(connection) as later:
        for _ in range(10):
            chat_model_get("openai/gpt-oss-20b")
            default_chat_model()

    # then
    assert len(first) == 1
    assert len(later) == 0


def test_a_new_price_is_in_force_at_once_in_this_process() -> None:
    # given
    model = LanguageModel.objects.get(model_id="openai/gpt-oss-20b")
    assert chat_model_get(model.model_id).input_usd_per_mtok == Decimal("0.075")  # type: ignore[union-attr]

    # when
    price = model_price_add(
        language_model=model,
        input_usd_per_mtok=Decimal("0.1"),
        cached_input_usd_per_mtok=Decimal("0.05"),
        output_usd_per_mtok=Decimal("0.5"),
    )

    # then
    current = chat_model_get(model.model_id)
    assert current is not None
    assert (
        current.input_usd_per_mtok,
        current.cached_input_usd_per_mtok,
        current.output_usd_per_mtok,
        current.price_id,
    ) == (Decimal("0.1"), Decimal("0.05"), Decimal("0.5"), price.pk)


def test_a_scheduled_price_ends_the_cached_copy_when_it_takes_effect(settings: Settings) -> None:
    # given: a cache that would otherwise last a minute, and a price from 1 s from now
    settings.MODEL_CATALOG_CACHE_SECONDS = 60
    model = LanguageModel.objects.get(model_id="qwen/qwen3-32b")
    ModelPrice.objects.create(
        language_model=model,
        effective_from=timezone.now() + timedelta(seconds=1),
        input_usd_per_mtok=Decimal("0.2"),
        output_usd_per_mtok=Decimal("0.4"),
    )
    before = chat_model_get("qwen/qwen3-32b")

    # when: read until the price changes, well within the cache's minute
    deadline = time.monotonic() + 30
    after = chat_model_get("qwen/qwen3-32b")
    while after == before and time.monotonic() < deadline:
        time.sleep(0.05)
        after = chat_model_get("qwen/qwen3-32b")

    # then
    assert before is not None
    assert after is not None
    assert (before.input_usd_per_mtok, before.output_usd_per_mtok) == (
        Decimal("0.29"),
        Decimal("0.59"),
    )
    assert (after.input_usd_per_mtok, after.output_usd_per_mtok) == (
        Decimal("0.2"),
        Decimal("0.4"),
    )
