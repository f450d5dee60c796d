from django.contrib import admin
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path
from django.views.decorators.csp import csp_override
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularSwaggerSplitView

from chatapi.metrics import metrics_view
from chatapi.redoc import REDOC_CONTENT_SECURITY_POLICY, RedocView, redoc_bundle
from chatapi.views import ApiIndexView, HealthView, OpenApiSchemaView, PingView, site_index

# API routes carry no trailing slash; chatapi.middleware accepts one anyway.
api_v1: list[URLPattern | URLResolver] = [
    path("health", HealthView.as_view(), name="health"),
    path("ping", PingView.as_view(), name="ping"),
    # The busiest routes first: Django tries the patterns in order, and a request keeps the
    # list of those it tried before its match (ResolverMatch.tried) for as long as it is open.
    path("", include("messaging.urls")),
    path("", include("conversations.urls")),
    path("openapi.json", OpenApiSchemaView.as_view(), name="openapi"),
    path("auth/", include("accounts.urls")),
    path("", include("accounts.api_key_urls")),
    path("", include("usage.urls")),
]

urlpatterns = [
    path("", site_index, name="index"),
    # Also /api/v1/ (chatapi.middleware drops an API route's trailing slash).
    path("api/v1", ApiIndexView.as_view(), name="api-index"),
    path("api/v1/", include(api_v1)),
    # The Anthropic- and OpenAI-compatible routes (/v1/messages, /v1/chat/completions,
    # /v1/models), where the official SDKs look for them.
    path("", include("messaging.compat.urls")),
    # Swagger UI's start-up script from its own URL (/docs?script=), not inline: the
    # site's policy runs no inline script.
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="openapi"), name="docs"),
    path(
        "redoc",
        # The stock page fetches from Google's and Redocly's servers; this one from nowhere.
        csp_override(REDOC_CONTENT_SECURITY_POLICY)(RedocView.as_view(url_name="openapi")),
        name="redoc",
    ),
    path("redoc/redoc.standalone.js", redoc_bundle, name="redoc-bundle"),
    # Prometheus; off unless METRICS_ENABLED (chatapi/metrics.py).
    path("metrics", metrics_view, name="metrics"),
    # Browsers ask every page's host for one; the admin and ReDoc pages name none.
    path(
        "favicon.ico",
        RedirectView.as_view(
            url=static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png")
        ),
    ),
    path("admin/", admin.site.urls),
    # A share link's read-only page (GET /api/v1/shared/{token} is the same as JSON).
    path("", include("conversations.page_urls")),
]

handler400 = "chatapi.views.bad_request"
