from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from conversations.search_columns import (
    owner_led_index_available,
    search_columns_add_sql,
    search_columns_built_with,
    search_columns_drop_sql,
)


class Command(BaseCommand):
    help = (
        "Rebuild the search vectors of messages and conversation titles with the current "
        "SEARCH_CONFIG, after it changed (queries use the setting at once; stored vectors "
        "built with another configuration match stemmed words badly or not at all). Rewrites "
        "both tables under an exclusive lock: run it while the service is quiet."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        config: str = settings.SEARCH_CONFIG
        if search_columns_built_with(connection, config):
            self.stdout.write(f"search vectors already use {config}")
            return
        with transaction.atomic(), connection.cursor() as cursor:
            owner_led = owner_led_index_available(connection)
            for statement in [
                *search_columns_drop_sql(),
                *search_columns_add_sql(config, owner_led=owner_led),
            ]:
                cursor.execute(statement)
        self.stdout.write(f"search vectors rebuilt with {config}")
