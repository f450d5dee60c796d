"""Drive a turn's database side as the send path does: ``turn_prepare`` before the upstream
call, ``turn_record`` with a priced outcome at the end (what ``Generation`` stores)."""

from conversations.blocks import text_blocks
from conversations.models import Conversation, Message
from messaging.llm.base import Usage
from messaging.turns import (
    GenerationSettings,
    TurnOutcome,
    TurnPlan,
    turn_prepare,
    turn_record,
)
from usage.catalog import ChatModel, chat_model_get, turn_cost

DEFAULTS = GenerationSettings(temperature=None, max_output_tokens=None, reasoning_effort=None)


def catalog_model(model_id: str) -> ChatModel:
    model = chat_model_get(model_id)
    assert model is not None, model_id
    return model


def turn_start(
    conversation: Conversation,
    model_id: str = "openai/gpt-oss-20b",
    *,
    content: str = "Hi",
    generation: GenerationSettings = DEFAULTS,
) -> TurnPlan:
    return turn_prepare(
        conversation=conversation,
        blocks=text_blocks(content),
        model=catalog_model(model_id),
        generation=generation,
    )


def turn_finish(
    plan: TurnPlan,
    *,
    input_tokens: int,
    output_tokens: int,
    status: str = Message.Status.COMPLETE,
    estimated: bool = False,
    reasoning_tokens: int | None = None,
    cached_input_tokens: int | None = None,
) -> TurnOutcome:
    usage = Usage(
        input_tokens,
        output_tokens,
        reasoning_tokens=reasoning_tokens,
        cached_input_tokens=cached_input_tokens,
    )
    complete = status == Message.Status.COMPLETE
    content = "answer" if output_tokens else ""
    outcome = TurnOutcome(
        status=status,
        content=content,
        reasoning="",
        blocks=text_blocks(content),
        model=plan.model.id,
        stop_reason="end_turn" if complete else "",
        stop_sequence=None,
        usage=usage,
        usage_estimated=estimated,
        cost_usd=turn_cost(model=plan.model, usage=usage),
        latency_ms=120,
        ttft_ms=15 if output_tokens else None,
        error=None if complete else {"type": "api_error", "message": "failed"},
    )
    turn_record(plan=plan, outcome=outcome)
    return outcome
