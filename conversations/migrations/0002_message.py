"""Message moves here from the messaging app, in Django's state only.

The table stays ``messaging_message``, with its rows, indexes, constraints, foreign keys and
the row-level security policies of accounts' migrations: nothing in the database changes but
the content type's app label (so admin history and permissions follow the model).
messaging's 0004 then drops its own Message from the state.
"""

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def _move_content_type(apps: StateApps, *, source: str, target: str) -> None:
    content_types = apps.get_model("contenttypes", "ContentType").objects
    if not content_types.filter(app_label=target, model="message").exists():
        content_types.filter(app_label=source, model="message").update(app_label=target)


def content_type_forward(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _move_content_type(apps, source="messaging", target="conversations")


def content_type_backward(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _move_content_type(apps, source="conversations", target="messaging")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("conversations", "0001_initial"),
        ("messaging", "0003_idempotency_keys"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Message",
                    fields=[
                        (
                            "id",
                            models.UUIDField(
                                default=uuid.uuid4,
                                editable=False,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        (
                            "role",
                            models.CharField(
                                choices=[
                                    ("user", "User"),
                                    ("assistant", "Assistant"),
                                    ("system", "System"),
                                ],
                                max_length=16,
                            ),
                        ),
                        ("content", models.TextField(blank=True)),
                        ("reasoning", models.TextField(blank=True, default="")),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("in_progress", "In Progress"),
                                    ("complete", "Complete"),
                                    ("incomplete", "Incomplete"),
                                    ("cancelled", "Cancelled"),
                                    ("error", "Error"),
                                ],
                                default="complete",
                                max_length=16,
                            ),
                        ),
                        ("stop_reason", models.CharField(blank=True, max_length=40)),
                        ("model", models.CharField(blank=True, max_length=100)),
                        ("input_tokens", models.PositiveIntegerField(blank=True, null=True)),
                        ("output_tokens", models.PositiveIntegerField(blank=True, null=True)),
                        ("usage_estimated", models.BooleanField(default=False)),
                        ("latency_ms", models.PositiveIntegerField(blank=True, null=True)),
                        ("ttft_ms", models.PositiveIntegerField(blank=True, null=True)),
                        (
                            "cost_usd",
                            models.DecimalField(
                                blank=True, decimal_places=10, max_digits=18, null=True
                            ),
                        ),
                        ("error", models.JSONField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("completed_at", models.DateTimeField(blank=True, null=True)),
                        ("worker_id", models.CharField(blank=True, max_length=100)),
                        (
                            "conversation",
                            models.ForeignKey(
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="messages",
                                to="conversations.conversation",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "messaging_message",
                        "ordering": ("created_at", "id"),
                        "indexes": [
                            models.Index(
                                fields=["conversation", "created_at", "id"],
                                name="message_conversation_created",
                            ),
                            models.Index(
                                condition=models.Q(("status", "in_progress")),
                                fields=["worker_id"],
                                name="message_in_progress_worker",
                            ),
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                condition=models.Q(("status", "in_progress")),
                                fields=("conversation",),
                                name="message_one_in_progress_per_conversation",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(("role__in", ["user", "assistant", "system"])),
                                name="message_role_valid",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    (
                                        "status__in",
                                        [
                                            "in_progress",
                                            "complete",
                                            "incomplete",
                                            "cancelled",
                                            "error",
                                        ],
                                    )
                                ),
                                name="message_status_valid",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("cost_usd__isnull", True),
                                    ("cost_usd__gte", 0),
                                    _connector="OR",
                                ),
                                name="message_cost_usd_non_negative",
                            ),
                        ],
                    },
                ),
            ],
            database_operations=[
                migrations.RunPython(content_type_forward, content_type_backward),
            ],
        ),
    ]
