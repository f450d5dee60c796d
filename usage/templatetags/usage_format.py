"""The admin's numbers: ``{% load usage_format %}``, then ``{{ amount|usd }}`` (to the cent,
usage.money) and ``{{ tokens|thousands }}`` (1,234,567)."""

from decimal import Decimal

from django import template

from usage.money import usd_to_the_cent

register = template.Library()


@register.filter
def usd(value: Decimal | None) -> str:
    return usd_to_the_cent(value)


@register.filter
def thousands(value: int) -> str:
    return f"{value:,}"
