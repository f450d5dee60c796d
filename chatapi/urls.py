from django.contrib import admin
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

from chatapi.metrics import metrics_view
from chatapi.views import HealthView, OpenApiSchemaView, PingView
from conversations.views import shared_page

# API routes carry no trailing slash; chatapi.middleware accepts one anyway.
api_v1: list[URLPattern | URLResolver] = [
    path("health", HealthView.as_view(), name="health"),
    path("ping", PingView.as_view(), name="ping"),
    path("openapi.json", OpenApiSchemaView.as_view(), name="openapi"),
    path("auth/", include("accounts.urls")),
    path("", include("conversations.urls")),
    path("", include("messaging.urls")),
    path("", include("usage.urls")),
]

# ReDoc needs inline scripts and styles, and runs its search in a worker made from a blob;
# img-src keeps its "API docs by Redocly" badge from fetching a logo from cdn.redoc.ly.
REDOC_CONTENT_SECURITY_POLICY: dict[str, list[str]] = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF, "data:"],
    "worker-src": [CSP.SELF, "blob:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

urlpatterns = [
    path("api/v1/", include(api_v1)),
    # Swagger UI's start-up script from its own URL (/docs?script=), not inline: the
    # site's policy runs no inline script.
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="openapi"), name="docs"),
    path(
        "redoc",
        # The stock page fetches from Google's and Redocly's servers; this one from nowhere.
        csp_override(REDOC_CONTENT_SECURITY_POLICY)(
            SpectacularRedocView.as_view(url_name="openapi", template_name="chatapi/redoc.html")
        ),
        name="redoc",
    ),
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
    path("s/<str:token>", shared_page, name="shared-page"),
]

handler400 = "chatapi.views.bad_request"
