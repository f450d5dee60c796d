"""`make run` (scripts/run_dev.py) on a busy port: it ends at once, before migrating or printing
a token, and says how to pick another port."""

import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_busy_port_ends_make_run_at_once_naming_port() -> None:
    # given: something already listens on the port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # when
        result = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, str(REPO / "scripts" / "run_dev.py"), "127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    # then
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"make run: cannot listen on 127.0.0.1:{port} (Address already in use). Is another "
        f"server running there? Pick another port: make run PORT={port + 1}\n"
    )
