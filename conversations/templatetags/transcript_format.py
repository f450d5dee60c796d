"""The transcript's tool blocks and timings: ``{% load transcript_format %}``, then
``{{ block|tool_input }}`` (a tool call's input as indented JSON, or the model's raw text
when it was not JSON), ``{{ block|tool_result }}`` (a result's text) and
``{{ seconds|milliseconds }}`` (a provider timing, 0.0042 -> "4.2 ms")."""

from typing import Any

from django import template

from conversations.blocks import tool_input_text, tool_result_text

register = template.Library()


@register.filter
def tool_input(block: dict[str, Any]) -> str:
    return tool_input_text(block)


@register.filter
def tool_result(block: dict[str, Any]) -> str:
    return tool_result_text(block)


@register.filter
def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
