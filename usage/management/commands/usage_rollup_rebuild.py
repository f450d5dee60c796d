from typing import Any

from django.core.management.base import BaseCommand

from usage.services import usage_rollup_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the usage rollups (daily, hourly, conversation-days) from the ledger: after "
        "a deploy, for the rows that processes of the previous release wrote without them. "
        "Turns being recorded wait until it commits; reads go on."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        usage_rollup_rebuild()
        self.stdout.write("Usage rollups rebuilt from the ledger.")
