"""The site's pages of this app, outside the API: a share link's read-only page."""

from django.urls import path

from conversations import views

urlpatterns = [
    path("s/<str:token>", views.shared_page, name="shared-page"),
]
