"""The URL configuration's order: Django tries the patterns in order and an open request keeps
the list of those it tried before its match (``ResolverMatch.tried``), for an answer's stream
as long as the answer takes, so the routes that hold streams open come first."""

import pytest
from django.urls import resolve

STREAMING_ROUTES = [
    "/api/v1/conversations/c/messages",  # send, and the messages' list
    "/api/v1/conversations/c/messages/stream",
    "/api/v1/conversations/c/messages/m/stream",  # resume
    "/api/v1/conversations/c/messages/m/regenerate",
    "/v1/messages",
    "/v1/chat/completions",
]


@pytest.mark.parametrize("path", STREAMING_ROUTES)
def test_a_streaming_route_is_matched_after_few_tries(path: str) -> None:
    match = resolve(path)

    assert match.tried is not None
    assert len(match.tried) <= 8  # 18 to 22 before, [str(p[-1].pattern) for p in match.tried]
