from decimal import Decimal

from django.contrib import admin
from django.db.models import Aggregate, Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from conversations.models import Conversation
from messaging.models import Message


def _per_conversation(aggregate: Aggregate) -> Subquery:
    """``aggregate`` over the row's messages, as a correlated subquery: evaluated only for
    the rows on the page, where a JOIN and GROUP BY would aggregate every message first."""
    return Subquery(
        Message.objects.filter(conversation=OuterRef("pk"))
        .order_by()
        .values("conversation")
        .annotate(value=aggregate)
        .values("value")
    )


class MessageInline(admin.TabularInline[Message, Conversation]):
    model = Message
    fields = (
        "created_at",
        "role",
        "status",
        "content",
        "model",
        "input_tokens",
        "output_tokens",
        "cost_usd",
    )
    readonly_fields = fields
    ordering = ("created_at", "id")
    extra = 0
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = (
        "__str__",
        "owner_email",
        "model",
        "message_count",
        "tokens",
        "cost_usd",
        "activity_at",
        "archived",
    )
    list_filter = ("model", "archived", "created_at", "activity_at")
    search_fields = ("title", "owner__email")
    list_select_related = ("owner",)
    ordering = ("-activity_at", "-id")
    raw_id_fields = ("owner",)
    readonly_fields = ("id", "owner", "created_at", "updated_at", "last_message_at", "activity_at")
    fields = (
        "id",
        "owner",
        "title",
        "model",
        "system_prompt",
        "temperature",
        "max_output_tokens",
        "reasoning_effort",
        "metadata",
        "archived",
        "created_at",
        "updated_at",
        "last_message_at",
        "activity_at",
    )
    inlines = (MessageInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                message_count=Coalesce(_per_conversation(Count("pk")), 0),
                input_tokens=_per_conversation(Sum("input_tokens")),
                output_tokens=_per_conversation(Sum("output_tokens")),
                cost_usd=_per_conversation(Sum("cost_usd")),
            )
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # conversations are the users' own, made through the API

    @admin.display(description="Owner", ordering="owner__email")
    def owner_email(self, conversation: Conversation) -> str:
        return conversation.owner.email

    @admin.display(description="Messages", ordering="message_count")
    def message_count(self, conversation: Conversation) -> int:
        count: int = conversation.message_count  # type: ignore[attr-defined]
        return count

    @admin.display(description="Tokens (in / out)")
    def tokens(self, conversation: Conversation) -> str:
        input_tokens = conversation.input_tokens  # type: ignore[attr-defined]
        output_tokens = conversation.output_tokens  # type: ignore[attr-defined]
        return f"{input_tokens or 0} / {output_tokens or 0}"

    @admin.display(description="Cost (USD)", ordering="cost_usd")
    def cost_usd(self, conversation: Conversation) -> Decimal | None:
        cost: Decimal | None = conversation.cost_usd  # type: ignore[attr-defined]
        return cost
