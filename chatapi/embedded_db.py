"""An embedded PostgreSQL for development and tests when DATABASE_URL is unset.

`pgserver` ships PostgreSQL binaries in its wheel, so a fresh machine needs no
database service. The server is left running between commands (the data folder is
git-ignored) and reused: the second start costs a few milliseconds. ``make run`` stops it
when the server stops (scripts/run_dev.py), and ``make stop`` stops it by hand.
"""

import os
import platform
from pathlib import Path
from typing import Any

# Where the embedded server keeps its data unless EMBEDDED_DB_DIR says otherwise.
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / ".devdata" / "postgres"


def embedded_data_dir() -> Path:
    return Path(os.environ.get("EMBEDDED_DB_DIR") or DEFAULT_DATA_DIR)


def _ensure_runtime_dir(data_dir: Path) -> None:
    # platformdirs (imported by pgserver) warns when XDG_RUNTIME_DIR is unset (containers, CI).
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime_dir = data_dir.parent / "runtime"
        runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)


def embedded_database(data_dir: Path) -> dict[str, Any]:
    _ensure_runtime_dir(data_dir)
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


def embedded_database_stop(data_dir: Path) -> bool:
    """Stop the embedded server of ``data_dir`` if one runs there (fast shutdown: open
    sessions are ended, nothing committed is lost). True when it was running."""
    if not (data_dir / "postmaster.pid").exists():
        return False
    import subprocess

    _ensure_runtime_dir(data_dir)
    from pgserver._commands import POSTGRES_BIN_PATH

    # pgserver runs the server as the `pgserver` system user when started by root.
    user = "pgserver" if platform.system() != "Windows" and os.geteuid() == 0 else None
    stopped = subprocess.run(  # noqa: S603 - the wheel's own pg_ctl
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data_dir), "-w", "-m", "fast", "stop"],
        user=user,
        capture_output=True,
        timeout=30,
        check=False,
    )
    # Non-zero when the pid file was left by a server that died: nothing runs there.
    return stopped.returncode == 0
