"""chatapi.rows: hand-written statements with the ORM's values, and queries compiled once."""

from typing import Any
from uuid import UUID, uuid4

import pytest
from django.db.models import signals

from accounts.models import User
from chatapi.rows import CompiledQuery, compact_sql, json_rows
from conversations.models import Conversation, Message
from testsupport.factories import make_conversation

pytestmark = pytest.mark.django_db

_BY_OWNER_AND_ID = CompiledQuery(
    # The arguments in the opposite order to the SQL's parameters: each goes where its probe was.
    lambda pk, owner: Conversation.objects.filter(owner_id=owner).filter(pk=pk)[:1],
    pk=UUID(int=2),
    owner=UUID(int=1),
)


def test_a_compiled_query_returns_the_row_as_the_orm_does(user: User) -> None:
    # given: a conversation with JSON, decimal-free and date fields
    conversation = make_conversation(owner=user)
    Conversation.objects.filter(pk=conversation.pk).update(
        tools=[{"name": "t", "input_schema": {"type": "object"}}], metadata={"k": "v"}
    )

    # when
    found = _BY_OWNER_AND_ID.first(owner=user.pk, pk=conversation.pk)

    # then: equal to the ORM's instance, field by field, converted values included
    expected = Conversation.objects.get(pk=conversation.pk)
    assert found is not None
    for field in Conversation._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    assert found.tools == [{"name": "t", "input_schema": {"type": "object"}}]
    assert (found._state.adding, found._state.db) == (False, "default")
    # made without Model.__init__, it behaves as one: its owner loads, a save writes
    assert found.owner == user
    found.title = "renamed"
    found.save(update_fields=["title"])
    assert Conversation.objects.get(pk=conversation.pk).title == "renamed"


def test_a_model_with_init_listeners_is_made_by_the_orm(user: User) -> None:
    # given: something listening to the instances Conversation makes
    conversation = make_conversation(owner=user)
    made: list[object] = []

    def listener(sender: Any, instance: Any, **kwargs: Any) -> None:
        made.append(instance)

    signals.post_init.connect(listener, sender=Conversation)
    try:
        query = CompiledQuery(lambda pk: Conversation.objects.filter(pk=pk)[:1], pk=UUID(int=1))

        # when
        found = query.first(pk=conversation.pk)
    finally:
        signals.post_init.disconnect(listener, sender=Conversation)

    # then: it was told
    assert made == [found]


def test_a_compiled_query_runs_with_each_calls_values(user: User) -> None:
    # given
    other = User.objects.create(email="other@example.com", username="other")
    conversation = make_conversation(owner=user)

    # then: another owner, or another id, finds nothing
    assert _BY_OWNER_AND_ID.first(owner=other.pk, pk=conversation.pk) is None
    assert _BY_OWNER_AND_ID.first(owner=user.pk, pk=uuid4()) is None
    assert _BY_OWNER_AND_ID.first(owner=user.pk, pk=conversation.pk) == conversation


def test_a_probe_that_is_not_a_parameter_is_refused() -> None:
    query = CompiledQuery(
        lambda pk: Conversation.objects.filter(pk=UUID(int=9))[:1], pk=UUID(int=1)
    )
    with pytest.raises(ValueError, match="no probe's"):
        query.first(pk=uuid4())


def test_json_rows_refuse_a_field_left_to_its_database_default(user: User) -> None:
    # stop_sequence has a db_default: an INSERT naming every column needs a value for it
    message = Message(conversation=make_conversation(owner=user), role="user", content="x")
    with pytest.raises(ValueError, match="stop_sequence needs a value"):
        json_rows(message)


def test_compact_sql_joins_white_space_and_keeps_literals() -> None:
    sql = "SELECT  'a  b',\n    'it''s  so'\n  FROM\tt  WHERE x = '' "
    assert compact_sql(sql) == "SELECT 'a  b', 'it''s  so' FROM t WHERE x = ''"


def test_compact_sql_refuses_a_comment() -> None:
    with pytest.raises(ValueError, match="comment"):
        compact_sql("SELECT 1 -- one\nFROM t")
