"""DB_RLS_PER_REQUEST (accounts/rls.py): an authenticated request's queries run as the
`authenticated` role with the caller's claims, so an unfiltered query sees only the caller's
rows; the role never outlives the request's transaction, so the pooled connections go back
as the service's own role. The app runs in-process under ASGI (testsupport/asgi.py), as
under daphne: each request in a thread of its own, on a connection from the real pool."""

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection, transaction

from accounts.models import User
from accounts.rls import caller_transaction_begin, caller_transaction_end, service_role
from accounts.services import api_key_create
from accounts.tokens import Claims
from conversations.models import Conversation, Message
from conversations.services import conversation_create
from messaging.tests.rls_urls import EVERYTHING_URL
from testsupport.asgi import ASGIRequest
from testsupport.factories import make_message, make_usage
from testsupport.fake_groq import FakeGroq, Reply
from testsupport.helpers import MODEL, settled
from usage.catalog import chat_model_get
from usage.models import UsageKind, UsageRecord
from usage.services import ledger_row, usage_record

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls("messaging.tests.rls_urls"),
    pytest.mark.usefixtures("groq_providers", "close_worker_connection"),
]


@pytest.fixture
def rls_on(settings: Any) -> None:
    settings.DB_RLS_PER_REQUEST = True


@pytest.fixture
def rls_off(settings: Any) -> None:
    settings.DB_RLS_PER_REQUEST = False


@pytest.fixture
def data(user: User, other_user: User) -> dict[str, Conversation]:
    mine = conversation_create(owner=user, model=MODEL, title="mine")
    theirs = conversation_create(owner=other_user, model=MODEL, title="theirs")
    make_message(conversation=mine, role=Message.Role.USER, content="my question")
    make_message(conversation=theirs, role=Message.Role.USER, content="their question")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    make_usage(user=user, at=at, input_tokens=1, output_tokens=2, cost_usd="0.001")
    make_usage(user=other_user, at=at, input_tokens=3, output_tokens=4, cost_usd="0.002")
    connection.close()  # the test's own connection back to the pool
    return {"mine": mine, "theirs": theirs}


def _service_user() -> str:
    return str(connection.settings_dict["USER"])


def _idle_sessions() -> dict[int, tuple[str, str, str]]:
    """Every idle connection of the pool: its backend pid -> (current_user, role, claims)."""
    pool = connection.pool  # type: ignore[attr-defined]  # the PostgreSQL backend's
    borrowed = [pool.getconn() for _ in range(pool.get_stats().get("pool_available", 0))]
    try:
        sessions = {}
        for raw in borrowed:
            row = raw.execute(
                "SELECT pg_backend_pid(), current_user, current_setting('role'), "
                "coalesce(current_setting('request.jwt.claims', true), '')"
            ).fetchone()
            assert row is not None
            sessions[row[0]] = (row[1], row[2], row[3])
            raw.rollback()
        return sessions
    finally:
        for raw in borrowed:
            pool.putconn(raw)


async def _idle_session_of(pid: int, wait: float = 10.0) -> tuple[str, str, str]:
    """The state of backend ``pid`` once its request has given it back to the pool."""
    deadline = time.monotonic() + wait
    while True:
        sessions = await sync_to_async(_idle_sessions)()
        if pid in sessions or time.monotonic() > deadline:
            return sessions[pid]
        await asyncio.sleep(0.05)


async def _idle_sessions_once(
    settled: Callable[[dict[int, tuple[str, str, str]]], bool], wait: float = 10.0
) -> dict[int, tuple[str, str, str]]:
    """The pool's idle sessions once ``settled`` holds of them (or as they are at ``wait``):
    a request gives its connection back just after its response, not before."""
    deadline = time.monotonic() + wait
    while True:
        sessions = await sync_to_async(_idle_sessions)()
        if settled(sessions) or time.monotonic() > deadline:
            return sessions
        await asyncio.sleep(0.05)


def _claims(user: User) -> Claims:
    return Claims(
        sub=user.pk,
        role="authenticated",
        email=user.email,
        session_id=None,
        aal="aal1",
        is_anonymous=False,
        expires_at=0,
        raw={"sub": str(user.pk), "role": "authenticated", "email": user.email},
    )


def _current_user() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return str(cursor.fetchone()[0])


@pytest.mark.asyncio
async def test_an_unfiltered_query_in_a_request_sees_only_the_callers_rows(
    rls_on: None, data: dict[str, Conversation], auth: dict[str, str]
) -> None:
    # when
    response = await ASGIRequest("GET", EVERYTHING_URL, headers=auth).start()
    body = json.loads(await response.read())

    # then
    assert response.status == 200
    assert {key: value for key, value in body.items() if key != "pid"} == {
        "conversations": ["mine"],
        "messages": ["my question"],
        "ledger_output_tokens": [2],
        "db_user": "authenticated",
    }
    assert await _idle_session_of(body["pid"]) == (_service_user(), "none", "")


@pytest.mark.asyncio
async def test_a_request_with_an_api_key_runs_as_the_keys_owner(
    rls_on: None, data: dict[str, Conversation], user: User
) -> None:
    # given
    _, secret = await sync_to_async(api_key_create)(
        user=user, name="k", scopes=["conversations:read"]
    )

    # when
    response = await ASGIRequest("GET", EVERYTHING_URL, headers={"x-api-key": secret}).start()
    body = json.loads(await response.read())

    # then
    assert response.status == 200
    assert (body["conversations"], body["db_user"]) == (["mine"], "authenticated")
    assert await _idle_session_of(body["pid"]) == (_service_user(), "none", "")


@pytest.mark.asyncio
async def test_without_the_setting_the_same_query_sees_everyones_rows(
    rls_off: None, data: dict[str, Conversation], auth: dict[str, str]
) -> None:
    # when
    response = await ASGIRequest("GET", EVERYTHING_URL, headers=auth).start()
    body = json.loads(await response.read())

    # then: the bug the setting guards against
    assert response.status == 200
    assert body["conversations"] == ["mine", "theirs"]
    assert body["messages"] == ["my question", "their question"]
    assert body["ledger_output_tokens"] == [2, 4]
    assert body["db_user"] == _service_user()


@pytest.mark.asyncio
async def test_a_request_that_crashes_gives_its_connection_back_as_the_service(
    rls_on: None, data: dict[str, Conversation], auth: dict[str, str]
) -> None:
    # given
    before = set(await sync_to_async(_idle_sessions)())

    # when
    response = await ASGIRequest("POST", EVERYTHING_URL, headers=auth, json_body={}).start()
    body = json.loads(await response.read())
    service = {(_service_user(), "none", "")}
    sessions = await _idle_sessions_once(
        lambda idle: set(idle) >= before and set(idle.values()) == service
    )

    # then
    assert response.status == 500
    assert body["error"]["type"] == "api_error"
    assert set(sessions) >= before
    assert set(sessions.values()) == {(_service_user(), "none", "")}


@pytest.mark.asyncio
async def test_sends_under_the_setting_leave_every_pooled_connection_as_the_service(
    rls_on: None,
    fake_groq: FakeGroq,
    data: dict[str, Conversation],
    user: User,
    auth: dict[str, str],
) -> None:
    # given
    fake_groq.replies += [
        Reply(text=["Hel", "lo"], prompt_tokens=5, completion_tokens=2),
        Reply(text=["Again"], prompt_tokens=9, completion_tokens=1),
    ]
    url = f"/api/v1/conversations/{data['mine'].pk}/messages"
    keyed = {**auth, "Idempotency-Key": "k-1"}

    # when: a streamed send, a JSON send with an Idempotency-Key, and its retry
    streamed = await ASGIRequest(
        "POST", url, headers=auth, json_body={"content": "Hi", "stream": True}
    ).start()
    await streamed.read()
    await settled(data["mine"])
    first = await ASGIRequest("POST", url, headers=keyed, json_body={"content": "More"}).start()
    first_body = json.loads(await first.read())
    retry = await ASGIRequest("POST", url, headers=keyed, json_body={"content": "More"}).start()
    retry_body = json.loads(await retry.read())
    service = {(_service_user(), "none", "")}
    sessions = await _idle_sessions_once(lambda idle: set(idle.values()) == service)
    ledger = await sync_to_async(
        lambda: sorted(
            UsageRecord.objects.filter(user=user).values_list("output_tokens", flat=True)
        )
    )()

    # then: the ledger, the reservations and the key were written as the service
    assert (streamed.status, first.status, retry.status) == (200, 201, 201)
    assert retry_body["id"] == first_body["id"]
    assert ledger == [1, 2, 2]
    assert set(sessions.values()) == {(_service_user(), "none", "")}


def test_service_role_elevates_and_then_runs_as_the_caller_again(user: User) -> None:
    # given
    caller_transaction_begin(_claims(user))
    try:
        # when
        before = _current_user()
        with service_role():
            elevated = _current_user()
            record = usage_record(
                ledger_row(
                    user_id=user.pk,
                    conversation_id=None,
                    message_id=None,
                    kind=UsageKind.CHAT,
                    model=chat_model_get(MODEL),  # type: ignore[arg-type]
                    input_tokens=1,
                    output_tokens=1,
                    usage_estimated=False,
                    cost_usd=None,
                )
            )
        after = _current_user()
    finally:
        caller_transaction_end()

    # then
    assert (before, elevated, after) == ("authenticated", _service_user(), "authenticated")
    assert record is not None
    assert _current_user() == _service_user()


def test_the_ledger_is_written_through_service_role_only(user: User) -> None:
    # given
    caller_transaction_begin(_claims(user))
    try:
        # when: written directly, as the caller
        try:
            with transaction.atomic():
                UsageRecord.objects.create(
                    user=user, provider="groq", model=MODEL, input_tokens=1, output_tokens=1
                )
            error = ""
        except DatabaseError as exc:
            error = str(exc)
        # and through the service function
        usage_record(
            ledger_row(
                user_id=user.pk,
                conversation_id=uuid.uuid4(),
                message_id=None,
                kind=UsageKind.CHAT,
                model=chat_model_get(MODEL),  # type: ignore[arg-type]
                input_tokens=2,
                output_tokens=3,
                usage_estimated=False,
                cost_usd=None,
            )
        )
    finally:
        caller_transaction_end()

    # then
    assert "permission denied for table usage_usagerecord" in error
    assert list(UsageRecord.objects.values_list("output_tokens", flat=True)) == [3]


def test_a_failed_elevated_block_restores_the_callers_role(user: User) -> None:
    # given
    caller_transaction_begin(_claims(user))
    try:
        # when
        try:
            with service_role(), connection.cursor() as cursor:
                cursor.execute("SELECT 1 / 0")
            error = ""
        except DatabaseError as exc:
            error = type(exc).__name__
        after = _current_user()
    finally:
        caller_transaction_end()

    # then: the savepoint rolled back, and the role with it; the transaction is usable
    assert error == "DataError"
    assert after == "authenticated"
    assert _current_user() == _service_user()
