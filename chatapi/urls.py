from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from chatapi.views import HealthView, OpenApiSchemaView

# API routes carry no trailing slash; chatapi.middleware accepts one anyway.
api_v1: list[URLPattern | URLResolver] = [
    path("health", HealthView.as_view(), name="health"),
    path("openapi.json", OpenApiSchemaView.as_view(), name="openapi"),
    path("auth/", include("accounts.urls")),
    path("", include("conversations.urls")),
    path("", include("messaging.urls")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("docs", SpectacularSwaggerView.as_view(url_name="openapi"), name="docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="openapi"), name="redoc"),
    path("admin/", admin.site.urls),
]
