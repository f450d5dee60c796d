"""Search vectors on message contents and conversation titles (conversations.search_columns):
generated columns built with the SEARCH_CONFIG of the time of migrating, GIN indexes on the
owner and the vector, and the messages' copy of their owner that the index needs. Nothing
changes in the models' state."""

from django.conf import settings
from django.db import migrations

from conversations.search_columns import (
    MESSAGE_OWNER_ADD_SQL,
    MESSAGE_OWNER_DROP_SQL,
    search_columns_add_sql,
    search_columns_drop_sql,
)


class Migration(migrations.Migration):
    dependencies = [("conversations", "0003_message_tree")]

    operations = [
        migrations.RunSQL(MESSAGE_OWNER_ADD_SQL, MESSAGE_OWNER_DROP_SQL),
        migrations.RunSQL(
            search_columns_add_sql(settings.SEARCH_CONFIG), search_columns_drop_sql()
        ),
    ]
