from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chatapi.serializers import StrictSerializer
from usage.catalog import ChatModel

DAILY_MAX_DAYS = 366
DAILY_DEFAULT_DAYS = 30


@cache
def _zone_names() -> frozenset[str]:
    # The IANA names only (no "localtime", "posixrules"...): PostgreSQL knows these too.
    return frozenset(available_timezones())


@extend_schema_field(OpenApiTypes.STR)
class TimeZoneField(serializers.Field[ZoneInfo, str, str, Any]):
    """An IANA time zone name (Europe/Lisbon), as a ZoneInfo."""

    def to_internal_value(self, data: Any) -> ZoneInfo:
        if not isinstance(data, str) or data not in _zone_names():
            raise serializers.ValidationError(
                f"Unknown time zone '{data}': use an IANA name such as Europe/Lisbon or UTC."
            )
        return ZoneInfo(data)

    def to_representation(self, value: ZoneInfo) -> str:
        return str(value)


@extend_schema_field(OpenApiTypes.STR)
class DateOrDateTimeField(serializers.Field[date | datetime, str, str, Any]):
    """An ISO 8601 date (2026-11-01) or date-time (2026-11-01T12:00:00Z)."""

    def to_internal_value(self, data: Any) -> date | datetime:
        if isinstance(data, str):
            try:
                # A date first: parse_datetime would read one as midnight.
                parsed: date | datetime | None = parse_date(data) or parse_datetime(data)
            except ValueError:
                parsed = None
            if parsed is not None:
                return parsed
        raise serializers.ValidationError(
            "Use an ISO 8601 date (2026-11-01) or date-time (2026-11-01T12:00:00Z)."
        )


OUT_OF_RANGE = "Out of the range of dates this API can count (years 1 to 9999 in UTC)."


def _representable(moment: datetime, field: str) -> datetime:
    """``moment``, once it is known to have a UTC equivalent (PostgreSQL compares in UTC,
    and the answer shows it in UTC); else a 400 on ``field``, not an OverflowError's 500."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise serializers.ValidationError({field: [OUT_OF_RANGE]}) from None
    return moment


def _day_start(day: date, zone: ZoneInfo, field: str) -> datetime:
    return _representable(datetime.combine(day, time.min, tzinfo=zone), field)


def _days_after(day: date, days: int, field: str) -> date:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        raise serializers.ValidationError({field: [OUT_OF_RANGE]}) from None


def _rename_from(fields: Any) -> Any:
    """Fields declared as ``from_`` and ``data_`` are ``from`` and ``data``: a Python keyword,
    and a name a serializer uses for itself."""
    for name in ("from_", "data_"):
        if name in fields:
            fields[name.rstrip("_")] = fields.pop(name)
    return fields


class UsageStatsQuerySerializer(StrictSerializer):
    from_ = DateOrDateTimeField(
        required=False,
        help_text="Start (inclusive): a date (its start in tz) or a date-time. Default: no bound.",
    )
    to = DateOrDateTimeField(
        required=False,
        help_text="End: a date includes that whole day (in tz); a date-time is exclusive. "
        "Default: no bound.",
    )
    tz = TimeZoneField(
        required=False,
        default=ZoneInfo("UTC"),
        help_text="IANA time zone for dates and date-times without an offset. Default: UTC.",
    )
    api_key_id = serializers.CharField(
        required=False,
        max_length=64,
        help_text="Only the calls made with this API key of yours (another user's key, or an "
        "unknown id: 404).",
    )

    def get_fields(self) -> Any:
        return _rename_from(super().get_fields())

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        zone: ZoneInfo = attrs["tz"]

        def instant(value: date | datetime | None, *, field: str) -> datetime | None:
            if value is None:
                return None
            if isinstance(value, datetime):
                aware = value if timezone.is_aware(value) else value.replace(tzinfo=zone)
                return _representable(aware, field)
            day = _days_after(value, 1, field) if field == "to" else value
            return _day_start(day, zone, field)

        start = instant(attrs.get("from"), field="from")
        end = instant(attrs.get("to"), field="to")
        if start is not None and end is not None and start >= end:
            raise serializers.ValidationError({"to": ["Must be after from."]})
        return {"start": start, "end": end, "tz": zone, "api_key_id": attrs.get("api_key_id")}


class UsageDailyQuerySerializer(StrictSerializer):
    from_ = serializers.DateField(
        required=False, help_text=f"First day. Default: {DAILY_DEFAULT_DAYS - 1} days before to."
    )
    to = serializers.DateField(required=False, help_text="Last day (included). Default: today.")
    tz = TimeZoneField(
        required=False,
        default=ZoneInfo("UTC"),
        help_text="IANA time zone whose calendar days the series counts. Default: UTC.",
    )
    api_key_id = serializers.CharField(
        required=False,
        max_length=64,
        help_text="Only the calls made with this API key of yours (another user's key, or an "
        "unknown id: 404).",
    )

    def get_fields(self) -> Any:
        return _rename_from(super().get_fields())

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        zone: ZoneInfo = attrs["tz"]
        last: date = attrs.get("to") or timezone.now().astimezone(zone).date()
        first: date = attrs.get("from") or _days_after(last, 1 - DAILY_DEFAULT_DAYS, "to")
        if first > last:
            raise serializers.ValidationError({"to": ["Must not be before from."]})
        if (last - first).days + 1 > DAILY_MAX_DAYS:
            raise serializers.ValidationError(
                {"to": [f"At most {DAILY_MAX_DAYS} days per request."]}
            )
        # The series runs from the start of the first day to the start of the day after
        # the last, in tz (usage.selectors.usage_daily).
        _day_start(first, zone, "from" if "from" in attrs else "to")
        _day_start(_days_after(last, 1, "to"), zone, "to")
        return {
            "first_day": first,
            "last_day": last,
            "tz": zone,
            "api_key_id": attrs.get("api_key_id"),
        }


# --- responses -------------------------------------------------------------------------------


def _usd_field(**kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=20, decimal_places=10, **kwargs)


class PriceField(serializers.DecimalField):
    """USD per million tokens as the shortest exact decimal string ("0.075", "0.3")."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=12, decimal_places=4, **kwargs)

    def to_representation(self, value: Decimal) -> str:
        return format(Decimal(value).normalize(), "f")


class ModelPricingSerializer(serializers.Serializer[Any]):
    input_usd_per_mtok = PriceField(help_text="USD per million input tokens.")
    cached_input_usd_per_mtok = PriceField(
        allow_null=True,
        help_text="USD per million cached input tokens; null: the input price applies.",
    )
    output_usd_per_mtok = PriceField(help_text="USD per million output tokens.")
    effective_from = serializers.DateTimeField(
        source="price_effective_from", help_text="Since when these prices apply."
    )


class ChatModelSerializer(serializers.Serializer[Any]):
    id = serializers.CharField(help_text="The id to pass as `model`.")
    type = serializers.SerializerMethodField()
    display_name = serializers.CharField()
    provider = serializers.CharField()
    context_window = serializers.IntegerField(help_text="Input plus output tokens.")
    max_output_tokens = serializers.IntegerField()
    reasoning = serializers.BooleanField(help_text="Accepts reasoning_effort.")
    pricing = ModelPricingSerializer(
        source="*", allow_null=True, help_text="The prices in force now; null when unpriced."
    )

    def get_type(self, model: ChatModel) -> str:
        return "model"

    def to_representation(self, instance: ChatModel) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        if instance.input_usd_per_mtok is None or instance.output_usd_per_mtok is None:
            data["pricing"] = None
        return data


class ModelUsageSerializer(serializers.Serializer[Any]):
    model = serializers.CharField()
    requests = serializers.IntegerField(help_text="Upstream calls.")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField(help_text="Part of output_tokens.")
    total_tokens = serializers.IntegerField()
    cost_usd = _usd_field(help_text="Exact cost of the priced calls, a decimal string.")
    unpriced_requests = serializers.IntegerField(help_text="Calls whose price was unknown.")


class UsageStatsSerializer(serializers.Serializer[Any]):
    from_ = serializers.DateTimeField(allow_null=True, source="start")
    to = serializers.DateTimeField(allow_null=True, source="end")
    total_conversations = serializers.IntegerField(
        help_text="Conversations with usage in the range (deleted ones too)."
    )
    total_messages = serializers.IntegerField(help_text="Assistant answers (chat turns billed).")
    requests = serializers.IntegerField(help_text="Upstream calls (turns and title generation).")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField(help_text="Part of output_tokens.")
    total_tokens = serializers.IntegerField(help_text="input_tokens + output_tokens.")
    cost_usd = _usd_field(help_text="Exact cost of the priced calls, a decimal string.")
    cost_estimate_usd = _usd_field(
        source="cost_usd", help_text="Deprecated: the older name of cost_usd."
    )
    unpriced_requests = serializers.IntegerField(
        help_text="Calls whose model had no price: not in cost_usd."
    )
    models_used = serializers.ListField(child=serializers.CharField())
    by_model = ModelUsageSerializer(many=True)

    def get_fields(self) -> Any:
        return _rename_from(super().get_fields())


class DailyUsageSerializer(serializers.Serializer[Any]):
    date = serializers.DateField()
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost_usd = _usd_field()


class UsageDailySerializer(serializers.Serializer[Any]):
    from_ = serializers.DateField(source="first_day")
    to = serializers.DateField(source="last_day")
    tz = TimeZoneField()
    data_ = DailyUsageSerializer(many=True, help_text="One entry per day, days without usage too.")

    def get_fields(self) -> Any:
        return _rename_from(super().get_fields())
