"""The admin usage dashboard: daily tokens and cost over a range, for everyone, one user or one
model, with the top users and models; charts are SVG drawn here (nothing from a CDN)."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from django.db.models import BigIntegerField, F, QuerySet, Sum
from django.db.models.functions import Cast, Coalesce
from django.utils.html import escape

from usage.models import UsageDaily
from usage.money import CENT, usd_to_the_cent

TOP = 10
# The drawing's size and the plot area inside it: room on the left for the value axis's
# labels and title, below for the dates and the date axis's title.
CHART_WIDTH, CHART_HEIGHT = 760, 220
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 84, 752, 12, 172
# A date label is about 40 px wide at 11 px; a label every this many pixels or more.
DATE_LABEL_SPACING = 56
VALUE_TICKS = 4


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
        tokens_chart=bar_chart(
            [(d.day, Decimal(d.tokens)) for d in days],
            value_title="tokens",
            smallest_step=Decimal(1),
            label=_thousands,
            tooltip_suffix=" tokens",
        ),
        cost_chart=bar_chart(
            [(d.day, d.cost_usd) for d in days],
            value_title="USD",
            smallest_step=CENT,
            label=usd_to_the_cent,
        ),
    )


def _thousands(value: Decimal) -> str:
    return f"{int(value):,}"


def value_axis(peak: Decimal, *, smallest_step: Decimal) -> list[Decimal]:
    """The value axis's ticks from 0 to just above ``peak``: about ``VALUE_TICKS`` steps of
    1, 2 or 5 times a power of ten, never finer than ``smallest_step`` (a cent, a token). A
    peak of 0 is an axis of one tick, 0: nothing to scale, and no made-up maximum."""
    if peak <= 0:
        return [Decimal(0)]
    rough = peak / VALUE_TICKS
    power = Decimal(10) ** rough.adjusted()
    step = next((power * factor for factor in (1, 2, 5) if power * factor >= rough), power * 10)
    step = max(step, smallest_step)
    steps = int((peak / step).to_integral_value(rounding=ROUND_CEILING))
    return [step * index for index in range(steps + 1)]


def bar_chart(
    points: list[tuple[date, Decimal]],
    *,
    value_title: str,
    smallest_step: Decimal,
    label: Callable[[Decimal], str],
    tooltip_suffix: str = "",
) -> str:
    """An SVG bar chart, one bar a day, each with a <title> tooltip; a value axis scaled from
    the data (gridlines at its ticks) and a date axis labelled every few days, both titled."""
    peak = max((value for _, value in points), default=Decimal(0))
    ticks = value_axis(peak, smallest_step=smallest_step)
    top = ticks[-1]
    plot_height = PLOT_BOTTOM - PLOT_TOP
    bar_width = (PLOT_RIGHT - PLOT_LEFT) / max(len(points), 1)
    parts = []
    for tick in ticks:
        y = PLOT_BOTTOM - (float(tick / top) * plot_height if top else 0)
        parts.append(
            f'<line class="grid" x1="{PLOT_LEFT}" y1="{y:.1f}" x2="{PLOT_RIGHT}" y2="{y:.1f}" '
            'stroke="currentColor" stroke-opacity="0.15"/>'
            f'<text class="value-label" x="{PLOT_LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{escape(label(tick))}</text>'
        )
    label_every = math.ceil(DATE_LABEL_SPACING / bar_width)
    for index, (day, value) in enumerate(points):
        height = float(value / top) * plot_height if top else 0.0
        x = PLOT_LEFT + index * bar_width
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{PLOT_BOTTOM - height:.1f}" '
            f'width="{max(bar_width - 1, 1):.1f}" height="{height:.1f}" fill="#417690">'
            f"<title>{day.isoformat()}: {escape(label(value))}{tooltip_suffix}</title></rect>"
        )
        if index % label_every == 0:
            middle = x + bar_width / 2
            parts.append(
                f'<line x1="{middle:.1f}" y1="{PLOT_BOTTOM}" x2="{middle:.1f}" '
                f'y2="{PLOT_BOTTOM + 4}" stroke="currentColor"/>'
                f'<text class="date-label" x="{middle:.1f}" y="{PLOT_BOTTOM + 17}" '
                f'text-anchor="middle">{day:%b %d}</text>'
            )
    if top == 0:
        parts.append(
            f'<text class="empty" x="{(PLOT_LEFT + PLOT_RIGHT) / 2:.1f}" '
            f'y="{(PLOT_TOP + PLOT_BOTTOM) / 2:.1f}" text-anchor="middle">'
            f"Nothing in this range: {escape(label(top))} every day</text>"
        )
    first, last = (points[0][0], points[-1][0]) if points else (None, None)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{value_title} per day" '
        f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" width="100%" '
        f'style="max-width: {CHART_WIDTH}px" font-size="11" fill="currentColor">'
        f'<line class="axis" x1="{PLOT_LEFT}" y1="{PLOT_TOP}" x2="{PLOT_LEFT}" '
        f'y2="{PLOT_BOTTOM}" stroke="currentColor"/>'
        f'<line class="axis" x1="{PLOT_LEFT}" y1="{PLOT_BOTTOM}" x2="{PLOT_RIGHT}" '
        f'y2="{PLOT_BOTTOM}" stroke="currentColor"/>'
        + "".join(parts)
        + f'<text class="axis-title" transform="translate(14 {(PLOT_TOP + PLOT_BOTTOM) / 2:.0f}) '
        f'rotate(-90)" text-anchor="middle">{value_title} per day</text>'
        f'<text class="axis-title" x="{(PLOT_LEFT + PLOT_RIGHT) / 2:.0f}" y="{CHART_HEIGHT - 8}" '
        f'text-anchor="middle">UTC day, {first} to {last}</text>'
        "</svg>"
    )
