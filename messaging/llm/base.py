"""The provider layer's vocabulary: what a chat request is, the typed events a provider
streams back, and the errors it raises. Nothing outside ``messaging.llm`` sees provider JSON.
"""

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    temperature: float | None = None
    max_output_tokens: int | None = None
    # One of conversations.models.ReasoningEffort's values (low, medium, high), which are the
    # names the providers' APIs use; this package imports none of the apps, so not the type.
    reasoning_effort: str | None = None


# --- Events, in the order a provider yields them -------------------------------------------


@dataclass(frozen=True, slots=True)
class Started:
    """The upstream accepted the request. ``model`` is the model that actually answers."""

    model: str
    upstream_id: str | None = None


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int | None = None
    cached_input_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """Why the model stopped, in Anthropic's vocabulary (``end_turn``, ``max_tokens``...)."""

    stop_reason: str


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The upstream reported an error inside a stream that had already started."""

    message: str
    error_type: str = "api_error"


StreamEvent = Started | ReasoningDelta | TextDelta | Usage | Finish | StreamFailed


# --- Errors raised before the stream starts -------------------------------------------------


@dataclass
class ProviderError(Exception):
    """The upstream refused or failed the request. ``status`` and ``error_type`` are what the
    API answers with (see the error table in docs/api.md); ``message`` is safe to show."""

    status: int
    error_type: str
    message: str
    retry_after: float | None = None
    code: str | None = None
    retryable: bool = field(default=False)

    def __str__(self) -> str:
        return f"{self.status} {self.error_type}: {self.message}"


class ChatProvider(ABC):
    """A chat-completions backend. ``stream`` yields ``Started`` first, then deltas, then
    ``Usage`` (when known) and ``Finish``; it raises ``ProviderError`` if the request is
    refused before anything was produced, and yields ``StreamFailed`` if it breaks after."""

    name: str

    @abstractmethod
    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent]: ...

    async def aclose(self) -> None:  # noqa: B027 - providers without resources keep it
        """Release pooled connections (tests, shutdown)."""
