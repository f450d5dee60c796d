"""The admin usage dashboard: daily tokens and cost over a range, for everyone, one user or one
model, with the top users and models; charts are SVG drawn here (nothing from a CDN)."""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import BigIntegerField, F, QuerySet, Sum
from django.db.models.functions import Cast, Coalesce

from usage.models import UsageDaily

TOP = 10
CHART_WIDTH, CHART_HEIGHT = 720, 160


@dataclass(frozen=True)
class DashboardDay:
    day: date
    tokens: int
    cost_usd: Decimal


@dataclass(frozen=True)
class Dashboard:
    first_day: date
    last_day: date
    days: list[DashboardDay]
    total_tokens: int
    total_cost_usd: Decimal
    calls: int
    top_users: list[dict[str, Any]]
    top_models: list[dict[str, Any]]
    tokens_chart: str
    cost_chart: str


def _days(
    *, first_day: date, last_day: date, user_id: str | None, model: str | None
) -> QuerySet[UsageDaily]:
    """The ledger's sums per user, UTC day, model and kind (the rollup kept with it)."""
    rows = UsageDaily.objects.filter(day__gte=first_day, day__lte=last_day)
    if user_id:
        rows = rows.filter(user_id=user_id)
    if model:
        rows = rows.filter(model=model)
    return rows


def usage_dashboard(
    *, first_day: date, last_day: date, user_id: str | None = None, model: str | None = None
) -> Dashboard:
    """Aggregated in SQL over the daily rollup (whole UTC days, so the ledger's sums exactly):
    one query per day series, one per top list, one for the totals."""
    rows = _days(first_day=first_day, last_day=last_day, user_id=user_id, model=model).order_by()
    tokens = Cast(Coalesce(Sum(F("input_tokens") + F("output_tokens")), 0), BigIntegerField())
    cost = Coalesce(Sum("cost_usd"), Decimal(0))
    calls = Cast(Coalesce(Sum("requests"), 0), BigIntegerField())
    by_day = {row["day"]: row for row in rows.values("day").annotate(tokens=tokens, cost=cost)}
    days = []
    day = first_day
    while day <= last_day:
        found = by_day.get(day)
        days.append(
            DashboardDay(
                day=day,
                tokens=int(found["tokens"]) if found else 0,
                cost_usd=found["cost"] if found else Decimal(0),
            )
        )
        day += timedelta(days=1)
    totals = rows.aggregate(tokens=tokens, cost=cost, calls=calls)
    top_users = [
        dict(row)
        for row in rows.values("user_id", "user__email")
        .annotate(tokens=tokens, cost=cost, calls=calls)
        .order_by("-cost", "-tokens")[:TOP]
    ]
    top_models = [
        dict(row)
        for row in rows.values("model")
        .annotate(tokens=tokens, cost=cost, calls=calls)
        .order_by("-cost", "-tokens")[:TOP]
    ]
    return Dashboard(
        first_day=first_day,
        last_day=last_day,
        days=days,
        total_tokens=int(totals["tokens"]),
        total_cost_usd=totals["cost"],
        calls=int(totals["calls"]),
        top_users=top_users,
        top_models=top_models,
        tokens_chart=bar_chart([(d.day, Decimal(d.tokens)) for d in days], unit="tokens"),
        cost_chart=bar_chart([(d.day, d.cost_usd) for d in days], unit="USD"),
    )


def bar_chart(points: list[tuple[date, Decimal]], *, unit: str) -> str:
    """An SVG bar chart, one bar a day, each with a <title> tooltip."""
    peak = max((value for _, value in points), default=Decimal(0)) or Decimal(1)
    width = CHART_WIDTH / max(len(points), 1)
    bars = []
    for index, (day, value) in enumerate(points):
        height = float(value / peak) * (CHART_HEIGHT - 20)
        x = index * width
        bars.append(
            f'<rect class="bar" x="{x:.1f}" y="{CHART_HEIGHT - height:.1f}" '
            f'width="{max(width - 1, 1):.1f}" height="{height:.1f}" fill="#417690">'
            f"<title>{day.isoformat()}: {value.normalize():f} {unit}</title></rect>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{unit} per day" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" width="100%" height="{CHART_HEIGHT}">'
        f'<text x="0" y="12" font-size="11">max {peak.normalize():f} {unit}</text>'
        + "".join(bars)
        + "</svg>"
    )
