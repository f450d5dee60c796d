"""Money on the admin's screens: to the cent, and never a cost above zero shown as zero."""

from decimal import Decimal

import pytest

from usage.money import usd_cell, usd_to_the_cent


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("0", "$0.00"),
        ("0.0000000000", "$0.00"),
        ("0.0000082500", "<$0.01"),
        ("0.0049999999", "<$0.01"),
        ("0.005", "$0.01"),
        ("0.011", "$0.01"),
        ("0.125", "$0.13"),
        ("1234.5678", "$1,234.57"),
    ],
)
def test_an_amount_is_shown_to_the_cent(amount: str, shown: str) -> None:
    assert usd_to_the_cent(Decimal(amount)) == shown


def test_an_unknown_cost_is_shown_as_nothing() -> None:
    assert usd_to_the_cent(None) == ""
    assert usd_cell(None) == ""


def test_a_cell_keeps_the_exact_amount_on_hover() -> None:
    assert usd_cell(Decimal("0.0000082500")) == '<span title="0.00000825 USD">&lt;$0.01</span>'
