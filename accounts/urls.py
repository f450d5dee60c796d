from django.urls import path

from accounts import views

urlpatterns = [
    path("register", views.RegisterView.as_view(), name="auth-register"),
    path("login", views.LoginView.as_view(), name="auth-login"),
    path("refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("logout", views.LogoutView.as_view(), name="auth-logout"),
    path("me", views.MeView.as_view(), name="auth-me"),
]

# Mounted at /api/v1/ (chatapi/urls.py), beside the auth routes above.
api_key_urlpatterns = [
    path("api-keys", views.ApiKeyListView.as_view(), name="api-key-list"),
    # str, not uuid: a malformed id reaches the ownership check and gets its 404 body.
    path("api-keys/<str:api_key_id>", views.ApiKeyDetailView.as_view(), name="api-key-detail"),
]
