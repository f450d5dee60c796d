"""A local development model: streams a deterministic reply with no network and no key, so
`make run` shows the whole flow (streaming, persistence, usage) offline."""

import asyncio
from collections.abc import AsyncGenerator

from messaging.llm.base import (
    ChatProvider,
    ChatRequest,
    Finish,
    Started,
    StreamEvent,
    TextDelta,
    Usage,
)
from messaging.llm.token_estimates import estimate_messages_tokens, estimate_tokens

DEV_MODEL_ID = "local/dev-echo"


class DevEchoProvider(ChatProvider):
    name = "local"

    def __init__(self, *, delay_seconds: float = 0.02) -> None:
        self.delay_seconds = delay_seconds

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent]:
        last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        reply = (
            "This is chatapi's local development model (no GROQ_API_KEY is set), "
            f"so this reply is canned. You said: {last_user}"
        )
        words = reply.split(" ")
        limit = request.max_output_tokens
        yield Started(model=DEV_MODEL_ID)
        sent: list[str] = []
        stop_reason = "end_turn"
        for index, word in enumerate(words):
            piece = word if index == 0 else f" {word}"
            if limit is not None and estimate_tokens("".join([*sent, piece])) > limit:
                stop_reason = "max_tokens"
                break
            await asyncio.sleep(self.delay_seconds)
            sent.append(piece)
            yield TextDelta(piece)
        yield Usage(
            input_tokens=estimate_messages_tokens(request.messages),
            output_tokens=estimate_tokens("".join(sent)),
        )
        yield Finish(stop_reason)
