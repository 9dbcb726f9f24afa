"""Measurement: load each route of every subject, round after round, and read the counters.

Rounds are interleaved: round N loads every route of every subject before round N+1 starts,
so a slow stretch of a shared machine spreads over all of them instead of falling on one.
Each route is loaded by the load generator (``bench/loadgen.py``) in a process of its own on
the other CPU: an untimed warm-up, then the counters are read, the timed window runs, and the
counters are read again.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.processes import (
    LOAD_CPU,
    REPO,
    STATS_SETTLE,
    Counters,
    PrivateRedis,
    Server,
    log,
    pinned,
)
from bench.subjects import Client, Kind, Route, Subject
from tests.support.combos import Combo
from tests.support.rendering import render

SQL_COUNTS = (
    "statements",
    "commits",
    "rollbacks",
    "begins",
    "resets",
    "reset_rollbacks",
    "connects",
    "checkouts",
)


@dataclass
class RoundFigures:
    """One timed window of one route."""

    rate: float  # recorded requests per second (orders/s for the order scenario)
    requests_per_s: float
    p50_us: float | None
    p99_us: float | None
    max_us: float | None
    requests: int
    failed: int
    statuses: dict[str, int]
    redis_per_req: float | None = None
    sql_per_req: float | None = None  # statements + BEGIN/COMMIT/ROLLBACK sent
    pg_xacts_per_req: float | None = None
    new_connections: int = 0
    sql_counts: dict[str, int] = field(default_factory=dict)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


@dataclass
class Row:
    """One route of one subject over all rounds; the figures are medians over the rounds."""

    subject: str
    route: str
    kind: Kind
    combo: Combo | None = None  # None: a reference app
    rounds: list[RoundFigures] = field(default_factory=list)
    ratio: float | None = None  # to bare FastAPI in the same run (see report.add_ratios)

    @property
    def rate(self) -> float | None:
        return _median([r.rate for r in self.rounds])

    @property
    def p50_us(self) -> float | None:
        return _median([r.p50_us for r in self.rounds])

    @property
    def p99_us(self) -> float | None:
        return _median([r.p99_us for r in self.rounds])

    @property
    def max_us(self) -> float | None:
        """The slowest single request of all rounds (not a median)."""
        present = [r.max_us for r in self.rounds if r.max_us is not None]
        return max(present) if present else None

    @property
    def redis_per_req(self) -> float | None:
        return _median([r.redis_per_req for r in self.rounds])

    @property
    def sql_per_req(self) -> float | None:
        return _median([r.sql_per_req for r in self.rounds])

    @property
    def pg_xacts_per_req(self) -> float | None:
        return _median([r.pg_xacts_per_req for r in self.rounds])

    @property
    def store_trips_per_req(self) -> float | None:
        """Round trips to Redis and SQL per request, when either was counted."""
        parts = [v for v in (self.redis_per_req, self.sql_per_req) if v is not None]
        return sum(parts) if parts else None

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.rounds)

    @property
    def new_connections(self) -> int:
        return sum(r.new_connections for r in self.rounds)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["combo"] = self.combo.id if self.combo is not None else None
        for name in (
            "rate",
            "p50_us",
            "p99_us",
            "max_us",
            "redis_per_req",
            "sql_per_req",
            "pg_xacts_per_req",
            "store_trips_per_req",
            "failed",
            "new_connections",
        ):
            data[name] = getattr(self, name)
        return data


@dataclass
class Leak:
    """After the subject's whole load: open connections against its pool's, failures."""

    subject: str
    ok: bool
    load_seconds: float
    failed: int
    db_open: int | None
    pool_holds: int | None
    redis_clients: int | None


@dataclass
class LoadOptions:
    duration: float
    warmup: float
    rounds: int
    connections: int


def read_counters(subject: Subject, server: Server, redis: PrivateRedis | None) -> Counters:
    values = Counters()
    if subject.database is not None:
        subject.database.read(values)
    if redis is not None and "REDIS_URL" in subject.env:
        redis.read(values)
    values.app = server.app_stats()
    return values


def per_request(
    before: Counters, after: Counters, requests: int, subject: Subject, figures: RoundFigures
) -> None:
    """Fill the per-request figures of `figures` from two readings around its window."""

    def delta(a: int | None, b: int | None) -> int | None:
        return b - a if a is not None and b is not None else None

    redis_calls = delta(before.redis_calls, after.redis_calls)
    if redis_calls is not None and requests:
        figures.redis_per_req = redis_calls / requests
    pg_xacts = delta(before.pg_xacts, after.pg_xacts)
    if pg_xacts is not None and requests:
        figures.pg_xacts_per_req = pg_xacts / requests
    counts_before = before.app.counts if before.app else {}
    counts_after = after.app.counts if after.app else {}
    sql = {k: counts_after.get(k, 0) - counts_before.get(k, 0) for k in SQL_COUNTS}
    figures.sql_counts = sql
    if before.app is not None and before.app.sql and subject.database is not None and requests:
        trips = sql["statements"] + sql["commits"] + sql["rollbacks"] + sql["reset_rollbacks"]
        if subject.database.kind == "postgres":
            trips += sql["begins"]  # asyncpg and psycopg send BEGIN on its own
        figures.sql_per_req = trips / requests
    new = sql["connects"]
    redis_conns = delta(before.redis_connections, after.redis_connections)
    if redis_conns is not None:
        new += redis_conns - 1  # the `after` reading's own connection
    figures.new_connections = new


def warm_up(
    server: Server,
    subject: Subject,
    clients: list[Client],
    opts: LoadOptions,
    loadgen_python: Path,
    workdir: Path,
) -> None:
    """Untimed load over all the subject's routes at once after a (re)start, so its pools
    (database, Redis) are full before the first timed window, whichever route comes first."""
    scenarios = [
        [
            {"raw": r.raw, "record": False}
            for route in subject.routes
            for r in route.scenario(client)
        ]
        for client in clients
    ]
    duration = max(1.0, opts.warmup)
    spec = {
        "port": server.port,
        "connections": opts.connections,
        "duration": duration,
        "scenarios": scenarios,
    }
    spec_path = workdir / "warmup.json"
    spec_path.write_text(json.dumps(spec))
    subprocess.run(
        [str(loadgen_python), "-m", "bench.loadgen", str(spec_path)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=pinned(LOAD_CPU),
        timeout=duration + 120,
    )


def run_route(
    subject: Subject,
    server: Server,
    route: Route,
    clients: list[Client],
    opts: LoadOptions,
    redis: PrivateRedis | None,
    loadgen_python: Path,
    workdir: Path,
) -> RoundFigures:
    spec = {
        "port": server.port,
        "connections": opts.connections,
        "duration": opts.duration,
        "warmup": opts.warmup,
        "handshake": True,
        "scenarios": [
            [{"raw": r.raw, "record": r.record} for r in route.scenario(c)] for c in clients
        ],
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
    settle = subject.database is not None and subject.database.kind == "postgres"
    if settle:
        time.sleep(STATS_SETTLE)
    before = read_counters(subject, server, redis)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, _ = proc.communicate(timeout=opts.duration + 120)
    result = json.loads(out)
    if settle:
        time.sleep(STATS_SETTLE)
    after = read_counters(subject, server, redis)
    figures = RoundFigures(
        rate=float(result["recorded_per_s"]),
        requests_per_s=float(result["requests_per_s"]),
        p50_us=result["p50_us"],
        p99_us=result["p99_us"],
        max_us=result["max_us"],
        requests=int(result["requests"]),
        failed=int(result["failed"]),
        statuses={str(k): int(v) for k, v in result["statuses"].items()},
    )
    per_request(before, after, figures.requests, subject, figures)
    return figures


def leak_check(
    subject: Subject, server: Server, rows: list[Row], redis: PrivateRedis | None, seconds: float
) -> Leak:
    time.sleep(STATS_SETTLE)
    now = read_counters(subject, server, redis)
    pool = now.app.pool if now.app is not None else None
    holds = pool.holds if pool is not None else None
    failed = sum(row.failed for row in rows)
    ok = failed == 0 and (now.db_open is None or holds is None or now.db_open == holds)
    return Leak(subject.name, ok, seconds, failed, now.db_open, holds, now.redis_clients)


def run_all(
    subjects: list[Subject],
    opts: LoadOptions,
    redis: PrivateRedis | None,
    loadgen_python: Path,
    workdir: Path,
) -> tuple[list[Row], list[Leak]]:
    """`opts.rounds` interleaved rounds over all subjects; the leak checks at the end.

    One server runs at a time (all of them at once would hold more connections than the
    local PostgreSQL allows): each round starts a subject's server, loads its routes and stops
    it, after an untimed warm-up of all its routes (`warm_up`). The clients made by the first
    round's set-up are used in every round: sessions and tokens live in the subject's own
    store and keep their secret key, so they outlive a restart.
    """
    rows = {
        s.name: [Row(s.name, route.name, route.kind, s.combo) for route in s.routes]
        for s in subjects
    }
    clients: dict[str, list[Client]] = {}
    leaks: list[Leak] = []
    for round_no in range(opts.rounds):
        for subject in subjects:
            server = Server(
                subject.python,
                subject.app,
                subject.cwd,
                subject.env,
                workdir / f"{subject.name}-{round_no + 1}.log",
            )
            try:
                server.wait_ready(subject.ready_path)
                if subject.name not in clients:
                    log(f"set up {subject.name}")
                    clients[subject.name] = subject.setup(server.port, opts.connections)
                warm_up(server, subject, clients[subject.name], opts, loadgen_python, workdir)
                for row, route in zip(rows[subject.name], subject.routes, strict=True):
                    figures = run_route(
                        subject,
                        server,
                        route,
                        clients[subject.name],
                        opts,
                        redis,
                        loadgen_python,
                        workdir,
                    )
                    row.rounds.append(figures)
                    log(
                        f"  [{round_no + 1}/{opts.rounds}] {subject.name} {route.name}: "
                        f"{figures.rate:.0f}/s p99 {(figures.p99_us or 0) / 1000:.1f} ms, "
                        f"failed {figures.failed}"
                    )
                if subject.pool_check and round_no == opts.rounds - 1:
                    subject_rows = rows[subject.name]
                    seconds = opts.rounds * len(subject_rows) * (opts.duration + opts.warmup)
                    leaks.append(leak_check(subject, server, subject_rows, redis, seconds))
            finally:
                server.stop()
    return [row for subject in subjects for row in rows[subject.name]], leaks


# --------------------------------------------------------------------------- rendering


@dataclass
class RenderTimings:
    new_defaults_seconds: float  # median of 3
    new_defaults_all: list[float]
    matrix_combinations: int
    matrix_render_seconds: float
    matrix_render_processes: int
    matrix_render_each_mean_seconds: float
    matrix_render_sum_seconds: float


def render_timings(template_src: Path, root: Path, combos: list[Combo]) -> RenderTimings:
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
    jobs = [(template_src, root / "matrix" / c.id, c.answers()) for c in combos]
    start = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(processes) as pool:
        each = list(pool.map(timed_render, *zip(*jobs, strict=True)))
    matrix_seconds = time.perf_counter() - start
    return RenderTimings(
        new_defaults_seconds=statistics.median(times),
        new_defaults_all=times,
        matrix_combinations=len(combos),
        matrix_render_seconds=matrix_seconds,
        matrix_render_processes=processes,
        matrix_render_each_mean_seconds=statistics.mean(each),
        matrix_render_sum_seconds=sum(each),
    )


def timed_render(src: Path, dest: Path, answers: dict[str, Any]) -> float:
    """Render one combination (in a worker process); its wall time."""
    start = time.perf_counter()
    render(src, dest, answers)
    return time.perf_counter() - start
