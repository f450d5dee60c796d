import hmac
from datetime import datetime, timedelta
from uuid import UUID

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.keys import ApiKeyCaller, api_key_hash
from accounts.models import ApiKey, User
from accounts.tokens import Claims
from chatapi.errors import AuthenticationError, NotFoundError

# How often a key's last_used_at is written at most: a busy key costs one UPDATE a minute.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_key_list(*, user: User) -> QuerySet[ApiKey]:
    """The user's keys, revoked ones included (they stay listed, with revoked_at), newest
    first."""
    return ApiKey.objects.filter(user=user)


def api_key_get_for_user(*, user: User, api_key_id: str | UUID) -> ApiKey:
    """The key with this id if ``user`` owns it, else NotFoundError: a malformed, a missing
    and another user's id get the same answer from the same single query."""
    try:
        pk = api_key_id if isinstance(api_key_id, UUID) else UUID(api_key_id)
    except ValueError:
        raise NotFoundError("API key not found.") from None
    api_key = ApiKey.objects.filter(pk=pk, user=user).first()
    if api_key is None:
        raise NotFoundError("API key not found.")
    return api_key


def api_key_is_usable(*, api_key_id: UUID) -> bool:
    """Whether the key still authenticates: not revoked, not expired, its owner active (for
    a connection it opened earlier)."""
    return (
        ApiKey.objects.filter(pk=api_key_id, revoked_at__isnull=True, user__is_active=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .exists()
    )


def api_key_authenticate(*, secret: str, now: datetime | None = None) -> tuple[User, ApiKeyCaller]:
    """The owner of the key ``secret`` and what the key may do; AuthenticationError for an
    unknown, revoked or expired key, or a disabled owner.

    One indexed query by the keyed hash, every request: a revocation is seen by every server
    process at once, with no cache to expire. ``last_used_at`` is written only when the
    stored one is a minute old, by a conditional UPDATE, so concurrent requests in several
    processes write it once."""
    now = now or timezone.now()
    digest = api_key_hash(secret)
    api_key = ApiKey.objects.select_related("user").filter(key_hash=digest).first()
    # The index found it by equality; the comparison that decides is constant-time.
    if api_key is None or not hmac.compare_digest(api_key.key_hash, digest):
        raise AuthenticationError("Invalid API key.")
    if api_key.revoked_at is not None:
        raise AuthenticationError("This API key has been revoked.")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise AuthenticationError("This API key has expired.")
    user = api_key.user
    if not user.is_active:
        raise AuthenticationError("This account is disabled.")
    stale = now - LAST_USED_RESOLUTION
    if api_key.last_used_at is None or api_key.last_used_at <= stale:
        ApiKey.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), pk=api_key.pk
        ).update(last_used_at=now)
    claims = Claims(
        sub=user.pk,
        role="authenticated",
        email=user.email,
        session_id=None,
        aal=None,
        is_anonymous=False,
        expires_at=int(api_key.expires_at.timestamp()) if api_key.expires_at else 0,
        raw={"sub": str(user.pk), "email": user.email, "api_key_id": str(api_key.pk)},
    )
    return user, ApiKeyCaller(key_id=api_key.pk, scopes=frozenset(api_key.scopes), claims=claims)
