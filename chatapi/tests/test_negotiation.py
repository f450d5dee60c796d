"""chatapi.negotiation picks what DRF's negotiation picks."""

import pytest
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from chatapi.negotiation import ContentNegotiation

ACCEPTS = [
    None,
    "*/*",
    "application/json",
    "application/json; indent=4",
    "text/html, */*;q=0.1",
    "application/*",
]


def request(accept: str | None, query: str = "") -> Request:
    headers = {} if accept is None else {"Accept": accept}
    return Request(APIRequestFactory().get(f"/api/v1/ping{query}", headers=headers))


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("query", ["", "?format=json", "?limit=2"])
@pytest.mark.parametrize(
    "renderers",
    [[JSONRenderer()], [JSONRenderer(), BrowsableAPIRenderer()]],
    ids=["json", "json+html"],
)
def test_the_renderer_and_media_type_are_drfs(accept, query, renderers) -> None:
    ours = ContentNegotiation().select_renderer(request(accept, query), renderers)
    drfs = DefaultContentNegotiation().select_renderer(request(accept, query), renderers)

    assert ours == drfs


def test_what_nothing_renders_is_still_refused() -> None:
    with pytest.raises(NotAcceptable):
        ContentNegotiation().select_renderer(request("text/html"), [JSONRenderer()])


def test_a_browsable_first_renderer_is_negotiated_by_drf() -> None:
    renderers = [BrowsableAPIRenderer(), JSONRenderer()]

    ours = ContentNegotiation().select_renderer(request(None), renderers)

    assert ours == DefaultContentNegotiation().select_renderer(request(None), renderers)
