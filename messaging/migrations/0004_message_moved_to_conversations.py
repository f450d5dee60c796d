"""Message now lives in the conversations app (its 0002): the idempotency keys point at it
there, and this app's Message leaves Django's state. State only: the table
``messaging_message`` and the keys' foreign keys to it stay as they are."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0002_message"),
        ("messaging", "0003_idempotency_keys"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="idempotencykey",
                    name="assistant_message",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="conversations.message",
                    ),
                ),
                migrations.AlterField(
                    model_name="idempotencykey",
                    name="user_message",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="conversations.message",
                    ),
                ),
                migrations.DeleteModel(name="Message"),
            ],
        ),
    ]
