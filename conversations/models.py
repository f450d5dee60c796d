import uuid
from typing import TypeAlias

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone

from chatapi.fields import JSONField


class ReasoningEffort(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ServiceTier(models.TextChoices):
    ON_DEMAND = "on_demand"
    FLEX = "flex"
    AUTO = "auto"


class Conversation(models.Model):
    """A user's chat with a model: its settings, and its messages (``Message``, below)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: every composite index below starts with owner.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="conversations",
        db_index=False,
    )
    title = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=100)
    system_prompt = models.TextField(blank=True)
    # null: the provider's default.
    temperature = models.FloatField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning_effort = models.CharField(max_length=8, blank=True, choices=ReasoningEffort.choices)
    # The columns added with tool use have database defaults too, so rows written by code
    # that predates them (a process of the previous release during a deploy) still insert.
    # Anthropic tool definitions ({name, description, input_schema}) and tool_choice
    # ({type: auto|any|tool|none, name}); null: the provider's default (auto with tools).
    tools = JSONField(default=list, db_default=[], blank=True)
    tool_choice = JSONField(null=True, blank=True)
    # At most 4; enforced on the streamed text (messaging.llm.stop_sequences).
    stop_sequences = JSONField(default=list, db_default=[], blank=True)
    # "": the provider's default (on_demand).
    service_tier = models.CharField(
        max_length=16, blank=True, db_default="", choices=ServiceTier.choices
    )
    # Catalog ids tried in order when the model fails before its first token.
    fallback_models = JSONField(default=list, db_default=[], blank=True)
    metadata = JSONField(default=dict, blank=True)
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    # The list's sort key: creation time, then bumped by every new message
    # (conversations.services.conversation_touch, from turn_prepare and turn_record).
    activity_at = models.DateTimeField(default=timezone.now)
    # The last message of the branch the user is on (the branch is the path from the root to
    # it); null before the first message. A new turn's messages become it. Null again if that
    # message is deleted (the constraint says ON DELETE SET NULL too, see the migration, for
    # deletes outside Django such as the Data API's under RLS); readers then take the newest
    # message (conversations.selectors.conversation_leaf_id).
    current_leaf = models.ForeignKey(
        "Message",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )

    class Meta:
        ordering = ("-activity_at", "-id")
        indexes = [
            # The list (newest activity first, keyset on activity_at and id), unfiltered or
            # with archived=false (most rows) or a title search.
            models.Index(
                fields=["owner", "-activity_at", "-id"], name="conversation_owner_activity"
            ),
            # archived=true: archived rows are few, so a partial index costs little to keep.
            models.Index(
                fields=["owner", "-activity_at", "-id"],
                condition=Q(archived=True),
                name="conversation_owner_archived",
            ),
            # PostgreSQL's foreign-key check when messages are deleted.
            models.Index(fields=["current_leaf"], name="conversation_current_leaf"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(temperature__isnull=True) | Q(temperature__gte=0, temperature__lte=2),
                name="conversation_temperature_range",
            ),
            models.CheckConstraint(
                condition=Q(max_output_tokens__isnull=True) | Q(max_output_tokens__gte=1),
                name="conversation_max_output_tokens_positive",
            ),
            models.CheckConstraint(
                condition=Q(reasoning_effort__in=["", *ReasoningEffort.values]),
                name="conversation_reasoning_effort_valid",
            ),
            models.CheckConstraint(
                condition=Q(service_tier__in=["", *ServiceTier.values]),
                name="conversation_service_tier_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.title or str(self.id)


# Module level so that Meta's constraints can name them; use them as Message.Role and
# Message.Status.
class MessageRole(models.TextChoices):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class MessageStatus(models.TextChoices):
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    CANCELLED = "cancelled"
    ERROR = "error"


class Message(models.Model):
    """One turn of a conversation, with what producing it cost.

    Token counts and cost are per message and die with the conversation; what the user was
    billed for is kept by the usage ledger, which must not cascade from here.
    """

    Role: TypeAlias = MessageRole  # noqa: UP040 (a `type` alias has no members at run time)
    Status: TypeAlias = MessageStatus  # noqa: UP040

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: message_conversation_created leads with it.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    # The message this one follows: null for a root (the first message of a conversation, or
    # of a new branch); a user message follows an assistant message, an assistant message
    # answers its user message. Set once, at insert, to an older message of the same
    # conversation: no cycles, and (created_at, id) order along a branch is path order.
    # Deleting a message deletes what follows it; the constraint says so too (ON DELETE
    # CASCADE, see the migration), for deletes outside Django such as the Data API's under
    # RLS. No index of its own: message_parent_siblings leads with it.
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="children",
        db_index=False,
    )
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    # The text (the text blocks joined), for the clients and searches that read only that.
    content = models.TextField(blank=True)
    reasoning = models.TextField(blank=True, default="")
    # The whole content as Anthropic content blocks (conversations.blocks): text, thinking,
    # tool_use, tool_result.
    blocks = JSONField(default=list, db_default=[], blank=True)
    status = models.CharField(
        max_length=16, choices=MessageStatus.choices, default=MessageStatus.COMPLETE
    )
    # Anthropic's stop reasons: end_turn, max_tokens, stop_sequence, refusal, ...
    stop_reason = models.CharField(max_length=40, blank=True)
    # The stop sequence that ended the answer (stop_reason "stop_sequence").
    stop_sequence = models.TextField(blank=True, db_default="")
    model = models.CharField(max_length=100, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Part of input_tokens read from the provider's prompt cache; null when not reported.
    cached_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    # True when the counts are our estimate rather than the provider's report.
    usage_estimated = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    # The provider's own timings in seconds ({"queue", "prompt", "completion"}), when reported.
    provider_timings = JSONField(null=True, blank=True)
    # null: unknown (never 0 for unknown).
    cost_usd = models.DecimalField(max_digits=18, decimal_places=10, null=True, blank=True)
    # {"type": ..., "message": ...} when status is error.
    error = JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The server process generating it (GenerationWorker.id), while in progress.
    worker_id = models.CharField(max_length=100, blank=True)

    class Meta:
        # The table kept the name it had when messages lived in the messaging app.
        db_table = "messaging_message"
        ordering = ("created_at", "id")
        indexes = [
            models.Index(
                fields=["conversation", "created_at", "id"], name="message_conversation_created"
            ),
            # A message's siblings in order: parent_id = p, or for roots parent_id IS NULL and
            # conversation_id = c (an equality for a B-tree too). Also what PostgreSQL's
            # foreign-key check on parent_id uses when messages are deleted.
            models.Index(
                fields=["parent", "conversation", "created_at", "id"],
                name="message_parent_siblings",
            ),
            # The sweeper's question: which messages are still being generated, and where.
            models.Index(
                fields=["worker_id"],
                condition=Q(status=MessageStatus.IN_PROGRESS),
                name="message_in_progress_worker",
            ),
        ]
        constraints = [
            # At most one generation in progress per conversation; a second send meets this.
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status=MessageStatus.IN_PROGRESS),
                name="message_one_in_progress_per_conversation",
            ),
            models.CheckConstraint(
                condition=Q(role__in=MessageRole.values), name="message_role_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=MessageStatus.values), name="message_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(cost_usd__isnull=True) | Q(cost_usd__gte=0),
                name="message_cost_usd_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} message {self.id}"


class Share(models.Model):
    """A read-only link to a snapshot of a conversation: the messages of its current branch
    when the link was made, by id (``message_ids``), never those added later.

    Ids rather than a copy: messages are not edited once finished, so the ids show exactly
    what was there, and nothing shared outlives the conversation (deleting it deletes its
    messages and, by cascade, its shares). Revoking deletes the row.

    The token is stored as it is, not hashed, so that the owner's list can show each link
    again; whoever can read this table can read the messages it points at anyway.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: share_conversation_created leads with it.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="shares", db_index=False
    )
    # secrets.token_urlsafe(32): 256 random bits in 43 characters.
    token = models.CharField(max_length=64, unique=True)
    message_ids = ArrayField(models.UUIDField())
    created_at = models.DateTimeField(default=timezone.now)
    # null: never expires.
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(
                fields=["conversation", "-created_at", "-id"], name="share_conversation_created"
            ),
        ]

    def __str__(self) -> str:
        return f"share {self.id} of {self.conversation_id}"
