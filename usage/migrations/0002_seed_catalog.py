"""Seed the model catalog: Groq's models and list prices (USD per million tokens) as of
2026-08 (https://groq.com/pricing, https://console.groq.com/docs/models), the models
Groq has retired (inactive, decommissioned, with the model that replaces them where Groq
names one), and the offline development model. From 2026-12-04 the gpt-oss models also
carry their cached-input price, half the input price (https://groq.com/pricing): a price
row of its own, since the rows of 2026-08 explain what earlier calls were charged.

Idempotent (``seed_catalog`` creates only what is missing), so the test suite can restore the
seed after a test that empties the tables.
"""

from datetime import UTC, datetime
from decimal import Decimal

from django.db import migrations

PRICES_FROM = datetime(2026, 8, 1, tzinfo=UTC)
RETIRED_ON = datetime(2026, 8, 16, tzinfo=UTC)
CACHED_PRICES_FROM = datetime(2026, 12, 4, tzinfo=UTC)

# (model id, display name, context window, max output tokens, reasoning, input, output)
GROQ_ACTIVE = [
    ("openai/gpt-oss-20b", "GPT-OSS 20B", 131_072, 65_536, True, "0.075", "0.30"),
    ("openai/gpt-oss-120b", "GPT-OSS 120B", 131_072, 65_536, True, "0.15", "0.60"),
    ("qwen/qwen3-32b", "Qwen3 32B", 131_072, 40_960, True, "0.29", "0.59"),
]
# (model id, input, cached input, output) from CACHED_PRICES_FROM
GROQ_CACHED = [
    ("openai/gpt-oss-20b", "0.075", "0.0375", "0.30"),
    ("openai/gpt-oss-120b", "0.15", "0.075", "0.60"),
]
# (model id, display name, context window, max output tokens, when retired if known,
# the replacement)
GROQ_RETIRED = [
    (
        "llama-3.1-8b-instant",
        "Llama 3.1 8B Instant",
        131_072,
        131_072,
        RETIRED_ON,
        "openai/gpt-oss-20b",
    ),
    (
        "llama-3.3-70b-versatile",
        "Llama 3.3 70B Versatile",
        131_072,
        32_768,
        RETIRED_ON,
        "openai/gpt-oss-120b",
    ),
    ("llama3-8b-8192", "Llama 3 8B", 8192, 8192, None, None),
    ("llama3-70b-8192", "Llama 3 70B", 8192, 8192, None, None),
    ("mixtral-8x7b-32768", "Mixtral 8x7B", 32_768, 32_768, None, None),
    ("gemma-7b-it", "Gemma 7B", 8192, 8192, None, None),
    ("gemma2-9b-it", "Gemma 2 9B", 8192, 8192, None, None),
]


def seed_catalog(apps, schema_editor):
    LanguageModel = apps.get_model("usage", "LanguageModel")
    ModelPrice = apps.get_model("usage", "ModelPrice")

    def price(model, input_price, output_price):
        ModelPrice.objects.get_or_create(
            language_model=model,
            effective_from=PRICES_FROM,
            defaults={
                "input_usd_per_mtok": Decimal(input_price),
                "output_usd_per_mtok": Decimal(output_price),
            },
        )

    for model_id, name, context, output, reasoning, input_price, output_price in GROQ_ACTIVE:
        model, _ = LanguageModel.objects.get_or_create(
            model_id=model_id,
            defaults={
                "provider": "groq",
                "display_name": name,
                "context_window": context,
                "max_output_tokens": output,
                "reasoning": reasoning,
                "active": True,
            },
        )
        price(model, input_price, output_price)
    for model_id, input_price, cached_price, output_price in GROQ_CACHED:
        ModelPrice.objects.get_or_create(
            language_model=LanguageModel.objects.get(model_id=model_id),
            effective_from=CACHED_PRICES_FROM,
            defaults={
                "input_usd_per_mtok": Decimal(input_price),
                "cached_input_usd_per_mtok": Decimal(cached_price),
                "output_usd_per_mtok": Decimal(output_price),
            },
        )
    for model_id, name, context, output, retired_on, _ in GROQ_RETIRED:
        LanguageModel.objects.get_or_create(
            model_id=model_id,
            defaults={
                "provider": "groq",
                "display_name": name,
                "context_window": context,
                "max_output_tokens": output,
                "active": False,
                "decommissioned": True,
                "decommissioned_at": retired_on,
            },
        )
    # Only where the field exists (this function runs again in a later migration) and no
    # operator chose otherwise.
    if any(f.name == "replaced_by" for f in LanguageModel._meta.get_fields()):
        for model_id, *_, replacement in GROQ_RETIRED:
            if replacement is not None:
                LanguageModel.objects.filter(model_id=model_id, replaced_by=None).update(
                    replaced_by=LanguageModel.objects.filter(model_id=replacement).first()
                )
    # Usable only where settings.LLM_PROVIDERS has "local" (development and test modes).
    dev, _ = LanguageModel.objects.get_or_create(
        model_id="local/dev-echo",
        defaults={
            "provider": "local",
            "display_name": "Local development model (canned replies, no network)",
            "context_window": 8192,
            "max_output_tokens": 1024,
            "reasoning": False,
            "active": True,
        },
    )
    price(dev, "0", "0")


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(seed_catalog, migrations.RunPython.noop),
    ]
