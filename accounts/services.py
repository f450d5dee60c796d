from datetime import datetime

from django.contrib.auth.hashers import make_password
from django.utils import timezone

from accounts.keys import DISPLAY_PREFIX_CHARS, api_key_hash, api_key_secret_generate
from accounts.models import ApiKey, User
from accounts.tokens import Claims


def user_get_or_create_from_claims(*, claims: Claims) -> User:
    """The API user for a verified token: created on first sight, e-mail kept current.

    One primary-key read per request; a write only on first sight or an e-mail change.
    """
    user = User.objects.filter(pk=claims.sub).first()
    if user is None:
        user, _created = User.objects.get_or_create(
            id=claims.sub,
            defaults={"email": claims.email, "password": make_password(None)},
        )
    if claims.email and user.email != claims.email:
        User.objects.filter(pk=user.pk).update(email=claims.email)
        user.email = claims.email
    return user


def api_key_create(
    *, user: User, name: str, scopes: list[str], expires_at: datetime | None = None
) -> tuple[ApiKey, str]:
    """A new key for ``user`` and its secret, which is returned this once and never stored."""
    secret = api_key_secret_generate()
    api_key = ApiKey.objects.create(
        user=user,
        name=name,
        prefix=secret[:DISPLAY_PREFIX_CHARS],
        key_hash=api_key_hash(secret),
        scopes=scopes,
        expires_at=expires_at,
    )
    return api_key, secret


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Refuse the key from now on (every server process looks keys up on each request). A
    second revocation keeps the first one's time."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
            revoked_at=api_key.revoked_at
        )
    return api_key
