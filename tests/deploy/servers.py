"""Redis and PostgreSQL from Debian's packages as plain processes on loopback, for the CeleryExecutor test.

Each server runs in a throwaway directory on a free port, in its own process group, and is stopped
(and its directory removed) by ``stop()``. ``make services`` installs the packages where it may (root
with apt-get); :func:`missing` says what is not there, so a test can skip with that reason.
PostgreSQL refuses to run as root: as root, its data directory belongs to Debian's ``postgres``
user (made by the package) and the server runs as that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from airflow_image_catalog.tooling.stack import free_port, wait_for

POSTGRES_TOOLS = ("initdb", "postgres", "pg_isready")


def postgres_bin(tool: str) -> str | None:
    """A PostgreSQL server program: on PATH, else Debian's ``/usr/lib/postgresql/<version>/bin`` (newest)."""
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def missing() -> list[str]:
    """What the Celery test needs and this machine lacks (empty: everything is there)."""
    lack = [] if shutil.which("redis-server") else ["redis-server (Debian package redis-server)"]
    lack += [f"{tool} (Debian package postgresql)" for tool in POSTGRES_TOOLS if postgres_bin(tool) is None]
    if os.geteuid() == 0 and not _user_exists("postgres"):
        lack.append("the postgres user (made by Debian's postgresql package): PostgreSQL refuses to run as root")
    return lack


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class _Server:
    name = "server"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"catalog-{self.name}-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.dir / f"{self.name}.log"

    def _spawn(self, argv: list[str], **kwargs) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, **kwargs)

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self, timeout: float = 15) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self):
        raise NotImplementedError


class RedisServer(_Server):
    """``redis-server`` on 127.0.0.1, no persistence: the Celery broker."""

    name = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self._spawn(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(self.dir), "--protected-mode", "yes"])
        wait_for(self._ready, 20, "redis-server ready", interval=0.1)
        return self

    def _ready(self) -> bool:
        self.check_alive()
        import redis

        try:
            return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping()
        except redis.RedisError:
            return False


class PostgresServer(_Server):
    """A new PostgreSQL cluster on 127.0.0.1 (trust auth on loopback, no fsync: test data only) with one
    database and its owner, both ``airflow``."""

    name = "postgres"
    database = user = "airflow"

    def __init__(self) -> None:
        super().__init__()
        self.data = self.dir / "data"
        self.run_as = "postgres" if os.geteuid() == 0 else None

    def sqlalchemy_url(self, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self) -> dict:
        return {"user": self.run_as, "group": pwd.getpwnam(self.run_as).pw_gid} if self.run_as else {}

    def start(self) -> PostgresServer:
        self.data.mkdir()
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chmod(self.dir, 0o755)
            for path in (self.dir, self.data):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        initdb = subprocess.run([postgres_bin("initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
                                 "-E", "UTF8", "--no-instructions"], capture_output=True, text=True,
                                cwd=self.dir, **self._as_owner())
        if initdb.returncode:
            raise RuntimeError(f"initdb failed: {initdb.stdout[-2000:]}{initdb.stderr[-2000:]}")
        self._spawn([postgres_bin("postgres"), "-D", str(self.data), "-p", str(self.port),
                     "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
                     "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                     "-c", "max_connections=200"], cwd=self.dir, **self._as_owner())
        wait_for(self._ready, 30, "PostgreSQL accepting connections", interval=0.2)
        self._create_database()
        return self

    def _ready(self) -> bool:
        self.check_alive()
        return subprocess.run([postgres_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                              check=False).returncode == 0

    def _create_database(self) -> None:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {self.database} OWNER {self.user}")
        finally:
            connection.close()

    def query(self, sql: str, *args) -> list[tuple]:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname=self.database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, args)
                return cursor.fetchall()
        finally:
            connection.close()
