from django.urls import path

from usage import views

urlpatterns = [
    path("models", views.ModelListView.as_view(), name="model-list"),
    path("usage/models", views.UsageModelListView.as_view(), name="usage-model-list"),
    path("usage/stats", views.UsageStatsView.as_view(), name="usage-stats"),
    path("usage/daily", views.UsageDailyView.as_view(), name="usage-daily"),
]
