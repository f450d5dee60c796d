"""Share links (conversations.models.Share), with Row Level Security like the other tables of
users' data (accounts' 0002): a user reaches the shares of their own conversations only."""

import uuid

import django.contrib.postgres.fields
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

OWN_CONVERSATION = (
    "EXISTS (SELECT 1 FROM conversations_conversation c"
    " WHERE c.id = conversation_id AND c.owner_id = (select auth.uid()))"
)
RLS_FORWARD = f"""
ALTER TABLE conversations_share ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, DELETE ON conversations_share TO authenticated;
CREATE POLICY conversations_share_select_own ON conversations_share FOR SELECT
    TO authenticated USING ({OWN_CONVERSATION});
CREATE POLICY conversations_share_insert_own ON conversations_share FOR INSERT
    TO authenticated WITH CHECK ({OWN_CONVERSATION});
CREATE POLICY conversations_share_delete_own ON conversations_share FOR DELETE
    TO authenticated USING ({OWN_CONVERSATION});
"""
RLS_BACKWARD = """
DROP POLICY IF EXISTS conversations_share_select_own ON conversations_share;
DROP POLICY IF EXISTS conversations_share_insert_own ON conversations_share;
DROP POLICY IF EXISTS conversations_share_delete_own ON conversations_share;
REVOKE ALL ON conversations_share FROM authenticated;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_rls_system_tables"),
        ("conversations", "0004_search_vectors"),
    ]

    operations = [
        migrations.CreateModel(
            name="Share",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("token", models.CharField(max_length=64, unique=True)),
                (
                    "message_ids",
                    django.contrib.postgres.fields.ArrayField(base_field=models.UUIDField()),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                (
                    "conversation",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="shares",
                        to="conversations.conversation",
                    ),
                ),
            ],
            options={
                "ordering": ("-created_at", "-id"),
                "indexes": [
                    models.Index(
                        fields=["conversation", "-created_at", "-id"],
                        name="share_conversation_created",
                    )
                ],
            },
        ),
        migrations.RunSQL(RLS_FORWARD, RLS_BACKWARD),
    ]
