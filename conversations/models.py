import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ReasoningEffort(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ServiceTier(models.TextChoices):
    ON_DEMAND = "on_demand"
    FLEX = "flex"
    AUTO = "auto"


class Conversation(models.Model):
    """A user's chat with a model: its settings, and (in messaging) its messages."""

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
    # Anthropic tool definitions ({name, description, input_schema}) and tool_choice
    # ({type: auto|any|tool|none, name}); null: the provider's default (auto with tools).
    tools = models.JSONField(default=list, blank=True)
    tool_choice = models.JSONField(null=True, blank=True)
    # At most 4; enforced on the streamed text (messaging.llm.stop_sequences).
    stop_sequences = models.JSONField(default=list, blank=True)
    # "": the provider's default (on_demand).
    service_tier = models.CharField(max_length=16, blank=True, choices=ServiceTier.choices)
    metadata = models.JSONField(default=dict, blank=True)
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    # The list's sort key: creation time, then bumped by every new message
    # (messaging.services.message_create).
    activity_at = models.DateTimeField(default=timezone.now)

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
