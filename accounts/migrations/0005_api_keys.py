"""API keys, with Row Level Security as for the other user-owned tables (0002): a user reads,
creates and revokes only their own keys. The lookup of a request's key runs as the service,
before the caller's transaction opens."""

import uuid

import django.contrib.postgres.fields
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

TABLE = "accounts_apikey"
OWN = "(select auth.uid()) = user_id"
FORWARD = f"""
ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE ON {TABLE} TO authenticated;
CREATE POLICY {TABLE}_select_own ON {TABLE} FOR SELECT TO authenticated USING ({OWN});
CREATE POLICY {TABLE}_insert_own ON {TABLE} FOR INSERT TO authenticated WITH CHECK ({OWN});
CREATE POLICY {TABLE}_update_own ON {TABLE} FOR UPDATE TO authenticated
    USING ({OWN}) WITH CHECK ({OWN});
"""
BACKWARD = f"""
DROP POLICY IF EXISTS {TABLE}_select_own ON {TABLE};
DROP POLICY IF EXISTS {TABLE}_insert_own ON {TABLE};
DROP POLICY IF EXISTS {TABLE}_update_own ON {TABLE};
REVOKE ALL ON {TABLE} FROM authenticated;
ALTER TABLE {TABLE} DISABLE ROW LEVEL SECURITY;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_rls_system_tables"),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiKey",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                ("prefix", models.CharField(max_length=16)),
                ("key_hash", models.CharField(max_length=64, unique=True)),
                (
                    "scopes",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(
                            choices=[
                                ("conversations:read", "Conversations Read"),
                                ("conversations:write", "Conversations Write"),
                                ("usage:read", "Usage Read"),
                            ],
                            max_length=32,
                        )
                    ),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("last_used_at", models.DateTimeField(blank=True, null=True)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                (
                    "user",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_keys",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ("-created_at", "-id"),
                "indexes": [
                    models.Index(fields=["user", "-created_at"], name="api_key_user_created")
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            (
                                "scopes__contained_by",
                                ["conversations:read", "conversations:write", "usage:read"],
                            )
                        ),
                        name="api_key_scopes_valid",
                    )
                ],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
