from django.contrib import admin
from django.http import HttpRequest

from messaging.models import Message


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin[Message]):
    """Read-only: messages are history, written by the API."""

    list_display = (
        "id",
        "conversation",
        "role",
        "status",
        "model",
        "input_tokens",
        "output_tokens",
        "usage_estimated",
        "latency_ms",
        "ttft_ms",
        "cost_usd",
        "created_at",
    )
    list_filter = ("role", "status", "model", "usage_estimated", "created_at")
    search_fields = ("=id", "=conversation__id")
    list_select_related = ("conversation",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False
