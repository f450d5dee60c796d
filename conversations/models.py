import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ReasoningEffort(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


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
    metadata = models.JSONField(default=dict, blank=True)
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    # The list's sort key: creation time, then bumped by every new message
    # (messaging.services.message_create).
    activity_at = models.DateTimeField(default=timezone.now)
    # The last message of the branch the user is on (the branch is the path from the root to
    # it); null before the first message. A new turn's messages become it. Null again if that
    # message is deleted (the constraint says ON DELETE SET NULL too, see the migration, for
    # deletes outside Django such as the Data API's under RLS); readers then take the newest
    # message (conversations.selectors.conversation_leaf_id).
    current_leaf = models.ForeignKey(
        "messaging.Message",
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
        ]

    def __str__(self) -> str:
        return self.title or str(self.id)
