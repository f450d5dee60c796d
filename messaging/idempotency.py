"""``Idempotency-Key`` on ``POST .../messages``: a retry of the same request within the TTL
returns the same user message and follows the same generation, instead of a second turn and
a second charge (https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/).
"""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts.models import User
from accounts.rls import service_role
from chatapi.errors import ApiError, api_error
from messaging.models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
CONSTRAINT = "idempotency_key_per_user"


@dataclass(frozen=True)
class IdempotencyClaim:
    user: User
    key: str
    request_hash: str


class IdempotentReplayError(Exception):
    """The key was already used for this very request: attach to that turn."""

    def __init__(self, record: IdempotencyKey) -> None:
        super().__init__(record.key)
        self.record = record


def idempotency_claim(
    *, user: User, key: str | None, conversation_id: uuid.UUID, body: dict[str, Any]
) -> IdempotencyClaim | None:
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApiError(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters.",
            details={"fields": {HEADER: ["Invalid idempotency key."]}},
        )
    # A retry may switch between streaming, JSON and background; everything else must match.
    material = {"conversation": str(conversation_id)} | {
        name: value for name, value in body.items() if name not in ("stream", "background")
    }
    digest = hashlib.sha256(
        json.dumps(material, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()
    return IdempotencyClaim(user=user, key=key, request_hash=digest)


def idempotency_find(claim: IdempotencyClaim) -> IdempotencyKey | None:
    """The live record for this key, checked against this request."""
    record = (
        IdempotencyKey.objects.filter(
            user=claim.user,
            key=claim.key,
            created_at__gte=timezone.now()
            - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS),
        )
        .select_related("user_message", "assistant_message")
        .first()
    )
    if record is not None and record.request_hash != claim.request_hash:
        raise api_error(
            422,
            f"This {HEADER} was already used with a different request; use a new key.",
            error_type="invalid_request_error",
        )
    return record


def idempotency_record(
    *,
    claim: IdempotencyClaim,
    conversation_id: uuid.UUID,
    user_message_id: uuid.UUID,
    assistant_message_id: uuid.UUID,
) -> None:
    """Claim the key for this turn; call inside the turn's transaction. An expired record of
    the same key gives way. The keys are the service's own (users may only read theirs)."""
    with service_role():
        _record(
            claim=claim,
            conversation_id=conversation_id,
            user_message_id=user_message_id,
            assistant_message_id=assistant_message_id,
        )


def _record(
    *,
    claim: IdempotencyClaim,
    conversation_id: uuid.UUID,
    user_message_id: uuid.UUID,
    assistant_message_id: uuid.UUID,
) -> None:
    IdempotencyKey.objects.filter(
        user=claim.user,
        key=claim.key,
        created_at__lt=timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS),
    ).delete()
    IdempotencyKey.objects.create(
        user=claim.user,
        key=claim.key,
        request_hash=claim.request_hash,
        conversation_id=conversation_id,
        user_message_id=user_message_id,
        assistant_message_id=assistant_message_id,
    )
