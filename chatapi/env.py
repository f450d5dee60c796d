"""Typed readers for settings that come from the environment.

Each helper raises ``ImproperlyConfigured`` naming the variable when the value is
present but malformed, so a typo fails at start-up instead of at the first request.
"""

import os
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ImproperlyConfigured

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value


def production_requires(name: str) -> ImproperlyConfigured:
    """The error for a variable production mode must set. It names the way out too: the
    usual cause is a second shell on a development machine, where ``make run`` had set
    CHATAPI_ENV=development and this shell has not."""
    return ImproperlyConfigured(
        f"The environment variable {name} must be set (CHATAPI_ENV is production, the "
        "default; for development on this machine set CHATAPI_ENV=development)."
    )


def env_required(name: str, *, dev_default: str | None, dev_mode: bool) -> str:
    """A value that production must set; development and test modes may fall back."""
    value = env_str(name)
    if value is not None:
        return value
    if dev_mode and dev_default is not None:
        return dev_default
    raise production_requires(name)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false).")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_optional_int(name: str, *, minimum: int | None = None) -> int | None:
    """An integer, or None when the variable is unset or empty (e.g. "no limit")."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    return env_int(name, 0, minimum=minimum)


def env_optional_decimal(name: str, *, minimum: Decimal | None = None) -> Decimal | None:
    """An exact decimal (money is never a float), or None when unset or empty."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a decimal number.") from None
    if not value.is_finite():
        raise ImproperlyConfigured(f"{name}={raw!r} is not a decimal number.")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_list(name: str, default: Sequence[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: Sequence[str]) -> str:
    value = env_str(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}.")
    return value
