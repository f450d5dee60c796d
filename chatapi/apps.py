from django.contrib.admin.apps import AdminConfig


class ChatapiAdminConfig(AdminConfig):
    """django.contrib.admin with chatapi's site (chatapi/admin.py) as ``admin.site``."""

    default_site = "chatapi.admin.ChatapiAdminSite"
