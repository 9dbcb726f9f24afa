"""Generate projects, serve each with one uvicorn worker, load them, print and save the table.

    python -m bench [--combos ID,ID] [--duration S] [--rounds N] [--quick] [--json PATH]

See README.md ("Benchmarks"). Environments, rendering and the combination ids come from
tests/test_matrix.py. The server is pinned to CPU 0 and the load generator to CPU 1 when the
machine has two; both talk over 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import report
from bench.loadgen import build_request

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import test_matrix as matrix  # noqa: E402  (the matrix helpers: Combo, render, envs)

DEFAULT_COMBOS = [
    "async-sqlite-session-example",
    "async-postgres-session-example",
    "async-postgres-none-example",
    "sync-postgres-session-example",
    "async-mysql-session-example",
    "async-redis-postgres-session-example",
    "async-redis-postgres-none-example",
]
QUICK_COMBOS = ["async-sqlite-session-example", "async-redis-postgres-none-example"]
REF_DEPS = [
    "fastapi>=0.121,<1",
    "uvicorn[standard]>=0.30",
    "starsessions>=2.2",
    "redis[hiredis]>=5.2",
    "itsdangerous>=2",
]
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
PASSWORD = "correct horse battery"
SERVER_CPU, LOAD_CPU = 0, 1
STATS_SETTLE = 1.2  # PostgreSQL backends publish their statistics about 1 s after going idle


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


# --------------------------------------------------------------------------- servers


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

    def counters(self) -> dict[str, int]:
        info = self.info()
        calls = 0
        for key, value in info.items():
            if key.startswith("cmdstat_") and key != "cmdstat_info":
                calls += int(value.split("calls=", 1)[1].split(",", 1)[0])
        return {
            "redis_calls": calls,
            # Each reading is a connection of its own: not the app's.
            "redis_connections": int(info["total_connections_received"]),
            "redis_clients": int(info["connected_clients"]) - 1,
        }

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@dataclass
class Database:
    kind: str  # sqlite | postgres | mysql
    name: str
    url: str

    @classmethod
    def create(cls, kind: str, project: Path, tag: str) -> Database:
        name = f"sfbench_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        if kind == "sqlite":
            return cls(kind, name, f"sqlite:///{project / 'bench.db'}")
        if kind == "postgres":
            subprocess.run([*PG_ADMIN, "-c", f"CREATE DATABASE {name}"], check=True)
            return cls(kind, name, f"postgresql://postgres@127.0.0.1:5432/{name}")
        subprocess.run([*MY_ADMIN, "-e", f"CREATE DATABASE {name}"], check=True)
        return cls(kind, name, f"mysql://root@127.0.0.1:3306/{name}")

    def counters(self) -> dict[str, int]:
        if self.kind == "postgres":
            out = subprocess.run(
                [
                    *PG_ADMIN,
                    "-c",
                    "SELECT xact_commit + xact_rollback, sessions, numbackends"
                    f" FROM pg_stat_database WHERE datname = '{self.name}'",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            xacts, sessions, backends = (int(x) for x in out.split("|"))
            return {"pg_xacts": xacts, "pg_sessions": sessions, "db_open": backends}
        if self.kind == "mysql":
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
            return {"db_open": int(out.strip())}
        return {}

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

    def app_stats(self) -> dict[str, Any]:
        before = self.stats.stat().st_mtime_ns if self.stats.exists() else 0
        self.proc.send_signal(signal.SIGUSR1)
        for _ in range(200):
            if self.stats.exists() and self.stats.stat().st_mtime_ns != before:
                try:
                    data: dict[str, Any] = json.loads(self.stats.read_text())
                    return data
                except json.JSONDecodeError:
                    pass
            time.sleep(0.01)
        return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def http_call(
    port: int,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    form: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        hdrs = dict(headers or {})
        payload = None
        if form is not None:
            from urllib.parse import urlencode

            payload = urlencode(form)
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            payload = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=hdrs)
        response = conn.getresponse()
        raw = response.read()
        cookies = {}
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                cookies[key] = val
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        return response.status, cookies, data
    finally:
        conn.close()


# --------------------------------------------------------------------------- what is measured


@dataclass
class Route:
    name: str  # e.g. "GET /cart"
    kind: str  # nosession | db | read | me | write | order | json
    steps: Callable[[dict[str, Any]], list[dict[str, Any]]]  # client -> scenario


@dataclass
class Target:
    name: str
    python: Path
    app: str
    cwd: Path
    env: dict[str, str]
    ready_path: str
    setup: Callable[[int, int], list[dict[str, Any]]]  # (port, connections) -> clients
    routes: list[Route]
    database: Database | None = None
    pool_check: bool = False
    notes: list[str] = field(default_factory=list)


def raw(
    method: str, path: str, client: dict[str, Any], body: Any = None, record: bool = True
) -> dict[str, Any]:
    return {
        "raw": build_request(method, path, headers=client.get("headers"), body=body).decode(
            "latin-1"
        ),
        "record": record,
    }


def project_routes(combo: matrix.Combo) -> list[Route]:
    item = lambda c: {"product_id": c["product_id"], "quantity": 1}  # noqa: E731
    routes = [Route("GET /docs", "nosession", lambda c: [raw("GET", "/docs", {})])]
    if combo.auth == "none":
        routes.append(
            Route(
                "GET /products/{id}",
                "db",
                lambda c: [raw("GET", f"/products/{c['product_id']}", {})],
            )
        )
    routes.append(Route("GET /cart", "read", lambda c: [raw("GET", "/cart", c)]))
    if combo.auth != "none":
        routes.append(Route("GET /auth/me", "me", lambda c: [raw("GET", "/auth/me", c)]))
    routes.append(
        Route("POST /cart/items", "write", lambda c: [raw("POST", "/cart/items", c, item(c))])
    )
    routes.append(
        Route(
            "POST /orders (+cart add)",
            "order",
            lambda c: [
                raw("POST", "/cart/items", c, item(c), record=False),
                raw("POST", "/orders", c, {}),
            ],
        )
    )
    return routes


def project_setup(combo: matrix.Combo) -> Callable[[int, int], list[dict[str, Any]]]:
    def setup(port: int, connections: int) -> list[dict[str, Any]]:
        clients: list[dict[str, Any]] = []
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        if combo.auth != "none":
            status, _, _ = http_call(
                port, "POST", "/auth/register", body={"email": email, "password": PASSWORD}
            )
            assert status == 201, f"register: {status}"
        for _ in range(connections):
            headers: dict[str, str] = {}
            if combo.auth == "session":
                status, cookies, data = http_call(
                    port, "POST", "/auth/login", body={"email": email, "password": PASSWORD}
                )
                assert status == 200, f"login: {status}"
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
                headers["X-CSRF-Token"] = data["csrf_token"]
            elif combo.auth == "jwt":
                status, _, data = http_call(
                    port, "POST", "/auth/token", form={"username": email, "password": PASSWORD}
                )
                assert status == 200, f"token: {status}"
                headers["Authorization"] = f"Bearer {data['access_token']}"
            else:
                status, cookies, _ = http_call(port, "GET", "/cart")
                assert status == 200 and cookies, f"anonymous session: {status}"
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
            clients.append({"headers": headers})
        status, _, product = http_call(
            port,
            "POST",
            "/products",
            headers=clients[0]["headers"],
            body={"name": "bench", "price_cents": 100, "stock": 2_000_000_000},
        )
        assert status == 201, f"product: {status}"
        for client in clients:
            client["product_id"] = product["id"]
        return clients

    return setup


def ref_setup(needs_session: bool) -> Callable[[int, int], list[dict[str, Any]]]:
    def setup(port: int, connections: int) -> list[dict[str, Any]]:
        clients = []
        for _ in range(connections):
            headers = {}
            if needs_session:
                status, cookies, _ = http_call(port, "POST", "/cart/items")
                assert status == 200 and cookies, f"reference session: {status}"
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
            clients.append({"headers": headers})
        return clients

    return setup


REF_SESSION_ROUTES = [
    Route("GET /cart", "read", lambda c: [raw("GET", "/cart", c)]),
    Route("POST /cart/items", "write", lambda c: [raw("POST", "/cart/items", c)]),
]


# --------------------------------------------------------------------------- running


@dataclass
class Options:
    combos: list[str]
    duration: float
    warmup: float
    rounds: int
    connections: int
    json_path: Path
    refs: bool
    render_timing: bool
    keep: bool


def counters(target: Target, redis: PrivateRedis | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if target.database is not None:
        values.update(target.database.counters())
    if redis is not None and "REDIS_URL" in target.env:
        values.update(redis.counters())
    return values


def per_request(
    before: dict[str, Any], after: dict[str, Any], requests: int, target: Target
) -> dict[str, Any]:
    def delta(key: str) -> int | None:
        if key in before and key in after:
            return int(after[key]) - int(before[key])
        return None

    out: dict[str, Any] = {}
    redis_calls = delta("redis_calls")
    out["redis_per_req"] = redis_calls / requests if redis_calls is not None and requests else None
    pg_xacts = delta("pg_xacts")
    out["pg_xacts_per_req"] = pg_xacts / requests if pg_xacts is not None and requests else None
    app_before, app_after = (
        before.get("app", {}).get("counts", {}),
        after.get("app", {}).get("counts", {}),
    )
    sql_delta = {
        k: app_after.get(k, 0) - app_before.get(k, 0)
        for k in (
            "statements",
            "commits",
            "rollbacks",
            "begins",
            "resets",
            "reset_rollbacks",
            "connects",
            "checkouts",
        )
    }
    out["sql_counts"] = sql_delta
    if before.get("app", {}).get("sql") and target.database is not None:
        trips = sql_delta["statements"] + sql_delta["commits"] + sql_delta["rollbacks"]
        trips += sql_delta["reset_rollbacks"]
        if target.database.kind == "postgres":
            trips += sql_delta["begins"]  # asyncpg and psycopg send BEGIN on its own
        out["sql_per_req"] = trips / requests if requests else None
    else:
        out["sql_per_req"] = None
    new = sql_delta["connects"]
    redis_conns = delta("redis_connections")
    if redis_conns is not None:
        new += redis_conns - 1  # the `after` reading's own connection
    out["new_connections"] = new
    return out


def run_route(
    target: Target,
    server: Server,
    route: Route,
    clients: list[dict[str, Any]],
    opts: Options,
    redis: PrivateRedis | None,
    loadgen_python: Path,
    workdir: Path,
) -> dict[str, Any]:
    spec = {
        "port": server.port,
        "connections": opts.connections,
        "duration": opts.duration,
        "warmup": opts.warmup,
        "handshake": True,
        "scenarios": [route.steps(c) for c in clients],
    }
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [str(loadgen_python), "-m", "bench.loadgen", str(spec_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=pinned(LOAD_CPU),
    )
    assert proc.stdin is not None and proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"load generator: {line!r}")
    if target.database is not None and target.database.kind == "postgres":
        time.sleep(STATS_SETTLE)
    before = counters(target, redis)
    before["app"] = server.app_stats()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, _ = proc.communicate(timeout=opts.duration + 120)
    result = json.loads(out)
    if target.database is not None and target.database.kind == "postgres":
        time.sleep(STATS_SETTLE)
    after = counters(target, redis)
    after["app"] = server.app_stats()
    requests = int(result["requests"])
    measured = {
        "rate": result["recorded_per_s"],
        "requests_per_s": result["requests_per_s"],
        "p50_us": result["p50_us"],
        "p99_us": result["p99_us"],
        "requests": requests,
        "failed": result["failed"],
        "statuses": result["statuses"],
    }
    measured.update(per_request(before, after, requests, target))
    return measured


def run_target(
    target: Target, opts: Options, redis: PrivateRedis | None, loadgen_python: Path, workdir: Path
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    server = Server(
        target.python, target.app, target.cwd, target.env, workdir / f"{target.name}.log"
    )
    rows = [
        {"target": target.name, "route": r.name, "kind": r.kind, "rounds": []}
        for r in target.routes
    ]
    leak = None
    try:
        server.wait_ready(target.ready_path)
        clients = target.setup(server.port, opts.connections)
        load_seconds = 0.0
        for round_no in range(opts.rounds):
            for row, route in zip(rows, target.routes, strict=True):
                measured = run_route(
                    target, server, route, clients, opts, redis, loadgen_python, workdir
                )
                row["rounds"].append(measured)
                load_seconds += opts.duration + opts.warmup
                log(
                    f"  [{round_no + 1}/{opts.rounds}] {target.name} {route.name}: "
                    f"{measured['rate']:.0f}/s p99 {(measured['p99_us'] or 0) / 1000:.1f} ms, "
                    f"failed {measured['failed']}"
                )
        if target.pool_check:
            time.sleep(STATS_SETTLE)
            now = counters(target, redis)
            app = server.app_stats()
            pool = app.get("pool") or {}
            holds = pool.get("checkedin", 0) + pool.get("checkedout", 0) if pool else None
            failed = sum(r["failed"] for row in rows for r in row["rounds"])
            db_open = now.get("db_open")
            ok = failed == 0 and (db_open is None or holds is None or db_open == holds)
            leak = {
                "target": target.name,
                "ok": ok,
                "load_seconds": load_seconds,
                "failed": failed,
                "db_open": db_open,
                "pool_holds": holds,
                "pool": pool,
                "redis_clients": now.get("redis_clients"),
            }
    finally:
        server.stop()
    return [report.summarize(row) for row in rows], leak


def project_target(
    combo: matrix.Combo, template_src: Path, root: Path, redis: PrivateRedis | None
) -> Target:
    project = root / combo.id
    log(f"render {combo.id}")
    matrix.render(template_src, project, combo.answers())
    _key, env_dir = matrix.ensure_env(matrix.project_dependencies(project))
    answers = (project / ".copier-answers.yml").read_text()
    package = next(
        line.split(":", 1)[1].strip()
        for line in answers.splitlines()
        if line.startswith("package_name:")
    )
    env = {k: v for k, v in os.environ.items() if k not in matrix.DROPPED_ENV}
    env.update(
        {
            "PATH": f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}",
            "VIRTUAL_ENV": str(env_dir),
            "PYTHONPATH": f"{project / 'src'}{os.pathsep}{REPO}",
            "ENVIRONMENT": "prod",
            "SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
            "COOKIE_SECURE": "false",
        }
    )
    database = None
    if combo.database in matrix.SQL_DATABASES:
        database = Database.create(combo.database, project, combo.id.replace("-", "_")[:20])
        env["DATABASE_URL"] = database.url
        subprocess.run(
            [str(env_dir / "bin" / "python"), "-m", "alembic", "upgrade", "head"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
        )
    if combo.backend == "redis":
        assert redis is not None
        env["REDIS_URL"] = redis.url
        env["REDIS_PREFIX"] = f"sfbench:{combo.id}:{uuid.uuid4().hex[:6]}:"
    return Target(
        name=combo.id,
        python=env_dir / "bin" / "python",
        app=f"{package}.main:app",
        cwd=project,
        env=env,
        ready_path="/health",
        setup=project_setup(combo),
        routes=project_routes(combo),
        database=database,
        pool_check=True,
    )


def ref_targets(redis: PrivateRedis | None) -> list[Target]:
    _, env_dir = matrix.ensure_env(sorted(REF_DEPS))
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in matrix.DROPPED_ENV}
    env["PYTHONPATH"] = str(REPO)
    targets = [
        Target(
            "bare",
            python,
            "bench.refapps:bare",
            REPO,
            env,
            "/json",
            ref_setup(False),
            [
                Route("GET /json", "json", lambda c: [raw("GET", "/json", c)]),
                Route("GET /docs", "nosession", lambda c: [raw("GET", "/docs", c)]),
            ],
        ),
        Target(
            "starlette-cookie",
            python,
            "bench.refapps:starlette",
            REPO,
            env,
            "/cart",
            ref_setup(True),
            REF_SESSION_ROUTES,
        ),
    ]
    if redis is not None:
        targets.append(
            Target(
                "starsessions-redis",
                python,
                "bench.refapps:starsessions",
                REPO,
                {**env, "REDIS_URL": redis.url},
                "/cart",
                ref_setup(True),
                REF_SESSION_ROUTES,
                pool_check=True,
            )
        )
    return targets


def render_timings(template_src: Path, root: Path) -> dict[str, Any]:
    """`sessionforge new --defaults` wall time (median of 3) and the whole matrix rendered."""
    times = []
    env = {**os.environ, "PYTHONPATH": str(REPO / "generator")}
    for i in range(3):
        dest = root / f"new-{i}"
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sessionforge", "new", str(dest), "--defaults"],
            env=env,
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - start)
    # The matrix: one render per combination, spread over one process per CPU (renders
    # are independent, as in the matrix tests under pytest-xdist).
    processes = os.cpu_count() or 1
    jobs = [(template_src, root / "matrix" / c.id, c.answers()) for c in matrix.COMBOS]
    start = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(processes) as pool:
        each = list(pool.map(timed_render, *zip(*jobs, strict=True)))
    matrix_seconds = time.perf_counter() - start
    return {
        "new_defaults_seconds": statistics.median(times),
        "new_defaults_all": times,
        "matrix_combinations": len(matrix.COMBOS),
        "matrix_render_seconds": matrix_seconds,
        "matrix_render_processes": processes,
        "matrix_render_each_mean_seconds": statistics.mean(each),
        "matrix_render_sum_seconds": sum(each),
    }


def timed_render(src: Path, dest: Path, answers: dict[str, Any]) -> float:
    """Render one combination (in a worker process); its wall time."""
    start = time.perf_counter()
    matrix.render(src, dest, answers)
    return time.perf_counter() - start


def evaluate(
    rows: list[dict[str, Any]], leaks: list[dict[str, Any]], timings: dict[str, Any] | None
) -> list[dict[str, Any]]:
    def find(pred: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [r for r in rows if pred(r) and r.get("rate")]

    def ratio_target(
        name: str, picked: list[dict[str, Any]], base: float | None, minimum: float
    ) -> dict[str, Any]:
        if not picked or not base:
            return {"name": name, "met": None, "measured": "not measured"}
        ratios = {f"{r['target']} {r['route']}": r["rate"] / base for r in picked}
        return {
            "name": name,
            "met": all(v >= minimum for v in ratios.values()),
            "measured": ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()),
        }

    bare = {r["route"]: r["rate"] for r in rows if r["target"] == "bare"}
    stars = {r["route"]: r["rate"] for r in rows if r["target"] == "starsessions-redis"}
    projects = lambda r: r["target"] not in {"bare", "starlette-cookie", "starsessions-redis"}  # noqa: E731
    redis_pure_read = find(
        lambda r: (
            projects(r)
            and "-redis-" in r["target"]
            and "-none-" in r["target"]
            and r["kind"] == "read"
        )
    )
    sql_pure_read = find(
        lambda r: (
            projects(r)
            and "-redis-" not in r["target"]
            and "-none-" in r["target"]
            and r["kind"] == "read"
        )
    )
    out = [
        ratio_target(
            "a route that ignores the session (GET /docs) >= 0.95x bare GET /docs",
            find(lambda r: projects(r) and r["kind"] == "nosession"),
            bare.get("GET /docs"),
            0.95,
        ),
        ratio_target(
            "Redis session read (auth none, GET /cart) >= 0.6x bare",
            redis_pure_read,
            bare.get("GET /json"),
            0.6,
        ),
        ratio_target(
            "Redis session read >= 1.6x starsessions read",
            redis_pure_read,
            stars.get("GET /cart"),
            1.6,
        ),
        ratio_target(
            "SQL session read (auth none, GET /cart) >= 0.4x bare",
            sql_pure_read,
            bare.get("GET /json"),
            0.4,
        ),
        ratio_target(
            "Redis session read+write (POST /cart/items) >= 1.3x starsessions",
            find(lambda r: projects(r) and "-redis-" in r["target"] and r["kind"] == "write"),
            stars.get("POST /cart/items"),
            1.3,
        ),
    ]
    reads = find(
        lambda r: (
            projects(r)
            and "-redis-" in r["target"]
            and "-none-" in r["target"]
            and r["kind"] == "read"
        )
    )
    out.append(
        {
            "name": "exactly one Redis command per unchanged session read",
            "met": all(abs((r["redis_per_req"] or 0) - 1) < 0.01 for r in reads) if reads else None,
            "measured": ", ".join(
                f"{r['target']} {r['redis_per_req']:.3f}"
                for r in reads
                if r["redis_per_req"] is not None
            )
            or "not measured",
        }
    )
    opened = [r for r in rows if projects(r) and r.get("new_connections")]
    out.append(
        {
            "name": "no connection opened under steady load (timed windows)",
            "met": not opened,
            "measured": ", ".join(
                f"{r['target']} {r['route']}: {r['new_connections']}" for r in opened
            )
            or "0 everywhere",
        }
    )
    out.append(
        {
            "name": "leak check: open connections equal the pool's, no failed request",
            "met": all(leak["ok"] for leak in leaks) if leaks else None,
            "measured": ", ".join(
                f"{leak['target']} {'ok' if leak['ok'] else 'FAIL'}" for leak in leaks
            ),
        }
    )
    if timings:
        out.append(
            {
                "name": "sessionforge new --defaults < 1.5 s",
                "met": timings["new_defaults_seconds"] < 1.5,
                "measured": f"{timings['new_defaults_seconds']:.2f} s",
            }
        )
        out.append(
            {
                "name": "full option matrix rendered < 30 s",
                "met": timings["matrix_render_seconds"] < 30,
                "measured": (
                    f"{timings['matrix_combinations']} combinations"
                    f" in {timings['matrix_render_seconds']:.1f} s"
                    f" on {timings['matrix_render_processes']} processes"
                    f" ({timings['matrix_render_each_mean_seconds']:.2f} s per render,"
                    f" {timings['matrix_render_sum_seconds']:.1f} s one after another)"
                ),
            }
        )
    return out


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--combos", help=f"comma-separated combination ids (default: {','.join(DEFAULT_COMBOS)})"
    )
    parser.add_argument(
        "--duration", type=float, help="timed seconds per route and round (default 5)"
    )
    parser.add_argument("--warmup", type=float, help="untimed seconds before each (default 1)")
    parser.add_argument("--rounds", type=int, help="rounds; the table shows medians (default 3)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--json", type=Path, default=REPO / "bench" / "results.json", help="output JSON path"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"1 round of 2 s on {','.join(QUICK_COMBOS)}"
    )
    parser.add_argument("--no-refs", action="store_true", help="skip the reference apps")
    parser.add_argument("--no-render-timing", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects")
    args = parser.parse_args(argv)
    combos = (
        args.combos.split(",") if args.combos else (QUICK_COMBOS if args.quick else DEFAULT_COMBOS)
    )
    known = {c.id for c in matrix.COMBOS}
    unknown = [c for c in combos if c not in known]
    if unknown:
        parser.error(
            f"unknown combination(s) {', '.join(unknown)}; e.g. {', '.join(DEFAULT_COMBOS[:3])}"
        )
    return Options(
        combos=combos,
        duration=args.duration or (2.0 if args.quick else 5.0),
        warmup=args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0),
        rounds=args.rounds or (1 if args.quick else 3),
        connections=args.connections,
        json_path=args.json,
        refs=not args.no_refs,
        render_timing=not args.no_render_timing,
        keep=args.keep,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    combos = [c for c in matrix.COMBOS if c.id in opts.combos]
    needs_redis = opts.refs or any(c.backend == "redis" for c in combos)
    if needs_redis and not shutil.which("redis-server"):
        log("redis-server not found: Redis combinations and starsessions are skipped")
        needs_redis = False
        combos = [c for c in combos if c.backend != "redis"]
    root = Path(tempfile.mkdtemp(prefix="sfbench-"))
    redis = PrivateRedis() if needs_redis else None
    started = time.time()
    rows: list[dict[str, Any]] = []
    leaks: list[dict[str, Any]] = []
    timings = None
    targets: list[Target] = []
    try:
        template_src = root / "template-src"
        template_src.mkdir()
        shutil.copy2(REPO / "copier.yml", template_src / "copier.yml")
        shutil.copytree(
            REPO / "template",
            template_src / "template",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        if opts.render_timing:
            timings = render_timings(template_src, root / "timing")
            log(
                f"render: new --defaults {timings['new_defaults_seconds']:.2f} s, "
                f"matrix {timings['matrix_render_seconds']:.1f} s"
                f" on {timings['matrix_render_processes']} processes"
            )
        if opts.refs:
            targets += ref_targets(redis)
        for combo in combos:
            targets.append(project_target(combo, template_src, root, redis))
        # Any app environment has uvloop (uvicorn[standard]); the load generator uses it.
        loadgen_python = targets[0].python if targets else Path(sys.executable)
        for target in targets:
            log(f"load {target.name}")
            target_rows, leak = run_target(target, opts, redis, loadgen_python, root)
            rows += target_rows
            if leak is not None:
                leaks.append(leak)
    finally:
        for target in targets:
            if target.database is not None and not opts.keep:
                target.database.drop()
        if redis is not None:
            redis.stop()
        if not opts.keep:
            shutil.rmtree(root, ignore_errors=True)
    report.add_ratios(rows)
    targets_met = evaluate(rows, leaks, timings)
    data = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pinned": two_cpus(),
        },
        "options": {
            "combos": opts.combos,
            "duration": opts.duration,
            "warmup": opts.warmup,
            "rounds": opts.rounds,
            "connections": opts.connections,
        },
        "seconds": time.time() - started,
        "rows": rows,
        "leaks": leaks,
        "render": timings,
        "targets": targets_met,
    }
    print(report.table(rows))
    print()
    print(report.leak_table(leaks))
    print()
    print(report.targets_table(targets_met))
    report.write_json(opts.json_path, data)
    print(f"\nJSON: {opts.json_path}")
    return 0
