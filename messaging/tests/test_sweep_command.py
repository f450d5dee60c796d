from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import User
from conversations.models import Message
from conversations.services import conversation_create


@pytest.mark.django_db(transaction=True)
def test_sweep_generations_finishes_orphans(user: User, settings) -> None:
    # given: a message in progress on a worker that is gone, and one just started
    settings.GENERATION_STALE_SECONDS = 1.0
    conversation = conversation_create(owner=user, model="openai/gpt-oss-20b")
    orphan = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.IN_PROGRESS,
        worker_id="gone:1:x",
        created_at=timezone.now() - timedelta(seconds=10),
    )
    other = conversation_create(owner=user, model="openai/gpt-oss-20b")
    fresh = Message.objects.create(
        conversation=other,
        role=Message.Role.ASSISTANT,
        status=Message.Status.IN_PROGRESS,
        worker_id="gone:1:x",
    )
    out = StringIO()

    # when
    call_command("sweep_generations", stdout=out)

    # then
    orphan.refresh_from_db()
    fresh.refresh_from_db()
    assert out.getvalue() == f"swept 1 message(s)\n  {orphan.pk}\n"
    assert orphan.status == "incomplete"
    assert orphan.completed_at is not None
    assert fresh.status == "in_progress"
