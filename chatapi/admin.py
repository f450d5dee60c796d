"""The admin site: Django's, branded, with the usage dashboard listed beside the models."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse


class ChatapiAdminSite(admin.AdminSite):
    site_header = "chatapi admin"
    site_title = "chatapi admin"
    index_title = "chatapi administration"
    # The app list beside every page takes a quarter of a 1280 px screen, which the ledger's
    # and the conversations' change lists need; the index and the breadcrumbs lead anywhere.
    enable_nav_sidebar = False

    def get_app_list(
        self, request: HttpRequest, app_label: str | None = None
    ) -> list[dict[str, Any]]:
        """The dashboard has no model of its own; it is listed first under Usage (on the index
        and the Usage page), for anyone who may view the usage records it sums."""
        app_list = super().get_app_list(request, app_label)
        for app in app_list:
            models = app["models"]
            if app["app_label"] == "usage" and any(
                model["object_name"] == "UsageRecord" for model in models
            ):
                models.insert(
                    0,
                    {
                        "name": "Usage dashboard",
                        "object_name": "UsageDashboard",
                        "perms": {"view": True},
                        "admin_url": reverse("admin:usage_usagerecord_dashboard"),
                        "add_url": None,
                        "view_only": True,
                    },
                )
        return app_list
