"""The provider's model list (``GET {base_url}/models``, OpenAI-compatible), parsed into typed
entries at this boundary; ``manage.py sync_models`` hands them to the catalog. Groq's shape
(https://console.groq.com/docs/api-reference#models-list):
``{"object":"list","data":[{"id","object":"model","created","owned_by","active",
"context_window","max_completion_tokens"}]}``."""

from dataclasses import dataclass
from typing import Any

import httpx

from messaging.llm.base import ProviderError
from messaging.llm.registry import provider_api_key, provider_settings


@dataclass(frozen=True, slots=True)
class ListedModel:
    """An entry of the provider's model list, what ``sync_models`` compares with the catalog's
    ``LanguageModel`` rows; not in the catalog, so not a ``ChatModel`` the API serves."""

    id: str
    context_window: int
    max_output_tokens: int
    active: bool = True


class ProviderModelsError(Exception):
    """The list could not be fetched or read; the message is safe to show (no key)."""


def _positive_int(entry: dict[str, Any], key: str) -> int | None:
    value = entry.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _parse(body: Any) -> list[ListedModel]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ProviderModelsError("The model list has no 'data' array.")
    models = []
    for entry in data:
        model_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(model_id, str) or not model_id:
            raise ProviderModelsError(f"A model entry has no id: {entry!r}.")
        context = _positive_int(entry, "context_window")
        if context is None:
            # Skipping it would read as "no longer listed" and deactivate it.
            raise ProviderModelsError(f"The model '{model_id}' has no valid context_window.")
        models.append(
            ListedModel(
                id=model_id,
                context_window=context,
                # Groq may omit it for models whose output is bounded by the context only.
                max_output_tokens=_positive_int(entry, "max_completion_tokens") or context,
                active=entry.get("active", True) is not False,
            )
        )
    return models


def provider_models_fetch(*, provider: str) -> list[ListedModel]:
    """The models ``settings.LLM_PROVIDERS[provider]`` lists, with its base URL and key."""
    try:
        config = provider_settings(provider)
        api_key = provider_api_key(provider, config)
    except ProviderError as exc:
        raise ProviderModelsError(exc.message) from None
    base_url = config.get("base_url")
    if not base_url:
        raise ProviderModelsError(f"The provider '{provider}' has no base_url in LLM_PROVIDERS.")
    timeout = httpx.Timeout(
        float(config.get("read_timeout") or 30.0),
        connect=float(config.get("connect_timeout") or 5.0),
    )
    url = f"{str(base_url).rstrip('/')}/models"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ProviderModelsError(f"GET {url} failed: {type(exc).__name__}.") from None
    if response.status_code != 200:
        raise ProviderModelsError(f"GET {url} answered {response.status_code}.")
    try:
        body = response.json()
    except ValueError:
        raise ProviderModelsError(f"GET {url} did not answer JSON.") from None
    return _parse(body)
