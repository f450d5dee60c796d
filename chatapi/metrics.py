"""Prometheus metrics: every definition in one place, and the ``GET /metrics`` endpoint.

Each server process keeps its own registry (prometheus_client's default one) and is scraped
on its own port: Prometheus labels each series with the target it scraped, and ``sum()``
adds the processes up. That needs no shared state between processes; see docs/deployment.md
for why one process per port.

Label values are bounded sets (methods, URL patterns rather than paths, catalog model ids,
error types), never ids or user input, so the number of series stays small.
"""

import hmac
from decimal import Decimal

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

# Buckets in seconds. Requests: an API answer, up to a long non-streamed generation.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Model latencies: a fast first token to a reasoning model thinking for a minute.
_MODEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120)

HTTP_REQUESTS = Counter(
    "chatapi_http_requests",
    "HTTP requests answered, by method, URL pattern and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "chatapi_http_request_duration_seconds",
    "Time from a request's arrival to its response headers (for a stream: its start).",
    ["method", "route"],
    buckets=_REQUEST_BUCKETS,
)
ACTIVE_STREAMS = Gauge(
    "chatapi_active_streams",
    "Generations streaming from the model provider in this process (whether or not a "
    "client is following them).",
)
TIME_TO_FIRST_TOKEN = Histogram(
    "chatapi_time_to_first_token_seconds",
    "Time from a send request's arrival to the first text or reasoning token, by model.",
    ["model"],
    buckets=_MODEL_BUCKETS,
)
UPSTREAM_LATENCY = Histogram(
    "chatapi_upstream_latency_seconds",
    "Time from sending a request to the model provider to its response headers, per attempt.",
    ["provider"],
    buckets=_MODEL_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "chatapi_upstream_errors",
    "Model provider failures by error type: each failed attempt (retried ones too) and each "
    "failure after a stream started.",
    ["provider", "type"],
)
TOKENS = Counter(
    "chatapi_tokens",
    "Tokens of recorded turns, by model and direction (input or output).",
    ["model", "direction"],
)
COST_USD = Counter(
    "chatapi_cost_usd",
    "Cost in USD of recorded turns, by model. A float, for dashboards: the exact amounts "
    "are the messages' and the usage ledger's.",
    ["model"],
)


LIVE_EVENTS = Counter(
    "chatapi_live_events",
    "Live events this process published, by outcome: sent to the channel layer, failed "
    "(Redis refused or timed out), dropped (Redis being skipped after a failure, or too many "
    "sends waiting), skipped (a process without a server loop: a command, a shell).",
    ["outcome"],
)
LIVE_CONNECTIONS = Gauge(
    "chatapi_live_connections",
    "Live event WebSockets open on this process.",
)


def turn_observe(
    *, model: str, input_tokens: int, output_tokens: int, cost_usd: Decimal | None
) -> None:
    """Count a recorded turn's tokens and cost."""
    TOKENS.labels(model, "input").inc(input_tokens)
    TOKENS.labels(model, "output").inc(output_tokens)
    if cost_usd:
        COST_USD.labels(model).inc(float(cost_usd))


def _authorized(request: HttpRequest) -> bool:
    token: str | None = settings.METRICS_TOKEN
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


async def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition of this process's metrics. 404 unless METRICS_ENABLED;
    with METRICS_TOKEN set, only for ``Authorization: Bearer <METRICS_TOKEN>``."""
    if not settings.METRICS_ENABLED:
        raise Http404
    if not _authorized(request):
        response = HttpResponse("Unauthorized.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if request.method not in ("GET", "HEAD"):
        response = HttpResponse(status=405)
        response["Allow"] = "GET, HEAD"
        return response
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
