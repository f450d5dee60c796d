"""`make run`: the development server, started so that a newcomer's first try cannot go wrong
quietly, and stopped so that it leaves nothing behind.

1. A busy port ends the command at once, naming PORT= (daphne would log "Address already in
   use" and sit there, after a token for a server that never started had been printed).
2. Migrations, then a 24-hour token and where to use it.
3. The server in the foreground; when it stops (Ctrl-C, SIGTERM, a crash) the embedded
   PostgreSQL it used stops too, unless DATABASE_URL names another server.

Usage: .venv/bin/python scripts/run_dev.py HOST PORT (CHATAPI_ENV=development, from make);
``scripts/run_dev.py stop`` stops the embedded PostgreSQL by hand (make stop).
"""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chatapi.embedded_db import embedded_data_dir, embedded_database_stop  # noqa: E402

MANAGE = [sys.executable, str(REPO / "manage.py")]


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port, or None if it can. Binds the way daphne
    (Twisted) does, with SO_REUSEADDR, so a port left in TIME_WAIT counts as free."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def main(host: str, port: int) -> int:
    problem = port_problem(host, port)
    if problem is not None:
        sys.stderr.write(
            f"make run: cannot listen on {host}:{port} ({problem}). Is another server running "
            f"there? Pick another port: make run PORT={port + 1}\n"
        )
        return 1
    subprocess.run([*MANAGE, "migrate", "--no-input", "-v", "0"], check=True)  # noqa: S603
    token = subprocess.run(  # noqa: S603
        [*MANAGE, "dev_token", "--email", "you@example.com", "--ttl", "86400"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    base = f"http://{host}:{port}"
    sys.stdout.write(
        f"\nchatapi: {base}/api/v1   docs: {base}/docs   admin: {base}/admin/\n"
        f'Try it:            curl -H "Authorization: Bearer {token}" {base}/api/v1/auth/me\n'
        "In another shell:  make token (EMAIL=...), make superuser; or export "
        "CHATAPI_ENV=development before manage.py\n"
        "Stop:              Ctrl-C (stops the embedded PostgreSQL too)\n\n"
    )
    sys.stdout.flush()
    server = subprocess.Popen([*MANAGE, "runserver", f"{host}:{port}"])  # noqa: S603

    def forward(signum: int, frame: FrameType | None) -> None:
        server.send_signal(signum)

    # Ctrl-C reaches the server by itself (one process group); SIGTERM sent to make's
    # process is passed on. Either way this process waits for the server, then cleans up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, forward)
    try:
        returncode = server.wait()
    finally:
        if not os.environ.get("DATABASE_URL") and embedded_database_stop(embedded_data_dir()):
            sys.stderr.write("make run: stopped the embedded PostgreSQL\n")
    return returncode


def stop() -> int:
    if embedded_database_stop(embedded_data_dir()):
        sys.stdout.write("stopped the embedded PostgreSQL\n")
    else:
        sys.stdout.write("the embedded PostgreSQL is not running\n")
    return 0


if __name__ == "__main__":
    sys.exit(stop() if sys.argv[1:] == ["stop"] else main(sys.argv[1], int(sys.argv[2])))
