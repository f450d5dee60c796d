"""The migration's statement that gives every stored message its blocks: reasoning as a
thinking block, then the text as a text block, nothing for what is empty."""

import importlib

import pytest
from django.db import connection

from accounts.models import User
from conversations.models import Conversation, Message
from testsupport.factories import make_conversation

pytestmark = pytest.mark.django_db

BLOCKS_FROM_TEXT = importlib.import_module(
    "conversations.migrations.0006_tools_blocks_and_cache"
).BLOCKS_FROM_TEXT


def test_existing_messages_become_thinking_and_text_blocks(user: User) -> None:
    # given: rows as they were before blocks existed
    conversation: Conversation = make_conversation(owner=user)
    rows = [
        Message.objects.create(conversation=conversation, role=role, content=c, reasoning=r)
        for role, c, r in [
            ("user", 'Hi ✋ "quoted" \\ back', ""),
            ("assistant", "Hello.", "The user greets."),
            ("assistant", "", "Thought, then failed."),
            ("assistant", "", ""),
        ]
    ]

    # when
    with connection.cursor() as cursor:
        cursor.execute(BLOCKS_FROM_TEXT)

    # then
    assert [Message.objects.get(pk=row.pk).blocks for row in rows] == [
        [{"type": "text", "text": 'Hi ✋ "quoted" \\ back'}],
        [
            {"type": "thinking", "thinking": "The user greets."},
            {"type": "text", "text": "Hello."},
        ],
        [{"type": "thinking", "thinking": "Thought, then failed."}],
        [],
    ]
