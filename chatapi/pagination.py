"""Keyset pagination shared by every list: ``{"data", "has_more", "first_id", "last_id"}``.

Query parameters (Anthropic's list convention):

- ``limit``: 1-100, default 20.
- ``after_id``: the page that follows this item, in list order.
- ``before_id``: the page that precedes this item, in list order; its items still come in
  list order, and ``has_more`` says whether more items precede the first one.
- Both cursors at once is a 400: a window between two items is not supported.
- A cursor is looked up among the caller's own items only (the list's scope, before its
  filters). An id that is not there (malformed, deleted, or another user's) is a 400 on that
  parameter, the same answer in every case, so a cursor cannot probe for other users' rows.

The keyset is the list's sort key plus the id, so inserting rows never shifts a page that a
cursor already names. A row whose sort key changes (a conversation bumped by a new message)
moves in the list, as it should.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db import models
from django.db.models import Q, QuerySet
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from chatapi.errors import ApiError
from chatapi.rows import CompiledQuery
from chatapi.serializers import StrictSerializer

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class PageQuerySerializer(StrictSerializer):
    """The pagination query parameters; a list's filters go on a subclass.

    Validate ``request.query_params.dict()``, not the QueryDict itself: on a QueryDict DRF
    reads an absent boolean as false, which would turn an optional filter on.
    """

    limit = serializers.IntegerField(
        min_value=1,
        max_value=MAX_LIMIT,
        default=DEFAULT_LIMIT,
        help_text=f"How many items to return, 1 to {MAX_LIMIT}.",
    )
    after_id = serializers.UUIDField(
        required=False, help_text="Return the page after this item (the last_id of a page)."
    )
    before_id = serializers.UUIDField(
        required=False, help_text="Return the page before this item (the first_id of a page)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "after_id" in attrs and "before_id" in attrs:
            raise serializers.ValidationError("Give after_id or before_id, not both.")
        return attrs


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int = DEFAULT_LIMIT
    after_id: UUID | None = None
    before_id: UUID | None = None

    @classmethod
    def from_query(cls, validated: dict[str, Any]) -> "PageParams":
        """From the validated data of a PageQuerySerializer (or subclass)."""
        return cls(
            limit=validated["limit"],
            after_id=validated.get("after_id"),
            before_id=validated.get("before_id"),
        )


@dataclass(frozen=True, slots=True)
class Page[M: models.Model]:
    items: list[M]
    has_more: bool


def _invalid_cursor(param: str) -> ApiError:
    problem = "No item with this id in this list."
    return ApiError(f"{param}: {problem}", details={"fields": {param: [problem]}})


def keyset_page[M: models.Model](
    queryset: QuerySet[M],
    *,
    params: PageParams,
    sort_field: str,
    descending: bool,
    cursor_scope: QuerySet[M] | None = None,
) -> Page[M]:
    """One page of ``queryset`` in (sort_field, pk) order, newest first if ``descending``.
    ``sort_field`` must be non-null.

    ``cursor_scope`` is where cursor ids are looked up (default: ``queryset``): the caller's
    rows before any filter, so a cursor row that stopped matching a filter still pages.
    """
    forward = params.before_id is None
    cursor_param, cursor_id = (
        ("after_id", params.after_id) if forward else ("before_id", params.before_id)
    )
    # Walking backwards from before_id is walking forwards in the reversed order.
    walk_descending = descending == forward
    rows = queryset
    if cursor_id is not None:
        scope = queryset if cursor_scope is None else cursor_scope
        cursor_key = scope.filter(pk=cursor_id).values_list(sort_field, flat=True).first()
        if cursor_key is None:
            raise _invalid_cursor(cursor_param)
        # (sort_field, pk) strictly past the cursor. The outer range condition lets the
        # index scan start at the cursor; the OR breaks ties on the sort key.
        past, at_or_past = ("lt", "lte") if walk_descending else ("gt", "gte")
        rows = rows.filter(
            Q(**{f"{sort_field}__{at_or_past}": cursor_key})
            & (Q(**{f"{sort_field}__{past}": cursor_key}) | Q(**{f"pk__{past}": cursor_id}))
        )
    page = _page_of(list(_page_rows(rows, sort_field, walk_descending, params.limit)), params.limit)
    if not forward:
        page.items.reverse()
    return page


def _page_rows[M: models.Model](
    rows: QuerySet[M], sort_field: str, descending: bool, limit: int
) -> QuerySet[M]:
    """The rows of a page and one more (to tell whether more follow), in keyset order."""
    sign = "-" if descending else ""
    return rows.order_by(f"{sign}{sort_field}", f"{sign}pk")[: limit + 1]


def _page_of[M: models.Model](items: list[M], limit: int) -> Page[M]:
    return Page(items=items[:limit], has_more=len(items) > limit)


class FirstPages[M: models.Model]:
    """``keyset_page``'s first page (no cursor) of the queryset ``build(**values)`` makes,
    with the query compiled once per limit (``chatapi.rows.CompiledQuery``): the same rows
    in the same order, without the ORM building and compiling it on every request. For a
    list's commonest request, its first page with no filter."""

    def __init__(
        self,
        build: Callable[..., QuerySet[M]],
        *,
        sort_field: str,
        descending: bool,
        **probes: Any,
    ) -> None:
        self._build = build
        self._sort_field = sort_field
        self._descending = descending
        self._probes = probes
        self._queries: dict[int, CompiledQuery[M]] = {}  # at most MAX_LIMIT

    def page(self, limit: int, **values: Any) -> Page[M]:
        query = self._queries.get(limit)
        if query is None:
            query = CompiledQuery(
                lambda **arguments: _page_rows(
                    self._build(**arguments), self._sort_field, self._descending, limit
                ),
                **self._probes,
            )
            self._queries[limit] = query
        return _page_of(query.all(**values), limit)


def simple_page_query(query: dict[str, str]) -> dict[str, Any] | None:
    """The validated data of a list's commonest query, no parameter or ``limit`` alone as a
    number in range, checked by hand: what ``PageQuerySerializer`` (and its subclasses)
    return for it, without building the serializer (the tests compare the two). None for
    any other query: the serializer judges those."""
    if not query:
        return {"limit": DEFAULT_LIMIT}
    limit = query.get("limit")
    if len(query) != 1 or limit is None or not (limit.isascii() and limit.isdigit()):
        return None
    value = int(limit)
    return {"limit": value} if 1 <= value <= MAX_LIMIT else None


def page_body(page: Page[Any], serializer_class: type[serializers.BaseSerializer[Any]]) -> Any:
    """The list envelope for ``page``, its items rendered by ``serializer_class``."""
    return {
        "data": serializer_class(page.items, many=True).data,
        "has_more": page.has_more,
        "first_id": str(page.items[0].pk) if page.items else None,
        "last_id": str(page.items[-1].pk) if page.items else None,
    }


def page_schema(name: str, item_serializer: type[serializers.BaseSerializer[Any]]) -> Any:
    """The OpenAPI description of a list envelope of ``item_serializer`` items."""
    return inline_serializer(
        name,
        {
            "data": item_serializer(many=True),
            "has_more": serializers.BooleanField(
                help_text="Whether more items lie beyond this page in the direction paged "
                "(after last_id, or before first_id when paging with before_id)."
            ),
            "first_id": serializers.UUIDField(
                allow_null=True, help_text="The first item's id; null when data is empty."
            ),
            "last_id": serializers.UUIDField(
                allow_null=True, help_text="The last item's id; null when data is empty."
            ),
        },
    )
