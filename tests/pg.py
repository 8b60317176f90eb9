"""A real PostgreSQL server for the store's tests: Debian's `postgresql` package (apt-installed once
when missing, as root, as CI runs), one throwaway cluster per test session in a temporary folder on
127.0.0.1 and a free port, trust auth, torn down at the end; each test gets a fresh database."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.installs import SetupError, apt_install, installing

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60
USER = "mlxgw"  # the cluster's superuser
# A throwaway cluster: durability buys nothing here, and every fsync costs test time.
FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=300")


def bin_dir() -> Path:
    """The server's programs, installing Debian's package first if they are missing."""
    with installing(ROOT / ".tools" / "postgresql.lock"):
        found = _found()
        if found is None:
            apt_install("postgresql", "PostgreSQL is missing")
            found = _found()
            if found is None:
                raise SetupError("apt-get installed postgresql, but no /usr/lib/postgresql/*/bin/initdb is there")
    return found


def _found() -> Path | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name))
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One cluster. As root it runs as the package's `postgres` user (the server refuses root),
    its folder owned by that user."""

    def __init__(self) -> None:
        self.bin = bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="mlxgw-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self._run_as: list[str] = []
        self._names = itertools.count(1)
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as e:
                raise SetupError("running as root, but there is no `postgres` user to run the server as") from e
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]

    def _pg(self, program: str, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        cmd = [*self._run_as, str(self.bin / program), *args]
        try:
            ran = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                 cwd=self.folder)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SetupError(f"`{program}` failed: {e}") from e
        if ran.returncode != 0:
            tail = "\n".join((ran.stdout + ran.stderr).strip().splitlines()[-15:])
            raise SetupError(f"`{program} {' '.join(args)}` exited {ran.returncode}:\n{tail}")

    def start(self) -> Server:
        self._pg("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8",
                 "--locale=C")
        options = " ".join(["-c listen_addresses=127.0.0.1", "-c unix_socket_directories=''",
                            f"-p {self.port}", *(" ".join(FAST[i:i + 2]) for i in range(0, len(FAST), 2))])
        self._pg("pg_ctl", "start", "-w", "-t", str(START_TIMEOUT_S), "-D", str(self.data),
                 "-l", str(self.folder / "server.log"), "-o", options)
        return self

    def stop(self) -> None:
        try:
            self._pg("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def password_user(self, name: str, password: str) -> str:
        """A role that must give `password` (SCRAM; everyone else stays trusted) and the URL of a
        fresh database it owns, the URL without the password."""
        import psycopg

        hba = self.data / "pg_hba.conf"
        line = f"host all {name} 127.0.0.1/32 scram-sha-256\n"
        if line not in hba.read_text():
            hba.write_text(line + hba.read_text())  # first match wins: before the trust lines
            self._pg("pg_ctl", "reload", "-D", str(self.data))
        url = self.create_database()
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
            conn.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" OWNER TO "{name}"')
        return url.replace(f"{USER}@", f"{name}@", 1)

    def create_database(self) -> str:
        """A fresh, empty database's URL (CREATE DATABASE copies template1: a few ms)."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
