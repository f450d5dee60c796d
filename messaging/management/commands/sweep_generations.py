import asyncio
from typing import Any

from django.core.management.base import BaseCommand

from messaging.sweeper import sweep_once


class Command(BaseCommand):
    help = (
        "Finish messages left in progress by server processes that stopped beating, as "
        "`incomplete` with their partial answers. Live servers do this on their own; run it "
        "from cron when no server may be running."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        swept = asyncio.run(sweep_once())
        self.stdout.write(f"swept {len(swept)} message(s)")
        for message_id in swept:
            self.stdout.write(f"  {message_id}")
