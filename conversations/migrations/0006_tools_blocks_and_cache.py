"""Tools, tool choice, stop sequences, the service tier and fallback models on
conversations; content blocks, cached input tokens, the stop sequence and the provider's
timings on messages. The new non-null columns keep database defaults, so the previous
release's processes still insert rows during a deploy. Existing messages become their
reasoning (a thinking block) and their text (a text block), in one statement."""

from django.conf import settings
from django.db import migrations, models

BLOCKS_FROM_TEXT = """
UPDATE messaging_message SET blocks =
    CASE WHEN reasoning <> ''
        THEN jsonb_build_array(jsonb_build_object('type', 'thinking', 'thinking', reasoning))
        ELSE '[]'::jsonb END
    || CASE WHEN content <> ''
        THEN jsonb_build_array(jsonb_build_object('type', 'text', 'text', content))
        ELSE '[]'::jsonb END
"""


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0005_share"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="fallback_models",
            field=models.JSONField(blank=True, db_default=[], default=list),
        ),
        migrations.AddField(
            model_name="conversation",
            name="service_tier",
            field=models.CharField(
                blank=True,
                choices=[("on_demand", "On Demand"), ("flex", "Flex"), ("auto", "Auto")],
                db_default="",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="conversation",
            name="stop_sequences",
            field=models.JSONField(blank=True, db_default=[], default=list),
        ),
        migrations.AddField(
            model_name="conversation",
            name="tool_choice",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="conversation",
            name="tools",
            field=models.JSONField(blank=True, db_default=[], default=list),
        ),
        migrations.AddField(
            model_name="message",
            name="blocks",
            field=models.JSONField(blank=True, db_default=[], default=list),
        ),
        migrations.AddField(
            model_name="message",
            name="cached_input_tokens",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="message",
            name="provider_timings",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="message",
            name="stop_sequence",
            field=models.TextField(blank=True, db_default=""),
        ),
        migrations.AddConstraint(
            model_name="conversation",
            constraint=models.CheckConstraint(
                condition=models.Q(("service_tier__in", ["", "on_demand", "flex", "auto"])),
                name="conversation_service_tier_valid",
            ),
        ),
        migrations.RunSQL(BLOCKS_FROM_TEXT, migrations.RunSQL.noop),
    ]
