"""The model catalog with its price history, the usage ledger, budgets and reservations.

Money is ``Decimal``: prices are USD per million tokens with at most 4 decimal places, so a
cost (tokens x price / 10^6) is exact at the ledger's 10 decimal places.
"""

import uuid
from typing import TypeAlias

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import User


class LanguageModel(models.Model):
    """A model a provider serves. Usable by the API when active (and priced, as a rule: the
    sync adds new ids inactive, and an operator activates them once they have a price).

    The catalog's stored row; ``catalog.ChatModel`` is the API's read of an active one with
    its prices, ``provider_models.ProviderModel`` an entry of the provider's own list."""

    provider = models.CharField(
        max_length=40, help_text="The entry of settings.LLM_PROVIDERS that serves it."
    )
    model_id = models.CharField(
        max_length=100, unique=True, help_text="The provider's model id, e.g. openai/gpt-oss-20b."
    )
    display_name = models.CharField(max_length=200)
    context_window = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField()
    reasoning = models.BooleanField(
        default=False, help_text="Takes reasoning_effort and streams its reasoning."
    )
    active = models.BooleanField(
        default=False, help_text="Offered by the API. Conversations on an inactive model stay."
    )
    decommissioned = models.BooleanField(
        default=False, help_text="The provider retired it; it cannot be activated."
    )
    decommissioned_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was found retired, when known."
    )
    replaced_by = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The model to use instead, named in the error a conversation on this "
        "model gets once it is retired.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("provider", "model_id")
        constraints = [
            models.CheckConstraint(
                condition=~Q(active=True, decommissioned=True),
                name="language_model_decommissioned_inactive",
                violation_error_message="A decommissioned model cannot be active.",
            ),
            models.CheckConstraint(
                condition=Q(context_window__gte=1) & Q(max_output_tokens__gte=1),
                name="language_model_limits_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.model_id


class ModelPrice(models.Model):
    """A model's prices from ``effective_from`` until the next row's. Rows are added, never
    edited: the ledger stores each call's cost, so a new price never rewrites past costs."""

    language_model = models.ForeignKey(
        LanguageModel, on_delete=models.PROTECT, related_name="prices"
    )
    effective_from = models.DateTimeField(default=timezone.now)
    input_usd_per_mtok = models.DecimalField(max_digits=12, decimal_places=4)
    # null: cached input tokens are charged at the input price.
    cached_input_usd_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True
    )
    output_usd_per_mtok = models.DecimalField(max_digits=12, decimal_places=4)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("language_model", "-effective_from")
        constraints = [
            models.UniqueConstraint(
                fields=["language_model", "effective_from"], name="model_price_one_per_instant"
            ),
            models.CheckConstraint(
                condition=Q(input_usd_per_mtok__gte=0)
                & Q(output_usd_per_mtok__gte=0)
                & (Q(cached_input_usd_per_mtok__isnull=True) | Q(cached_input_usd_per_mtok__gte=0)),
                name="model_price_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.language_model_id} from {self.effective_from:%Y-%m-%d %H:%M}"


class UsageKind(models.TextChoices):
    CHAT = "chat"
    TITLE = "title"


class UsageRecord(models.Model):
    """The ledger: one row per upstream call that consumed tokens (a request refused before
    any output has none). Conversation and message are plain ids, and the user is nullable,
    so the row outlives them: this is what was spent."""

    Kind: TypeAlias = UsageKind  # noqa: UP040 (a `type` alias has no members at run time)

    # No index of its own: usage_record_user_created leads with it.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, db_index=False
    )
    conversation_id = models.UUIDField(null=True, blank=True)
    message_id = models.UUIDField(null=True, blank=True)
    kind = models.CharField(max_length=16, choices=UsageKind.choices, default=UsageKind.CHAT)
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=100)
    input_tokens = models.PositiveIntegerField()
    output_tokens = models.PositiveIntegerField()
    # Part of output_tokens; null when the provider does not say.
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Part of input_tokens; null when the provider does not say.
    cached_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    usage_estimated = models.BooleanField(
        default=False, help_text="The counts are this service's estimate, not the provider's."
    )
    # The price in force at the call; null when the model had none.
    price = models.ForeignKey(
        ModelPrice, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # null when the price is unknown (price_unknown), never 0 for unknown.
    cost_usd = models.DecimalField(max_digits=18, decimal_places=10, null=True, blank=True)
    price_unknown = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    # The API key that made the call; null for a Supabase session. Keys are revoked, not
    # deleted, so the row keeps naming it (until its user is deleted).
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        db_index=False,
        related_name="+",
    )

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            # Every read is one user's rows in a time range: stats, the daily series, and the
            # budget check of every send. Covering (the ledger is insert-only, so autovacuum
            # keeps the visibility map set): index-only scans, never a heap page per row.
            models.Index(
                fields=["user", "created_at"],
                include=[
                    "model",
                    "kind",
                    "conversation_id",
                    "input_tokens",
                    "output_tokens",
                    "reasoning_tokens",
                    "cost_usd",
                    "price_unknown",
                ],
                name="usage_record_user_created",
            ),
            # The admin's ledger, newest first, filtered by model.
            models.Index(fields=["created_at"], name="usage_record_created"),
            # Statistics of one key (api_key_id): its rows in a time range. Partial: most
            # calls come from sessions.
            models.Index(
                fields=["api_key", "created_at"],
                condition=Q(api_key__isnull=False),
                name="usage_record_api_key_created",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(cost_usd__isnull=True, price_unknown=True)
                | Q(cost_usd__gte=0, price_unknown=False),
                name="usage_record_cost_known_or_flagged",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=UsageKind.values), name="usage_record_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} {self.input_tokens}+{self.output_tokens} at {self.created_at}"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class UsageDaily(models.Model):
    """The ledger summed per user, UTC day, model and kind: what the usage statistics, the
    budget check and the admin dashboard read for whole UTC days instead of every ledger row.

    Written only with the ledger, in the same transaction, by an upsert
    (``usage.services.ledger_append``), so it always equals the ledger's sums. Like the
    ledger it outlives the user (null then): the dashboard's totals keep their calls."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, db_index=False
    )
    day = models.DateField(help_text="The UTC date of the calls.")
    kind = models.CharField(max_length=16, choices=UsageKind.choices)
    model = models.CharField(max_length=100)
    requests = models.PositiveBigIntegerField(help_text="Ledger rows.")
    input_tokens = models.PositiveBigIntegerField()
    output_tokens = models.PositiveBigIntegerField()
    # Sums of the rows that say (the ledger's nulls count as 0).
    reasoning_tokens = models.PositiveBigIntegerField()
    cached_input_tokens = models.PositiveBigIntegerField()
    # The sum of the priced rows' costs; null when none was priced (as SUM over the ledger).
    cost_usd = models.DecimalField(max_digits=28, decimal_places=10, null=True, blank=True)
    unpriced_requests = models.PositiveBigIntegerField()
    estimated_requests = models.PositiveBigIntegerField()

    class Meta:
        verbose_name_plural = "usage daily"
        constraints = [
            # Also the index of every read: one user's days in a range.
            models.UniqueConstraint(
                fields=["user", "day", "model", "kind"], name="usage_daily_one_per_key"
            ),
        ]
        indexes = [models.Index(fields=["day"], name="usage_daily_day")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day} {self.model} {self.kind}"


class UsageConversationDay(models.Model):
    """The conversations a user's ledger rows name on each UTC day: distinct conversations
    over whole days, which the per-model sums cannot add up. Written with the ledger."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False)
    day = models.DateField()
    conversation_id = models.UUIDField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "day", "conversation_id"], name="usage_conversation_day_one"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day} {self.conversation_id}"


class UsageHourly(models.Model):
    """A user's ledger summed per UTC hour, every model and kind together: the daily series
    in any time zone whose days start on a whole UTC hour (all of today's but a handful).
    Written with the ledger."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False)
    hour = models.DateTimeField(help_text="The start of the UTC hour.")
    requests = models.PositiveBigIntegerField()
    input_tokens = models.PositiveBigIntegerField()
    output_tokens = models.PositiveBigIntegerField()
    cost_usd = models.DecimalField(max_digits=28, decimal_places=10, null=True, blank=True)

    class Meta:
        verbose_name_plural = "usage hourly"
        constraints = [
            models.UniqueConstraint(fields=["user", "hour"], name="usage_hourly_one_per_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.hour:%Y-%m-%d %H:00}"


class UsageBudget(models.Model):
    """A user's overrides of the default budgets (settings.USAGE_*_LIMIT). Empty fields use
    the default; ``unlimited`` lifts every limit for this user."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_budget"
    )
    unlimited = models.BooleanField(default=False, help_text="No limits for this user.")
    daily_token_limit = models.PositiveBigIntegerField(null=True, blank=True)
    monthly_token_limit = models.PositiveBigIntegerField(null=True, blank=True)
    daily_usd_limit = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    monthly_usd_limit = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(daily_usd_limit__isnull=True) | Q(daily_usd_limit__gte=0))
                & (Q(monthly_usd_limit__isnull=True) | Q(monthly_usd_limit__gte=0)),
                name="usage_budget_usd_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"Budget of {self.user_id}"


class BudgetReservation(models.Model):
    """What a turn in flight may still spend: its worst-case estimate, held from before the
    upstream call until the turn is recorded (or ``expires_at``, if its process died)."""

    # One per turn: the assistant message being generated.
    message_id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    tokens = models.PositiveBigIntegerField()
    # null when the model has no price: the turn counts against token limits only.
    cost_usd = models.DecimalField(max_digits=18, decimal_places=10, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Reservation for {self.message_id}"


class UserUsage(User):
    """The admin's per-user page: usage totals from the ledger and the budget overrides."""

    class Meta:
        proxy = True
        verbose_name = "user usage"
        verbose_name_plural = "user usage"
