"""Fixtures shared by every app's tests: users, tokens and authenticated API clients (and,
from testsupport.fixtures, the fake Groq)."""

import importlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import user_cache_forget
from chatapi.ratelimits import memory_state_clear
from usage.catalog import catalog_cache_clear
from usage.models import LanguageModel

pytest_plugins = ["testsupport.fixtures"]

TokenFactory = Callable[..., str]

_seed_catalog = importlib.import_module("usage.migrations.0002_seed_catalog").seed_catalog


@pytest.fixture(autouse=True)
def usage_state(request: pytest.FixtureRequest, settings: Any) -> Iterator[None]:
    """Each test starts with the seeded model catalog, empty catalog and user caches (a test
    may reuse a user id another test's rolled-back rows had), and rate-limit counters of its
    own: in memory, and under a key prefix of its own in Redis (shared by
    every test process, so never flushed).

    A transactional test empties every table when it ends, the data migration's rows too:
    the seed is restored (idempotently) for the tests that follow."""
    settings.RATE_LIMIT_KEY_PREFIX = f"chatapi-test:{uuid.uuid4().hex}:"
    memory_state_clear()
    catalog_cache_clear()
    user_cache_forget()
    if request.node.get_closest_marker("django_db") or "db" in request.fixturenames:
        from django.apps import apps

        request.getfixturevalue("_django_db_helper")
        if not LanguageModel.objects.filter(model_id="local/dev-echo").exists():
            _seed_catalog(apps, None)
    yield
    catalog_cache_clear()


@pytest.fixture
def make_token() -> TokenFactory:
    """Supabase-shaped HS256 access tokens signed with the configured secret."""

    def make(
        user: User | None = None,
        *,
        secret: str | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": settings.SUPABASE_JWT_ISSUER or "chatapi-test",
            "aud": "authenticated",
            "sub": str(user.pk if user else uuid.uuid4()),
            "email": user.email if user else "someone@example.com",
            "role": "authenticated",
            "aal": "aal1",
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
            "iat": now,
            "exp": now + 3600,
        }
        payload.update(claims)
        payload = {key: value for key, value in payload.items() if value is not None}
        key = secret or settings.SUPABASE_JWT_SECRET
        assert key is not None
        return jwt.encode(payload, key, algorithm="HS256", headers=headers)

    return make


@pytest.fixture
def user(db: None) -> User:
    return User.objects.create(id=uuid.uuid4(), email="ada@example.com")


@pytest.fixture
def other_user(db: None) -> User:
    return User.objects.create(id=uuid.uuid4(), email="mallory@example.com")


def _client_for(user: User, make_token: TokenFactory) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    return client


@pytest.fixture
def api_client(user: User, make_token: TokenFactory) -> APIClient:
    """A client authenticated as `user`."""
    return _client_for(user, make_token)


@pytest.fixture
def other_client(other_user: User, make_token: TokenFactory) -> APIClient:
    """A client authenticated as `other_user`, for ownership tests."""
    return _client_for(other_user, make_token)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()
