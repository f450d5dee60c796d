import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Model, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts.models import User
from usage.catalog import catalog_cache_clear
from usage.dashboard import usage_dashboard
from usage.models import (
    BudgetReservation,
    LanguageModel,
    ModelPrice,
    UsageBudget,
    UsageRecord,
    UserUsage,
)
from usage.money import usd_cell
from usage.selectors import model_prices_in_force

# --- the model catalog -----------------------------------------------------------------------


DASHBOARD_MAX_DAYS = 366


class ModelPriceInline(admin.TabularInline[ModelPrice, LanguageModel]):
    """The price history: add a row to change a price from a given time on. Existing rows
    are read-only, so what a past call was charged stays explained."""

    model = ModelPrice
    fields = (
        "effective_from",
        "input_usd_per_mtok",
        "cached_input_usd_per_mtok",
        "output_usd_per_mtok",
        "created_at",
    )
    readonly_fields = ("created_at",)
    ordering = ("-effective_from",)
    extra = 0

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def _current_price(field: str) -> Subquery:
    return Subquery(model_prices_in_force(at=timezone.now()).values(field)[:1])


@admin.register(LanguageModel)
class LanguageModelAdmin(admin.ModelAdmin[LanguageModel]):
    list_display = (
        "model_id",
        "display_name",
        "provider",
        "active",
        "decommissioned",
        "context_window",
        "max_output_tokens",
        "input_price",
        "output_price",
        "price_since",
    )
    list_filter = ("provider", "active", "decommissioned", "reasoning")
    search_fields = ("model_id", "display_name")
    readonly_fields = ("created_at", "updated_at")
    inlines = (ModelPriceInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[LanguageModel]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                input_price=_current_price("input_usd_per_mtok"),
                output_price=_current_price("output_usd_per_mtok"),
                price_since=_current_price("effective_from"),
            )
        )

    @admin.display(description="Input $/Mtok")
    def input_price(self, model: LanguageModel) -> Decimal | None:
        value: Decimal | None = model.input_price  # type: ignore[attr-defined]
        return value

    @admin.display(description="Output $/Mtok")
    def output_price(self, model: LanguageModel) -> Decimal | None:
        value: Decimal | None = model.output_price  # type: ignore[attr-defined]
        return value

    @admin.display(description="Price since")
    def price_since(self, model: LanguageModel) -> datetime | None:
        value: datetime | None = model.price_since  # type: ignore[attr-defined]
        return value

    # Every change reaches this process's catalog at once (others within the cache TTL).
    def save_model(
        self, request: HttpRequest, obj: LanguageModel, form: ModelForm[LanguageModel], change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        catalog_cache_clear()

    def save_formset(
        self,
        request: HttpRequest,
        form: Any,
        formset: BaseInlineFormSet[Any, Any, Any],
        change: bool,
    ) -> None:
        super().save_formset(request, form, formset, change)
        catalog_cache_clear()

    def delete_model(self, request: HttpRequest, obj: LanguageModel) -> None:
        super().delete_model(request, obj)
        catalog_cache_clear()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[LanguageModel]) -> None:
        super().delete_queryset(request, queryset)
        catalog_cache_clear()


# --- the ledger --------------------------------------------------------------------------------


class LedgerUserFilter(admin.SimpleListFilter):
    """``?user=<id>``: one user's rows. Offers only the chosen user, never a list of all."""

    title = "user"
    parameter_name = "user"

    def _user_id(self) -> uuid.UUID | None:
        value = self.value()
        if not value:
            return None
        try:
            return uuid.UUID(str(value))
        except ValueError:
            raise IncorrectLookupParameters(f"Not a user id: {value!r}") from None

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        user_id = self._user_id()
        if user_id is None:
            return []
        email = User.objects.filter(pk=user_id).values_list("email", flat=True).first()
        return [(str(user_id), email or str(user_id))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        user_id = self._user_id()
        return queryset if user_id is None else queryset.filter(user_id=user_id)


class DashboardUserForm(forms.Form):
    """The dashboard's user filter: picked by e-mail address from the admin's autocomplete
    (the users admin's search), sent as the user's id."""

    def __init__(self, *args: Any, admin_site: admin.AdminSite, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The widget asks the admin for the users a ledger row's `user` may point to.
        self.fields["user"] = forms.ModelChoiceField(
            queryset=User.objects.all(),
            required=False,
            widget=AutocompleteSelect(
                UsageRecord._meta.get_field("user"),
                admin_site,
                attrs={"data-placeholder": "Everyone", "style": "width: 18em"},
            ),
        )


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin[UsageRecord]):
    """The ledger, read-only: what each upstream call consumed and cost."""

    list_display = (
        "created_at",
        "user",
        "model",
        "kind",
        "tokens",
        "estimated",
        "cost",
        "unpriced",
        "conversation",
    )
    list_filter = (
        LedgerUserFilter,
        "model",
        "kind",
        "usage_estimated",
        "price_unknown",
        "created_at",
    )
    search_fields = ("=user__id", "user__email", "=conversation_id", "=message_id")
    list_select_related = ("user",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: UsageRecord | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: UsageRecord | None = None) -> bool:
        return False

    # The list's columns are kept narrow enough for 1280 px beside the filters.
    @admin.display(description="Tokens")
    def tokens(self, record: UsageRecord) -> SafeString:
        if record.reasoning_tokens is None:
            return format_html(
                "{} in / {} out", f"{record.input_tokens:,}", f"{record.output_tokens:,}"
            )
        return format_html(
            "{} in / {} out<br>({} reasoning)",
            f"{record.input_tokens:,}",
            f"{record.output_tokens:,}",
            f"{record.reasoning_tokens:,}",
        )

    @admin.display(description="Estimated", boolean=True, ordering="usage_estimated")
    def estimated(self, record: UsageRecord) -> bool:
        return record.usage_estimated

    @admin.display(description="Unpriced", boolean=True, ordering="price_unknown")
    def unpriced(self, record: UsageRecord) -> bool:
        return record.price_unknown

    @admin.display(description="Cost", ordering="cost_usd")
    def cost(self, record: UsageRecord) -> SafeString | str:
        return usd_cell(record.cost_usd)

    @admin.display(description="Conversation")
    def conversation(self, record: UsageRecord) -> SafeString | str:
        """The first 8 characters of the id, linked to the conversation's page (which says so
        when the conversation has been deleted: ledger rows outlive it)."""
        if record.conversation_id is None:
            return ""
        url = reverse("admin:conversations_conversation_change", args=[record.conversation_id])
        return format_html(
            '<a href="{}" title="{}">{}…</a>',
            url,
            record.conversation_id,
            str(record.conversation_id)[:8],
        )

    def get_urls(self) -> list[URLPattern]:
        dashboard = path(
            "dashboard/",
            self.admin_site.admin_view(self.dashboard_view),
            name="usage_usagerecord_dashboard",
        )
        return [dashboard, *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        """Daily tokens and cost over ?from=&to= (UTC days, default the last 30), for
        everyone or ?user= / ?model=, with the top users and models."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.now().date()
        error = None
        try:
            last_day = date.fromisoformat(request.GET.get("to") or today.isoformat())
            first_day = date.fromisoformat(
                request.GET.get("from") or (last_day - timedelta(days=29)).isoformat()
            )
        except ValueError:
            error = "Dates must be YYYY-MM-DD; showing the last 30 days."
            first_day, last_day = today - timedelta(days=29), today
        if first_day > last_day or (last_day - first_day).days > DASHBOARD_MAX_DAYS:
            error = f"A range is 1 to {DASHBOARD_MAX_DAYS + 1} days; showing the last 30 days."
            first_day, last_day = today - timedelta(days=29), today
        user_form = DashboardUserForm(request.GET, admin_site=self.admin_site)
        user = user_form.cleaned_data["user"] if user_form.is_valid() else None
        if user is None and user_form["user"].value():
            error = "No such user; showing everyone."
            user_form = DashboardUserForm(admin_site=self.admin_site)
        model_filter = request.GET.get("model", "").strip()
        context = {
            **self.admin_site.each_context(request),
            "title": "Usage dashboard",
            "dashboard": usage_dashboard(
                first_day=first_day,
                last_day=last_day,
                user_id=str(user.pk) if user else None,
                model=model_filter or None,
            ),
            "user_form": user_form,
            "media": self.media + user_form.media,
            "model_filter": model_filter,
            # Offered as the model box's suggestions; any id the ledger holds may be typed.
            "model_ids": LanguageModel.objects.order_by("model_id").values_list(
                "model_id", flat=True
            ),
            "error": error,
        }
        return TemplateResponse(request, "admin/usage/dashboard.html", context)


# --- users: totals and budgets ---------------------------------------------------------------


class UsageBudgetInline(admin.StackedInline[UsageBudget, UserUsage]):
    model = UsageBudget
    fk_name = "user"
    fields = (
        "unlimited",
        ("daily_token_limit", "monthly_token_limit"),
        ("daily_usd_limit", "monthly_usd_limit"),
    )
    extra = 0
    max_num = 1
    verbose_name = "budget override"
    verbose_name_plural = "budget override (empty fields use the defaults from the settings)"


def _ledger_total(aggregate: Any, **filters: Any) -> Subquery:
    """``aggregate`` over the row's ledger rows, as a correlated subquery: evaluated for the
    rows on the page only."""
    return Subquery(
        UsageRecord.objects.filter(user=OuterRef("pk"), **filters)
        .order_by()
        .values("user")
        .annotate(value=aggregate)
        .values("value")
    )


@admin.register(UserUsage)
class UserUsageAdmin(admin.ModelAdmin[UserUsage]):
    """Per user: usage totals from the ledger, and the budget override."""

    list_display = (
        "email",
        "requests",
        "total_tokens",
        "cost_usd",
        "month_cost_usd",
        "has_budget_override",
        "ledger",
    )
    search_fields = ("email", "=id")
    ordering = ("-date_joined",)
    fields = ("id", "email", "requests", "total_tokens", "cost_usd", "month_cost_usd", "ledger")
    readonly_fields = fields
    inlines = (UsageBudgetInline,)
    list_select_related = ("usage_budget",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[UserUsage]:
        month_start = (
            timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                request_count=Coalesce(_ledger_total(Count("pk")), 0),
                token_total=_ledger_total(Sum("input_tokens") + Sum("output_tokens")),
                cost_total=_ledger_total(Sum("cost_usd")),
                month_cost_total=_ledger_total(Sum("cost_usd"), created_at__gte=month_start),
            )
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: UserUsage | None = None) -> bool:
        return False

    @admin.display(description="Requests", ordering="request_count")
    def requests(self, user: UserUsage) -> int:
        value: int = user.request_count  # type: ignore[attr-defined]
        return value

    @admin.display(description="Tokens", ordering="token_total")
    def total_tokens(self, user: UserUsage) -> int:
        value: int | None = user.token_total  # type: ignore[attr-defined]
        return value or 0

    @admin.display(description="Cost", ordering="cost_total")
    def cost_usd(self, user: UserUsage) -> SafeString | str:
        value: Decimal | None = user.cost_total  # type: ignore[attr-defined]
        return usd_cell(value)

    @admin.display(description="This month (UTC)", ordering="month_cost_total")
    def month_cost_usd(self, user: UserUsage) -> SafeString | str:
        value: Decimal | None = user.month_cost_total  # type: ignore[attr-defined]
        return usd_cell(value)

    @admin.display(description="Budget override", boolean=True)
    def has_budget_override(self, user: UserUsage) -> bool:
        return hasattr(user, "usage_budget")

    @admin.display(description="Ledger")
    def ledger(self, user: UserUsage) -> str:
        url = reverse("admin:usage_usagerecord_changelist")
        return format_html('<a href="{}?user={}">ledger rows</a>', url, user.pk)


@admin.register(UsageBudget)
class UsageBudgetAdmin(admin.ModelAdmin[UsageBudget]):
    """Every budget override in one list (also editable on the user usage page)."""

    list_display = (
        "user",
        "unlimited",
        "daily_token_limit",
        "monthly_token_limit",
        "daily_usd_limit",
        "monthly_usd_limit",
        "updated_at",
    )
    list_filter = ("unlimited",)
    search_fields = ("user__email", "=user__id")
    list_select_related = ("user",)
    raw_id_fields = ("user",)


@admin.register(BudgetReservation)
class BudgetReservationAdmin(admin.ModelAdmin[BudgetReservation]):
    """Turns in flight and what they hold. Deleting one releases its hold."""

    list_display = ("message_id", "user", "tokens", "cost", "created_at", "expires_at")
    list_select_related = ("user",)
    search_fields = ("=user__id", "user__email", "=message_id")
    ordering = ("-created_at",)

    @admin.display(description="Cost", ordering="cost_usd")
    def cost(self, reservation: BudgetReservation) -> SafeString | str:
        return usd_cell(reservation.cost_usd)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: BudgetReservation | None = None
    ) -> bool:
        return False
