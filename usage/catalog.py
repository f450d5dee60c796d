"""The chat models callers may choose, read from ``settings.CHAT_MODELS``.

Provisional: the usage issue moves the catalog to the database. Callers go through these
functions only, so that move does not touch them.
"""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True, slots=True)
class ChatModel:
    id: str
    display_name: str
    context_window: int
    max_output_tokens: int
    input_usd_per_mtok: Decimal
    output_usd_per_mtok: Decimal
    reasoning: bool
    # Which entry of settings.LLM_PROVIDERS serves it.
    provider: str = "groq"


def _price(entry: dict[str, Any], key: str) -> Decimal:
    raw = entry.get(key)
    # A float has already lost the exact price; only decimal strings (or Decimals) are exact.
    if not isinstance(raw, (str, Decimal)):
        raise ImproperlyConfigured(
            f"CHAT_MODELS entry {entry.get('id')!r}: {key} must be a decimal string."
        )
    try:
        price = Decimal(raw)
    except InvalidOperation:
        raise ImproperlyConfigured(
            f"CHAT_MODELS entry {entry.get('id')!r}: {key}={raw!r} is not a decimal."
        ) from None
    if not price.is_finite() or price < 0:
        raise ImproperlyConfigured(
            f"CHAT_MODELS entry {entry.get('id')!r}: {key}={raw!r} must be a price >= 0."
        )
    return price


def _positive_int(entry: dict[str, Any], key: str) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ImproperlyConfigured(
            f"CHAT_MODELS entry {entry.get('id')!r}: {key} must be a positive integer."
        )
    return value


def _chat_model(entry: dict[str, Any]) -> ChatModel:
    model_id = entry.get("id")
    if not isinstance(model_id, str) or not model_id:
        raise ImproperlyConfigured(f"CHAT_MODELS entry {entry!r} has no id.")
    reasoning = entry.get("reasoning", False)
    if not isinstance(reasoning, bool):
        raise ImproperlyConfigured(f"CHAT_MODELS entry {model_id!r}: reasoning must be a bool.")
    return ChatModel(
        id=model_id,
        display_name=str(entry.get("display_name") or model_id),
        context_window=_positive_int(entry, "context_window"),
        max_output_tokens=_positive_int(entry, "max_output_tokens"),
        input_usd_per_mtok=_price(entry, "input_usd_per_mtok"),
        output_usd_per_mtok=_price(entry, "output_usd_per_mtok"),
        reasoning=reasoning,
        provider=str(entry.get("provider") or "groq"),
    )


def chat_models() -> list[ChatModel]:
    """Every available model, in catalog order."""
    return [_chat_model(entry) for entry in settings.CHAT_MODELS]


def chat_model_get(model_id: str) -> ChatModel | None:
    return next((model for model in chat_models() if model.id == model_id), None)


def default_chat_model() -> ChatModel:
    model = chat_model_get(settings.DEFAULT_CHAT_MODEL)
    if model is None:
        raise ImproperlyConfigured(
            f"DEFAULT_CHAT_MODEL={settings.DEFAULT_CHAT_MODEL!r} is not in CHAT_MODELS."
        )
    return model
