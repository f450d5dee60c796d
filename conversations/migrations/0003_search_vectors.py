"""Search vectors on message contents and conversation titles (conversations.search_columns):
generated columns with GIN indexes, built with the SEARCH_CONFIG of the time of migrating.
Nothing changes in the models' state."""

from django.conf import settings
from django.db import migrations

from conversations.search_columns import search_columns_add_sql, search_columns_drop_sql


class Migration(migrations.Migration):
    dependencies = [("conversations", "0002_message")]

    operations = [
        migrations.RunSQL(search_columns_add_sql(settings.SEARCH_CONFIG), search_columns_drop_sql())
    ]
