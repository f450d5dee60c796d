"""The conversation as a tree (docs/tree.md): ``Message.parent`` and
``Conversation.current_leaf``, written for a large ``messaging_message`` table.

Nothing here holds a lock that blocks reads or writes for longer than a catalogue change:

1. The columns are added nullable (no table rewrite), their foreign keys ``NOT VALID`` (no
   scan). Each ALTER holds its table's lock for an instant, but queues behind a long
   transaction and everything after it queues behind the ALTER: ``lock_timeout`` makes it
   give up after 10 s instead (run the migration again later). The constraints also say ON DELETE CASCADE (a message's followers) and ON DELETE
   SET NULL (a deleted current leaf), which Django does itself for its own deletes, for
   deletes outside Django (the Data API's, under row-level security).
2. The indexes are built ``CONCURRENTLY`` (this migration is not atomic: writes go on while
   they build).
3. The backfill makes each existing conversation a line, in batches of conversations, each
   batch its own short transaction: a message's parent is the message before it in
   (created_at, id) order (``lag()``), the conversation's current leaf its newest message.
   Rows already set are left alone, so it can run again after an interruption.
4. ``VALIDATE CONSTRAINT`` scans without blocking reads or writes.
"""

from django.db import migrations, models, transaction
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

BATCH_CONVERSATIONS = 500

_NEXT_BATCH = """
SELECT id FROM conversations_conversation
WHERE %s::uuid IS NULL OR id > %s::uuid
ORDER BY id LIMIT %s
"""
_PARENTS = """
UPDATE messaging_message AS m SET parent_id = chain.parent_id
FROM (
    SELECT id, lag(id) OVER (PARTITION BY conversation_id ORDER BY created_at, id) AS parent_id
    FROM messaging_message WHERE conversation_id = ANY(%s)
) AS chain
WHERE m.id = chain.id AND m.parent_id IS NULL AND chain.parent_id IS NOT NULL
"""
_LEAVES = """
UPDATE conversations_conversation AS c SET current_leaf_id = newest.id
FROM (
    SELECT DISTINCT ON (conversation_id) conversation_id, id
    FROM messaging_message WHERE conversation_id = ANY(%s)
    ORDER BY conversation_id, created_at DESC, id DESC
) AS newest
WHERE c.id = newest.conversation_id AND c.current_leaf_id IS NULL
"""


def backfill(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Every conversation stored before the tree becomes a line ending at its newest message."""
    connection = schema_editor.connection
    after = None
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_NEXT_BATCH, [after, after, BATCH_CONVERSATIONS])
            batch = [row[0] for row in cursor.fetchall()]
        if not batch:
            return
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(_PARENTS, [batch])
            cursor.execute(_LEAVES, [batch])
        after = batch[-1]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("conversations", "0002_message")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="message",
                    name="parent",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.CASCADE,
                        related_name="children",
                        to="conversations.message",
                    ),
                ),
                migrations.AddField(
                    model_name="conversation",
                    name="current_leaf",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=models.deletion.SET_NULL,
                        related_name="+",
                        to="conversations.message",
                    ),
                ),
                migrations.AddIndex(
                    model_name="message",
                    index=models.Index(
                        fields=["parent", "conversation", "created_at", "id"],
                        name="message_parent_siblings",
                    ),
                ),
                migrations.AddIndex(
                    model_name="conversation",
                    index=models.Index(fields=["current_leaf"], name="conversation_current_leaf"),
                ),
            ],
            database_operations=[
                # For the ALTERs only: an index built concurrently waits for older
                # transactions too, and a timeout there would leave an invalid index.
                migrations.RunSQL("SET lock_timeout = '10s'", reverse_sql="RESET lock_timeout"),
                migrations.RunSQL(
                    [
                        "ALTER TABLE messaging_message ADD COLUMN parent_id uuid NULL",
                        "ALTER TABLE conversations_conversation ADD COLUMN current_leaf_id uuid NULL",
                        (
                            "ALTER TABLE messaging_message ADD CONSTRAINT message_parent_fk"
                            " FOREIGN KEY (parent_id) REFERENCES messaging_message (id)"
                            " ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED NOT VALID"
                        ),
                        (
                            "ALTER TABLE conversations_conversation"
                            " ADD CONSTRAINT conversation_current_leaf_fk"
                            " FOREIGN KEY (current_leaf_id) REFERENCES messaging_message (id)"
                            " ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED NOT VALID"
                        ),
                    ],
                    reverse_sql=[
                        "ALTER TABLE conversations_conversation DROP COLUMN current_leaf_id",
                        "ALTER TABLE messaging_message DROP COLUMN parent_id",
                    ],
                ),
                migrations.RunSQL("RESET lock_timeout", reverse_sql="SET lock_timeout = '10s'"),
                migrations.RunSQL(
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS message_parent_siblings"
                    " ON messaging_message (parent_id, conversation_id, created_at, id)",
                    reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS message_parent_siblings",
                ),
                migrations.RunSQL(
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS conversation_current_leaf"
                    " ON conversations_conversation (current_leaf_id)",
                    reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS conversation_current_leaf",
                ),
            ],
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunSQL(
            [
                "ALTER TABLE messaging_message VALIDATE CONSTRAINT message_parent_fk",
                (
                    "ALTER TABLE conversations_conversation"
                    " VALIDATE CONSTRAINT conversation_current_leaf_fk"
                ),
            ],
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
