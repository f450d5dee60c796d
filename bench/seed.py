"""Benchmark data, created through the app's own models in the benchmark database: a user,
conversations for the streams, one conversation with a page of history. Prints JSON."""

import json
import os
import sys
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapi.settings")
django.setup()

from django.db import connection  # noqa: E402

from accounts.models import User  # noqa: E402
from conversations.models import Conversation, Message  # noqa: E402
from usage.models import (  # noqa: E402
    UsageConversationDay,
    UsageDaily,
    UsageHourly,
    UsageRecord,
)
from usage.services import usage_rollup_rebuild  # noqa: E402

USER_ID = uuid.UUID("00000000-0000-4000-8000-00000000be0c")
MODEL = "openai/gpt-oss-20b"


def ledger_seed(user_ids: list[uuid.UUID], rows: int) -> None:
    """``rows`` calls of each user over the last 365 days, three models, costs at their list
    prices; the users' rows interleaved in time and on disk, as in a shared table."""
    table = UsageRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (user_id, conversation_id, message_id, kind, provider, model,
                input_tokens, output_tokens, reasoning_tokens, cached_input_tokens,
                usage_estimated, price_id, cost_usd, price_unknown, created_at)
            SELECT u.id, md5(u.id::text || (n / 20)::text)::uuid, md5(n::text)::uuid,
                'chat', 'groq',
                (ARRAY['openai/gpt-oss-20b', 'openai/gpt-oss-120b', 'qwen/qwen3-32b'])[n %% 3 + 1],
                500 + n %% 1500, 100 + n %% 700, n %% 50, NULL, false, NULL,
                ((500 + n %% 1500) * 0.075 + (100 + n %% 700) * 0.30) / 1000000, false,
                now() - (n * interval '365 days' / %(rows)s)
            FROM generate_series(1, %(rows)s) AS n, unnest(%(users)s::uuid[]) AS u(id)
            ORDER BY n
            """,  # noqa: S608 - the table name comes from the model
            {"users": user_ids, "rows": rows},
        )
    # Written around ledger_append: the rollups are recomputed from the rows.
    usage_rollup_rebuild(user_ids=user_ids)
    with connection.cursor() as cursor:
        for model in (UsageRecord, UsageDaily, UsageHourly, UsageConversationDay):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def main() -> None:
    conversations, ledger_rows = int(sys.argv[1]), int(sys.argv[2])
    user, _ = User.objects.get_or_create(id=USER_ID, defaults={"email": "bench@example.com"})
    Conversation.objects.filter(owner=user).delete()
    created = Conversation.objects.bulk_create(
        [Conversation(owner=user, model=MODEL, title=f"bench {i}") for i in range(conversations)]
    )
    history = created[0]
    Message.objects.bulk_create(
        [
            Message(conversation=history, role=role, content=f"message {i} " + "x" * 200)
            for i in range(100)
            for role in (Message.Role.USER,)
        ]
    )
    ledger_seed([user.pk], ledger_rows)
    print(  # noqa: T201 - the benchmark reads it
        json.dumps(
            {
                "user_id": str(user.pk),
                "conversations": [str(c.pk) for c in created[1:]],
                "history_conversation": str(history.pk),
            }
        )
    )


if __name__ == "__main__":
    main()
