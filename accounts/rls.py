"""Row Level Security per request (``DB_RLS_PER_REQUEST``): defence in depth under the
ownership filters of the selectors.

With the setting on, an authenticated API request runs its queries the way Supabase's Data
API (PostgREST) runs them: in one transaction, after

    SELECT set_config('request.jwt.claims', <the caller's claims>, true),
           set_config('role', 'authenticated', true)      -- i.e. SET LOCAL ROLE

so the policies of accounts/migrations/0002 apply to every query of the view. A query that
forgets its user filter then reaches only the caller's rows, never someone else's. Both
settings are transaction-local: they end with the transaction's COMMIT or ROLLBACK, so a
connection goes back to the pool (and to the next request) as the service's own role.

The few writes the policies deliberately keep from users (the usage ledger, budget
reservations, idempotency keys, worker heartbeats) run inside ``service_role()``: a savepoint
that resets the role to the connection's own (the tables' owner) and restores
`authenticated` after it. Outside a caller transaction it does nothing, so the detached
generation task, the sweeper and management commands (each on their own connection, as the
owner) are unaffected.

The request's transaction opens after authentication (which may create the user, a write
users may not do) and ends when the synchronous part of the view returns: a send commits its
turn there, before the upstream call, and hands the rest to the event loop and the
generation task, whose queries (by the ids the request just stored) run as the service.
"""

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.transaction import Atomic
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from psycopg.pq import TransactionStatus
from rest_framework.request import Request

from accounts.keys import ApiKeyCaller
from accounts.tokens import Claims
from chatapi.dispatch import APIView, ContinueOnLoop

ROLE = "authenticated"
ASSUME_SQL = (
    "SELECT set_config('request.jwt.claims', %s, true), set_config('role', 'authenticated', true)"
)
# RESET ROLE, transaction-local: the connection's own role until the savepoint ends.
_ELEVATE = "SELECT set_config('role', 'none', true)"
_RESTORE = "SELECT set_config('role', 'authenticated', true)"
# Only for a caller transaction nested in an outer one (tests): a savepoint's RELEASE keeps
# its settings, so they are cleared by hand before it.
CLEAR_SQL = "SELECT set_config('role', 'none', true), set_config('request.jwt.claims', '', true)"


@dataclass
class _CallerTransaction:
    atomic: Atomic
    nested: bool
    elevated: bool = False


# The open caller transaction of each connection (connections are per thread).
_open: "WeakKeyDictionary[BaseDatabaseWrapper, _CallerTransaction]" = WeakKeyDictionary()


def _connection() -> BaseDatabaseWrapper:
    return connections[DEFAULT_DB_ALIAS]


def per_request_enabled() -> bool:
    return bool(settings.DB_RLS_PER_REQUEST)


def caller_claims_json(claims: Claims) -> str:
    """What PostgREST puts in ``request.jwt.claims``: the token's payload. The database role
    is always `authenticated`, whatever the token's own ``role`` claim says."""
    return json.dumps({**claims.raw, "sub": str(claims.sub), "role": ROLE}, default=str)


def caller_transaction_begin(claims: Claims) -> None:
    """Open a transaction on this thread's connection whose queries run as `authenticated`
    with ``claims``, until ``caller_transaction_end()``."""
    connection = _connection()
    if connection in _open:
        raise RuntimeError("A caller transaction is already open on this connection.")
    atomic = transaction.atomic()
    nested = connection.in_atomic_block
    atomic.__enter__()
    try:
        with connection.cursor() as cursor:
            cursor.execute(ASSUME_SQL, [caller_claims_json(claims)])
    except BaseException:
        atomic.__exit__(*sys.exc_info())
        raise
    _open[connection] = _CallerTransaction(atomic=atomic, nested=nested)


def caller_transaction_end(error: BaseException | None = None) -> None:
    """Commit the caller transaction (roll it back when ``error`` is given, or when a query
    in it failed); the role and the claims end with it. Nothing open: nothing to do."""
    connection = _connection()
    caller = _open.pop(connection, None)
    if caller is None:
        return
    failed = (
        error is not None
        or connection.needs_rollback
        or connection.closed_in_transaction
        or _aborted(connection)
    )
    if failed:
        connection.needs_rollback = True
    elif caller.nested:
        with connection.cursor() as cursor:
            cursor.execute(CLEAR_SQL)
    if error is None:
        caller.atomic.__exit__(None, None, None)
    else:
        caller.atomic.__exit__(type(error), error, error.__traceback__)


def _aborted(connection: BaseDatabaseWrapper) -> bool:
    raw = connection.connection
    return raw is not None and raw.info.transaction_status == TransactionStatus.INERROR


def caller_role_active() -> bool:
    """Whether this thread's queries run as the caller right now."""
    caller = _open.get(_connection())
    return caller is not None and not caller.elevated


@contextmanager
def service_role() -> Iterator[None]:
    """Run the block as the connection's own role, inside the caller's transaction: for the
    service's own bookkeeping that the policies keep from users. A savepoint holds the
    change: a block that fails rolls it back (and with it the role, to `authenticated`); one
    that succeeds sets `authenticated` back. Outside a caller transaction: no effect."""
    connection = _connection()
    caller = _open.get(connection)
    if caller is None or caller.elevated:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_ELEVATE)
        caller.elevated = True
        try:
            yield
        finally:
            caller.elevated = False
        with connection.cursor() as cursor:
            cursor.execute(_RESTORE)


class CallerAPIView(APIView):
    """Base class of the API's authenticated views: with ``DB_RLS_PER_REQUEST`` on, the
    handler's queries run in a caller transaction (see the module's docstring). Opened after
    authentication, permissions and throttling; closed when the synchronous dispatch returns,
    or raises: before the rest of a send runs on the event loop, so a turn is committed before
    its upstream call (``chatapi.dispatch.ContinueOnLoop``)."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        claims = request.auth.claims if isinstance(request.auth, ApiKeyCaller) else request.auth
        if per_request_enabled() and isinstance(claims, Claims):
            caller_transaction_begin(claims)

    def dispatch_sync(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            response = super().dispatch_sync(request, *args, **kwargs)
        except BaseException as exc:
            caller_transaction_end(exc)
            raise
        try:
            caller_transaction_end()
        except (OperationalError, InterfaceError) as exc:
            # The commit failed (the database went away, or refused it): nothing the handler
            # wrote exists, and the answer is the 503 any query's failure gets.
            if isinstance(response, ContinueOnLoop) and response.discard is not None:
                response.discard()
            error = self.handle_exception(exc)
            return self.finalize_response(self.request, error, *args, **kwargs)
        return response
