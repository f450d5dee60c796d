"""The project's routes plus one deliberately buggy view for the DB_RLS_PER_REQUEST tests
(messaging/tests/test_rls_per_request.py): its queries forget the caller's filter."""

from typing import Any

from django.db import connection
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.rls import CallerAPIView
from chatapi.urls import urlpatterns as project_urlpatterns
from conversations.models import Conversation, Message
from usage.models import UsageRecord

EVERYTHING_URL = "/api/v1/test-only/everything"


def _everything() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, pg_backend_pid()")
        db_user, pid = cursor.fetchone()
    return {
        "conversations": sorted(Conversation.objects.values_list("title", flat=True)),
        "messages": sorted(Message.objects.values_list("content", flat=True)),
        "ledger_output_tokens": sorted(UsageRecord.objects.values_list("output_tokens", flat=True)),
        "db_user": db_user,
        "pid": pid,
    }


class EverythingView(CallerAPIView):
    """Every row the request's queries can see, unfiltered: the bug RLS guards against."""

    def get(self, request: Request) -> Response:
        return Response(_everything())

    def post(self, request: Request) -> Response:
        """The same queries, then a crash (a 500)."""
        _everything()
        raise RuntimeError("a bug after the queries")


urlpatterns = [path(EVERYTHING_URL.lstrip("/"), EverythingView.as_view()), *project_urlpatterns]
