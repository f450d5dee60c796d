"""The typed environment readers for optional limits: unset is None, bad values name the
variable."""

from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from chatapi.env import env_optional_decimal, env_optional_int


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), (" 250 ", 250)])
def test_optional_int(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: int | None
) -> None:
    if raw is not None:
        monkeypatch.setenv("SOME_LIMIT", raw)

    assert env_optional_int("SOME_LIMIT", minimum=0) == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, None), ("", None), ("0.10", Decimal("0.10")), ("5", Decimal(5))]
)
def test_optional_decimal_is_exact(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: Decimal | None
) -> None:
    if raw is not None:
        monkeypatch.setenv("SOME_USD", raw)

    value = env_optional_decimal("SOME_USD", minimum=Decimal(0))

    assert value == expected
    assert str(value) == str(expected)  # "0.10", not a float's 0.1000000000000000055...


@pytest.mark.parametrize(
    ("reader", "raw", "message"),
    [
        (env_optional_int, "lots", "SOME_VAR='lots' is not an integer."),
        (env_optional_int, "-1", "SOME_VAR=-1 is below the minimum of 0."),
        (env_optional_decimal, "$5", "SOME_VAR='$5' is not a decimal number."),
        (env_optional_decimal, "NaN", "SOME_VAR='NaN' is not a decimal number."),
        (env_optional_decimal, "-0.01", "SOME_VAR=-0.01 is below the minimum of 0."),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, reader: object, raw: str, message: str
) -> None:
    monkeypatch.setenv("SOME_VAR", raw)
    minimum = 0 if reader is env_optional_int else Decimal(0)

    with pytest.raises(ImproperlyConfigured) as error:
        reader("SOME_VAR", minimum=minimum)  # type: ignore[operator]

    assert str(error.value) == message
