from django.contrib import admin
from django.http import HttpRequest

from messaging.models import WebhookDelivery, WebhookEndpoint


class WebhookDeliveryInline(admin.TabularInline[WebhookDelivery, WebhookEndpoint]):
    """The endpoint's latest deliveries (the whole log: the deliveries page)."""

    model = WebhookDelivery
    fields = (
        "created_at",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
    )
    readonly_fields = fields
    ordering = ("-created_at",)
    extra = 0
    max_num = 0
    show_change_link = True

    def has_delete_permission(
        self, request: HttpRequest, obj: WebhookEndpoint | None = None
    ) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin[WebhookEndpoint]):
    """Users' webhook endpoints, read-only (their owners create them through the API and see
    the secret once); nothing here shows a secret."""

    list_display = ("url", "owner", "events", "created_at")
    list_select_related = ("owner",)
    search_fields = ("url", "owner__email", "=owner__id")
    ordering = ("-created_at",)
    fields = ("id", "owner", "url", "events", "created_at")
    readonly_fields = fields
    inlines = (WebhookDeliveryInline,)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: WebhookEndpoint | None = None
    ) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin[WebhookDelivery]):
    """The delivery log of every endpoint, read-only."""

    list_display = (
        "created_at",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "event_type")
    list_select_related = ("endpoint",)
    search_fields = ("=id", "endpoint__url", "endpoint__owner__email")
    ordering = ("-created_at",)
    fields = (
        "id",
        "endpoint",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
        "payload",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: WebhookDelivery | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: WebhookDelivery | None = None
    ) -> bool:
        return False
