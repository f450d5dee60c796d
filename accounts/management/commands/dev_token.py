import time
import uuid
from typing import Any

import jwt
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

# Stable ids per e-mail, so the same address is the same user across tokens.
_DEV_NAMESPACE = uuid.UUID("6f1d0a52-4c43-4b7e-9a5e-0d1c2f3a4b5c")


class Command(BaseCommand):
    help = (
        "Print a Supabase-shaped HS256 access token signed with SUPABASE_JWT_SECRET, "
        "for development and the curl examples (README.md, docs/api.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--ttl", type=int, default=3600, help="Lifetime in seconds.")
        parser.add_argument("--user-id", type=uuid.UUID, help="Default: derived from --email.")

    def handle(self, *args: Any, email: str, ttl: int, user_id: uuid.UUID | None, **_: Any) -> None:
        if not settings.SUPABASE_JWT_SECRET or "HS256" not in settings.SUPABASE_JWT_ALGORITHMS:
            raise CommandError("dev_token signs with SUPABASE_JWT_SECRET (HS256), which is off.")
        if ttl <= 0:
            raise CommandError("--ttl must be positive.")
        now = int(time.time())
        claims = {
            "iss": settings.SUPABASE_JWT_ISSUER or "chatapi-dev",
            "aud": settings.SUPABASE_JWT_AUDIENCE,
            "sub": str(user_id or uuid.uuid5(_DEV_NAMESPACE, email.lower())),
            "email": email,
            "phone": "",
            "role": "authenticated",
            "aal": "aal1",
            "amr": [{"method": "password", "timestamp": now}],
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {},
            "iat": now,
            "exp": now + ttl,
        }
        token = jwt.encode(
            claims, settings.SUPABASE_JWT_SECRET, algorithm="HS256", headers={"typ": "JWT"}
        )
        self.stdout.write(token)
