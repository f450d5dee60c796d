"""A conversation as a file to download, for its owner (``GET .../export``) and for staff
(the admin's export actions), who get the same bytes.

- JSON: ``{"conversation", "messages", "totals"}``, where the conversation and each message
  have exactly the shapes the API returns for them; the messages are the whole tree (every
  branch), each with its ``parent_id``.
- Markdown: the current branch as a transcript to read, the reasoning in a collapsed
  ``<details>`` block, and how many other branches the JSON export holds.

Several conversations at once (the admin) are a zip of such files. The content depends only
on what is stored, so exporting twice gives the same bytes.
"""

import io
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import models
from django.http import HttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from chatapi.serializers import StrictSerializer
from conversations.blocks import Block, tool_input_text, tool_result_text
from conversations.models import Conversation, Message
from conversations.selectors import Transcript
from conversations.serializers import ConversationSerializer, MessageSerializer

_FILENAME_TITLE_CHARS = 60


class ExportFormat(models.TextChoices):
    JSON = "json", "JSON"
    MARKDOWN = "markdown", "Markdown"


_EXTENSIONS = {ExportFormat.JSON: "json", ExportFormat.MARKDOWN: "md"}
_CONTENT_TYPES = {
    ExportFormat.JSON: "application/json",
    ExportFormat.MARKDOWN: "text/markdown; charset=utf-8",
}


@dataclass(frozen=True)
class ExportFile:
    filename: str
    content: bytes
    content_type: str

    def as_response(self) -> HttpResponse:
        """The file as a download (``Content-Disposition: attachment``)."""
        response = HttpResponse(self.content, content_type=self.content_type)
        response["Content-Disposition"] = content_disposition_header(
            as_attachment=True, filename=self.filename
        )
        return response


class ConversationExportQuerySerializer(StrictSerializer):
    format = serializers.ChoiceField(
        choices=ExportFormat.choices,
        default=ExportFormat.JSON,
        help_text="json (the API's shapes) or markdown (a transcript to read).",
    )


class ExportTotalsSerializer(serializers.Serializer[dict[str, Any]]):
    messages = serializers.IntegerField()
    input_tokens = serializers.IntegerField(help_text="Sum over the messages.")
    output_tokens = serializers.IntegerField(help_text="Sum over the messages.")
    cost_usd = serializers.DecimalField(
        max_digits=18,
        decimal_places=10,
        allow_null=True,
        help_text="Sum of the known costs, exact, as a decimal string; null when none is known.",
    )


class ConversationExportSerializer(serializers.Serializer[dict[str, Any]]):
    """A conversation export in JSON: the conversation, every message of every branch oldest
    first, totals."""

    conversation = ConversationSerializer()
    messages = MessageSerializer(many=True)
    totals = ExportTotalsSerializer()


def _totals(messages: list[Message]) -> dict[str, Any]:
    costs = [message.cost_usd for message in messages if message.cost_usd is not None]
    return {
        "messages": len(messages),
        "input_tokens": sum(message.input_tokens or 0 for message in messages),
        "output_tokens": sum(message.output_tokens or 0 for message in messages),
        "cost_usd": sum(costs, Decimal(0)) if costs else None,
    }


def export_filename(*, conversation: Conversation, export_format: str) -> str:
    """``<title as a slug>-<id>.<ext>``: ASCII letters, digits and dashes only, so it is
    safe in a Content-Disposition header and as a file name on any system."""
    slug = slugify(conversation.title)[:_FILENAME_TITLE_CHARS].strip("-_") or "conversation"
    return f"{slug}-{conversation.pk}.{_EXTENSIONS[ExportFormat(export_format)]}"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _message_stats(message: Message) -> str:
    parts = [message.model] if message.model else []
    cached = f" ({message.cached_input_tokens} cached)" if message.cached_input_tokens else ""
    tokens = (
        f"{'?' if message.input_tokens is None else message.input_tokens} in{cached} / "
        f"{'?' if message.output_tokens is None else message.output_tokens} out tokens"
    )
    parts.append(f"{tokens} (estimated)" if message.usage_estimated else tokens)
    parts.append("cost unknown" if message.cost_usd is None else f"${message.cost_usd:f}")
    if message.latency_ms is not None:
        parts.append(f"{message.latency_ms} ms")
    if message.ttft_ms is not None:
        parts.append(f"first token {message.ttft_ms} ms")
    if message.provider_timings:
        timings = message.provider_timings
        parts.append(
            f"provider: queue {timings['queue'] * 1000:.1f} ms, prompt "
            f"{timings['prompt'] * 1000:.1f} ms, completion {timings['completion'] * 1000:.1f} ms"
        )
    if message.stop_reason:
        stop = message.stop_reason
        parts.append(f"{stop} {message.stop_sequence!r}" if message.stop_sequence else stop)
    return f"*{' · '.join(parts)}*"


def _tool_markdown(block: Block) -> str | None:
    """A tool call or result as a heading line and a fenced block; None for other blocks."""
    if block["type"] == "tool_use":
        note = " (arguments are not JSON)" if block.get("is_error") else ""
        fence = "" if block.get("is_error") else "json"
        return (
            f"**Tool call** `{block['name']}` (`{block['id']}`){note}\n\n"
            f"```{fence}\n{tool_input_text(block)}\n```"
        )
    if block["type"] == "tool_result":
        note = " (error)" if block.get("is_error") else ""
        return (
            f"**Tool result** for `{block['tool_use_id']}`{note}\n\n"
            f"```\n{tool_result_text(block)}\n```"
        )
    return None


def _message_markdown(message: Message) -> str:
    heading = f"## {Message.Role(message.role).label} · {_when(message.created_at)}"
    if message.status != Message.Status.COMPLETE:
        heading += f" · {message.status}"
    blocks = [heading]
    if message.reasoning:
        blocks.append(
            f"<details>\n<summary>Reasoning</summary>\n\n{message.reasoning}\n\n</details>"
        )
    tools = [part for part in map(_tool_markdown, message.blocks) if part is not None]
    if message.content or not tools:
        blocks.append(message.content or "*(no content)*")
    blocks.extend(tools)
    if message.error:
        blocks.append(f"> **Error** ({message.error['type']}): {message.error['message']}")
    if message.role == Message.Role.ASSISTANT:
        blocks.append(_message_stats(message))
    return "\n\n".join(blocks)


def _markdown(transcript: Transcript, totals: dict[str, Any]) -> str:
    conversation = transcript.conversation
    title = " ".join(conversation.title.split()) or "Untitled conversation"
    cost = "unknown" if totals["cost_usd"] is None else f"${totals['cost_usd']:f}"
    facts = [
        f"- Conversation: `{conversation.pk}`",
        f"- Model: {conversation.model}",
        f"- Created: {_when(conversation.created_at)}",
        (
            f"- Messages: {totals['messages']} · Tokens: {totals['input_tokens']} in / "
            f"{totals['output_tokens']} out · Cost: {cost}"
        ),
    ]
    if transcript.other_branches:
        others = transcript.other_branches
        facts.append(
            f"- Branches: the current one below, and {others} other{'s' if others > 1 else ''}"
            " (in the JSON export)"
        )
    if conversation.archived:
        facts.append("- Archived")
    blocks = [f"# {title}", "\n".join(facts)]
    if conversation.system_prompt:
        blocks.append(f"## System prompt\n\n{conversation.system_prompt}")
    blocks.extend(_message_markdown(message) for message in transcript.branch)
    return "\n\n".join(blocks) + "\n"


def transcript_export(*, transcript: Transcript, export_format: str) -> ExportFile:
    """The conversation as a file in ``export_format`` (an ``ExportFormat`` value)."""
    export_format = ExportFormat(export_format)
    totals = _totals(transcript.messages)
    if export_format == ExportFormat.JSON:
        data = ConversationExportSerializer(
            {
                "conversation": transcript.conversation,
                "messages": transcript.messages,
                "totals": totals,
            }
        ).data
        content = JSONRenderer().render(data, renderer_context={"indent": 2}) + b"\n"
    else:
        content = _markdown(transcript, totals).encode()
    return ExportFile(
        filename=export_filename(conversation=transcript.conversation, export_format=export_format),
        content=content,
        content_type=_CONTENT_TYPES[export_format],
    )


def transcripts_zip(*, transcripts: list[Transcript], export_format: str) -> ExportFile:
    """A zip with one file per conversation, each as ``transcript_export`` makes it. Entry
    times are the conversations' last changes, so the same data gives the same entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for transcript in transcripts:
            exported = transcript_export(transcript=transcript, export_format=export_format)
            entry = zipfile.ZipInfo(
                exported.filename,
                date_time=transcript.conversation.updated_at.astimezone(UTC).timetuple()[:6],
            )
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, exported.content)
    stamp = timezone.now().astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    return ExportFile(
        filename=f"conversations-{ExportFormat(export_format)}-{stamp}.zip",
        content=buffer.getvalue(),
        content_type="application/zip",
    )
