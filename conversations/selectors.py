import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import Model, Prefetch, Q, QuerySet
from django.utils import timezone

from accounts.models import User
from chatapi.errors import ApiError, NotFoundError
from chatapi.pagination import Page, PageParams, keyset_page
from conversations.models import Conversation, Message, Share


@dataclass(frozen=True)
class Transcript:
    """A conversation and all its messages, oldest first."""

    conversation: Conversation
    messages: list[Message]


def _owned_or_404[M: Model](owned: QuerySet[M], *, pk: str, not_found: str) -> M:
    """The row of ``owned`` with this primary key, else NotFoundError(``not_found``): a
    malformed id fails before any query, a missing or unowned one after the same single
    query, with the same body."""
    try:
        uuid = UUID(pk)
    except ValueError:
        raise NotFoundError(not_found) from None
    row = owned.filter(pk=uuid).first()
    if row is None:
        raise NotFoundError(not_found)
    return row


def conversation_get_for_user(*, user: User, conversation_id: str) -> Conversation:
    """The conversation with this id if ``user`` owns it, else NotFoundError.

    The one ownership check for every conversation route. Another user's id, a missing id
    and a malformed id get the same error; the first two run the same single query, so
    neither the body nor the time taken tells them apart.
    """
    return _owned_or_404(
        Conversation.objects.filter(owner=user),
        pk=conversation_id,
        not_found="Conversation not found.",
    )


def conversation_list(
    *, user: User, page: PageParams, archived: bool | None = None, q: str = ""
) -> Page[Conversation]:
    """The user's conversations, most recent activity first."""
    owned = Conversation.objects.filter(owner=user)
    conversations = owned
    if archived is not None:
        conversations = conversations.filter(archived=archived)
    if q:
        conversations = conversations.filter(title__icontains=q)
    return keyset_page(
        conversations,
        params=page,
        sort_field="activity_at",
        descending=True,
        cursor_scope=owned,
    )


def _messages_in_order() -> QuerySet[Message]:
    return Message.objects.order_by("created_at", "id")


def conversation_transcript(*, conversation: Conversation) -> Transcript:
    """Every message of the conversation, for an export. The caller has checked ownership
    (the conversation comes from ``conversation_get_for_user``, or staff asked for it)."""
    return Transcript(
        conversation=conversation,
        messages=list(_messages_in_order().filter(conversation=conversation)),
    )


def conversation_transcripts(*, conversations: QuerySet[Conversation]) -> list[Transcript]:
    """Several transcripts in two queries, in the queryset's order (the admin's export)."""
    rows = conversations.prefetch_related(Prefetch("messages", queryset=_messages_in_order()))
    return [
        Transcript(conversation=conversation, messages=list(conversation.messages.all()))
        for conversation in rows
    ]


def message_list(*, conversation: Conversation, page: PageParams) -> Page[Message]:
    """A conversation's messages, oldest first. The caller has checked ownership (the
    conversation comes from ``conversation_get_for_user``)."""
    return keyset_page(
        Message.objects.filter(conversation=conversation),
        params=page,
        sort_field="created_at",
        descending=False,
    )


def message_get_in_conversation(*, conversation: Conversation, message_id: str) -> Message:
    """A message of a conversation the caller owns; NotFoundError for any other id
    (another conversation's, missing, malformed), with the same body."""
    return _owned_or_404(
        Message.objects.filter(conversation=conversation),
        pk=message_id,
        not_found="Message not found.",
    )


def share_list(*, conversation: Conversation, page: PageParams) -> Page[Share]:
    """A conversation's share links, newest first (expired ones too: the owner may want to
    revoke them). The caller has checked ownership."""
    return keyset_page(
        Share.objects.filter(conversation=conversation),
        params=page,
        sort_field="created_at",
        descending=True,
    )


def share_get_in_conversation(*, conversation: Conversation, share_id: str) -> Share:
    """A share of a conversation the caller owns; NotFoundError for any other id."""
    return _owned_or_404(
        Share.objects.filter(conversation=conversation),
        pk=share_id,
        not_found="Share not found.",
    )


@dataclass(frozen=True)
class SharedConversation:
    """What a share link shows: the title and the snapshot's messages, oldest first."""

    title: str
    shared_at: datetime
    expires_at: datetime | None
    messages: list[Message]


def shared_conversation_get(*, token: str) -> SharedConversation:
    """The snapshot behind a share token, for anyone holding it. A revoked, expired or unknown
    token is the same NotFoundError. Runs as the service (no caller): the token is the
    permission."""
    share = (
        Share.objects.select_related("conversation")
        .filter(token=token)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
        .first()
    )
    if share is None:
        raise NotFoundError("Share not found.")
    # A message deleted since (with its conversation, the share goes too) simply drops out.
    messages = _messages_in_order().filter(
        conversation_id=share.conversation_id, id__in=share.message_ids
    )
    return SharedConversation(
        title=share.conversation.title,
        shared_at=share.created_at,
        expires_at=share.expires_at,
        messages=list(messages),
    )


# --- search ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchFilters:
    conversation_id: UUID | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message, or a conversation's title, that matched."""

    id: UUID  # the message's id; for a title, the conversation's
    conversation_id: UUID
    conversation_title: str
    message_id: UUID | None  # None: the title matched
    role: str | None
    created_at: datetime
    snippet: str  # HTML: the text escaped, matched words in <mark>


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: list[SearchHit]
    has_more: bool


# ts_headline marks matches with two control characters, removed from the text beforehand,
# so that the text can be escaped and the marks turned into <mark> afterwards.
_START, _STOP = "\x02", "\x03"
# Quoted: unquoted, the option parser takes them for spaces. One passage of 10 to 30 words
# around the best match, punctuation kept.
_HEADLINE_OPTIONS = f'StartSel="{_START}", StopSel="{_STOP}", MinWords=10, MaxWords=30'
# Every match is ranked, so ``hits`` keeps only what sorting needs; the texts are read for the
# page's rows alone.
_HITS_SQL = """
WITH query AS MATERIALIZED (
    SELECT websearch_to_tsquery(%(config)s::regconfig, %(q)s) AS tsq
),
hits AS MATERIALIZED (
    SELECT m.id, m.conversation_id, m.id AS message_id, m.created_at,
           ts_rank(m.search_vector, query.tsq) AS rank
    FROM query, messaging_message m
    JOIN conversations_conversation c ON c.id = m.conversation_id
    WHERE m.search_owner = %(owner)s AND m.search_vector @@ query.tsq
          AND c.owner_id = %(owner)s {message_filters}
    UNION ALL
    SELECT c.id, c.id, NULL, c.created_at, ts_rank(c.search_vector, query.tsq)
    FROM query, conversations_conversation c
    WHERE c.search_vector @@ query.tsq AND c.owner_id = %(owner)s {title_filters}
),
page AS (
    SELECT * FROM hits {past_cursor}
    ORDER BY rank {direction}, created_at {direction}, id {direction}
    LIMIT %(limit)s
)
SELECT cursor.found, page.id, page.conversation_id, c.title, page.message_id, m.role,
       page.created_at,
       ts_headline(%(config)s::regconfig, translate(coalesce(m.content, c.title), %(marks)s, ''),
                   query.tsq, %(headline)s)
FROM (SELECT count(*) > 0 AS found FROM hits WHERE id = %(cursor)s) cursor
LEFT JOIN (page JOIN conversations_conversation c ON c.id = page.conversation_id
           LEFT JOIN messaging_message m ON m.id = page.message_id
           CROSS JOIN query) ON true
ORDER BY page.rank {direction}, page.created_at {direction}, page.id {direction}
"""

# (rank, created_at, id) strictly past the cursor's, in the direction walked.
_PAST_CURSOR = {
    True: "WHERE (rank, created_at, id) < (SELECT rank, created_at, id FROM hits WHERE id = "
    "%(cursor)s)",
    False: "WHERE (rank, created_at, id) > (SELECT rank, created_at, id FROM hits WHERE id = "
    "%(cursor)s)",
}


def _filters_sql(alias: str, filters: SearchFilters) -> str:
    conditions = []
    if filters.conversation_id is not None:
        conditions.append("AND c.id = %(conversation_id)s")
    if filters.created_after is not None:
        conditions.append(f"AND {alias}.created_at >= %(created_after)s")
    if filters.created_before is not None:
        conditions.append(f"AND {alias}.created_at < %(created_before)s")
    return " ".join(conditions)


def search(*, user: User, q: str, filters: SearchFilters, page: PageParams) -> SearchPage:
    """The user's messages and conversation titles that match ``q`` (websearch_to_tsquery:
    words, "quoted phrases", ``or``, ``-word``), most relevant first (ts_rank), then newest,
    then by id; keyset-paginated like the other lists (chatapi.pagination), the cursor being
    a hit's ``id``.

    The search vectors and their GIN indexes are conversations.search_columns'. Ownership is
    the conversation's ``owner_id`` (and RLS under it): another user's words never match. The
    messages' ``search_owner`` condition is there for the index.
    """
    forward = page.before_id is None
    cursor_param, cursor = ("after_id", page.after_id) if forward else ("before_id", page.before_id)
    # Walking backwards from before_id is walking forwards in the reversed order.
    direction = "DESC" if forward else "ASC"
    sql = _HITS_SQL.format(
        message_filters=_filters_sql("m", filters),
        title_filters=_filters_sql("c", filters),
        past_cursor="" if cursor is None else _PAST_CURSOR[forward],
        direction=direction,
    )
    params: dict[str, Any] = {
        "config": settings.SEARCH_CONFIG,
        "q": q,
        "owner": user.pk,
        "conversation_id": filters.conversation_id,
        "created_after": filters.created_after,
        "created_before": filters.created_before,
        "cursor": cursor,
        "limit": page.limit + 1,
        "marks": _START + _STOP,
        "headline": _HEADLINE_OPTIONS,
    }
    with connection.cursor() as db:
        db.execute(sql, params)
        rows = db.fetchall()
    if cursor is not None and not rows[0][0]:
        raise _invalid_search_cursor(cursor_param)
    hits = [
        SearchHit(
            id=row[1],
            conversation_id=row[2],
            conversation_title=row[3],
            message_id=row[4],
            role=row[5],
            created_at=row[6],
            snippet=html.escape(row[7].strip()).replace(_START, "<mark>").replace(_STOP, "</mark>"),
        )
        for row in rows
        if row[1] is not None
    ]
    has_more = len(hits) > page.limit
    hits = hits[: page.limit]
    if not forward:
        hits.reverse()
    return SearchPage(hits=hits, has_more=has_more)


def _invalid_search_cursor(param: str) -> ApiError:
    problem = "No result with this id for this search."
    return ApiError(f"{param}: {problem}", details={"fields": {param: [problem]}})
