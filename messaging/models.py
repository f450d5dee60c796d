import uuid
from typing import TypeAlias

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from conversations.models import Conversation


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
    role = models.CharField(max_length=16, choices=MessageRole.choices)
    # The text (the text blocks joined), for the clients and searches that read only that.
    content = models.TextField(blank=True)
    reasoning = models.TextField(blank=True, default="")
    # The whole content as Anthropic content blocks (conversations.blocks): text, thinking,
    # tool_use, tool_result.
    blocks = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=16, choices=MessageStatus.choices, default=MessageStatus.COMPLETE
    )
    # Anthropic's stop reasons: end_turn, max_tokens, stop_sequence, refusal, ...
    stop_reason = models.CharField(max_length=40, blank=True)
    # The stop sequence that ended the answer (stop_reason "stop_sequence").
    stop_sequence = models.TextField(blank=True)
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
    provider_timings = models.JSONField(null=True, blank=True)
    # null: unknown (never 0 for unknown).
    cost_usd = models.DecimalField(max_digits=18, decimal_places=10, null=True, blank=True)
    # {"type": ..., "message": ...} when status is error.
    error = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    # The server process generating it (GenerationWorker.id), while in progress.
    worker_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ("created_at", "id")
        indexes = [
            models.Index(
                fields=["conversation", "created_at", "id"], name="message_conversation_created"
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


class GenerationWorker(models.Model):
    """A server process that runs generations, and when it last said it was alive. A message
    in progress on a worker that stopped beating is finished by the sweeper."""

    id = models.CharField(primary_key=True, max_length=100)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.id


class IdempotencyKey(models.Model):
    """An ``Idempotency-Key`` a user sent with a message: a retry with the same key (within
    IDEMPOTENCY_KEY_TTL_SECONDS) gets the same turn instead of a second one."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    # SHA-256 of the conversation id and the request body (without `stream`).
    request_hash = models.CharField(max_length=64)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE)
    user_message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    assistant_message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_per_user"),
        ]

    def __str__(self) -> str:
        return self.key
