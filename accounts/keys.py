"""API key secrets: how they look, and the keyed hash they are stored and looked up by.

A secret is ``sk-chatapi-`` and 43 URL-safe characters (256 bits from ``secrets``): the fixed
prefix lets secret scanners (GitHub's, gitleaks) recognise a leaked key. Only
HMAC-SHA256(API_KEY_PEPPER, secret) is stored, so a copy of the database alone opens nothing,
and a request's key is found by that hash through a unique index, never by scanning.
"""

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from django.conf import settings

from accounts.tokens import Claims

SECRET_PREFIX = "sk-chatapi-"  # noqa: S105 - the public part every key starts with
_SECRET_BYTES = 32
# What ``prefix`` keeps: the fixed part and 5 random characters (30 bits), to tell keys apart.
DISPLAY_PREFIX_CHARS = len(SECRET_PREFIX) + 5


def api_key_secret_generate() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def api_key_hash(secret: str) -> str:
    pepper: str = settings.API_KEY_PEPPER
    return hmac.new(pepper.encode(), secret.encode(), hashlib.sha256).hexdigest()


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(SECRET_PREFIX)


@dataclass(frozen=True)
class ApiKeyCaller:
    """``request.auth`` of a request authenticated by an API key."""

    key_id: uuid.UUID
    scopes: frozenset[str]
    # What the per-request Row Level Security transaction runs with (accounts.rls): the
    # key's owner as `authenticated`, as a session of theirs would.
    claims: Claims
