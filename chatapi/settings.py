"""Settings for chatapi, read from the environment (see .env.example for every variable).

CHATAPI_ENV selects the mode: ``production`` (the default) demands every secret;
``development`` (what ``make run`` sets) and ``test`` (what the test suite sets) fall
back to clearly-insecure local defaults and to an embedded PostgreSQL.
"""

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from chatapi.embedded_db import embedded_data_dir, embedded_database
from chatapi.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_optional_decimal,
    env_optional_int,
    env_required,
    env_str,
    production_requires,
)

# Lets generic classes (ModelAdmin[User], QuerySet[...]) be subscripted at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

CHATAPI_ENV = env_choice("CHATAPI_ENV", "production", ("production", "development", "test"))
DEV_MODE = CHATAPI_ENV != "production"

SECRET_KEY = env_required(
    "DJANGO_SECRET_KEY",
    dev_default="django-insecure-development-only-key-never-use-in-production",
    dev_mode=DEV_MODE,
)
DEBUG = env_bool("DEBUG", default=False)
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEV_MODE else []
)
if not ALLOWED_HOSTS:
    raise production_requires("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # daphne first: its runserver serves ASGI, so streams are not buffered in development.
    "daphne",
    "chatapi.apps.ChatapiAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # ArrayField (API key scopes, a share's message ids).
    "django.contrib.postgres",
    "channels",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "conversations",
    "messaging",
    "usage",
]

# Django's middleware through chatapi/django_middleware.py: the same behaviour, without a thread
# hop per hook under ASGI (and, for the cookie-based ones, without touching API requests).
MIDDLEWARE = [
    # Outermost: the site's Content-Security-Policy (SECURE_CSP) on every response that has
    # none yet; API answers already carry their own, stricter one (chatapi.middleware).
    "chatapi.django_middleware.ContentSecurityPolicyMiddleware",
    "chatapi.middleware.request_id_middleware",
    # Before anything that answers early, so refusals carry the CORS headers too.
    "corsheaders.middleware.CorsMiddleware",
    "chatapi.middleware.access_log_middleware",
    "chatapi.middleware.api_error_envelope_middleware",
    "chatapi.middleware.api_trailing_slash_middleware",
    "chatapi.shutdown.draining_middleware",
    "chatapi.ratelimits.rate_limit_headers_middleware",
    "chatapi.django_middleware.SecurityMiddleware",
    "chatapi.static.AsyncWhiteNoiseMiddleware",
    "chatapi.django_middleware.SessionMiddleware",
    "chatapi.django_middleware.CommonMiddleware",
    "chatapi.django_middleware.CsrfViewMiddleware",
    "chatapi.django_middleware.AuthenticationMiddleware",
    "chatapi.django_middleware.MessageMiddleware",
    "chatapi.django_middleware.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatapi.urls"
ASGI_APPLICATION = "chatapi.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project-wide template overrides (the ReDoc page without its web fonts).
        "DIRS": [BASE_DIR / "chatapi" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL only. Supabase in production; the embedded server when DATABASE_URL is unset
# in development and test modes.
_database_url = env_str("DATABASE_URL")
if _database_url is not None:
    if not _database_url.startswith(("postgres://", "postgresql://")):
        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// or postgresql:// URL.")
    _default_db: dict[str, Any] = dict(dj_database_url.parse(_database_url))
elif DEV_MODE:
    _default_db = embedded_database(embedded_data_dir())
else:
    raise production_requires("DATABASE_URL")
# Under ASGI every request runs its sync part in a thread of its own, so Django's persistent
# connections (CONN_MAX_AGE) would pile up one per thread: a process-wide psycopg pool
# serves them instead (https://docs.djangoproject.com/en/stable/ref/databases/#connection-pool).
_default_db["CONN_MAX_AGE"] = 0
_default_db.setdefault("OPTIONS", {})["pool"] = {
    "min_size": env_int("DATABASE_POOL_MIN_SIZE", 2, minimum=0),
    "max_size": env_int("DATABASE_POOL_MAX_SIZE", 20, minimum=1),
    "timeout": env_float("DATABASE_POOL_TIMEOUT_SECONDS", 10.0, minimum=0.1),
}
# Parameters bound by the server (psycopg's Cursor) instead of quoted into the SQL by the
# client, and a statement run DATABASE_PREPARE_THRESHOLD times on a connection prepared there
# (planned once); 0 prepares nothing, for a transaction-mode pooler without prepared-statement
# support (docs/scaling.md).
_default_db["OPTIONS"]["server_side_binding"] = env_bool("DATABASE_SERVER_SIDE_BINDING", True)
_prepare_threshold = env_int("DATABASE_PREPARE_THRESHOLD", 5, minimum=0)
_default_db["OPTIONS"]["prepare_threshold"] = _prepare_threshold or None
DATABASES = {"default": _default_db}
# Defence in depth: run each authenticated API request's queries as Supabase's
# `authenticated` role with the caller's JWT claims, in one transaction, so the Row Level
# Security policies apply under the app's own ownership filters (accounts/rls.py).
DB_RLS_PER_REQUEST = env_bool("DB_RLS_PER_REQUEST", default=False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Browsers may call the API from these origins (e.g. https://app.example.com); none by default.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/(api|v1)/.*$"
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "chatapi-conversation-id",
    "content-type",
    "idempotency-key",
    "last-event-id",
)
CORS_EXPOSE_HEADERS = (
    "request-id",
    "conversation-id",
    "chatapi-conversation-id",
    "user-message-id",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
)

# HTTPS (production sits behind a TLS-terminating proxy or load balancer).
# Trust the proxy's X-Forwarded-Proto to tell HTTPS requests apart: only behind a proxy that
# sets it (and strips a client's own).
if env_bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
# Admin session and CSRF cookies only over HTTPS, except in development and tests.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=not DEV_MODE)

# The pages people open (the docs, the admin) load and run only what this server serves,
# and no other site may frame them. ReDoc's page has its own policy (chatapi/urls.py); API
# answers load nothing at all (chatapi.middleware.API_CONTENT_SECURITY_POLICY).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    # Swagger UI, ReDoc and the admin's charts set style attributes.
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# The largest request body accepted: 413 beyond. A message is at most 100,000 characters, which
# JSON written with ASCII escapes (Python's json.dumps default) spells in up to 12 bytes each
# (a surrogate pair of \u escapes): 1.2 MB; 2 MiB leaves room for the rest of the body.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

STATIC_URL = "static/"
# Production serves what `manage.py collectstatic` gathered; development and tests serve
# straight from the apps (WhiteNoise's finders), with no collect step.
STATIC_ROOT = None if DEV_MODE else BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = DEV_MODE

# --- API -------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    # An API key first: the JWT class refuses every bearer token that is not a JWT.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.SupabaseJWTAuthentication",
    ],
    # What an API key may do is the view's api_key_scopes (accounts/permissions.py).
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.permissions.ApiKeyScopePermission",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["chatapi.parsers.JsonParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "chatapi.negotiation.ContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chatapi.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Reverse proxies in front of the server that append to X-Forwarded-For: per-IP rate
    # limits use the address that many hops from the end. 0 (the default) uses the peer
    # address, so a client cannot dodge a limit with a forged header.
    "NUM_PROXIES": env_int("TRUSTED_PROXY_COUNT", 0, minimum=0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "chatapi",
    "DESCRIPTION": (
        "A REST API for AI conversations. Authenticate with a Supabase access token "
        "(`Authorization: Bearer <jwt>`) or an API key (`x-api-key: <key>` or "
        "`Authorization: Bearer <key>`, made with POST /api/v1/api-keys). Every error uses "
        'one envelope: `{"type":"error","error":{"type","message","details"},"request_id"}`; '
        "the compatibility routes (/v1/...) answer in Anthropic's or OpenAI's shapes."
    ),
    "VERSION": "1.0.0",
    # The sections of /docs and /redoc, in this order.
    "TAGS": [
        {"name": "index", "description": "Where the API's documents are."},
        {
            "name": "auth",
            "description": "Accounts and sessions (Supabase Auth): register, log in, refresh, "
            "log out, and who the token belongs to.",
        },
        {
            "name": "api-keys",
            "description": "Long-lived, revocable keys for scripts, services and the official "
            "SDKs; managed with a Supabase session only.",
        },
        {"name": "conversations", "description": "The caller's conversations and settings."},
        {
            "name": "messages",
            "description": "Send a message and get the answer, whole or streamed (SSE); "
            "list, resume and cancel.",
        },
        {"name": "models", "description": "The models a conversation may use, with prices."},
        {"name": "usage", "description": "The caller's tokens and costs."},
        {
            "name": "compatibility",
            "description": "Anthropic's Messages API and OpenAI's Chat Completions at the site "
            "root (/v1/...), so the official SDKs work unchanged with an API key; every call is "
            "stored as a conversation. See docs/compat.md.",
        },
        {"name": "health", "description": "Liveness and readiness checks; no token needed."},
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    # No online validator badge: Swagger UI would load it from validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        # Two choice sets of fields named `status`: a message's and a webhook delivery's.
        "MessageStatusEnum": "conversations.models.MessageStatus",
        "WebhookDeliveryStatusEnum": "messaging.models.WebhookDelivery.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # 401, 400, 413 and 415 where they apply, and the error envelope on every error.
        "chatapi.openapi.document_error_responses",
    ],
}

# --- Supabase --------------------------------------------------------------------------------

SUPABASE_URL = (env_str("SUPABASE_URL") or "").rstrip("/") or None
# The anon (publishable) key GoTrue expects in the `apikey` header of proxied auth calls.
SUPABASE_KEY = env_str("SUPABASE_KEY")
# The legacy shared HS256 secret. JWT_SECRET_KEY is the older name, still honoured.
SUPABASE_JWT_SECRET = env_str("SUPABASE_JWT_SECRET") or env_str("JWT_SECRET_KEY")
if SUPABASE_JWT_SECRET is None and DEV_MODE:
    SUPABASE_JWT_SECRET = "dev-only-insecure-supabase-jwt-secret-0123456789abcdef"  # noqa: S105
SUPABASE_JWKS_URL = env_str("SUPABASE_JWKS_URL") or (
    f"{SUPABASE_URL}/auth/v1/.well-known/jwks.json" if SUPABASE_URL else None
)
SUPABASE_JWT_ISSUER = env_str("SUPABASE_JWT_ISSUER") or (
    f"{SUPABASE_URL}/auth/v1" if SUPABASE_URL else None
)
SUPABASE_JWT_AUDIENCE = env_str("SUPABASE_JWT_AUDIENCE") or "authenticated"
_default_algorithms = (["HS256"] if SUPABASE_JWT_SECRET else []) + (
    ["ES256", "RS256"] if SUPABASE_JWKS_URL else []
)
SUPABASE_JWT_ALGORITHMS = env_list("SUPABASE_JWT_ALGORITHMS", _default_algorithms)
_unsupported = set(SUPABASE_JWT_ALGORITHMS) - {"HS256", "ES256", "RS256"}
if _unsupported:
    raise ImproperlyConfigured(
        f"SUPABASE_JWT_ALGORITHMS has unsupported values: {', '.join(sorted(_unsupported))}."
    )
if not SUPABASE_JWT_ALGORITHMS:
    raise ImproperlyConfigured(
        "No way to verify access tokens: set SUPABASE_JWT_SECRET (HS256) "
        "and/or SUPABASE_URL or SUPABASE_JWKS_URL (ES256/RS256)."
    )
if {"ES256", "RS256"} & set(SUPABASE_JWT_ALGORITHMS) and not SUPABASE_JWKS_URL:
    raise ImproperlyConfigured(
        "SUPABASE_JWT_ALGORITHMS allows ES256/RS256 but there is no JWKS URL: "
        "set SUPABASE_URL or SUPABASE_JWKS_URL."
    )
if "HS256" in SUPABASE_JWT_ALGORITHMS and not SUPABASE_JWT_SECRET:
    raise ImproperlyConfigured(
        "SUPABASE_JWT_ALGORITHMS allows HS256 but SUPABASE_JWT_SECRET is unset."
    )
SUPABASE_JWT_LEEWAY_SECONDS = env_int("SUPABASE_JWT_LEEWAY_SECONDS", 10, minimum=0)
SUPABASE_JWKS_CACHE_SECONDS = env_int("SUPABASE_JWKS_CACHE_SECONDS", 600, minimum=1)
# How long a process reuses a token's user row it read (0: read it on every request). A user
# disabled or deleted in another process is refused within this; in the same process at once.
AUTH_USER_CACHE_SECONDS = env_float("AUTH_USER_CACHE_SECONDS", 5.0, minimum=0)
SUPABASE_JWKS_MIN_REFRESH_SECONDS = env_int("SUPABASE_JWKS_MIN_REFRESH_SECONDS", 30, minimum=0)
SUPABASE_HTTP_TIMEOUT_SECONDS = env_float("SUPABASE_HTTP_TIMEOUT_SECONDS", 10.0, minimum=0.1)

# --- API keys ----------------------------------------------------------------------------
# The server-side secret API keys are hashed with (HMAC-SHA256): the database alone cannot
# check a key. Changing it invalidates every key. Long and random; no default in production.
API_KEY_PEPPER = env_required(
    "API_KEY_PEPPER",
    dev_default="dev-only-insecure-api-key-pepper-0123456789abcdef",
    dev_mode=DEV_MODE,
)

# --- Model providers -------------------------------------------------------------------------
# Each catalog model names its provider. Any OpenAI-compatible server (OpenAI, vLLM, Ollama)
# is one more entry here with its own base URL and key.

GROQ_API_KEY = env_str("GROQ_API_KEY")
if GROQ_API_KEY is None and not DEV_MODE:
    raise production_requires("GROQ_API_KEY")
LLM_PROVIDERS: dict[str, dict[str, object]] = {
    "groq": {
        "class": "messaging.llm.openai_compat.GroqClient",
        "base_url": env_str("GROQ_BASE_URL") or "https://api.groq.com/openai/v1",
        "api_key": GROQ_API_KEY,
        "connect_timeout": env_float("LLM_CONNECT_TIMEOUT_SECONDS", 5.0, minimum=0.1),
        "read_timeout": env_float("LLM_READ_TIMEOUT_SECONDS", 60.0, minimum=0.1),
        "max_retries": env_int("LLM_MAX_RETRIES", 2, minimum=0),
        "retry_max_delay": env_float("LLM_RETRY_MAX_DELAY_SECONDS", 8.0, minimum=0),
    },
}
if DEV_MODE:
    # A canned, offline model so `make run` works without a key (messaging/llm/dev.py).
    LLM_PROVIDERS["local"] = {"class": "messaging.llm.dev.DevEchoProvider"}
# A model for short conversation titles after the first answer (unset: the first words of
# the first message are the title).
TITLE_MODEL = env_str("TITLE_MODEL")
# Seconds without upstream data before the stream sends a `ping` event.
SSE_PING_SECONDS = env_float("SSE_PING_SECONDS", 15.0, minimum=0.01)

# --- Redis ------------------------------------------------------------------------------------
# Shared state between server processes (rate-limit counters, generation event logs). Unset:
# each process keeps that state in its own memory, which is right for a single process.
REDIS_URL = env_str("REDIS_URL")

# --- Live events (GET /ws/v1/events, chatapi/live_events.py) ---------------------------------
# Redis pub/sub carries each event to the sockets of every server process; without REDIS_URL
# the in-memory layer reaches this process's sockets only (one process).
CHANNEL_LAYERS = {
    "default": (
        {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_connect_timeout": 1.0}],
                "prefix": "chatapi:live:",
            },
        }
        if REDIS_URL
        else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    )
}
# A socket that has not sent its `authenticate` message this long after opening is closed (4401).
LIVE_EVENTS_AUTH_TIMEOUT_SECONDS = env_float("LIVE_EVENTS_AUTH_TIMEOUT_SECONDS", 5.0, minimum=0.1)
# The server sends {"type": "ping"} this often on every socket.
LIVE_EVENTS_PING_SECONDS = env_float("LIVE_EVENTS_PING_SECONDS", 25.0, minimum=0.1)
# Frames waiting to be written to one socket; a client that falls this far behind is closed
# (1013) rather than buffered for.
LIVE_EVENTS_QUEUE_SIZE = env_int("LIVE_EVENTS_QUEUE_SIZE", 100, minimum=1)
# Open sockets per user across every process (0: no limit); one more is closed with 4429.
LIVE_EVENTS_MAX_CONNECTIONS_PER_USER = env_int(
    "LIVE_EVENTS_MAX_CONNECTIONS_PER_USER", 10, minimum=0
)

# --- Generations --------------------------------------------------------------------------------
# Keep generating (and storing the answer) when the client that started a stream goes away;
# the client can resume it. Off: a disconnect stops the generation, as the Stop button does.
GENERATION_CONTINUE_ON_DISCONNECT = env_bool("GENERATION_CONTINUE_ON_DISCONNECT", default=True)
# How long a finished generation's event log stays replayable (after that, a resume replays
# the stored message).
GENERATION_EVENT_LOG_TTL_SECONDS = env_int("GENERATION_EVENT_LOG_TTL_SECONDS", 3600, minimum=1)
# A running generation refreshes its heartbeat this often; one silent for the stale period
# belongs to a dead process and the sweeper finishes its message as `incomplete`.
GENERATION_HEARTBEAT_SECONDS = env_float("GENERATION_HEARTBEAT_SECONDS", 5.0, minimum=0.05)
GENERATION_STALE_SECONDS = env_float("GENERATION_STALE_SECONDS", 30.0, minimum=0.1)
# When the database is unreachable as an answer ends, its stream stays open while storing is
# retried this long; then the stream ends with an `error` event and this process's heartbeat
# stores the answer once the database is back.
GENERATION_STORE_GRACE_SECONDS = env_float("GENERATION_STORE_GRACE_SECONDS", 20.0, minimum=0.0)
# Graceful shutdown (chatapi/shutdown.py): on SIGTERM, answers in progress get this long to
# finish before the rest are stored `incomplete`. Keep it under the supervisor's own timeout
# (Kubernetes' terminationGracePeriodSeconds 30, systemd's TimeoutStopSec 90 by default).
SHUTDOWN_GRACE_SECONDS = env_float("SHUTDOWN_GRACE_SECONDS", 25.0, minimum=0.0)
# Off: SIGTERM stops the server at once (the sweeper finishes its answers later).
SHUTDOWN_HANDLE_SIGNALS = env_bool("SHUTDOWN_HANDLE_SIGNALS", default=True)
# How long an Idempotency-Key on POST .../messages is remembered.
IDEMPOTENCY_KEY_TTL_SECONDS = env_int("IDEMPOTENCY_KEY_TTL_SECONDS", 86400, minimum=1)

# --- Webhooks -----------------------------------------------------------------------------------
# Webhook URLs must be https and resolve to public addresses only (checked when an endpoint is
# created and again before each delivery). True (development and tests only): plain http and
# private, loopback and link-local addresses are allowed too.
WEBHOOK_ALLOW_PRIVATE_URLS = env_bool("WEBHOOK_ALLOW_PRIVATE_URLS", default=False)
# A failed delivery is retried after about base * 4**(attempt - 1) seconds (plus up to 25 %
# jitter), at most WEBHOOK_RETRY_MAX_DELAY_SECONDS apart, until WEBHOOK_RETRY_WINDOW_SECONDS
# after the event; then it is marked failed.
WEBHOOK_RETRY_BASE_SECONDS = env_float("WEBHOOK_RETRY_BASE_SECONDS", 5.0, minimum=0.01)
WEBHOOK_RETRY_MAX_DELAY_SECONDS = env_float("WEBHOOK_RETRY_MAX_DELAY_SECONDS", 3600.0, minimum=0.01)
WEBHOOK_RETRY_WINDOW_SECONDS = env_float("WEBHOOK_RETRY_WINDOW_SECONDS", 86400.0, minimum=0.01)
# One delivery attempt's whole time (connect, send, answer).
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1)
# How often each server process looks for due deliveries (retries, and events written by other
# processes); its own events wake it at once.
WEBHOOK_POLL_SECONDS = env_float("WEBHOOK_POLL_SECONDS", 5.0, minimum=0.01)

# --- Observability: logs and metrics -------------------------------------------------------
# Logs go to stderr: one JSON object per line (LOG_FORMAT=json, production's default, for a
# log collector) or a plain line (development and test). Every request gets one access line
# from chatapi.middleware.access_log_middleware (logger `chatapi.access`): INFO, WARNING for
# the API's refusals (4xx, and 502/503/504 of a dependency), ERROR for a 500.
LOG_FORMAT = env_choice("LOG_FORMAT", "plain" if DEV_MODE else "json", ("json", "plain"))
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "chatapi.logs.RequestContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "chatapi.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # The embedded database logs every process exit at INFO.
        "pgserver": {"level": "WARNING"},
        # `runserver`'s own access line (daphne's, an error for any 5xx) repeats chatapi.access.
        "django.channels.server": {"level": "CRITICAL"},
        # httpx logs every request it sends at INFO ("HTTP Request: POST ... 200 OK"): a line
        # per turn beside the access line, saying nothing the stored message does not.
        "httpx": {"level": "WARNING"},
    },
}
# Prometheus metrics at GET /metrics (chatapi/metrics.py), per server process. Off unless
# enabled; with METRICS_TOKEN set, a scrape must send `Authorization: Bearer <token>`.
METRICS_ENABLED = env_bool("METRICS_ENABLED", default=False)
METRICS_TOKEN = env_str("METRICS_TOKEN")

# --- Model catalog ---------------------------------------------------------------------------
# The models, their limits and their prices live in the database (usage.models, edited in the
# admin, seeded by a data migration, refreshed from the provider by `manage.py sync_models`).
# A catalog model is usable when it is active and its provider is in LLM_PROVIDERS, so the
# offline `local/dev-echo` model exists only in development and test modes.

# `make run` without a Groq key: the canned offline model (messaging/llm/dev.py) is the default.
_offline_dev = CHATAPI_ENV == "development" and GROQ_API_KEY is None
# The model of a conversation created without one; it must be usable (checked when used).
DEFAULT_CHAT_MODEL = env_str("DEFAULT_CHAT_MODEL") or (
    "local/dev-echo" if _offline_dev else "openai/gpt-oss-20b"
)
# How long a server process reuses the catalog it read (one small query per refresh). A price
# that takes effect at a scheduled time is picked up exactly then; an edit in the admin takes
# effect at once in the process that saved it and within this many seconds in the others.
MODEL_CATALOG_CACHE_SECONDS = env_float("MODEL_CATALOG_CACHE_SECONDS", 30.0, minimum=0)

# --- Usage: budgets and rate limits --------------------------------------------------------------
# Budgets per user, per UTC day and UTC month, in tokens (input + output) and/or USD. Unset:
# no limit. Per-user overrides are edited in the admin (Usage > Budget overrides). A send
# reserves its worst-case estimate before the upstream call and settles at the real cost.
USAGE_DAILY_TOKEN_LIMIT = env_optional_int("USAGE_DAILY_TOKEN_LIMIT", minimum=0)
USAGE_MONTHLY_TOKEN_LIMIT = env_optional_int("USAGE_MONTHLY_TOKEN_LIMIT", minimum=0)
USAGE_DAILY_USD_LIMIT = env_optional_decimal("USAGE_DAILY_USD_LIMIT", minimum=Decimal(0))
USAGE_MONTHLY_USD_LIMIT = env_optional_decimal("USAGE_MONTHLY_USD_LIMIT", minimum=Decimal(0))
# A reservation whose turn never settles (its process died) stops counting after this long.
USAGE_RESERVATION_TTL_SECONDS = env_int("USAGE_RESERVATION_TTL_SECONDS", 1800, minimum=1)
# How long a process reuses a user's limits it read (0: read them on every send). An override
# saved in the admin applies at once in the process that saved it, within this in the others.
USAGE_BUDGET_CACHE_SECONDS = env_float("USAGE_BUDGET_CACHE_SECONDS", 5.0, minimum=0)

# Rate limits (0 turns one off). Counters live in Redis when REDIS_URL is set, so every server
# process shares them; in process memory otherwise.
RATE_LIMIT_SENDS_PER_MINUTE = env_int("RATE_LIMIT_SENDS_PER_MINUTE", 30, minimum=0)
RATE_LIMIT_AUTH_PER_MINUTE = env_int("RATE_LIMIT_AUTH_PER_MINUTE", 10, minimum=0)
RATE_LIMIT_CONCURRENT_STREAMS = env_int("RATE_LIMIT_CONCURRENT_STREAMS", 3, minimum=0)
# A stream slot that is never released (its process died) frees itself after this long.
RATE_LIMIT_STREAM_SLOT_TTL_SECONDS = env_int("RATE_LIMIT_STREAM_SLOT_TTL_SECONDS", 600, minimum=1)
RATE_LIMIT_KEY_PREFIX = env_str("RATE_LIMIT_KEY_PREFIX") or "chatapi:limits:"
# Reads of share links (GET /api/v1/shared/{token} and the /s/{token} page) per client address:
# they need no account, so the address is all there is to count.
RATE_LIMIT_SHARED_PER_MINUTE = env_int("RATE_LIMIT_SHARED_PER_MINUTE", 60, minimum=0)

# --- Search --------------------------------------------------------------------------------------
# The PostgreSQL text search configuration of the stored search vectors and of the queries:
# `simple` (no stemming, no stop words) works for any language; `english`, `french`... stem.
# The vectors are generated columns built with it: after a change, run
# `manage.py search_config_apply` (docs/configuration.md).
SEARCH_CONFIG = env_str("SEARCH_CONFIG") or "simple"
if not re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?", SEARCH_CONFIG):
    raise ImproperlyConfigured(
        f"SEARCH_CONFIG={SEARCH_CONFIG!r} is not a text search configuration name "
        "(e.g. simple, english, or schema.name)."
    )
