"""Benchmark data, created through the app's own models in the benchmark database: a user,
conversations for the streams, one conversation with a page of history. Prints JSON."""

import json
import os
import sys
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapi.settings")
django.setup()

from accounts.models import User  # noqa: E402
from conversations.models import Conversation  # noqa: E402
from messaging.models import Message  # noqa: E402

USER_ID = uuid.UUID("00000000-0000-4000-8000-00000000be0c")
MODEL = "openai/gpt-oss-20b"


def main() -> None:
    conversations = int(sys.argv[1])
    # sys.argv[2]: ledger rows for the usage statistics, once the ledger exists.
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
