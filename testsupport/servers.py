"""Servers for tests that need a real process or a private database: the API under daphne
(``LiveServer``), a PostgreSQL cluster and a Redis of a test's own."""

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from django.db import connection

REPO = Path(__file__).resolve().parent.parent


def live_database_url() -> str:
    """A URL for the database the tests run against, for a server in another process."""
    db = connection.settings_dict
    user = quote(db["USER"] or "")
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    host = db["HOST"] or ""
    if host.startswith("/"):  # the embedded server's socket directory
        return f"postgresql://{user}{password}@/{db['NAME']}?host={quote(host)}"
    return f"postgresql://{user}{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveServer:
    """``daphne chatapi.asgi:application`` in a process of its own on a free loopback port,
    against the test database (use it from tests with ``transaction=True``, so the server
    sees their rows). Its stderr, where it logs, goes to ``log_path``."""

    def __init__(self, *, env: dict[str, str], log_path: Path, start_timeout: float = 30) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        # Not the test process's REDIS_URL (a server uses Redis only when a test asks), nor
        # an async-safety override a test may have set for itself.
        base = {
            key: value
            for key, value in os.environ.items()
            if key not in ("REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")
        }
        base |= {
            "CHATAPI_ENV": "test",
            "DATABASE_URL": live_database_url(),
            "SHUTDOWN_HANDLE_SIGNALS": "true",
            # The tests a server outlives empty the tables after them (transaction=True), and
            # the catalog's rows come back with new ids: it is read afresh, never a cached
            # one naming prices that are gone (a turn recorded against one fails its commit).
            "MODEL_CATALOG_CACHE_SECONDS": "0",
        }
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-v",
                    "0",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "chatapi.asgi:application",
                ],
                cwd=REPO,
                env=base | env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """Die at once, with no chance to clean up (SIGKILL)."""
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _postgres_bin(major: int) -> Path:
    """PostgreSQL's programs of this major version: Debian's package for it (the machine's own
    server), else the ones pgserver (requirements-dev.txt) ships, the embedded server's.
    pg_dump refuses a server newer than itself, and a cluster made by another major version's
    initdb holds no copy of an older one's dump reliably: the version must match."""
    candidates = [Path(f"/usr/lib/postgresql/{major}/bin")]
    # Found, not imported: importing pgserver sets up its runtime folders, which the tests
    # against the machine's server do not need.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin")
    for candidate in candidates:
        if _major_version(candidate) == major:
            return candidate
    raise RuntimeError(
        f"No PostgreSQL {major} programs found (looked in {', '.join(map(str, candidates))})."
    )


def _major_version(bin_dir: Path) -> int | None:
    """The major version of the PostgreSQL programs in ``bin_dir`` (``pg_ctl --version``)."""
    if not (bin_dir / "pg_ctl").exists():
        return None
    done = subprocess.run(  # noqa: S603 - PostgreSQL's own program
        [str(bin_dir / "pg_ctl"), "--version"], capture_output=True, check=False, timeout=30
    )
    # The output reads like: pg_ctl (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)
    words = done.stdout.decode().split()
    return int(words[2].split(".")[0]) if done.returncode == 0 and len(words) > 2 else None


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, for outages: a fresh ``initdb`` in a temporary
    folder, listening on a Unix socket there only (no port), with a copy of the test
    database (schema, migrations, seeded catalog). ``stop`` and ``start`` it at will; the
    machine's shared server is never touched. PostgreSQL refuses to run as root, so as root
    it runs as the ``postgres`` system user."""

    def __init__(self, *, copy_of: str) -> None:
        # The test database's server version: its pg_dump, and a cluster of the same version.
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version_num")
            self.bin = _postgres_bin(int(cursor.fetchone()[0]) // 10000)
        self.dir = Path(tempfile.mkdtemp(prefix="chatapi-pg-"))
        self.data = self.dir / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self.url = f"postgresql://postgres@/chatapi?host={quote(str(self.dir))}"
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--no-sync",
            )
            self.start()
            self._copy(copy_of)
        except BaseException:
            self.destroy()
            raise

    def _run(self, program: str, *args: str, stdin: Any = None) -> None:
        done = subprocess.run(  # noqa: S603 - PostgreSQL's own programs
            [str(self.bin / program), *args],
            user=self.user,
            cwd=self.dir,
            stdin=stdin,
            capture_output=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stderr.decode(errors='replace')}")

    def _copy(self, source_url: str) -> None:
        local = ["-h", str(self.dir), "-U", "postgres"]
        self._run(
            "psql",
            *local,
            "-d",
            "postgres",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE DATABASE chatapi",
            "-c",
            # The roles the RLS migrations create, with the grants the dump carries, so a
            # server with DB_RLS_PER_REQUEST works on the copy too.
            "CREATE ROLE authenticated NOLOGIN",
            "-c",
            "CREATE ROLE anon NOLOGIN",
        )
        with tempfile.TemporaryFile() as dump:
            done = subprocess.run(  # noqa: S603 - PostgreSQL's own program
                [str(self.bin / "pg_dump"), "--no-owner", source_url],
                stdout=dump,
                stderr=subprocess.PIPE,
                check=False,
                timeout=60,
            )
            if done.returncode != 0:
                raise RuntimeError(f"pg_dump failed: {done.stderr.decode(errors='replace')}")
            dump.seek(0)
            self._run("psql", *local, "-d", "chatapi", "-q", "-v", "ON_ERROR_STOP=1", stdin=dump)

    def start(self) -> None:
        options = f"-c listen_addresses='' -k {self.dir} -c fsync=off -c full_page_writes=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.dir / "server.log"),
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session (what clients see of a restart)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", mode, "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, keeping nothing on disk;
    ``kill`` and ``start`` it at will (the machine's shared Redis is never touched)."""

    def __init__(self, *, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - the machine's redis-server
                [
                    shutil.which("redis-server") or "/usr/bin/redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """Die at once (SIGKILL): every connection drops, every key is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused one too
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """Hang (SIGSTOP): connections stay open and are accepted, nothing is answered."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def unpause(self) -> None:
        """Answer again (SIGCONT), with everything it held."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
