"""The Row Level Security policies (accounts/migrations/0002), proved the way Supabase's Data
API would exercise them: as the `authenticated` role with one user's JWT claims."""

import importlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.backends.db import SessionStore
from django.db import DatabaseError, connection, transaction

from accounts.models import User
from conversations.models import Conversation, Message
from conversations.services import conversation_create
from testsupport.factories import make_message, make_usage

pytestmark = pytest.mark.django_db

SYSTEM_TABLES: list[str] = importlib.import_module(
    "accounts.migrations.0004_rls_system_tables"
).SYSTEM_TABLES


@contextmanager
def as_authenticated(user: User) -> Iterator[Any]:
    """A cursor running as `authenticated` with ``user``'s claims, as PostgREST sets them."""
    claims = json.dumps({"sub": str(user.pk), "role": "authenticated"})
    with connection.cursor() as cursor:
        cursor.execute("SET ROLE authenticated")
        cursor.execute("SELECT set_config('request.jwt.claims', %s, false)", [claims])
        try:
            yield cursor
        finally:
            cursor.execute("RESET ROLE")
            cursor.execute("SELECT set_config('request.jwt.claims', '', false)")


def rows(cursor: Any, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    cursor.execute(sql, params or [])
    return list(cursor.fetchall())


def refused(cursor: Any, sql: str, params: list[Any]) -> str:
    """Run a statement that must fail; the message PostgreSQL gave."""
    try:
        with transaction.atomic():
            cursor.execute(sql, params)
    except DatabaseError as exc:
        return str(exc)
    raise AssertionError(f"not refused: {sql}")


@pytest.fixture
def data(user: User, other_user: User) -> dict[str, Conversation]:
    mine = conversation_create(owner=user, model="openai/gpt-oss-20b", title="mine")
    theirs = conversation_create(owner=other_user, model="openai/gpt-oss-20b", title="theirs")
    make_message(conversation=mine, role=Message.Role.USER, content="my question")
    make_message(conversation=theirs, role=Message.Role.USER, content="their question")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    make_usage(user=user, at=at, input_tokens=1, output_tokens=2, cost_usd="0.001")
    make_usage(user=other_user, at=at, input_tokens=3, output_tokens=4, cost_usd="0.002")
    return {"mine": mine, "theirs": theirs}


def test_select_reaches_only_the_callers_rows(
    user: User, other_user: User, data: dict[str, Conversation]
) -> None:
    with as_authenticated(user) as cursor:
        conversations = rows(cursor, "SELECT title FROM conversations_conversation")
        messages = rows(cursor, "SELECT content FROM messaging_message")
        users = rows(cursor, "SELECT email FROM accounts_user")
        ledger = rows(cursor, "SELECT output_tokens FROM usage_usagerecord")
        catalog = rows(cursor, "SELECT count(*) FROM usage_languagemodel")

    assert conversations == [("mine",)]
    assert messages == [("my question",)]
    assert users == [("ada@example.com",)]
    assert ledger == [(2,)]
    assert catalog[0][0] > 0  # the catalog is for everyone


def test_insert_only_as_oneself(
    user: User, other_user: User, data: dict[str, Conversation]
) -> None:
    insert = (
        "INSERT INTO conversations_conversation (id, owner_id, title, model, system_prompt, "
        "metadata, archived, created_at, updated_at, activity_at, reasoning_effort) "
        "VALUES (%s, %s, 'x', 'm', '', '{}', false, now(), now(), now(), '')"
    )
    with as_authenticated(user) as cursor:
        cursor.execute(insert, [uuid.uuid4(), user.pk])
        error = refused(cursor, insert, [uuid.uuid4(), other_user.pk])
        into_theirs = refused(
            cursor,
            "INSERT INTO messaging_message (id, conversation_id, role, content, reasoning, "
            "status, stop_reason, model, usage_estimated, created_at, worker_id) "
            "VALUES (%s, %s, 'user', 'hi', '', 'complete', '', '', false, now(), '')",
            [uuid.uuid4(), data["theirs"].pk],
        )
        ledger = refused(
            cursor,
            "INSERT INTO usage_usagerecord (user_id, kind, provider, model, input_tokens, "
            "output_tokens, usage_estimated, price_unknown, created_at) "
            "VALUES (%s, 'chat', 'groq', 'm', 1, 1, false, false, now())",
            [user.pk],
        )

    assert "row-level security" in error
    assert "row-level security" in into_theirs
    assert "permission denied" in ledger  # the ledger is the service's to write
    assert Conversation.objects.filter(owner=user).count() == 2
    assert Conversation.objects.filter(owner=other_user).count() == 1


def test_update_and_delete_reach_only_the_callers_rows(
    user: User, other_user: User, data: dict[str, Conversation]
) -> None:
    with as_authenticated(user) as cursor:
        cursor.execute("UPDATE conversations_conversation SET title = 'renamed'")
        renamed = cursor.rowcount
        cursor.execute("DELETE FROM messaging_message")
        deleted_messages = cursor.rowcount
        cursor.execute("DELETE FROM conversations_conversation WHERE id = %s", [data["theirs"].pk])
        deleted_theirs = cursor.rowcount

    assert (renamed, deleted_messages, deleted_theirs) == (1, 1, 0)
    data["theirs"].refresh_from_db()
    assert data["theirs"].title == "theirs"
    assert Message.objects.filter(conversation=data["theirs"]).count() == 1
    assert Message.objects.filter(conversation=data["mine"]).count() == 0


def test_without_claims_nothing_is_visible(data: dict[str, Conversation]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET ROLE authenticated")
        try:
            visible = rows(cursor, "SELECT count(*) FROM conversations_conversation")
        finally:
            cursor.execute("RESET ROLE")

    assert visible == [(0,)]


def test_the_services_bookkeeping_is_closed_to_users(user: User) -> None:
    with as_authenticated(user) as cursor:
        error = refused(cursor, "SELECT * FROM messaging_generationworker", [])

    assert "permission denied" in error


def _rls_disabled_tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity "
            "ORDER BY 1"
        )
        return [name for (name,) in cursor.fetchall()]


def test_every_table_has_row_level_security() -> None:
    # then: a new table must get policies (0002) or none at all (0004)
    assert _rls_disabled_tables() == []


def _counts(tables: list[str]) -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (our own names)
            counts[table] = cursor.fetchone()[0]
    return counts


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_djangos_tables_show_the_data_api_nothing(user: User, role: str) -> None:
    # given: a row in every one of them, and Supabase's default grants to the API roles
    group = Group.objects.create(name="support")
    permission = Permission.objects.get(codename="view_conversation")
    group.permissions.add(permission)
    user.groups.add(group)
    user.user_permissions.add(permission)
    session = SessionStore()
    session["note"] = "admin session"
    session.create()
    LogEntry.objects.log_actions(
        user_id=user.pk,
        queryset=User.objects.filter(pk=user.pk),
        action_flag=CHANGE,
        change_message="edited",
        single_object=True,
    )
    tables = SYSTEM_TABLES
    with connection.cursor() as cursor:
        cursor.execute(f"GRANT SELECT ON {', '.join(tables)} TO anon, authenticated")
    as_owner = _counts(tables)

    # when
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {role}")
        try:
            as_role = _counts(tables)
        finally:
            cursor.execute("RESET ROLE")

    # then
    assert all(count > 0 for count in as_owner.values()), as_owner
    assert as_role == dict.fromkeys(tables, 0)
    assert SessionStore(session_key=session.session_key)["note"] == "admin session"


def test_the_usage_rollups_are_readable_by_their_owner_only(
    user: User, other_user: User, data: dict[str, Conversation]
) -> None:
    # given: one ledger row each (data), so one row of each rollup each
    with as_authenticated(user) as cursor:
        # when
        daily = rows(cursor, "SELECT output_tokens FROM usage_usagedaily")
        hourly = rows(cursor, "SELECT output_tokens FROM usage_usagehourly")
        update = refused(cursor, "UPDATE usage_usagedaily SET output_tokens = 0", [])

    # then
    assert (daily, hourly) == ([(2,)], [(2,)])
    assert "permission denied" in update  # the rollups are the service's to write
