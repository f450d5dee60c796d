from decimal import Decimal

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Aggregate, Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.safestring import SafeString

from conversations.export import ExportFormat, transcript_export, transcripts_zip
from conversations.models import Conversation, Message
from conversations.selectors import conversation_transcript, conversation_transcripts
from usage.money import usd_cell


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
    """The conversation's messages, rendered as a transcript (see the template)."""

    model = Message
    template = "admin/conversations/conversation/transcript.html"
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
        "cost",
        "activity_at",
        "archived",
    )
    list_filter = ("model", "archived", "created_at", "activity_at")
    search_fields = ("title", "owner__email")
    list_select_related = ("owner",)
    ordering = ("-activity_at", "-id")
    raw_id_fields = ("owner",)
    readonly_fields = ("id", "owner", "created_at", "updated_at", "last_message_at", "activity_at")
    # Below the transcript and closed until opened: a person comes for the messages.
    fieldsets = (
        (
            "Settings",
            {
                "classes": ("collapse",),
                "fields": (
                    "id",
                    "owner",
                    "title",
                    "model",
                    "system_prompt",
                    ("temperature", "max_output_tokens", "reasoning_effort"),
                    "metadata",
                    "archived",
                    ("created_at", "updated_at"),
                    ("last_message_at", "activity_at"),
                ),
            },
        ),
    )
    inlines = (MessageInline,)
    actions = ("export_markdown", "export_json")

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

    def get_urls(self) -> list[URLPattern]:
        export = path(
            "<path:object_id>/export/",
            self.admin_site.admin_view(self.export_view),
            name="conversations_conversation_export",
        )
        return [export, *super().get_urls()]

    def export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The change page's export links: the file the owner would get from the API."""
        conversation = self.get_object(request, object_id)
        if conversation is None:
            raise Http404
        if not self.has_view_permission(request, conversation):
            raise PermissionDenied
        try:
            export_format = ExportFormat(request.GET.get("format", ExportFormat.JSON))
        except ValueError:
            raise Http404 from None
        return transcript_export(
            transcript=conversation_transcript(conversation=conversation),
            export_format=export_format,
        ).as_response()

    def _export(self, queryset: QuerySet[Conversation], export_format: str) -> HttpResponse:
        """One conversation: its file, as the API serves it. Several: a zip of those files."""
        transcripts = conversation_transcripts(conversations=queryset)
        if len(transcripts) == 1:
            exported = transcript_export(transcript=transcripts[0], export_format=export_format)
        else:
            exported = transcripts_zip(transcripts=transcripts, export_format=export_format)
        return exported.as_response()

    @admin.action(description="Export selected conversations as Markdown")
    def export_markdown(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> HttpResponse:
        return self._export(queryset, ExportFormat.MARKDOWN)

    @admin.action(description="Export selected conversations as JSON")
    def export_json(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> HttpResponse:
        return self._export(queryset, ExportFormat.JSON)

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

    @admin.display(description="Cost", ordering="cost_usd")
    def cost(self, conversation: Conversation) -> SafeString | str:
        value: Decimal | None = conversation.cost_usd  # type: ignore[attr-defined]
        return usd_cell(value)


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
