"""Serve one app with one uvicorn worker (uvloop + httptools), counting what it sends to SQL.

    python bench/serve.py --app PACKAGE.main:app --port 8000 --stats FILE

Run with the app's own environment. Before the app is imported, class-level SQLAlchemy
listeners are installed (when SQLAlchemy is importable) that count, per process: statements
executed, commits, rollbacks, pool checkouts, pool resets on return, and connections opened.
On SIGUSR1 the counts and the pool's state (``app.state.engine.pool``) are written to FILE as
JSON; nothing is added to the request path besides the listeners themselves.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
from collections import Counter
from typing import Any

COUNTS: Counter[str] = Counter()
LOCK = threading.Lock()


def _count(name: str) -> Any:
    def listener(*_args: Any, **_kwargs: Any) -> None:
        with LOCK:
            COUNTS[name] += 1

    return listener


def _count_sent(name: str) -> Any:
    """Count BEGIN, COMMIT or ROLLBACK on a connection not in autocommit mode (in
    autocommit mode SQLAlchemy still fires the events, but the driver sends nothing)."""

    def listener(connection: Any, *_args: Any, **_kwargs: Any) -> None:
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        with LOCK:
            COUNTS[name] += 1

    return listener


def _in_transaction(dbapi: Any, record: Any) -> bool:
    """Does the driver connection hold an open transaction (is a rollback sent)?"""
    server_status = getattr(getattr(record, "driver_connection", None), "server_status", None)
    if isinstance(server_status, int):
        # MySQL drivers (asyncmy, PyMySQL) keep the server's status flags; the
        # generated MySQL engines roll back on return only while
        # SERVER_STATUS_IN_TRANS (1) is set (`engine._on_reset`).
        return bool(server_status & 1)
    if getattr(dbapi, "autocommit", None) is True:
        return False
    if getattr(dbapi, "_transaction", "unknown") is None:  # SQLAlchemy's asyncpg adapter
        return False
    return getattr(dbapi, "in_transaction", True) is not False  # sqlite3


def _reset_rollback(dbapi: Any, record: Any, state: Any = None) -> None:
    """A reset on return that rolls back on the server (the transaction had not ended)."""
    if state is not None and not state.transaction_was_reset and _in_transaction(dbapi, record):
        with LOCK:
            COUNTS["reset_rollbacks"] += 1


def install_sql_counters() -> bool:
    try:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        from sqlalchemy.pool import Pool
    except ImportError:
        return False
    event.listen(Engine, "before_cursor_execute", _count("statements"))
    event.listen(Engine, "begin", _count_sent("begins"))
    event.listen(Engine, "commit", _count_sent("commits"))
    event.listen(Engine, "rollback", _count_sent("rollbacks"))
    event.listen(Pool, "connect", _count("connects"))
    event.listen(Pool, "checkout", _count("checkouts"))
    event.listen(Pool, "reset", _count("resets"))
    event.listen(Pool, "reset", _reset_rollback)
    return True


def pool_state(app: Any) -> dict[str, Any] | None:
    engine = getattr(getattr(app, "state", None), "engine", None)
    if engine is None:
        return None
    pool = engine.pool
    state: dict[str, Any] = {"class": type(pool).__name__}
    for name in ("size", "checkedin", "checkedout", "overflow"):
        method = getattr(pool, name, None)
        if callable(method):
            state[name] = method()
    return state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stats", required=True)
    args = parser.parse_args()

    sys.path.insert(0, os.getcwd())
    sql = install_sql_counters()
    module_name, _, attr = args.app.partition(":")
    target = getattr(importlib.import_module(module_name), attr)
    app = target() if module_name == "bench.refapps" else target

    def dump(_signum: int, _frame: Any) -> None:
        with LOCK:
            counts = dict(COUNTS)
        data = {"sql": sql, "counts": counts, "pool": pool_state(app)}
        tmp = f"{args.stats}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, args.stats)

    signal.signal(signal.SIGUSR1, dump)

    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        workers=1,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
