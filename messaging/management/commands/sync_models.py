from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from messaging.llm.model_list import ProviderModelsError, provider_models_fetch
from usage.services import catalog_sync


class Command(BaseCommand):
    help = (
        "Read the provider's model list (GET {base_url}/models) and update the catalog: add "
        "new ids (inactive until priced), deactivate ids it no longer lists, follow its "
        "context and output limits. Prints what changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--provider", default="groq", help="An entry of LLM_PROVIDERS (default: groq)."
        )

    def handle(self, *args: Any, provider: str, **_: Any) -> None:
        try:
            listed = provider_models_fetch(provider=provider)
            report = catalog_sync(provider=provider, listed=listed)
        except (ProviderModelsError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        lines = [
            ("Added (inactive until priced)", report.added),
            ("Deactivated (no longer listed)", report.deactivated),
            ("Listed again (still inactive: activate in the admin)", report.relisted),
            ("Limits changed", report.limits_changed),
        ]
        for title, items in lines:
            if items:
                self.stdout.write(f"{title}: {', '.join(items)}")
        if not report.changed:
            self.stdout.write(f"No changes: {len(listed)} models listed by '{provider}'.")
