"""chatapi.fields.JSONField reads what Django's would, faster."""

import json

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import User
from conversations.models import Conversation

VALUES = [
    {},
    [],
    {"a": [1, 2.5, None, True, "é \u2028 😀"], "nested": {"deep": [{"x": -0.0}]}},
    # Beyond 64 bits (orjson would make floats of them): Django's reading.
    {"big": 2**70 + 1, "small": -(2**70) - 1, "in a list": [12345678901234567890123]},
    {"int64": 2**63 - 1, "uint64": 2**64 - 1, "text": "digits 1234567890123456789012 in text"},
    {"precise": 0.1 + 0.2, "exp": 1e300},
    "just a string",
    12345678901234567890123,
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_a_stored_value_reads_back_as_the_standard_librarys_decoder_reads_it(
    user: User, value: object
) -> None:
    conversation = Conversation.objects.create(owner=user, metadata=value)

    read = Conversation.objects.values_list("metadata", flat=True).get(pk=conversation.pk)
    reloaded = Conversation.objects.get(pk=conversation.pk).metadata

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT metadata::text FROM conversations_conversation WHERE id = %s",
            [conversation.pk],
        )
        (stored,) = cursor.fetchone()
    expected = json.loads(stored)  # what Django's field reads
    assert read == expected
    assert reloaded == expected
    assert repr(reloaded) == repr(expected)  # the same types all the way down


@pytest.mark.django_db
def test_migrations_see_djangos_field() -> None:
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
