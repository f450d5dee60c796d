"""Webhook endpoints and their deliveries (the outbox and the delivery log), with Row Level
Security like the other tables of users' data (accounts' 0002): a user reads, creates and
deletes their own endpoints, and reads (and, with an endpoint, deletes) its deliveries. The
deliveries are written and updated by the service only (the message's end, the worker)."""

import uuid

import django.contrib.postgres.fields
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

ENDPOINTS = "messaging_webhookendpoint"
DELIVERIES = "messaging_webhookdelivery"
OWN = "(select auth.uid()) = owner_id"
OWN_ENDPOINT = (
    "EXISTS (SELECT 1 FROM messaging_webhookendpoint e"
    " WHERE e.id = endpoint_id AND e.owner_id = (select auth.uid()))"
)
RLS_FORWARD = f"""
ALTER TABLE {ENDPOINTS} ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, DELETE ON {ENDPOINTS} TO authenticated;
CREATE POLICY {ENDPOINTS}_select_own ON {ENDPOINTS} FOR SELECT TO authenticated USING ({OWN});
CREATE POLICY {ENDPOINTS}_insert_own ON {ENDPOINTS} FOR INSERT TO authenticated
    WITH CHECK ({OWN});
CREATE POLICY {ENDPOINTS}_delete_own ON {ENDPOINTS} FOR DELETE TO authenticated USING ({OWN});
ALTER TABLE {DELIVERIES} ENABLE ROW LEVEL SECURITY;
GRANT SELECT, DELETE ON {DELIVERIES} TO authenticated;
CREATE POLICY {DELIVERIES}_select_own ON {DELIVERIES} FOR SELECT TO authenticated
    USING ({OWN_ENDPOINT});
CREATE POLICY {DELIVERIES}_delete_own ON {DELIVERIES} FOR DELETE TO authenticated
    USING ({OWN_ENDPOINT});
"""
RLS_BACKWARD = f"""
DROP POLICY IF EXISTS {DELIVERIES}_select_own ON {DELIVERIES};
DROP POLICY IF EXISTS {DELIVERIES}_delete_own ON {DELIVERIES};
REVOKE ALL ON {DELIVERIES} FROM authenticated;
DROP POLICY IF EXISTS {ENDPOINTS}_select_own ON {ENDPOINTS};
DROP POLICY IF EXISTS {ENDPOINTS}_insert_own ON {ENDPOINTS};
DROP POLICY IF EXISTS {ENDPOINTS}_delete_own ON {ENDPOINTS};
REVOKE ALL ON {ENDPOINTS} FROM authenticated;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0004_message_moved_to_conversations"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="WebhookEndpoint",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("url", models.CharField(max_length=2000)),
                (
                    "events",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(max_length=40)
                    ),
                ),
                ("secret", models.CharField(max_length=100)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "owner",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="webhook_endpoints",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ("-created_at", "-id"),
            },
        ),
        migrations.CreateModel(
            name="WebhookDelivery",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("event_type", models.CharField(max_length=40)),
                ("payload", models.JSONField()),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("delivered", "Delivered"),
                            ("failed", "Failed"),
                        ],
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("next_attempt_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_status_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True, default="")),
                ("delivered_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "endpoint",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="messaging.webhookendpoint",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "webhook deliveries",
                "ordering": ("-created_at", "-id"),
            },
        ),
        migrations.AddIndex(
            model_name="webhookendpoint",
            index=models.Index(
                fields=["owner", "-created_at", "-id"], name="webhook_owner_created"
            ),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                fields=["endpoint", "-created_at", "-id"], name="webhook_delivery_endpoint"
            ),
        ),
        migrations.AddIndex(
            model_name="webhookdelivery",
            index=models.Index(
                condition=models.Q(("status", "pending")),
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
            ),
        ),
        migrations.RunSQL(RLS_FORWARD, RLS_BACKWARD),
    ]
