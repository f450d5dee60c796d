from django.conf import settings
from django.db import models
from django.utils import timezone

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
