"""The targets: each check gives its figures, the ratio and a verdict (never asserted in tests).

Issue 17's targets (medians of the interleaved rounds, all in one run):

- authenticated ``GET /auth/me`` >= 2x the faster fastapi-users strategy, for async PostgreSQL,
  sync PostgreSQL, MariaDB, SQLite and Redis sessions;
- ``GET /cart`` >= 2x starsessions on Redis, ``POST /cart/items`` >= 1.5x starsessions;
- p99 <= 5x p50 and no request over 1 s, on every route of every generated service;
- sync >= 0.8x async for the same combination otherwise;
- at most one store round trip per authenticated read, none for a route that ignores the
  session, no connection opened under steady load.

and the earlier ones (bare FastAPI ratios, one Redis command per session read, the leak check,
render times). Combinations are told apart by their fields (``tests.support.combos.Combo``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bench.measure import Leak, RenderTimings, Row
from bench.subjects import BARE, FASTAPI_USERS, STARSESSIONS
from tests.support.combos import Combo


@dataclass
class Check:
    target: str  # the target's wording, shared by its checks
    subject: str  # what this check is about (a combination and route, or "all")
    figure: str  # the measured figure(s)
    ratio: float | None  # the figure the target bounds (None: no ratio for this target)
    need: str  # e.g. ">= 2.00x"
    met: bool | None  # None: not measured in this run

    @property
    def verdict(self) -> str:
        return {True: "MET", False: "MISSED", None: "n/a"}[self.met]


def _rate(row: Row) -> str:
    return f"{row.rate:.0f} req/s" if row.rate is not None else "no rate"


def _ms(us: float | None) -> str:
    return f"{us / 1000:.1f} ms" if us is not None else "-"


def _ours(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r.combo is not None and r.rate]


def _name(row: Row) -> str:
    return f"{row.subject} {row.route}"


def ratio_checks(
    target: str,
    picked: list[Row],
    base: Row | None,
    minimum: float,
    *,
    label: str = "-",
) -> list[Check]:
    """One check per picked row: its rate over `base`'s; n/a (labelled) when not measured."""
    need = f">= {minimum:.2f}x"
    if base is None or not base.rate:
        return [Check(target, label, "no reference measured", None, need, None)]
    if not picked:
        return [Check(target, label, "not measured", None, need, None)]
    out = []
    for row in picked:
        assert row.rate is not None
        ratio = row.rate / base.rate
        figure = f"{_rate(row)} vs {_rate(base)} ({base.subject} {base.route})"
        out.append(Check(target, _name(row), figure, ratio, need, ratio >= minimum))
    return out


# The five kinds of session issue 17 names for GET /auth/me, by their combination fields.
AUTH_ME_GROUPS: list[tuple[str, Callable[[Combo], bool]]] = [
    ("async PostgreSQL", lambda c: c.mode == "async" and c.backend == "postgres"),
    ("sync PostgreSQL", lambda c: c.mode == "sync" and c.backend == "postgres"),
    ("MariaDB", lambda c: c.backend == "mysql"),
    ("SQLite", lambda c: c.backend == "sqlite"),
    ("Redis", lambda c: c.backend == "redis"),
]


def auth_me_checks(rows: list[Row]) -> list[Check]:
    target = "GET /auth/me (session auth) >= 2x the faster fastapi-users strategy"
    refs = [r for r in rows if r.subject in FASTAPI_USERS and r.kind == "me" and r.rate]
    base = max(refs, key=lambda r: r.rate or 0.0) if refs else None
    out: list[Check] = []
    for label, fits in AUTH_ME_GROUPS:
        picked = [
            r
            for r in _ours(rows)
            if r.kind == "me" and r.combo is not None and r.combo.auth == "session"
            if fits(r.combo)
        ]
        out += ratio_checks(target, picked, base, 2.0, label=f"{label} sessions")
    return out


def latency_checks(rows: list[Row]) -> list[Check]:
    target = "p99 <= 5x p50 and no request over 1 s (50 connections)"
    out = []
    for row in _ours(rows):
        if row.p50_us is None or row.p99_us is None or row.max_us is None:
            continue
        ratio = row.p99_us / row.p50_us
        figure = f"p50 {_ms(row.p50_us)}, p99 {_ms(row.p99_us)}, max {_ms(row.max_us)}"
        met = ratio <= 5 and row.max_us <= 1_000_000
        out.append(Check(target, _name(row), figure, ratio, "p99/p50 <= 5, max <= 1 s", met))
    return out or [Check(target, "-", "not measured", None, "", None)]


def sync_async_checks(rows: list[Row]) -> list[Check]:
    target = "sync >= 0.8x async (same combination, same route)"
    ours = _ours(rows)
    out: list[Check] = []
    for row in ours:
        combo = row.combo
        if combo is None or combo.mode != "sync":
            continue
        twin = next(
            (
                r
                for r in ours
                if r.combo is not None
                and r.route == row.route
                and r.combo.mode == "async"
                and (r.combo.backend, r.combo.database, r.combo.auth, r.combo.example_api)
                == (combo.backend, combo.database, combo.auth, combo.example_api)
            ),
            None,
        )
        if twin is not None:
            out += ratio_checks(target, [row], twin, 0.8)
    return out or [Check(target, "-", "no sync/async pair measured", None, ">= 0.80x", None)]


def trip_checks(rows: list[Row]) -> list[Check]:
    out: list[Check] = []
    target = "at most 1 store round trip per authenticated read"
    for row in _ours(rows):
        if row.combo is None or row.combo.auth == "none" or row.kind not in {"me", "read"}:
            continue
        trips = row.store_trips_per_req
        figure = (
            f"{trips:.2f} per request (redis {_num(row.redis_per_req)}, "
            f"sql {_num(row.sql_per_req)})"
            if trips is not None
            else "not counted"
        )
        met = None if trips is None else trips <= 1.01
        out.append(Check(target, _name(row), figure, trips, "<= 1", met))
    if not out:
        out.append(Check(target, "-", "not measured", None, "<= 1", None))
    target = "no store round trip for a route that ignores the session (GET /docs)"
    for row in _ours(rows):
        if row.kind != "nosession":
            continue
        trips = row.store_trips_per_req
        figure = f"{trips:.2f} per request" if trips is not None else "not counted"
        met = None if trips is None else trips < 0.01
        out.append(Check(target, _name(row), figure, trips, "0", met))
    target = "no connection opened under steady load (timed windows)"
    subjects = dict.fromkeys(r.subject for r in _ours(rows))
    for subject in subjects:
        opened = sum(r.new_connections for r in rows if r.subject == subject)
        out.append(Check(target, subject, f"{opened} opened", None, "0", opened == 0))
    return out


def _num(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def _find(rows: list[Row], subject: str, route: str) -> Row | None:
    return next((r for r in rows if r.subject == subject and r.route == route and r.rate), None)


def evaluate(rows: list[Row], leaks: list[Leak], timings: RenderTimings | None) -> list[Check]:
    ours = _ours(rows)

    def redis_rows(kind: str, *, auth: str | None = None) -> list[Row]:
        return [
            r
            for r in ours
            if r.combo is not None
            and r.combo.backend == "redis"
            and r.kind == kind
            and (auth is None or r.combo.auth == auth)
        ]

    sql_pure_read = [
        r
        for r in ours
        if r.combo is not None and r.combo.backend != "redis" and r.combo.auth == "none"
        if r.kind == "read"
    ]
    out = auth_me_checks(rows)
    out += ratio_checks(
        "Redis session read (GET /cart) >= 2x starsessions",
        redis_rows("read"),
        _find(rows, STARSESSIONS, "GET /cart"),
        2.0,
    )
    out += ratio_checks(
        "Redis session read+write (POST /cart/items) >= 1.5x starsessions",
        redis_rows("write"),
        _find(rows, STARSESSIONS, "POST /cart/items"),
        1.5,
    )
    out += latency_checks(rows)
    out += sync_async_checks(rows)
    out += trip_checks(rows)
    out += ratio_checks(
        "a route that ignores the session (GET /docs) >= 0.95x bare GET /docs",
        [r for r in ours if r.kind == "nosession"],
        _find(rows, BARE, "GET /docs"),
        0.95,
    )
    out += ratio_checks(
        "Redis session read (auth none, GET /cart) >= 0.6x bare",
        redis_rows("read", auth="none"),
        _find(rows, BARE, "GET /json"),
        0.6,
    )
    out += ratio_checks(
        "SQL session read (auth none, GET /cart) >= 0.4x bare",
        sql_pure_read,
        _find(rows, BARE, "GET /json"),
        0.4,
    )
    target = "exactly one Redis command per unchanged session read (auth none)"
    reads = [r for r in redis_rows("read", auth="none") if r.redis_per_req is not None]
    for row in reads:
        assert row.redis_per_req is not None
        met = abs(row.redis_per_req - 1) < 0.01
        out.append(
            Check(target, _name(row), f"{row.redis_per_req:.3f}", row.redis_per_req, "1", met)
        )
    if not reads:
        out.append(Check(target, "-", "not measured", None, "1", None))
    target = "leak check: open connections equal the pool's, no failed request"
    for leak in leaks:
        figure = (
            f"failed {leak.failed}, db connections open {leak.db_open} "
            f"(pool holds {leak.pool_holds}), redis clients {leak.redis_clients}"
        )
        out.append(Check(target, leak.subject, figure, None, "", leak.ok))
    if timings is not None:
        out.append(
            Check(
                "sessionforge new --defaults < 1.5 s",
                "median of 3",
                f"{timings.new_defaults_seconds:.2f} s",
                None,
                "< 1.5 s",
                timings.new_defaults_seconds < 1.5,
            )
        )
        out.append(
            Check(
                "full option matrix rendered < 30 s",
                f"{timings.matrix_combinations} combinations",
                f"{timings.matrix_render_seconds:.1f} s on {timings.matrix_render_processes}"
                f" processes ({timings.matrix_render_each_mean_seconds:.2f} s per render,"
                f" {timings.matrix_render_sum_seconds:.1f} s one after another)",
                None,
                "< 30 s",
                timings.matrix_render_seconds < 30,
            )
        )
    return out
