"""The benchmark's pieces, run minimally so they cannot rot unnoticed (no speed is asserted).

The benchmark itself (`python -m bench`) is not part of the test suite: it needs minutes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.criteria import Check
from bench.loadgen import Step, build_request, run_load
from bench.measure import Leak, RoundFigures, Row
from bench.run import COMBOS
from bench.subjects import Kind
from tests.support.paths import REPO

pytestmark = [pytest.mark.render, pytest.mark.fast]


class TinyServer:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 that counts what it answers:
    200 with a JSON body for every path but /missing (404)."""

    def __init__(self) -> None:
        self.served = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        server.close()
        # End the handlers still waiting on a connection here, in their loop: left to the
        # garbage collector, each printed an "Exception ignored ... Event loop is closed"
        # traceback from whichever thread collected it.
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                if length:
                    await reader.readexactly(length)
                self.served += 1
                status = "404 Not Found" if path == "/missing" else "200 OK"
                body = b'{"ok":true}'
                writer.write(
                    f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def __enter__(self) -> TinyServer:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def tiny() -> Iterator[TinyServer]:
    with TinyServer() as server:
        yield server


def test_load_generator_counts_every_response(tiny: TinyServer) -> None:
    scenario = [
        Step(build_request("POST", "/cart/items", body={"product_id": 1}), record=False),
        Step(build_request("GET", "/cart", headers={"Cookie": "session=x"})),
    ]
    result = asyncio.run(run_load("127.0.0.1", tiny.port, [scenario], duration=1, connections=4))
    assert result.requests > 0
    assert result.requests == tiny.served
    assert result.failed == 0
    assert result.statuses == {200: result.requests}
    # Every connection ends after a complete response, so each is at most one step short.
    assert result.sequences * 2 <= result.requests <= result.sequences * 2 + 4
    assert result.recorded == len(result.latencies_ns) >= result.sequences
    summary = result.summary()
    assert summary["p50_us"] is not None and summary["p99_us"] >= summary["p50_us"] > 0
    assert summary["max_us"] >= summary["p99_us"]
    assert summary["requests_per_s"] > 0


def test_load_generator_counts_failures(tiny: TinyServer) -> None:
    steps = [Step(build_request("GET", "/missing"))]
    result = asyncio.run(run_load("127.0.0.1", tiny.port, [steps], duration=0.3, connections=2))
    assert result.requests > 0
    assert result.failed == result.requests == result.statuses[404]


def test_load_generator_reports_refused_connections() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    steps = [Step(build_request("GET", "/"))]
    result = asyncio.run(run_load("127.0.0.1", port, [steps], duration=0.2, connections=3))
    assert result.requests == 0
    assert result.errors == 3 and result.failed == 3


def test_load_generator_process_handshake(tiny: TinyServer, tmp_path: Path) -> None:
    """`python -m bench.loadgen SPEC`: warm up, say "ready", measure on a line, print JSON."""
    spec = {
        "port": tiny.port,
        "connections": 2,
        "duration": 0.5,
        "warmup": 0.2,
        "handshake": True,
        "scenarios": [[{"raw": build_request("GET", "/json").decode("latin-1")}]],
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", str(path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "ready"
    warm = tiny.served
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, _ = proc.communicate(timeout=60)
    result = json.loads(out)
    assert proc.returncode == 0
    assert result["requests"] == tiny.served - warm > 0
    assert result["failed"] == 0


def _row(
    subject: str,
    route: str,
    kind: Kind,
    rates: list[float],
    combo: str | None = None,
    *,
    p50: float = 1000.0,
    p99: float = 3000.0,
    max_us: float = 9000.0,
    **extra: Any,
) -> Row:
    rounds = [
        RoundFigures(
            rate=r,
            requests_per_s=r,
            p50_us=p50,
            p99_us=p99,
            max_us=max_us if i == 0 else max_us / 2,
            requests=int(r),
            failed=0,
            statuses={"200": int(r)},
            **extra,
        )
        for i, r in enumerate(rates)
    ]
    by_id = {c.id: c for c in COMBOS}
    return Row(subject, route, kind, by_id[combo] if combo else None, rounds)


def _checks(checks: list[Check], target: str) -> list[Check]:
    found = [c for c in checks if c.target == target]
    assert found, f"no check for {target!r}"
    return found


def test_report_medians_ratios_targets_table_and_json(tmp_path: Path) -> None:
    from bench.criteria import evaluate

    # Subjects are deliberately named unlike their combination ids: the criteria must
    # recognise a combination by its fields.
    rows = [
        _row("bare", "GET /json", "json", [4000, 5000, 4500]),
        _row("bare", "GET /docs", "nosession", [3000, 3000, 3000]),
        _row("starsessions-redis", "GET /cart", "read", [1800, 1800, 1800], redis_per_req=2.0),
        _row("fastapi-users-jwt", "GET /users/me", "me", [500, 500, 500]),
        _row("fastapi-users-db", "GET /users/me", "me", [600, 600, 600]),
        _row(
            "svc-a",
            "GET /docs",
            "nosession",
            [2900, 2950, 3100],
            "async-redis-sqlite-none-example",
            redis_per_req=0.0,
            sql_per_req=0.0,
        ),
        _row(
            "svc-a",
            "GET /cart",
            "read",
            [3000, 2000, 2500],
            "async-redis-sqlite-none-example",
            redis_per_req=1.0,
        ),
        _row(
            "svc-b",
            "GET /auth/me",
            "me",
            [1300, 1200, 1400],
            "async-postgres-session-example",
            sql_per_req=4.0,
        ),
        _row(
            "svc-c",
            "GET /auth/me",
            "me",
            [1000, 1000, 1000],
            "sync-postgres-session-example",
            p99=6000.0,
            max_us=1_200_000.0,
        ),
    ]
    report.add_ratios(rows)
    assert rows[0].rate == 4500 and rows[0].ratio == 1
    assert rows[0].max_us == 9000.0  # the slowest request of all rounds, not a median
    assert rows[5].ratio == pytest.approx(2950 / 3000)  # /docs compares with bare /docs
    assert rows[6].ratio == pytest.approx(2500 / 4500)

    leaks = [Leak("svc-a", True, 10, 0, 5, 5, 3)]
    checks = evaluate(rows, leaks, None)

    me = _checks(checks, "GET /auth/me (session auth) >= 2x the faster fastapi-users strategy")
    measured = [c for c in me if c.met is not None]
    assert [(c.subject, c.met) for c in measured] == [
        ("svc-b GET /auth/me", True),  # 1300 / 600 (the faster strategy)
        ("svc-c GET /auth/me", False),  # 1000 / 600
    ]
    assert measured[0].ratio == pytest.approx(1300 / 600)
    assert {(c.subject, c.figure) for c in me if c.met is None} == {
        ("MariaDB sessions", "not measured"),
        ("SQLite sessions", "not measured"),
        ("Redis sessions", "not measured"),
    }
    (stars,) = _checks(checks, "Redis session read (GET /cart) >= 2x starsessions")
    assert stars.met is False and stars.ratio == pytest.approx(2500 / 1800)
    (sync,) = _checks(checks, "sync >= 0.8x async (same combination, same route)")
    assert sync.subject == "svc-c GET /auth/me" and sync.met is False
    assert sync.ratio == pytest.approx(1000 / 1300)
    latency = {
        c.subject: c.met
        for c in _checks(checks, "p99 <= 5x p50 and no request over 1 s (50 connections)")
    }
    assert latency["svc-b GET /auth/me"] is True
    assert latency["svc-c GET /auth/me"] is False  # p99 6x p50, one request over 1 s
    trips = {
        c.subject: c.met
        for c in _checks(checks, "at most 1 store round trip per authenticated read")
    }
    assert trips == {"svc-b GET /auth/me": False, "svc-c GET /auth/me": None}
    (docs_trips,) = _checks(
        checks, "no store round trip for a route that ignores the session (GET /docs)"
    )
    assert docs_trips.met is True
    (docs,) = _checks(
        checks, "a route that ignores the session (GET /docs) >= 0.95x bare GET /docs"
    )
    assert docs.met is True
    (bare_read,) = _checks(checks, "Redis session read (auth none, GET /cart) >= 0.6x bare")
    assert bare_read.met is False
    (sql_read,) = _checks(checks, "SQL session read (auth none, GET /cart) >= 0.4x bare")
    assert sql_read.met is None
    (one,) = _checks(checks, "exactly one Redis command per unchanged session read (auth none)")
    assert one.met is True

    text = report.table(rows)
    lines = text.splitlines()
    assert len(lines) == 1 + len(rows)
    assert "req/s" in lines[0] and "4500" in lines[1]
    targets = report.targets_table(checks)
    assert "MISSED GET /auth/me (session auth)" in targets
    assert "(not all measured)" in targets
    assert "ratio 2.17 (need >= 2.00x)" in targets
    assert "ok" in report.leak_table(leaks)

    out = tmp_path / "out" / "results.json"
    report.write_json(out, {"rows": [r.to_json() for r in rows]})
    data = json.loads(out.read_text())
    assert [r["route"] for r in data["rows"]] == [r.route for r in rows]
    assert {"rate", "p50_us", "p99_us", "max_us", "ratio", "rounds", "failed"} <= set(
        data["rows"][0]
    )
    assert len(data["rows"][0]["rounds"]) == 3
    assert data["rows"][5]["combo"] == "async-redis-sqlite-none-example"


def test_command_line_options() -> None:
    from bench.run import DEFAULT_COMBOS, QUICK_COMBOS, parse_args

    quick = parse_args(["--quick"])
    assert (quick.combos, quick.rounds, quick.duration) == (QUICK_COMBOS, 1, 2.0)
    full = parse_args(["--combos", DEFAULT_COMBOS[0], "--duration", "7", "--json", "x.json"])
    assert (full.combos, full.rounds, full.duration, full.json_path) == (
        [DEFAULT_COMBOS[0]],
        3,
        7.0,
        Path("x.json"),
    )
    with pytest.raises(SystemExit) as exc:
        parse_args(["--combos", "no-such-combination"])
    assert exc.value.code == 2
