import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from chatapi.fields import JSONField
from conversations.models import Conversation, Message


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


class WebhookEndpoint(models.Model):
    """A URL of a user's that is told of the events it subscribes to (``events``: names from
    ``conversations.events.WEBHOOK_EVENTS``), each delivery signed with ``secret`` (the
    Standard Webhooks format, ``whsec_`` + base64 of the key; shown to its owner once)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="webhook_endpoints",
        db_index=False,  # the index below starts with it
    )
    url = models.CharField(max_length=2000)
    events = ArrayField(models.CharField(max_length=40))
    secret = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["owner", "-created_at", "-id"], name="webhook_owner_created"),
        ]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint: the outbox row written in the transaction that ended the
    message (``messaging.webhooks.webhook_outbox_write``), then the delivery's log as the
    worker (``messaging.webhook_worker``) sends and retries it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_index=False,  # the index below starts with it
    )
    event_type = models.CharField(max_length=40)
    # The webhook body (type, timestamp, data), as it is sent on every attempt.
    payload = JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the worker may next try it (a claim pushes it past the attempt's timeout).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["endpoint", "-created_at", "-id"], name="webhook_delivery_endpoint"
            ),
            # The worker's query: the due pending rows, soonest first.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=models.Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.webhook_id}"

    @property
    def webhook_id(self) -> str:
        """The ``webhook-id`` header: the same on every attempt, for receivers to dedupe."""
        return f"msg_{self.pk.hex}"
