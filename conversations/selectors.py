import html
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import Model, Prefetch, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Left
from django.utils import timezone

from accounts.models import User
from chatapi.errors import ApiError, NotFoundError
from chatapi.pagination import FirstPages, Page, PageParams, keyset_page
from chatapi.rows import CompiledQuery
from conversations.models import Conversation, Message, Share

PREVIEW_CHARS = 100

# The branch that ends at a message: from the leaf up to its root, one primary-key lookup per
# level, whatever the depth. Each level is a LATERAL lookup with LIMIT 1, which PostgreSQL
# cannot turn into a join: a plain join let the planner, with a table's statistics stale or
# small, hash-join a sequential scan of the whole table at every level (14.6 ms against 0.8 ms
# for a 100-message branch). The walk follows parent_id alone; the query using these ids keeps
# only the conversation's own messages. Parameters: leaf id, conversation id.
_BRANCH_IDS = """
WITH RECURSIVE branch (id, parent_id) AS (
    SELECT id, parent_id FROM {table} WHERE id = %s AND conversation_id = %s
  UNION ALL
    SELECT p.id, p.parent_id FROM branch b
    CROSS JOIN LATERAL (SELECT id, parent_id FROM {table} WHERE id = b.parent_id LIMIT 1) p
)
SELECT id FROM branch
"""

# A message's siblings (the messages with its parent; for a root, the conversation's roots),
# counted as correlated subqueries on the message_parent_siblings index: a page's positions
# come in the page's own query. {t} is the outer table, {earlier} an extra condition.
_SIBLINGS = (
    "(SELECT count(*) FROM {t} s WHERE s.parent_id = {t}.parent_id"
    " AND s.conversation_id = {t}.conversation_id{earlier})"
    " + CASE WHEN {t}.parent_id IS NULL THEN (SELECT count(*) FROM {t} s"
    " WHERE s.parent_id IS NULL AND s.conversation_id = {t}.conversation_id{earlier})"
    " ELSE 0 END"
)
_EARLIER = " AND (s.created_at, s.id) <= ({t}.created_at, {t}.id)"
# The ids of a message's siblings, itself included, oldest first (the admin's links).
_SIBLING_IDS = (
    "ARRAY(SELECT s.id FROM {t} s WHERE s.conversation_id = {t}.conversation_id"
    " AND s.parent_id IS NOT DISTINCT FROM {t}.parent_id ORDER BY s.created_at, s.id)"
)
# From a message down to a leaf, taking the newest child at each level. Parameters: the
# message id, the conversation id.
_NEWEST_LEAF_BELOW = """
WITH RECURSIVE down (id, depth) AS (
    SELECT id, 0 FROM {table} WHERE id = %s AND conversation_id = %s
  UNION ALL
    SELECT (SELECT c.id FROM {table} c WHERE c.parent_id = down.id
            ORDER BY c.created_at DESC, c.id DESC LIMIT 1), down.depth + 1
    FROM down WHERE down.id IS NOT NULL
)
SELECT id FROM down WHERE id IS NOT NULL ORDER BY depth DESC LIMIT 1
"""


@dataclass(frozen=True)
class Transcript:
    """A conversation and all its messages (every branch), oldest first; ``branch`` is the
    current branch, and ``other_branches`` how many other leaves the tree has."""

    conversation: Conversation
    messages: list[Message]
    branch: list[Message]
    other_branches: int


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
    try:
        pk = UUID(conversation_id)
    except ValueError:
        raise NotFoundError("Conversation not found.") from None
    conversation = _OWNED_CONVERSATION.first(owner=user.pk, pk=pk)
    if conversation is None:
        raise NotFoundError("Conversation not found.")
    return conversation


# Compiled once: every conversation route runs it.
_OWNED_CONVERSATION = CompiledQuery(
    lambda owner, pk: Conversation.objects.filter(owner_id=owner).filter(pk=pk)[:1],
    owner=UUID(int=1),
    pk=UUID(int=2),
)


def _owned(owner: UUID) -> QuerySet[Conversation]:
    return Conversation.objects.filter(owner_id=owner)


# The commonest list, a first page with no filter, compiled once per limit.
_CONVERSATIONS_FIRST_PAGES = FirstPages(
    _owned, sort_field="activity_at", descending=True, owner=UUID(int=1)
)


def conversation_list(
    *, user: User, page: PageParams, archived: bool | None = None, q: str = ""
) -> Page[Conversation]:
    """The user's conversations, most recent activity first."""
    if page.after_id is None and page.before_id is None and archived is None and not q:
        return _CONVERSATIONS_FIRST_PAGES.page(page.limit, owner=user.pk)
    owned = _owned(user.pk)
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


def messages_with_siblings(messages: QuerySet[Message]) -> QuerySet[Message]:
    """``messages`` with ``sibling_count`` and ``sibling_index`` (1-based, oldest sibling
    first): "2 of 3" is index 2 of count 3. What ``MessageSerializer`` needs."""
    table = Message._meta.db_table
    earlier = _EARLIER.format(t=table)
    # Constant SQL (the table name is the model's own), no values: nothing to inject.
    return messages.annotate(
        sibling_count=RawSQL(_SIBLINGS.format(t=table, earlier=""), ()),  # noqa: S611
        sibling_index=RawSQL(_SIBLINGS.format(t=table, earlier=earlier), ()),  # noqa: S611
    )


def message_sibling_position(*, message: Message) -> tuple[int, int]:
    """``(sibling_count, sibling_index)`` of a stored message, as ``messages_with_siblings``
    annotates them, in one small statement (a send's new message, without reading it back)."""
    table = Message._meta.db_table
    siblings = (
        "parent_id = %s AND conversation_id = %s"
        if message.parent_id is not None
        else "parent_id IS NULL AND conversation_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), count(*) FILTER (WHERE (created_at, id) <= (%s, %s)) "  # noqa: S608
            f"FROM {table} WHERE {siblings}",  # constant SQL: the model's table, two conditions
            (
                message.created_at,
                message.pk,
                *([message.parent_id] if message.parent_id is not None else []),
                message.conversation_id,
            ),
        )
        count, index = cursor.fetchone()
    return int(count), int(index)


def message_newest_leaf_below(*, conversation: Conversation, message_id: UUID) -> UUID | None:
    """The leaf reached from ``message_id`` by following the newest answer at every level
    (the branch a client shows when the user picks that version); None when the message is
    not one of the conversation's."""
    with connection.cursor() as cursor:
        cursor.execute(
            _NEWEST_LEAF_BELOW.format(table=Message._meta.db_table), (message_id, conversation.pk)
        )
        row = cursor.fetchone()
    return None if row is None else UUID(str(row[0]))


def transcript_branch(*, conversation: Conversation, leaf: str | None) -> QuerySet[Message]:
    """The admin transcript's messages: the branch through ``leaf`` (a message id from the
    page's link, continued down its newest answers), else the current branch; each message
    with its sibling position and its siblings' ids."""
    leaf_id: UUID | None = None
    if leaf:
        try:
            leaf_id = message_newest_leaf_below(conversation=conversation, message_id=UUID(leaf))
        except ValueError:
            leaf_id = None
    leaf_id = leaf_id or conversation_leaf_id(conversation=conversation)
    if leaf_id is None:
        return Message.objects.none()
    table = Message._meta.db_table
    return messages_with_siblings(
        message_branch_filter(conversation=conversation, leaf_id=leaf_id)
    ).annotate(
        sibling_ids=RawSQL(_SIBLING_IDS.format(t=table), ())  # noqa: S611 - constant SQL
    )


def message_with_siblings(*, message_id: UUID) -> Message:
    """One message, with its sibling position, as ``MessageSerializer`` renders it."""
    return messages_with_siblings(Message.objects.filter(pk=message_id)).get()


def message_find(*, conversation: Conversation, message_id: UUID) -> Message | None:
    """The message with this id if it is one of ``conversation``'s, else None (another
    conversation's, another user's and a missing one alike)."""
    return Message.objects.filter(pk=message_id, conversation=conversation).first()


class Parent(Enum):
    """A new message's parent when the request names none: the end of the user's branch."""

    CURRENT_LEAF = "current_leaf"


def conversation_leaf_id(*, conversation: Conversation) -> UUID | None:
    """The end of the branch the user is on: the current leaf, else (a conversation whose
    messages were stored before the tree, not yet backfilled) its newest message."""
    if conversation.current_leaf_id is not None:
        return conversation.current_leaf_id
    return (
        Message.objects.filter(conversation=conversation)
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
        .first()
    )


def message_branch_filter(*, conversation: Conversation, leaf_id: UUID) -> QuerySet[Message]:
    """The messages of the branch that ends at ``leaf_id`` (the path from its root), as a
    queryset to order, page or annotate: one recursive query whatever the depth. Empty when
    the leaf is not one of the conversation's messages."""
    sql = _BRANCH_IDS.format(table=Message._meta.db_table)
    return Message.objects.filter(
        conversation=conversation,
        # Constant SQL; the ids are query parameters.
        pk__in=RawSQL(sql, (leaf_id, conversation.pk)),  # noqa: S611
    )


def message_branch(*, conversation: Conversation, leaf_id: UUID) -> list[Message]:
    """The branch that ends at ``leaf_id``, oldest first (a child is always newer than its
    parent, so this is path order)."""
    return list(
        message_branch_filter(conversation=conversation, leaf_id=leaf_id).order_by(
            "created_at", "id"
        )
    )


def _branch_with_siblings(conversation: UUID, leaf: UUID) -> QuerySet[Message]:
    return messages_with_siblings(
        message_branch_filter(conversation=Conversation(pk=conversation), leaf_id=leaf)
    )


# A branch's first page (the commonest read of a conversation), compiled once per limit.
_BRANCH_FIRST_PAGES = FirstPages(
    _branch_with_siblings,
    sort_field="created_at",
    descending=False,
    conversation=UUID(int=1),
    leaf=UUID(int=2),
)


def message_list(
    *, conversation: Conversation, page: PageParams, leaf_id: UUID | None = None
) -> Page[Message]:
    """A page of the branch ending at ``leaf_id`` (default: the current branch), oldest
    first, each message with its sibling position. The caller has checked ownership (the
    conversation comes from ``conversation_get_for_user``) and that ``leaf_id`` is one of
    its messages."""
    leaf_id = leaf_id or conversation_leaf_id(conversation=conversation)
    if leaf_id is None:
        messages = Message.objects.none()
    elif page.after_id is None and page.before_id is None:
        return _BRANCH_FIRST_PAGES.page(page.limit, conversation=conversation.pk, leaf=leaf_id)
    else:
        messages = message_branch_filter(conversation=conversation, leaf_id=leaf_id)
    return keyset_page(
        messages_with_siblings(messages),
        params=page,
        sort_field="created_at",
        descending=False,
    )


def message_tree(*, conversation: Conversation, page: PageParams) -> Page[Message]:
    """A page of every message of the conversation, every branch, oldest first, with a
    ``preview`` of its text instead of the text (a tree's outline for a client to draw)."""
    nodes = (
        Message.objects.filter(conversation=conversation)
        .only("id", "parent_id", "role", "status", "model", "created_at")
        .annotate(preview=Left("content", PREVIEW_CHARS))
    )
    return keyset_page(nodes, params=page, sort_field="created_at", descending=False)


def _messages_in_order() -> QuerySet[Message]:
    return messages_with_siblings(Message.objects.order_by("created_at", "id"))


def branch_of(messages: list[Message], leaf_id: UUID | None) -> list[Message]:
    """The branch ending at ``leaf_id`` among ``messages`` (a whole tree already read),
    oldest first; empty without a leaf."""
    by_id = {message.pk: message for message in messages}
    branch: list[Message] = []
    message = by_id.get(leaf_id) if leaf_id is not None else None
    while message is not None:
        branch.append(message)
        message = by_id.get(message.parent_id) if message.parent_id is not None else None
    return branch[::-1]


def _transcript(conversation: Conversation, messages: list[Message]) -> Transcript:
    leaf_id = conversation.current_leaf_id
    if leaf_id is None and messages:
        leaf_id = messages[-1].pk
    parents = {message.parent_id for message in messages}
    leaves = sum(1 for message in messages if message.pk not in parents and message.pk != leaf_id)
    return Transcript(
        conversation=conversation,
        messages=messages,
        branch=branch_of(messages, leaf_id),
        other_branches=leaves,
    )


def conversation_transcript(*, conversation: Conversation) -> Transcript:
    """Every message of the conversation, for an export. The caller has checked ownership
    (the conversation comes from ``conversation_get_for_user``, or staff asked for it)."""
    return _transcript(conversation, list(_messages_in_order().filter(conversation=conversation)))


def conversation_transcripts(*, conversations: QuerySet[Conversation]) -> list[Transcript]:
    """Several transcripts in two queries, in the queryset's order (the admin's export)."""
    rows = conversations.prefetch_related(Prefetch("messages", queryset=_messages_in_order()))
    return [_transcript(conversation, list(conversation.messages.all())) for conversation in rows]


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
