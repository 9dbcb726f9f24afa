"""Generate projects, serve each with one uvicorn worker, load them, print and save the tables.

    python -m bench [--combos ID,ID] [--duration S] [--rounds N] [--quick] [--json PATH]

See CONTRIBUTING.md ("The benchmark"). The concerns live in their own modules:

- ``bench/processes.py``: the processes: private Redis, databases, app servers, CPU pinning;
- ``bench/subjects.py``: what is measured: generated projects and reference apps
  (``bench/refapps.py``), their routes and their clients' credentials;
- ``bench/loadgen.py``: the load generator (a process of its own);
- ``bench/measure.py``: interleaved rounds, counters, typed rows, render timings;
- ``bench/criteria.py``: the targets and their verdicts;
- ``bench/report.py``: the tables and the JSON file.

Combinations come from ``tests.support.combos``, read from copier.yml like the matrix tests do.
Rendering and the projects' environments are the matrix tests' own (``tests/support/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.criteria import evaluate
from bench.measure import Leak, LoadOptions, RenderTimings, Row, render_timings, run_all
from bench.processes import REPO, PrivateRedis, log, two_cpus
from bench.subjects import Subject, project_subject, ref_subjects
from tests.support.combos import Combo, all_combos, load_config

COMBOS = all_combos(load_config(REPO / "copier.yml"))
# Issue 17's targets: GET /auth/me with sessions on async and sync PostgreSQL, MariaDB,
# SQLite and Redis; session reads and writes on Redis; reads with auth none.
DEFAULT_COMBOS = [
    "async-postgres-session-example",
    "sync-postgres-session-example",
    "async-mysql-session-example",
    "async-sqlite-session-example",
    "async-redis-postgres-session-example",
    "async-postgres-none-example",
    "async-redis-postgres-none-example",
]
QUICK_COMBOS = ["async-sqlite-session-example", "async-redis-postgres-none-example"]


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

    @property
    def load(self) -> LoadOptions:
        return LoadOptions(self.duration, self.warmup, self.rounds, self.connections)


def parse_args(argv: list[str] | None) -> Options:
    assert __doc__ is not None
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
    known = {c.id for c in COMBOS}
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
    combos: list[Combo] = [c for c in COMBOS if c.id in opts.combos]
    needs_redis = opts.refs or any(c.backend == "redis" for c in combos)
    if needs_redis and not shutil.which("redis-server"):
        log("redis-server not found: Redis combinations and starsessions are skipped")
        needs_redis = False
        combos = [c for c in combos if c.backend != "redis"]
    root = Path(tempfile.mkdtemp(prefix="sfbench-"))
    redis = PrivateRedis() if needs_redis else None
    started = time.time()
    rows: list[Row] = []
    leaks: list[Leak] = []
    timings: RenderTimings | None = None
    subjects: list[Subject] = []
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
            timings = render_timings(template_src, root / "timing", COMBOS)
            log(
                f"render: new --defaults {timings.new_defaults_seconds:.2f} s, "
                f"matrix {timings.matrix_render_seconds:.1f} s"
                f" on {timings.matrix_render_processes} processes"
            )
        if opts.refs:
            subjects += ref_subjects(redis, root / "refs")
        for combo in combos:
            subjects.append(project_subject(combo, template_src, root, redis))
        # Any app environment has uvloop (uvicorn[standard]); the load generator uses it.
        loadgen_python = subjects[0].python if subjects else Path(sys.executable)
        rows, leaks = run_all(subjects, opts.load, redis, loadgen_python, root)
    finally:
        for subject in subjects:
            if subject.database is not None and not opts.keep:
                subject.database.drop()
        if redis is not None:
            redis.stop()
        if not opts.keep:
            shutil.rmtree(root, ignore_errors=True)
    report.add_ratios(rows)
    checks = evaluate(rows, leaks, timings)
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
        "rows": [row.to_json() for row in rows],
        "leaks": [dataclasses.asdict(leak) for leak in leaks],
        "render": dataclasses.asdict(timings) if timings is not None else None,
        "targets": [{**dataclasses.asdict(c), "verdict": c.verdict} for c in checks],
    }
    print(report.table(rows))
    print()
    print(report.leak_table(leaks))
    print()
    print(report.targets_table(checks))
    report.write_json(opts.json_path, data)
    print(f"\nJSON: {opts.json_path}")
    return 0
