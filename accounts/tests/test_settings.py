"""The Supabase settings, read from the environment at import: each case imports
chatapi.settings in a fresh interpreter with an environment of its own."""

import subprocess
import sys
from pathlib import Path

from django.conf import settings

# Importing the settings parses DATABASE_URL but never connects; a fixed URL also keeps the
# embedded PostgreSQL (started when DATABASE_URL is unset) out of these tests.
UNUSED_DATABASE_URL = "postgres://unused@127.0.0.1:1/unused"
PRINT_SETTINGS = (
    "import sys; from django.conf import settings; "
    "print(*(repr(getattr(settings, name)) for name in sys.argv[1:]), sep='\\n')"
)


def import_settings(env: dict[str, str], *names: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and fixed code
        [sys.executable, "-c", PRINT_SETTINGS, *names],
        env={
            "DJANGO_SETTINGS_MODULE": "chatapi.settings",
            "DATABASE_URL": UNUSED_DATABASE_URL,
            **env,
        },
        cwd=Path(settings.BASE_DIR),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_older_jwt_secret_key_name_is_honoured() -> None:
    # when
    result = import_settings(
        {"CHATAPI_ENV": "test", "JWT_SECRET_KEY": "older-name-secret"},
        "SUPABASE_JWT_SECRET",
        "SUPABASE_JWT_ALGORITHMS",
    )

    # then
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == ["'older-name-secret'", "['HS256']"]


def test_supabase_jwt_secret_wins_over_the_older_name() -> None:
    # when
    result = import_settings(
        {
            "CHATAPI_ENV": "test",
            "SUPABASE_JWT_SECRET": "current-name-secret",
            "JWT_SECRET_KEY": "older-name-secret",
        },
        "SUPABASE_JWT_SECRET",
    )

    # then
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == ["'current-name-secret'"]


def test_project_url_gives_jwks_url_issuer_and_algorithms() -> None:
    # when
    result = import_settings(
        {
            "CHATAPI_ENV": "test",
            "SUPABASE_URL": "https://abcd1234.supabase.co/",
            "SUPABASE_JWT_SECRET": "a-secret",
        },
        "SUPABASE_URL",
        "SUPABASE_JWKS_URL",
        "SUPABASE_JWT_ISSUER",
        "SUPABASE_JWT_ALGORITHMS",
        "SUPABASE_JWT_AUDIENCE",
    )

    # then
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        "'https://abcd1234.supabase.co'",
        "'https://abcd1234.supabase.co/auth/v1/.well-known/jwks.json'",
        "'https://abcd1234.supabase.co/auth/v1'",
        "['HS256', 'ES256', 'RS256']",
        "'authenticated'",
    ]


def test_jwks_url_can_be_overridden() -> None:
    # when
    result = import_settings(
        {
            "CHATAPI_ENV": "test",
            "SUPABASE_URL": "https://abcd1234.supabase.co",
            "SUPABASE_JWKS_URL": "https://keys.example.com/jwks.json",
        },
        "SUPABASE_JWKS_URL",
    )

    # then
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == ["'https://keys.example.com/jwks.json'"]


def test_production_without_django_secret_key_fails_naming_it_and_development_mode() -> None:
    # when: a shell without CHATAPI_ENV (production, the default)
    result = import_settings({}, "SECRET_KEY")

    # then
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: "
        "The environment variable DJANGO_SECRET_KEY must be set (CHATAPI_ENV is production, "
        "the default; for development on this machine set CHATAPI_ENV=development)."
    )


def test_manage_py_in_a_shell_without_chatapi_env_says_one_line_not_a_traceback() -> None:
    # when: a second shell, without make run's CHATAPI_ENV=development
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={"DATABASE_URL": UNUSED_DATABASE_URL},
        cwd=Path(settings.BASE_DIR),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # then
    assert result.returncode == 1
    assert result.stderr == (
        "manage.py: The environment variable DJANGO_SECRET_KEY must be set (CHATAPI_ENV is "
        "production, the default; for development on this machine set "
        "CHATAPI_ENV=development).\n"
    )


def test_production_without_groq_api_key_says_how_to_run_in_development_mode() -> None:
    # when
    result = import_settings(
        {
            "CHATAPI_ENV": "production",
            "DJANGO_SECRET_KEY": "a-secret-key",
            "ALLOWED_HOSTS": "api.example.com",
            "SUPABASE_JWT_SECRET": "a-jwt-secret",
        },
        "SECRET_KEY",
    )

    # then
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: "
        "The environment variable GROQ_API_KEY must be set (CHATAPI_ENV is production, "
        "the default; for development on this machine set CHATAPI_ENV=development)."
    )


def test_unsupported_algorithm_fails_naming_it() -> None:
    # when
    result = import_settings(
        {"CHATAPI_ENV": "test", "SUPABASE_JWT_ALGORITHMS": "HS256,none"}, "SECRET_KEY"
    )

    # then
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: "
        "SUPABASE_JWT_ALGORITHMS has unsupported values: none."
    )
