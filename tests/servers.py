"""Real PostgreSQL and Redis servers for tests, started from system binaries.

Each server lives in its own temp dir on a free loopback port and is removed on stop().
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Self, TypeVar

import psycopg
import pytest
import redis
from psycopg import sql

POSTGRES_LIB_GLOB = "/usr/lib/postgresql/*/bin"
POSTGRES_HINT = "install it with `apt-get install postgresql`"
REDIS_HINT = "install it with `apt-get install redis-server`"
START_TIMEOUT = 60.0
START_ATTEMPTS = 3
DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

T = TypeVar("T")

# Only what a throwaway test cluster needs; durability is traded for speed.
POSTGRES_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class MissingBinary(Exception):
    """A server binary is not installed; the message says which and how to install it."""


class ServerStartError(RuntimeError):
    """A server binary exists but the server did not come up."""


def missing(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI=true where every server must be available."""
    if os.environ.get("CI", "").lower() in {"true", "1", "yes"}:
        pytest.fail(f"{reason} (CI=true: a missing server is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def start_or_missing(start: Callable[[], T]) -> T:
    """Start a server, or skip (fail under CI=true) when its binary is not installed."""
    try:
        return start()
    except MissingBinary as exc:
        reason = str(exc)  # reported outside the except so no exception chain is printed
    missing(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _version_key(bindir: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", Path(bindir).parent.name))


@dataclass(frozen=True)
class PostgresBinaries:
    initdb: Path
    pg_ctl: Path


def find_postgres_binaries() -> PostgresBinaries:
    """initdb and pg_ctl from PATH, else from the newest /usr/lib/postgresql/<version>/bin."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return PostgresBinaries(Path(initdb), Path(pg_ctl))
    for bindir in sorted(glob.glob(POSTGRES_LIB_GLOB), key=_version_key, reverse=True):
        candidate = PostgresBinaries(Path(bindir, "initdb"), Path(bindir, "pg_ctl"))
        if os.access(candidate.initdb, os.X_OK) and os.access(candidate.pg_ctl, os.X_OK):
            return candidate
    raise MissingBinary(
        f"PostgreSQL `initdb`/`pg_ctl` not found on PATH or in {POSTGRES_LIB_GLOB}; {POSTGRES_HINT}"
    )


def find_redis_server() -> Path:
    found = shutil.which("redis-server")
    if found is None:
        raise MissingBinary(f"`redis-server` not found on PATH; {REDIS_HINT}")
    return Path(found)


def _as_postgres_user() -> list[str]:
    """The command prefix that runs initdb/pg_ctl as a user they accept (they refuse root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise MissingBinary(
            f"running as root needs a `postgres` system user to run initdb; {POSTGRES_HINT}"
        ) from exc
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--"]
    return ["su", "postgres", "-s", "/bin/sh", "-c"]


def _run(prefix: list[str], command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # `su -c` takes one shell string; `runuser -u ... --` and no prefix take argv.
    argv = [*prefix, shlex.join(command)] if prefix[-1:] == ["-c"] else [*prefix, *command]
    return subprocess.run(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT + 30,  # pg_ctl's own -t wait reports a clearer error first
        check=False,
    )


def _temp_dir(prefix: str, owner: str | None) -> Path:
    base = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None:
        shutil.chown(base, user=owner)
        blocked = [p for p in base.parents if not os.stat(p).st_mode & 0o001]
        if blocked:
            shutil.rmtree(base, ignore_errors=True)
            raise ServerStartError(
                f"{blocked[0]} is not traversable by the `{owner}` user; "
                "point TMPDIR at a directory such as /tmp"
            )
    return base


class PostgresServer:
    """A throwaway PostgreSQL cluster with trust auth for the `postgres` superuser."""

    def __init__(self, binaries: PostgresBinaries, base: Path, port: int, prefix: list[str]):
        self.binaries = binaries
        self.base = base
        self.port = port
        self._prefix = prefix
        self._stopped = False

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "server.log"

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    @classmethod
    def start(cls) -> Self:
        binaries = find_postgres_binaries()
        prefix = _as_postgres_user()
        base = _temp_dir("metacrm-pg-", "postgres" if prefix else None)
        server = cls(binaries, base, free_port(), prefix)
        try:
            server._initdb()
            server._start_with_retries()
        except BaseException:
            server.stop()
            raise
        atexit.register(server.stop)
        return server

    def _initdb(self) -> None:
        (self.base / "socket").mkdir()
        if self._prefix:
            shutil.chown(self.base / "socket", user="postgres")
        result = self._pg(
            str(self.binaries.initdb),
            # C.UTF-8: byte order for text, but upper()/lower() know every letter, as in production.
            *("-D", str(self.data_dir), "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"),
            *("-A", "trust", "--auth-local=trust", "--no-sync"),
        )
        if result.returncode != 0:
            raise ServerStartError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        settings = {
            **POSTGRES_SETTINGS,
            "unix_socket_directories": f"'{self.base / 'socket'}'",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# metacrm tests\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _start_with_retries(self) -> None:
        # Another process may grab the free port between our probe and the server's bind.
        for attempt in range(1, START_ATTEMPTS + 1):
            result = self._pg(
                str(self.binaries.pg_ctl),
                *("start", "-D", str(self.data_dir), "-l", str(self.log_path)),
                *("-o", f"-p {self.port}", "-w", "-t", str(int(START_TIMEOUT))),
            )
            if result.returncode == 0:
                self._wait_until_ready()
                return
            tail = log_tail(self.log_path)
            if "already in use" not in tail or attempt == START_ATTEMPTS:
                raise ServerStartError(
                    f"pg_ctl start failed on port {self.port}:\n"
                    f"{result.stdout}{result.stderr}\n--- server log ---\n{tail}"
                )
            self.port = free_port()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with self._connect():
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"PostgreSQL on port {self.port} never accepted connections: {exc}\n"
                        f"--- server log ---\n{log_tail(self.log_path)}"
                    ) from exc
                time.sleep(0.1)

    def _connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname=dbname,
            connect_timeout=5,
            autocommit=True,
        )

    def _pg(self, *command: str) -> subprocess.CompletedProcess[str]:
        return _run(self._prefix, list(command), cwd=self.base)

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        if not DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r} must match {DATABASE_NAME.pattern}")
        with self._connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database even if a test left connections open."""
        with self._connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if (self.data_dir / "postmaster.pid").exists():
            self._pg(str(self.binaries.pg_ctl), "stop", "-D", str(self.data_dir), "-m", "immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class RedisServer:
    """A throwaway redis-server without persistence, run as a child process."""

    def __init__(self, binary: Path, base: Path):
        self.binary = binary
        self.base = base
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.base / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls) -> Self:
        server = cls(find_redis_server(), _temp_dir("metacrm-redis-", None))
        try:
            server._start_with_retries()
        except BaseException:
            server.stop()
            raise
        atexit.register(server.stop)
        return server

    def _start_with_retries(self) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            try:
                self._launch()
                return
            except ServerStartError:
                if "already in use" not in log_tail(self.log_path) or attempt == START_ATTEMPTS:
                    raise

    def _launch(self) -> None:
        argv = [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(self.base)]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                argv, cwd=self.base, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                if self._process.poll() is not None:
                    raise ServerStartError(
                        f"redis-server exited with {self._process.returncode} on port "
                        f"{self.port}:\n{log_tail(self.log_path)}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    if time.monotonic() > deadline:
                        self._terminate()
                        raise ServerStartError(
                            f"redis-server on port {self.port} never answered PING: {exc}\n"
                            f"{log_tail(self.log_path)}"
                        ) from exc
                time.sleep(0.05)
        finally:
            client.close()

    def _terminate(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def stop(self) -> None:
        atexit.unregister(self.stop)
        self._terminate()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
