"""Money as the admin's screens show it: US dollars to the cent. The ledger, the API and the
exports keep the exact amounts (ten decimal places); a person reading a page wants cents, and
a cost that is not zero must not read as zero."""

from decimal import ROUND_HALF_UP, Decimal

from django.utils.html import format_html
from django.utils.safestring import SafeString

CENT = Decimal("0.01")


def usd_to_the_cent(value: Decimal | None) -> str:
    """``$1,234.57``; ``<$0.01`` for a cost above zero that rounds to nothing; an empty
    string for an unknown cost (an unpriced model)."""
    if value is None:
        return ""
    if Decimal(0) < value < CENT / 2:
        return "<$0.01"
    return f"${value.quantize(CENT, rounding=ROUND_HALF_UP):,}"


def usd_cell(value: Decimal | None) -> SafeString | str:
    """A change list's money cell: to the cent, the exact amount on hover."""
    if value is None:
        return ""
    return format_html(
        '<span title="{} USD">{}</span>', f"{value.normalize():f}", usd_to_the_cent(value)
    )
