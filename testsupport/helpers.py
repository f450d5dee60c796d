"""Helpers shared by the tests: waiting for what happens in other tasks, threads and processes."""

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection

from conversations.models import Conversation, Message

MODEL = "openai/gpt-oss-20b"


@sync_to_async
def close_connection() -> None:
    connection.close()


@sync_to_async
def stored(conversation: Conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation).order_by("created_at", "id"))


async def settled(conversation: Conversation, wait: float = 5.0) -> list[Message]:
    """The messages once no assistant message is in progress (a generation stores its outcome
    just after its stream ends)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        messages = await stored(conversation)
        if all(m.status != Message.Status.IN_PROGRESS for m in messages):
            return messages
        assert loop.time() < deadline, "the generation never settled"
        await asyncio.sleep(0.02)


def eventually(check: Any, *, wait: float, every: float = 0.2) -> Any:
    """``check()``'s first truthy value within ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "never happened"
        time.sleep(every)


@contextlib.contextmanager
def outbox_refusing_writes() -> Iterator[None]:
    """The webhook outbox refuses every insert ('outbox down') while the block runs: to show
    that what is written with it rolls back with it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'outbox down'; END $$;"
            "CREATE TRIGGER refuse BEFORE INSERT ON messaging_webhookdelivery "
            "FOR EACH ROW EXECUTE FUNCTION refuse();"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER refuse ON messaging_webhookdelivery; DROP FUNCTION refuse()"
            )
