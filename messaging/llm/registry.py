"""Which provider serves a model: one client per provider per process, from settings."""

from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from messaging.llm.base import ChatProvider, ProviderError
from messaging.llm.openai_compat import OpenAICompatibleClient, ProviderSettings


def provider_settings(name: str) -> dict[str, Any]:
    """A copy of ``settings.LLM_PROVIDERS[name]``, the one reader of that setting;
    ``ProviderError`` (503) when it is not configured, so a request names what is missing
    instead of failing obscurely."""
    config: dict[str, Any] = dict(settings.LLM_PROVIDERS.get(name) or {})
    if not config:
        raise ProviderError(503, "api_error", f"The model provider '{name}' is not configured.")
    return config


def provider_api_key(name: str, config: dict[str, Any]) -> str:
    """The API key in ``config`` (``provider_settings(name)``); ``ProviderError`` (503) when
    this server has none."""
    api_key = config.get("api_key")
    if not api_key:
        raise ProviderError(
            503,
            "api_error",
            f"The model provider '{name}' has no API key on this server (GROQ_API_KEY for Groq).",
        )
    return str(api_key)


# The providers made in this process, to close their connections when it drains.
_made: list[ChatProvider] = []


@cache
def provider_get(name: str) -> ChatProvider:
    """The configured provider called ``name`` (the errors of ``provider_settings`` and,
    for the HTTP clients, ``provider_api_key``)."""
    config = provider_settings(name)
    cls = import_string(str(config.pop("class")))
    if issubclass(cls, OpenAICompatibleClient):
        provider_api_key(name, config)
        provider: ChatProvider = cls(ProviderSettings(name=name, **config))
    else:
        provider = cls(**config)
    _made.append(provider)
    return provider


async def providers_close() -> None:
    """Close this event loop's upstream connections (a process that drains: its
    generations are over)."""
    for provider in _made:
        await provider.aclose()


def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "LLM_PROVIDERS":
        provider_get.cache_clear()


setting_changed.connect(_reset)
