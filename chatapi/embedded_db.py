"""An embedded PostgreSQL for development and tests when DATABASE_URL is unset.

`pgserver` ships PostgreSQL binaries in its wheel, so a fresh machine needs no
database service. The server is left running between commands (the data folder is
git-ignored) and reused: the second start costs a few milliseconds.
"""

import os
from pathlib import Path
from typing import Any


def embedded_database(data_dir: Path) -> dict[str, Any]:
    # platformdirs (imported by pgserver) warns when XDG_RUNTIME_DIR is unset (containers, CI).
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime_dir = data_dir.parent / "runtime"
        runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    # Imported here: production installs do not ship pgserver.
    try:
        from pgserver.postgres_server import get_server
    except ImportError as exc:  # pragma: no cover - depends on the install
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "DATABASE_URL is not set and the embedded PostgreSQL (pgserver) is not installed. "
            "Set DATABASE_URL or install requirements-dev.txt."
        ) from exc

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode=None)
    info = server.get_postmaster_info()
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(info.socket_dir) if info.socket_dir else "127.0.0.1",
        "PORT": str(info.port or ""),
    }
