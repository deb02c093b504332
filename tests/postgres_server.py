"""A real, private PostgreSQL server for the tests: Debian's binaries, a data directory in tmp, a unix socket.

The server listens on no TCP port, only on a socket in its own directory, so it meets
no other server on the machine; it runs as an unprivileged user (``nobody`` when the
tests run as root, which PostgreSQL refuses to be) with trust authentication, and is
stopped (``pg_ctl stop -m immediate``) when the fixture ends.

Binaries are looked up in ``$SIMSEARCH_PG_BIN``, then ``/usr/lib/postgresql/*/bin``
(newest first), then ``PATH``. :func:`missing` says why none can run; in CI (``$CI``
set) a missing server is a test failure, on a developer's machine a skip with that reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BINARIES = ("initdb", "pg_ctl", "postgres")


def bin_dir() -> Path | None:
    candidates = [os.environ.get("SIMSEARCH_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True)
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(str(Path(found).parent))
    for candidate in candidates:
        if candidate and all((Path(candidate) / name).is_file() for name in BINARIES):
            return Path(candidate)
    return None


def missing() -> str | None:
    """Why no server can start here (None: one can)."""
    if bin_dir() is None:
        return ("PostgreSQL binaries (initdb, pg_ctl, postgres) not found: apt-get install postgresql, or set "
                "SIMSEARCH_PG_BIN")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed: pip install -e '.[test]'"
    return None


class PostgresServer:
    """Start with :meth:`start`, connect with :attr:`url`, end with :meth:`stop`."""

    def __init__(self, base: Path | None = None):
        self.bin = bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="simsearch-pg-", dir=base))
        self.data = self.root / "data"
        self.socket = self.root / "socket"
        self.user = "simsearch"
        self.run_as = "nobody" if os.geteuid() == 0 else None

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        command = [*argv] if self.run_as is None else ["runuser", "-u", self.run_as, "--", *argv]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
        return proc

    def start(self) -> PostgresServer:
        self.socket.mkdir()
        if self.run_as is not None:
            self.root.chmod(0o755)
            shutil.chown(self.root, self.run_as)
            shutil.chown(self.socket, self.run_as)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--no-sync", "--locale=C")
        options = f"-c listen_addresses='' -k {self.socket} -c fsync=on -c max_connections=50"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options,
                  "-w", "-t", "60", "start")
        return self

    def create_database(self, name: str) -> str:
        """A new database on the server; its SQLAlchemy URL (psycopg 3 driver)."""
        import psycopg

        with psycopg.connect(host=str(self.socket), user=self.user, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.socket}"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").is_file():
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
