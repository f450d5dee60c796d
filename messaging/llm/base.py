"""The provider layer's vocabulary: what a chat request is, the typed events a provider
streams back, and the errors it raises. Nothing outside ``messaging.llm`` sees provider JSON.
"""

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
ToolChoiceType = Literal["auto", "any", "tool", "none"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made, as it goes back upstream in a later turn's history:
    ``arguments`` is the JSON text the model wrote (kept as written, even when malformed)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of the history. An assistant message may carry ``tool_calls``; a ``tool``
    message answers the call named by ``tool_call_id`` with ``content``."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A tool the model may call, in Anthropic's terms (``input_schema`` a JSON Schema
    object); the client translates it to its provider's shape."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """Anthropic's ``tool_choice``: ``auto``, ``any`` (some tool), ``tool`` (the one named),
    ``none``."""

    type: ToolChoiceType
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    temperature: float | None = None
    max_output_tokens: int | None = None
    # One of conversations.models.ReasoningEffort's values (low, medium, high), which are the
    # names the providers' APIs use; this package imports none of the apps, so not the type.
    reasoning_effort: str | None = None
    top_p: float | None = None
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: ToolChoice | None = None
    # Enforced on the streamed text by ``messaging.llm.stop_sequences``, not sent upstream.
    stop_sequences: tuple[str, ...] = ()
    # One of conversations.models.ServiceTier's values (on_demand, flex, auto), Groq's names.
    service_tier: str | None = None
    # OpenAI's response_format (json_object, or json_schema with its schema), sent as it is:
    # the provider holds the answer to it.
    response_format: dict[str, Any] | None = None


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
class ToolCallStart:
    """The model starts calling a tool. ``index`` tells the calls of one answer apart (the
    provider's own numbering, 0, 1, ...); the arguments follow as ``ToolCallDelta`` pieces."""

    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a call's arguments: the pieces of one ``index`` concatenated are its JSON
    text (which the model may have got wrong: nothing here parses it)."""

    index: int
    arguments: str


@dataclass(frozen=True, slots=True)
class UpstreamTimings:
    """The provider's own account of the request, in seconds (Groq's ``x_groq.usage``):
    waiting in its queue, reading the prompt, and generating."""

    queue_seconds: float
    prompt_seconds: float
    completion_seconds: float


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the provider bills them: ``input_tokens`` includes the cached part
    (``cached_input_tokens``), ``output_tokens`` the reasoning part."""

    input_tokens: int
    output_tokens: int
    reasoning_tokens: int | None = None
    cached_input_tokens: int | None = None
    timings: UpstreamTimings | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """Why the model stopped, in Anthropic's vocabulary (``end_turn``, ``max_tokens``,
    ``tool_use``...); ``stop_sequence`` is the one that matched for ``stop_sequence``."""

    stop_reason: str
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The upstream reported an error inside a stream that had already started."""

    message: str
    error_type: str = "api_error"


StreamEvent = (
    Started
    | ReasoningDelta
    | TextDelta
    | ToolCallStart
    | ToolCallDelta
    | Usage
    | Finish
    | StreamFailed
)


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
    # The provider's own HTTP status, when it answered with one.
    upstream_status: int | None = None

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
