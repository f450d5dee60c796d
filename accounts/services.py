from django.contrib.auth.hashers import make_password

from accounts.models import User
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
