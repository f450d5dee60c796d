import pytest

from chatapi.errors import status_for_error_type


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [
        ("invalid_request_error", 400),
        ("request_too_large", 413),
        ("rate_limit_error", 429),
        ("timeout_error", 504),
        ("overloaded_error", 529),
        ("api_error", 502),
        ("an_unknown_type", 502),
    ],
)
def test_a_stored_failure_is_answered_with_the_lowest_status_of_its_type_else_the_default(
    error_type: str, expected: int
) -> None:
    # when / then
    assert status_for_error_type(error_type, default=502) == expected
