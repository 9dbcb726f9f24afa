"""The printed tables (rows, leak check, targets) and the JSON file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.criteria import Check
from bench.measure import Leak, Row
from bench.subjects import BARE


def add_ratios(rows: list[Row]) -> None:
    """ratio: to bare FastAPI's JSON route, or to bare /docs for the session-free /docs."""
    bare = {r.route: r.rate for r in rows if r.subject == BARE and r.rate}
    for row in rows:
        base = bare.get("GET /docs") if row.route == "GET /docs" else bare.get("GET /json")
        row.ratio = row.rate / base if base and row.rate else None


def _ms(us: float | None) -> float | None:
    return us / 1000 if us is not None else None


Column = tuple[str, Callable[[Row], Any], str, int]
COLUMNS: list[Column] = [
    ("app", lambda r: r.subject, "", 36),
    ("route", lambda r: r.route, "", 24),
    ("req/s", lambda r: r.rate, ".0f", 6),
    ("p50 ms", lambda r: _ms(r.p50_us), ".1f", 7),
    ("p99 ms", lambda r: _ms(r.p99_us), ".1f", 7),
    ("max ms", lambda r: _ms(r.max_us), ".0f", 7),
    ("x bare", lambda r: r.ratio, ".3f", 6),
    ("redis/req", lambda r: r.redis_per_req, ".2f", 9),
    ("sql/req", lambda r: r.sql_per_req, ".2f", 7),
    ("pg tx/req", lambda r: r.pg_xacts_per_req, ".2f", 9),
    ("new conn", lambda r: r.new_connections, "d", 8),
    ("failed", lambda r: r.failed, "d", 6),
]


def _cell(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def table(rows: list[Row]) -> str:
    def line(cells: list[str]) -> str:
        return " ".join(
            f"{text:>{width}}" if i > 1 else f"{text[:width]:<{width}}"
            for i, (text, (_, _, _, width)) in enumerate(zip(cells, COLUMNS, strict=True))
        )

    lines = [line([title for title, _, _, _ in COLUMNS])]
    for row in rows:
        lines.append(line([_cell(get(row), spec) for _, get, spec, _ in COLUMNS]))
    return "\n".join(lines)


def leak_table(leaks: list[Leak]) -> str:
    lines = ["leak check (at the end of the subject's last round):"]
    for leak in leaks:
        verdict = "ok" if leak.ok else "FAIL"
        lines.append(
            f"  {leak.subject:<36} {verdict:<4} load {leak.load_seconds:.0f}s, "
            f"failed requests {leak.failed}, db connections open {leak.db_open} "
            f"(pool holds {leak.pool_holds}), redis clients {leak.redis_clients}"
        )
    return "\n".join(lines)


def targets_table(checks: list[Check]) -> str:
    """One block per target: each check's verdict, figure(s) and ratio."""
    lines = ["targets (MET / MISSED / n/a = not measured in this run):"]
    current = None
    for check in checks:
        if check.target != current:
            current = check.target
            verdicts = {c.verdict for c in checks if c.target == current}
            overall = "MISSED" if "MISSED" in verdicts else "MET" if "MET" in verdicts else "n/a"
            partly = " (not all measured)" if overall != "n/a" and "n/a" in verdicts else ""
            lines.append(f"{overall:<6} {current}{partly}")
        ratio = f"  ratio {check.ratio:.2f} (need {check.need})" if check.ratio is not None else ""
        lines.append(f"    {check.verdict:<6} {check.subject}: {check.figure}{ratio}")
    return "\n".join(lines)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
