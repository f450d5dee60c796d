from django.contrib import admin
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from chatapi.metrics import metrics_view
from chatapi.views import HealthView, OpenApiSchemaView, PingView

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

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path(
        "redoc",
        # The stock page fetches from Google's and Redocly's servers; this one from nowhere.
        SpectacularRedocView.as_view(url_name="openapi", template_name="chatapi/redoc.html"),
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
]

handler400 = "chatapi.views.bad_request"
