"""Search vectors on message contents and conversation titles (conversations.search_columns):
generated columns built with the SEARCH_CONFIG of the time of migrating, GIN indexes on the
owner and the vector (the vector alone where the server lacks btree_gin), and the messages'
copy of their owner that the index needs. Nothing changes in the models' state."""

from typing import Any

from django.conf import settings
from django.db import migrations

from conversations.search_columns import (
    MESSAGE_OWNER_ADD_SQL,
    MESSAGE_OWNER_DROP_SQL,
    owner_led_index_available,
    search_columns_add_sql,
    search_columns_drop_sql,
)


def add_columns(apps: Any, schema_editor: Any) -> None:
    owner_led = owner_led_index_available(schema_editor.connection)
    for statement in search_columns_add_sql(settings.SEARCH_CONFIG, owner_led=owner_led):
        schema_editor.execute(statement)


def drop_columns(apps: Any, schema_editor: Any) -> None:
    for statement in search_columns_drop_sql():
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("conversations", "0003_message_tree")]

    operations = [
        migrations.RunSQL(MESSAGE_OWNER_ADD_SQL, MESSAGE_OWNER_DROP_SQL),
        migrations.RunPython(add_columns, drop_columns),
    ]
