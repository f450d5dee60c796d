"""Fixtures for the accounts tests: a fake Supabase on loopback, and settings pointing at it."""

import socket
from collections.abc import Iterator

import pytest
from pytest_django import Settings

from testsupport.fake_supabase import FakeSupabase


@pytest.fixture
def fake_supabase() -> Iterator[FakeSupabase]:
    """A running fake Supabase; Django's settings are left alone."""
    fake = FakeSupabase().start()
    yield fake
    fake.stop()


@pytest.fixture
def supabase(fake_supabase: FakeSupabase, settings: Settings) -> FakeSupabase:
    """The fake, with the API configured to use it. Changing SUPABASE_* settings rebuilds the
    cached verifier and GoTrue client (their setting_changed receivers), here and on restore."""
    settings.SUPABASE_URL = fake_supabase.url
    settings.SUPABASE_KEY = fake_supabase.api_key
    settings.SUPABASE_JWKS_URL = fake_supabase.jwks_url
    settings.SUPABASE_JWT_ISSUER = fake_supabase.issuer
    settings.SUPABASE_JWT_ALGORITHMS = ["HS256", "ES256", "RS256"]
    # Ample for loopback on a loaded machine (a login under CI load once took 0.48 s); the
    # timeout tests shorten it to SHORT_TIMEOUT.
    settings.SUPABASE_HTTP_TIMEOUT_SECONDS = 2.0
    return fake_supabase


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
