import json
import uuid
from datetime import datetime
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from chatapi.pagination import PageQuerySerializer
from chatapi.serializers import JsonBodySerializer, JsonStringField, datetime_json
from conversations.blocks import (
    STOP_SEQUENCE_MAX_CHARS,
    STOP_SEQUENCES_MAX,
    TOOLS_MAX,
    ToolChoiceSerializer,
    ToolDefinitionSerializer,
    tools_problem,
)
from conversations.models import Conversation, Message, ReasoningEffort, ServiceTier, Share
from conversations.selectors import SearchHit, SearchPage, SharedConversation, message_find
from usage.catalog import chat_model_get, chat_model_unavailable, default_chat_model

TITLE_MAX_LENGTH = 200
FALLBACK_MODELS_MAX = 3
SYSTEM_PROMPT_MAX_LENGTH = 32_000
METADATA_MAX_BYTES = 16 * 1024
METADATA_MAX_KEYS = 64
TEMPERATURE_MAX = 2.0
# The fields whose valid values depend on the model.
_MODEL_DEPENDENT = ("model", "max_output_tokens", "reasoning_effort")


def conversation_metadata_validate(value: dict[str, Any]) -> dict[str, Any]:
    """A conversation's metadata within its limits (also the compatibility routes'
    ``metadata``, which becomes it), else ValidationError."""
    if len(value) > METADATA_MAX_KEYS:
        raise serializers.ValidationError(f"At most {METADATA_MAX_KEYS} keys are allowed.")
    problem = unstorable_text(value)  # first: the size is measured in UTF-8
    if problem:
        raise serializers.ValidationError(problem)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > METADATA_MAX_BYTES:
        raise serializers.ValidationError(
            f"At most {METADATA_MAX_BYTES} bytes of JSON are allowed (got {size})."
        )
    return value


def tools_validate(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool definitions (each checked by ``ToolDefinitionSerializer``) as a request's whole
    list: at most ``TOOLS_MAX``, and schemas PostgreSQL can store. The native routes' and both
    compatibility routes' check."""
    if len(tools) > TOOLS_MAX:
        raise serializers.ValidationError(f"At most {TOOLS_MAX} tools are allowed.")
    problem = unstorable_text([tool["input_schema"] for tool in tools])
    if problem:
        raise serializers.ValidationError(problem)
    return [dict(tool) for tool in tools]


def unstorable_text(value: Any) -> str | None:
    """Why PostgreSQL would refuse this JSON value (NUL and lone surrogates cannot be stored
    in jsonb), or None. Iterative, so a deeply nested value cannot exhaust the stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "Null characters are not allowed."
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "Surrogate characters are not allowed."
    return None


class GenerationSettingsSerializer(JsonBodySerializer):
    """The model and its generation settings, validated together: a conversation's, or a
    single message's overrides (``instance`` is then the conversation they override)."""

    model = serializers.CharField(
        max_length=100,
        required=False,
        help_text="A model id from the catalog; the default model when omitted.",
    )
    temperature = serializers.FloatField(
        min_value=0,
        max_value=TEMPERATURE_MAX,
        required=False,
        allow_null=True,
        help_text="0 to 2; null for the provider's default.",
    )
    max_output_tokens = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="1 to the model's max_output_tokens; null for the model's limit.",
    )
    reasoning_effort = serializers.ChoiceField(
        choices=ReasoningEffort.choices,
        required=False,
        allow_null=True,
        help_text="For reasoning models only; null for the provider's default.",
    )

    tools = ToolDefinitionSerializer(
        many=True,
        required=False,
        help_text=f"Tools the model may call (Anthropic tool definitions), at most {TOOLS_MAX}; "
        "[] for none.",
    )
    tool_choice = ToolChoiceSerializer(
        required=False,
        allow_null=True,
        help_text="auto, any, tool (with name) or none; null for auto.",
    )
    stop_sequences = serializers.ListField(
        child=JsonStringField(
            max_length=STOP_SEQUENCE_MAX_CHARS, trim_whitespace=False, allow_blank=False
        ),
        max_length=STOP_SEQUENCES_MAX,
        required=False,
        help_text=f"Up to {STOP_SEQUENCES_MAX}: the answer ends before the first one it "
        "would contain (stop_reason stop_sequence).",
    )
    service_tier = serializers.ChoiceField(
        choices=ServiceTier.choices,
        required=False,
        allow_null=True,
        help_text="Groq's service tier; null for the provider's default (on_demand). A flex "
        "request that finds no capacity is retried once on on_demand.",
    )

    fallback_models = serializers.ListField(
        child=JsonStringField(max_length=100),
        max_length=FALLBACK_MODELS_MAX,
        required=False,
        help_text=f"Up to {FALLBACK_MODELS_MAX} catalog models tried in order when the model "
        "fails before its first token (rate limited past the retries, overloaded, out of "
        "capacity, failing, or retired).",
    )

    def validate_fallback_models(self, value: list[str]) -> list[str]:
        for model_id in value:
            if chat_model_get(model_id) is None:
                raise serializers.ValidationError(chat_model_unavailable(model_id))
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each model may be listed once.")
        return value

    def validate_model(self, value: str) -> str:
        if chat_model_get(value) is None:
            raise serializers.ValidationError(chat_model_unavailable(value))
        return value

    def validate_reasoning_effort(self, value: str | None) -> str:
        return value or ""

    def validate_service_tier(self, value: str | None) -> str:
        return value or ""

    def validate_tools(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return tools_validate(value)

    def validate_tool_choice(self, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else dict(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        current: Conversation | None = self.instance
        if "tools" in attrs or "tool_choice" in attrs:
            tools = attrs["tools"] if "tools" in attrs else getattr(current, "tools", [])
            choice = (
                attrs["tool_choice"]
                if "tool_choice" in attrs
                else getattr(current, "tool_choice", None)
            )
            problem = tools_problem(tools, choice)
            if problem:
                field = "tools" if "tools" in attrs else "tool_choice"
                raise serializers.ValidationError({field: [problem]})
        if current is None:
            attrs.setdefault("model", default_chat_model().id)
        elif not any(field in attrs for field in _MODEL_DEPENDENT):
            # A PATCH that leaves the model settings alone is not re-judged by them.
            return attrs

        def effective(field: str) -> Any:
            if field in attrs:
                return attrs[field]
            return None if current is None else getattr(current, field)

        model = chat_model_get(effective("model"))
        if model is None:  # a stored model that has left the catalog; validate_model ran
            return attrs
        # Blame the field that was sent: when only the model changed, the conversation's
        # stored settings may no longer fit it.
        max_output_tokens = effective("max_output_tokens")
        if max_output_tokens is not None and max_output_tokens > model.max_output_tokens:
            field = "max_output_tokens" if "max_output_tokens" in attrs else "model"
            raise serializers.ValidationError(
                {
                    field: [
                        (
                            f"{model.id} allows at most {model.max_output_tokens} output "
                            f"tokens; max_output_tokens is {max_output_tokens}."
                        )
                    ]
                }
            )
        if effective("reasoning_effort") and not model.reasoning:
            field = "reasoning_effort" if "reasoning_effort" in attrs else "model"
            raise serializers.ValidationError(
                {field: [f"{model.id} is not a reasoning model; reasoning_effort must be null."]}
            )
        return attrs


class ConversationCreateSerializer(GenerationSettingsSerializer):
    title = serializers.CharField(max_length=TITLE_MAX_LENGTH, required=False, allow_blank=True)
    system_prompt = serializers.CharField(
        max_length=SYSTEM_PROMPT_MAX_LENGTH,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
    )
    metadata = serializers.DictField(
        required=False,
        help_text=f"Free-form JSON object for the client: at most {METADATA_MAX_KEYS} keys "
        f"and {METADATA_MAX_BYTES} bytes serialized.",
    )

    def validate_metadata(self, value: dict[str, Any]) -> dict[str, Any]:
        return conversation_metadata_validate(value)


NOT_IN_CONVERSATION = "No message with this id in this conversation."


def validated_conversation(serializer: serializers.Serializer[Any]) -> Conversation:
    """The conversation a serializer judges a message id against (its ``instance``)."""
    if not isinstance(serializer.instance, Conversation):
        raise TypeError(f"Validate {type(serializer).__name__} with instance=conversation.")
    return serializer.instance


class ConversationUpdateSerializer(ConversationCreateSerializer):
    """PATCH: only the fields sent change. Use with ``partial=True`` and the instance."""

    archived = serializers.BooleanField(required=False)
    current_leaf_id = serializers.UUIDField(
        required=False,
        help_text="Switch branch: any message of the conversation; the messages list shows "
        "the branch that ends at it, and the next send appends after it.",
    )

    def validate_current_leaf_id(self, value: uuid.UUID) -> uuid.UUID:
        if message_find(conversation=validated_conversation(self), message_id=value) is None:
            raise serializers.ValidationError(NOT_IN_CONVERSATION)
        return value


class ForkSerializer(JsonBodySerializer):
    """Validate with ``instance=conversation``."""

    message_id = serializers.UUIDField(
        help_text="The last message of the branch to copy (any message of the conversation)."
    )

    def validate_message_id(self, value: uuid.UUID) -> uuid.UUID:
        if message_find(conversation=validated_conversation(self), message_id=value) is None:
            raise serializers.ValidationError(NOT_IN_CONVERSATION)
        return value


class ConversationSerializer(serializers.Serializer[Conversation]):
    id = serializers.UUIDField()
    title = serializers.CharField()
    model = serializers.CharField()
    system_prompt = serializers.CharField()
    temperature = serializers.FloatField(allow_null=True)
    max_output_tokens = serializers.IntegerField(allow_null=True)
    reasoning_effort = serializers.ChoiceField(choices=ReasoningEffort.choices, allow_null=True)
    tools = ToolDefinitionSerializer(many=True)
    tool_choice = ToolChoiceSerializer(allow_null=True)
    stop_sequences = serializers.ListField(child=serializers.CharField())
    service_tier = serializers.ChoiceField(choices=ServiceTier.choices, allow_null=True)
    fallback_models = serializers.ListField(child=serializers.CharField())
    metadata = serializers.DictField()
    archived = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    last_message_at = serializers.DateTimeField(
        allow_null=True, help_text="When the last message was added; null before the first."
    )
    current_leaf_id = serializers.UUIDField(
        allow_null=True,
        help_text="The last message of the branch the user is on (the messages list shows "
        "the path from the root to it); null before the first message.",
    )

    def to_representation(self, instance: Conversation) -> dict[str, Any]:
        # What the fields above produce (conversations/tests/test_representation.py checks),
        # written out: DRF's per-field calls were most of a list's serialization time.
        zone = timezone.get_current_timezone()
        c = instance
        return {
            "id": str(c.id),
            "title": c.title,
            "model": c.model,
            "system_prompt": c.system_prompt,
            "temperature": None if c.temperature is None else float(c.temperature),
            "max_output_tokens": None if c.max_output_tokens is None else int(c.max_output_tokens),
            "reasoning_effort": c.reasoning_effort or None,
            "tools": [
                {
                    "name": str(tool["name"]),
                    "description": str(tool.get("description", "")),
                    "input_schema": tool["input_schema"],
                }
                for tool in c.tools
            ],
            "tool_choice": None if c.tool_choice is None else dict(c.tool_choice),
            "stop_sequences": [str(sequence) for sequence in c.stop_sequences],
            "service_tier": c.service_tier or None,
            "fallback_models": [str(model_id) for model_id in c.fallback_models],
            "metadata": {str(key): value for key, value in c.metadata.items()},
            "archived": bool(c.archived),
            "created_at": datetime_json(c.created_at, zone),
            "updated_at": datetime_json(c.updated_at, zone),
            "last_message_at": datetime_json(c.last_message_at, zone),
            "current_leaf_id": None if c.current_leaf_id is None else str(c.current_leaf_id),
        }


class ConversationListQuerySerializer(PageQuerySerializer):
    archived = serializers.BooleanField(
        required=False, help_text="Only archived (true) or only active (false) conversations."
    )
    q = serializers.CharField(
        max_length=TITLE_MAX_LENGTH,
        required=False,
        allow_blank=True,
        help_text="Only conversations whose title contains this text (case-insensitive).",
    )


class MessageUsageSerializer(serializers.Serializer[Message]):
    input_tokens = serializers.IntegerField(allow_null=True)
    cached_input_tokens = serializers.IntegerField(
        allow_null=True,
        help_text="The part of input_tokens read from the provider's prompt cache (billed at "
        "the cached-input price); null when the provider did not say.",
    )
    output_tokens = serializers.IntegerField(allow_null=True)
    estimated = serializers.BooleanField(
        source="usage_estimated",
        help_text="True when the counts are the service's estimate, not the provider's report.",
    )


class MessageErrorSerializer(serializers.Serializer[dict[str, Any]]):
    type = serializers.CharField()
    message = serializers.CharField()


class MessageSerializer(serializers.Serializer[Message]):
    """A message with its place in the tree. The instance must carry ``sibling_count`` and
    ``sibling_index`` (conversations.selectors.messages_with_siblings)."""

    id = serializers.UUIDField()
    conversation_id = serializers.UUIDField()
    parent_id = serializers.UUIDField(
        allow_null=True,
        help_text="The message this one follows; null for the first message of a branch.",
    )
    sibling_count = serializers.IntegerField(
        help_text="How many messages share this one's parent, itself included (roots share "
        "the null parent): the 3 of '2 of 3'."
    )
    sibling_index = serializers.IntegerField(
        help_text="This message's position among them, oldest first, from 1: the 2 of '2 of 3'."
    )
    role = serializers.ChoiceField(choices=Message.Role.choices)
    content = serializers.CharField(help_text="The text (the text blocks joined).")
    reasoning = serializers.CharField(help_text="The model's reasoning text; empty when none.")
    blocks = serializers.ListField(
        child=serializers.DictField(),
        help_text="The whole content as Anthropic content blocks: text, thinking, tool_use "
        "(id, name, input; with is_error and raw_input when the model's arguments were not a "
        "JSON object), tool_result (tool_use_id, content, is_error).",
    )
    status = serializers.ChoiceField(choices=Message.Status.choices)
    stop_reason = serializers.CharField(
        allow_null=True,
        help_text="end_turn, max_tokens, stop_sequence, tool_use, refusal, ...; null until known.",
    )
    stop_sequence = serializers.CharField(
        allow_null=True, help_text="The stop sequence that ended the answer, else null."
    )
    model = serializers.CharField(allow_null=True, help_text="null on user messages.")
    usage = MessageUsageSerializer(source="*")
    latency_ms = serializers.IntegerField(allow_null=True)
    ttft_ms = serializers.IntegerField(allow_null=True, help_text="Time to first token.")
    provider_timings = serializers.DictField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="The provider's own timings in seconds (queue, prompt, completion), when it "
        "reports them.",
    )
    cost_usd = serializers.DecimalField(
        max_digits=18,
        decimal_places=10,
        allow_null=True,
        help_text="Exact cost in USD as a decimal string; null when unknown.",
    )
    error = MessageErrorSerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance: Message) -> dict[str, Any]:
        # What the fields above produce (conversations/tests/test_representation.py checks),
        # written out: DRF's per-field calls were most of a list's serialization time.
        zone = timezone.get_current_timezone()
        m = instance
        error = m.error
        return {
            "id": str(m.id),
            "conversation_id": str(m.conversation_id),
            "parent_id": None if m.parent_id is None else str(m.parent_id),
            "sibling_count": int(m.sibling_count),  # type: ignore[attr-defined]
            "sibling_index": int(m.sibling_index),  # type: ignore[attr-defined]
            "role": m.role,
            "content": m.content,
            "reasoning": m.reasoning,
            "blocks": list(m.blocks),
            "status": m.status,
            "stop_reason": m.stop_reason or None,
            "stop_sequence": m.stop_sequence or None,
            "model": m.model or None,
            "usage": {
                "input_tokens": None if m.input_tokens is None else int(m.input_tokens),
                "cached_input_tokens": (
                    None if m.cached_input_tokens is None else int(m.cached_input_tokens)
                ),
                "output_tokens": None if m.output_tokens is None else int(m.output_tokens),
                "estimated": bool(m.usage_estimated),
            },
            "latency_ms": None if m.latency_ms is None else int(m.latency_ms),
            "ttft_ms": None if m.ttft_ms is None else int(m.ttft_ms),
            "provider_timings": (
                None
                if m.provider_timings is None
                else {str(k): float(v) for k, v in m.provider_timings.items()}
            ),
            "cost_usd": None if m.cost_usd is None else _COST.to_representation(m.cost_usd),
            "error": (
                None
                if error is None
                else {"type": str(error["type"]), "message": str(error["message"])}
            ),
            "created_at": datetime_json(m.created_at, zone),
            "completed_at": datetime_json(m.completed_at, zone),
        }


# Decimal to string exactly as the cost_usd field does it.
_COST = serializers.DecimalField(max_digits=18, decimal_places=10)


class MessageTreeNodeSerializer(serializers.Serializer[Message]):
    """A message as a node of the tree: enough to draw it and offer a switch, not its text.
    The instance carries ``preview`` (conversations.selectors.message_tree)."""

    id = serializers.UUIDField()
    parent_id = serializers.UUIDField(allow_null=True)
    role = serializers.ChoiceField(choices=Message.Role.choices)
    status = serializers.ChoiceField(choices=Message.Status.choices)
    model = serializers.CharField(allow_null=True, help_text="null on user messages.")
    preview = serializers.CharField(help_text="The first 100 characters of the text.")
    created_at = serializers.DateTimeField()

    def to_representation(self, instance: Message) -> dict[str, Any]:
        zone = timezone.get_current_timezone()
        return {
            "id": str(instance.id),
            "parent_id": None if instance.parent_id is None else str(instance.parent_id),
            "role": instance.role,
            "status": instance.status,
            "model": instance.model or None,
            "preview": instance.preview,  # type: ignore[attr-defined]
            "created_at": datetime_json(instance.created_at, zone),
        }


class MessageListQuerySerializer(PageQuerySerializer):
    """The message list's parameters; validate with ``context={"conversation": ...}``."""

    leaf_id = serializers.UUIDField(
        required=False,
        help_text="List the branch that ends at this message instead of the current one.",
    )

    def validate_leaf_id(self, value: uuid.UUID) -> uuid.UUID:
        if message_find(conversation=self.context["conversation"], message_id=value) is None:
            raise serializers.ValidationError(NOT_IN_CONVERSATION)
        return value


# --- search ----------------------------------------------------------------------------------

SEARCH_QUERY_MAX_LENGTH = 500


class SearchQuerySerializer(PageQuerySerializer):
    q = serializers.CharField(
        max_length=SEARCH_QUERY_MAX_LENGTH,
        help_text="What to look for, as in a web search engine: words (all must match), "
        '"a quoted phrase", `or` between alternatives, `-word` to exclude one.',
    )
    conversation_id = serializers.UUIDField(
        required=False, help_text="Only this conversation's title and messages."
    )
    created_after = serializers.DateTimeField(
        required=False,
        help_text="Only messages (and conversations, for titles) created at or after this "
        "time (ISO 8601).",
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Only those created before this time (ISO 8601)."
    )


class SearchConversationSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    title = serializers.CharField()


class SearchMessageSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=Message.Role.choices)


class SearchHitSerializer(serializers.Serializer[SearchHit]):
    id = serializers.UUIDField(
        help_text="The result's id, for after_id and before_id: the message's id, or the "
        "conversation's when its title matched."
    )
    conversation = SearchConversationSerializer()
    message = SearchMessageSerializer(
        allow_null=True, help_text="The message that matched; null when the title matched."
    )
    created_at = serializers.DateTimeField(
        help_text="When the message (or, for a title, the conversation) was created."
    )
    snippet = serializers.CharField(
        help_text="The matching passage as HTML: the text escaped, each matched word in "
        "<mark>...</mark>, fragments joined by ' … '. Safe to insert as HTML."
    )

    def to_representation(self, instance: SearchHit) -> dict[str, Any]:
        hit = instance
        return {
            "id": str(hit.id),
            "conversation": {"id": str(hit.conversation_id), "title": hit.conversation_title},
            "message": (
                None if hit.message_id is None else {"id": str(hit.message_id), "role": hit.role}
            ),
            "created_at": datetime_json(hit.created_at, timezone.get_current_timezone()),
            "snippet": hit.snippet,
        }


def search_page_body(page: SearchPage) -> dict[str, Any]:
    """The list envelope of chatapi.pagination, for search results."""
    return {
        "data": [SearchHitSerializer().to_representation(hit) for hit in page.hits],
        "has_more": page.has_more,
        "first_id": str(page.hits[0].id) if page.hits else None,
        "last_id": str(page.hits[-1].id) if page.hits else None,
    }


# --- share links -----------------------------------------------------------------------------


class ShareCreateSerializer(JsonBodySerializer):
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="When the link stops working (ISO 8601, in the future); null or omitted: "
        "it works until revoked.",
    )

    def validate_expires_at(self, value: datetime | None) -> datetime | None:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value


class ShareSerializer(serializers.Serializer[Share]):
    """A share link as its owner sees it. Needs the request in the context (for ``url``)."""

    id = serializers.UUIDField()
    token = serializers.CharField(help_text="The secret part of the link (256 random bits).")
    url = serializers.URLField(help_text="The read-only page anyone with the link can open.")
    api_url = serializers.URLField(help_text="The same snapshot as JSON, without authentication.")
    message_count = serializers.IntegerField(help_text="How many messages the snapshot shows.")
    created_at = serializers.DateTimeField(help_text="When the snapshot was taken.")
    expires_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance: Share) -> dict[str, Any]:
        zone = timezone.get_current_timezone()
        request = self.context["request"]
        return {
            "id": str(instance.id),
            "token": instance.token,
            "url": request.build_absolute_uri(f"/s/{instance.token}"),
            "api_url": request.build_absolute_uri(f"/api/v1/shared/{instance.token}"),
            "message_count": len(instance.message_ids),
            "created_at": datetime_json(instance.created_at, zone),
            "expires_at": datetime_json(instance.expires_at, zone),
        }


class SharedMessageSerializer(serializers.Serializer[Message]):
    role = serializers.ChoiceField(choices=Message.Role.choices)
    content = serializers.CharField(help_text="The text as written (answers are Markdown).")
    status = serializers.ChoiceField(
        choices=Message.Status.choices,
        help_text="complete, or incomplete/cancelled/error when the answer stopped early.",
    )
    model = serializers.CharField(allow_null=True, help_text="null on user messages.")
    created_at = serializers.DateTimeField()

    def to_representation(self, instance: Message) -> dict[str, Any]:
        return {
            "role": instance.role,
            "content": instance.content,
            "status": instance.status,
            "model": instance.model or None,
            "created_at": datetime_json(instance.created_at, timezone.get_current_timezone()),
        }


class SharedConversationSerializer(serializers.Serializer[SharedConversation]):
    """What anyone with the link sees: no ids, no owner."""

    title = serializers.CharField()
    shared_at = serializers.DateTimeField(help_text="When the snapshot was taken.")
    expires_at = serializers.DateTimeField(allow_null=True)
    messages = SharedMessageSerializer(many=True, help_text="Oldest first.")
