from django.urls import path

from accounts import views

# Mounted at /api/v1/ (chatapi/urls.py), beside the auth routes.
urlpatterns = [
    path("api-keys", views.ApiKeyListView.as_view(), name="api-key-list"),
    # str, not uuid: a malformed id reaches the ownership check and gets its 404 body.
    path("api-keys/<str:api_key_id>", views.ApiKeyDetailView.as_view(), name="api-key-detail"),
]
