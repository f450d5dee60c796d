"""Benchmark of reading a deep conversation tree: the branch selector, the context read of a
new turn, and GET /messages and /tree, on a conversation of MESSAGES messages.

    DATABASE_URL=postgres://... .venv/bin/python -m bench.tree [--messages 2000] [--runs 200]

Against a migrated database. The tree: turns in a line, each a question and its answer,
with a second answer to every tenth question (a regeneration, a leaf of its own); the current
leaf is the newest answer, so the current branch is as deep as the tree allows (about 95% of
its messages). Prints p50/p99/max per operation in ms, for the selector alone and for the
whole request (in-process, DRF test client), and writes them to
bench/results/tree-<UTC time>.txt. The conversation and its user are deleted at the end.
"""

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapi.settings")
os.environ.setdefault("CHATAPI_ENV", "test")
os.environ.setdefault("LOG_LEVEL", "WARNING")  # no access log line per request

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from accounts.models import User  # noqa: E402
from conversations.models import Conversation, Message  # noqa: E402
from conversations.selectors import message_branch, message_branch_filter  # noqa: E402
from messaging.turns import context_messages  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TEXT = "A sentence of a plausible length for a chat message, repeated. " * 4


def _summary(timings: list[float]) -> str:
    timings.sort()
    p50 = timings[len(timings) // 2]
    p99 = timings[min(len(timings) - 1, round(len(timings) * 0.99) - 1)]
    return f"p50 {p50:7.2f}  p99 {p99:7.2f}  max {timings[-1]:7.2f}"


def _measure(runs: int, operation: Callable[[], object]) -> str:
    operation()  # warm: connection, plans, caches
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        operation()
        timings.append((time.perf_counter() - started) * 1000)
    return _summary(timings)


def tree_seed(conversation: Conversation, messages: int) -> tuple[Message, int]:
    """``messages`` messages as described above, in one bulk insert; returns the current
    leaf and the depth of its branch."""
    rows: list[Message] = []
    start = datetime.now(UTC) - timedelta(days=1)
    parent: Message | None = None
    turn = 0
    depth = 0

    def message(role: Message.Role, parent: Message | None) -> Message:
        row = Message(
            id=uuid.uuid4(),
            conversation=conversation,
            role=role,
            content=TEXT,
            parent=parent,
            model="openai/gpt-oss-20b" if role == Message.Role.ASSISTANT else "",
            created_at=start + timedelta(milliseconds=len(rows)),
        )
        rows.append(row)
        return row

    while len(rows) < messages:
        question = message(Message.Role.USER, parent)
        answer = message(Message.Role.ASSISTANT, question)
        depth += 2
        if turn % 10 == 0 and len(rows) < messages:
            message(Message.Role.ASSISTANT, question)  # another answer, a leaf
        parent = answer
        turn += 1
    Message.objects.bulk_create(rows, batch_size=1000)
    # As autovacuum would soon: planned on an empty table's statistics, the branch's
    # semi-join rescans the CTE for every message of the conversation (seconds, not ms).
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Message._meta.db_table}")
    if parent is None:
        raise ValueError("A tree of at least two messages is needed.")
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=parent)
    conversation.refresh_from_db()
    return parent, depth


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = ["testserver"]
    user = User.objects.create(id=uuid.uuid4(), email="bench-tree@example.com")
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        sys.stdout.write(f"{line}\n")

    try:
        conversation = Conversation.objects.create(owner=user, model="openai/gpt-oss-20b")
        started = time.perf_counter()
        leaf, depth = tree_seed(conversation, args.messages)
        say(
            f"{args.messages} messages, current branch {depth} deep, seeded in "
            f"{time.perf_counter() - started:.2f} s"
        )
        client = APIClient()
        client.force_authenticate(user)
        base = f"/api/v1/conversations/{conversation.pk}"
        middle = message_branch(conversation=conversation, leaf_id=leaf.pk)[depth // 2]
        cases: list[tuple[str, Callable[[], object]]] = [
            (
                f"branch ids ({depth} deep, the CTE alone)",
                lambda: list(
                    message_branch_filter(conversation=conversation, leaf_id=leaf.pk).values_list(
                        "id", flat=True
                    )
                ),
            ),
            (
                f"message_branch ({depth} deep, every row)",
                lambda: message_branch(conversation=conversation, leaf_id=leaf.pk),
            ),
            (
                f"context_messages ({depth} deep, 128k window)",
                lambda: context_messages(
                    conversation=conversation, parent_id=leaf.pk, budget=128_000
                ),
            ),
            (
                "context_messages (4k window)",
                lambda: context_messages(
                    conversation=conversation, parent_id=leaf.pk, budget=4_000
                ),
            ),
            ("GET /messages (first 20)", lambda: client.get(f"{base}/messages")),
            ("GET /messages?limit=100", lambda: client.get(f"{base}/messages", {"limit": "100"})),
            (
                "GET /messages?limit=100&after_id=<middle>",
                lambda: client.get(
                    f"{base}/messages", {"limit": "100", "after_id": str(middle.pk)}
                ),
            ),
            (
                "GET /messages?leaf_id=<middle>&limit=100",
                lambda: client.get(f"{base}/messages", {"limit": "100", "leaf_id": str(middle.pk)}),
            ),
            ("GET /tree?limit=100", lambda: client.get(f"{base}/tree", {"limit": "100"})),
        ]
        say(f"{args.runs} runs each, ms")
        for name, operation in cases:
            say(f"{name:48s} {_measure(args.runs, operation)}")
    finally:
        Conversation.objects.filter(owner=user).delete()
        user.delete()
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"tree-{stamp}.txt"
    path.write_text("\n".join(lines) + "\n")
    sys.stdout.write(f"written to {path.relative_to(RESULTS.parent.parent)}\n")


if __name__ == "__main__":
    main()
