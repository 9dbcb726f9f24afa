"""Medians over rounds, the printed table, the targets, and the JSON file."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

# Per-request figures kept from each round (medians are taken over rounds).
ROUND_FIELDS = (
    "rate",
    "p50_us",
    "p99_us",
    "redis_per_req",
    "sql_per_req",
    "pg_xacts_per_req",
    "new_connections",
    "failed",
)


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(row: dict[str, Any]) -> dict[str, Any]:
    """`row` has "rounds" (a list of dicts with ROUND_FIELDS); add the medians."""
    rounds = row["rounds"]
    for name in ROUND_FIELDS:
        row[name] = median([r.get(name) for r in rounds])
    row["failed"] = sum(r.get("failed") or 0 for r in rounds)
    row["new_connections"] = sum(r.get("new_connections") or 0 for r in rounds)
    return row


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """ratio: to bare FastAPI's JSON route, or to bare /docs for the session-free /docs."""
    bare = {r["route"]: r["rate"] for r in rows if r["target"] == "bare" and r.get("rate")}
    for row in rows:
        base = bare.get("GET /docs") if row["route"] == "GET /docs" else bare.get("GET /json")
        row["ratio"] = row["rate"] / base if base and row.get("rate") else None


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    return format(value, spec)


COLUMNS = [
    ("target", "target", "", 34),
    ("route", "route", "", 30),
    ("req/s", "rate", ".0f", 7),
    ("p50 ms", "p50_ms", ".1f", 7),
    ("p99 ms", "p99_ms", ".1f", 7),
    ("x bare", "ratio", ".2f", 6),
    ("redis/req", "redis_per_req", ".2f", 9),
    ("sql/req", "sql_per_req", ".2f", 7),
    ("pg tx/req", "pg_xacts_per_req", ".2f", 9),
    ("new conn", "new_connections", "d", 8),
    ("failed", "failed", "d", 6),
]


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        " ".join(
            f"{title:>{width}}" if i > 1 else f"{title:<{width}}"
            for i, (title, _, _, width) in enumerate(COLUMNS)
        )
    ]
    for row in rows:
        view = dict(row)
        view["p50_ms"] = row["p50_us"] / 1000 if row.get("p50_us") is not None else None
        view["p99_ms"] = row["p99_us"] / 1000 if row.get("p99_us") is not None else None
        cells = []
        for i, (_, key, spec, width) in enumerate(COLUMNS):
            text = _fmt(view.get(key), spec) if spec else str(view.get(key, ""))
            cells.append(f"{text:>{width}}" if i > 1 else f"{text[:width]:<{width}}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def leak_table(leaks: list[dict[str, Any]]) -> str:
    lines = ["leak check (after the target's whole load):"]
    for leak in leaks:
        verdict = "ok" if leak["ok"] else "FAIL"
        lines.append(
            f"  {leak['target']:<34} {verdict:<4} load {leak['load_seconds']:.0f}s, "
            f"failed requests {leak['failed']}, db connections open {leak['db_open']} "
            f"(pool holds {leak['pool_holds']}), redis clients {leak['redis_clients']}"
        )
    return "\n".join(lines)


def targets_table(targets: list[dict[str, Any]]) -> str:
    lines = ["targets:"]
    for t in targets:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        lines.append(f"  {verdict:<6} {t['name']}: {t['measured']}")
    return "\n".join(lines)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
