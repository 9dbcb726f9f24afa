"""The processes a benchmark run starts and reads: a private Redis, databases, app servers.

The app server is pinned to CPU 0 and the load generator to CPU 1 when the machine has two;
everything talks over 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SERVER_CPU, LOAD_CPU = 0, 1
STATS_SETTLE = 1.2  # PostgreSQL backends publish their statistics about 1 s after going idle
PG_ADMIN = [
    "psql",
    "-h",
    "127.0.0.1",
    "-U",
    "postgres",
    "-d",
    "postgres",
    "-Atq",
    "-v",
    "ON_ERROR_STOP=1",
]
MY_ADMIN = ["mysql", "-h", "127.0.0.1", "-uroot", "-N", "-B"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def two_cpus() -> bool:
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


def pinned(cpu: int) -> Callable[[], None] | None:
    if not two_cpus():
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@dataclass
class Counters:
    """One reading of what the servers counted so far (None: not measured for this app)."""

    redis_calls: int | None = None
    redis_connections: int | None = None
    redis_clients: int | None = None
    pg_xacts: int | None = None
    db_open: int | None = None
    app: AppStats | None = None


@dataclass
class PoolState:
    kind: str
    checkedin: int | None = None
    checkedout: int | None = None

    @property
    def holds(self) -> int:
        return (self.checkedin or 0) + (self.checkedout or 0)


@dataclass
class AppStats:
    """What bench/serve.py counted in the app's process (SQLAlchemy event listeners)."""

    sql: bool
    counts: dict[str, int] = field(default_factory=dict)
    pool: PoolState | None = None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> AppStats:
        pool = data.get("pool")
        return cls(
            sql=bool(data.get("sql")),
            counts={str(k): int(v) for k, v in (data.get("counts") or {}).items()},
            pool=(
                PoolState(str(pool.get("class")), pool.get("checkedin"), pool.get("checkedout"))
                if pool
                else None
            ),
        )


class PrivateRedis:
    """A redis-server of the benchmark's own, so its command counters are ours alone."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=pinned(SERVER_CPU),
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def info(self) -> dict[str, str]:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), "info", "all"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return dict(
            line.split(":", 1)
            for line in out.splitlines()
            if ":" in line and not line.startswith("#")
        )

    def read(self, into: Counters) -> None:
        info = self.info()
        calls = 0
        for key, value in info.items():
            if key.startswith("cmdstat_") and key != "cmdstat_info":
                calls += int(value.split("calls=", 1)[1].split(",", 1)[0])
        into.redis_calls = calls
        # Each reading is a connection of its own: not the app's.
        into.redis_connections = int(info["total_connections_received"])
        into.redis_clients = int(info["connected_clients"]) - 1

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@dataclass
class Database:
    """A database of the benchmark's own on the local server (a file for SQLite)."""

    kind: str  # sqlite | postgres | mysql
    name: str
    url: str

    @classmethod
    def create(cls, kind: str, folder: Path, tag: str) -> Database:
        name = f"sfbench_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        if kind == "sqlite":
            return cls(kind, name, f"sqlite:///{folder / 'bench.db'}")
        if kind == "postgres":
            subprocess.run([*PG_ADMIN, "-c", f"CREATE DATABASE {name}"], check=True)
            return cls(kind, name, f"postgresql://postgres@127.0.0.1:5432/{name}")
        if kind == "mysql":
            subprocess.run([*MY_ADMIN, "-e", f"CREATE DATABASE {name}"], check=True)
            return cls(kind, name, f"mysql://root@127.0.0.1:3306/{name}")
        raise ValueError(f"no benchmark database of kind {kind!r}")

    def read(self, into: Counters) -> None:
        if self.kind == "postgres":
            out = subprocess.run(
                [
                    *PG_ADMIN,
                    "-c",
                    "SELECT xact_commit + xact_rollback, numbackends"
                    f" FROM pg_stat_database WHERE datname = '{self.name}'",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            xacts, backends = (int(x) for x in out.split("|"))
            into.pg_xacts, into.db_open = xacts, backends
        elif self.kind == "mysql":
            out = subprocess.run(
                [
                    *MY_ADMIN,
                    "-e",
                    f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{self.name}'",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            into.db_open = int(out.strip())

    def drop(self) -> None:
        if self.kind == "postgres":
            subprocess.run(
                [*PG_ADMIN, "-c", f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)"], check=False
            )
        elif self.kind == "mysql":
            subprocess.run([*MY_ADMIN, "-e", f"DROP DATABASE IF EXISTS {self.name}"], check=False)


class Server:
    """`bench/serve.py` in the app's environment, on CPU 0."""

    def __init__(self, python: Path, app: str, cwd: Path, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.stats = log_path.with_suffix(".stats.json")
        self.log_path = log_path
        self.log = log_path.open("w")
        self.proc = subprocess.Popen(
            [
                str(python),
                str(REPO / "bench" / "serve.py"),
                "--app",
                app,
                "--port",
                str(self.port),
                "--stats",
                str(self.stats),
            ],
            cwd=cwd,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=pinned(SERVER_CPU),
        )

    def wait_ready(self, path: str, timeout: float = 60) -> None:
        from bench.client import http_call

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                status, _, _ = http_call(self.port, "GET", path)
                if status < 500:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"server did not start; see {self.log_path}:\n{self.log_path.read_text()[-3000:]}"
        )

    def app_stats(self) -> AppStats | None:
        before = self.stats.stat().st_mtime_ns if self.stats.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        for _ in range(200):
            if self.stats.exists() and self.stats.stat().st_mtime_ns != before:
                try:
                    return AppStats.parse(json.loads(self.stats.read_text()))
                except json.JSONDecodeError:
                    pass
            time.sleep(0.01)
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
