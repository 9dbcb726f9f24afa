"""The budget of password hashing: one client floods register and login; what do others see?

    python -m bench.hash_flood                          # async-postgres-session-example
    python -m bench.hash_flood --combo sync-sqlite-session-noexample --duration 20
    python -m bench.hash_flood --no-client-limits       # per-client limits raised out of reach:
                                                        # the hashing cap alone (a flood from
                                                        # many addresses looks like this)
    python -m bench.hash_flood --template /tmp/old      # render another checkout's template/

Renders one generated project from the working tree (or from `--template`, a folder holding
`copier.yml` and `template/`), installs it in the matrix tests' cached environment, serves it
with one uvicorn worker (`bench/serve.py`, pinned to CPU 0 when there are two), logs one
user in, and then measures, on one keep-alive connection each, `GET /health/live` and
`GET /auth/me` latencies: first idle, then while `--flooders` connections from the same
address post registrations and logins (right and wrong passwords) as fast as the server
answers. It samples the worker's RSS throughout. It prints the figures and the ratios to the
idle p50; the budget is /health/live under 100 ms and GET /auth/me under 5x its idle p50
during the flood. Nothing is asserted: these are measurements.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.client import http_call
from bench.processes import REPO, log
from bench.subjects import PASSWORD, served_project
from tests.support.combos import all_combos, load_config

LIVE_BUDGET_MS = 100.0
ME_BUDGET_RATIO = 5.0


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1 (reopened when the server closes it)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, dict[str, str]]:
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def log_in(port: int, auth: str) -> dict[str, str]:
    """Register a user and log in; the headers that make requests its own."""
    email = f"probe-{uuid.uuid4().hex[:8]}@example.com"
    status, _, _ = http_call(
        port, "POST", "/auth/register", body={"email": email, "password": PASSWORD}
    )
    assert status == 201, f"register: {status}"
    if auth == "session":
        status, cookies, data = http_call(
            port, "POST", "/auth/login", body={"email": email, "password": PASSWORD}
        )
        assert status == 200, f"login: {status}"
        return {
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
            "X-CSRF-Token": data["csrf_token"],
        }
    status, _, data = http_call(
        port, "POST", "/auth/token", form={"username": email, "password": PASSWORD}
    )
    assert status == 200, f"token: {status}"
    return {"Authorization": f"Bearer {data['access_token']}"}


def probe(port: int, path: str, headers: dict[str, str], stop: threading.Event) -> list[float]:
    """Milliseconds of sequential GETs of `path`, 20 ms apart, until `stop`."""
    conn = Connection(port)
    timings = []
    while not stop.is_set():
        started = time.perf_counter()
        status, _ = conn.call("GET", path, headers)
        timings.append((time.perf_counter() - started) * 1000)
        assert status == 200, f"{path}: {status}"
        stop.wait(0.02)
    return timings


def flood(port: int, auth: str, stop: threading.Event, statuses: Counter[str]) -> None:
    """Registrations and logins, right and wrong, back to back on one connection."""
    conn = Connection(port)
    email = f"flood-{uuid.uuid4().hex[:8]}@example.com"
    json_headers = {"Content-Type": "application/json"}
    form_headers = {"Content-Type": "application/x-www-form-urlencoded"}
    body = json.dumps({"email": email, "password": PASSWORD}).encode()
    status, _ = conn.call("POST", "/auth/register", json_headers, body)
    statuses[f"register {status}"] += 1
    n = 0
    while not stop.is_set():
        n += 1
        if n % 3 == 0:
            body = json.dumps({"email": f"{n}-{email}", "password": PASSWORD}).encode()
            status, _ = conn.call("POST", "/auth/register", json_headers, body)
            statuses[f"register {status}"] += 1
            continue
        password = PASSWORD if n % 3 == 1 else "a wrong password"
        if auth == "session":
            body = json.dumps({"email": email, "password": password}).encode()
            status, _ = conn.call("POST", "/auth/login", json_headers, body)
        else:
            body = urlencode({"username": email, "password": password}).encode()
            status, _ = conn.call("POST", "/auth/token", form_headers, body)
        statuses[f"login {status}"] += 1


def summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "max": ordered[-1],
    }


def measure(
    port: int, pid: int, auth: str, headers: dict[str, str], seconds: float, flooders: int
) -> dict[str, Any]:
    stop = threading.Event()
    results: dict[str, list[float]] = {}
    statuses: Counter[str] = Counter()
    rss: list[float] = []

    def run_probe(path: str, probe_headers: dict[str, str]) -> None:
        results[path] = probe(port, path, probe_headers, stop)

    threads = [
        threading.Thread(target=run_probe, args=("/health/live", {})),
        threading.Thread(target=run_probe, args=("/auth/me", headers)),
    ]
    threads += [
        threading.Thread(target=flood, args=(port, auth, stop, statuses)) for _ in range(flooders)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rss.append(rss_mib(pid))
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join()
    return {
        "live": summary(results["/health/live"]),
        "me": summary(results["/auth/me"]),
        "rss_max_mib": max(rss),
        "rss_end_mib": rss[-1],
        "statuses": dict(sorted(statuses.items())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--combo", default="async-postgres-session-example")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of flood")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle measurement")
    parser.add_argument("--flooders", type=int, default=4, help="flooding connections")
    parser.add_argument("--template", type=Path, default=REPO, help="folder with template/")
    parser.add_argument(
        "--no-client-limits",
        action="store_true",
        help="raise the per-client login and registration limits out of reach",
    )
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the app")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)

    combos = {combo.id: combo for combo in all_combos(load_config(REPO / "copier.yml"))}
    combo = combos[args.combo]
    if combo.auth == "none":
        parser.error("the combination has no logins")
    env: dict[str, str] = {}
    if args.no_client_limits:
        for name in ("LOGIN_ATTEMPTS_PER_CLIENT", "REGISTRATIONS_PER_CLIENT"):
            env[name] = "1000000"
    # The account-wide limits stay: the flood's own account may hit them (429, no hash).
    for pair in args.env:
        key, _, value = pair.partition("=")
        env[key] = value
    with served_project(combo, args.template, "hash-flood-", env) as (server, _subject):
        headers = log_in(server.port, combo.auth)
        log(f"idle {args.idle:.0f} s")
        idle = measure(server.port, server.proc.pid, combo.auth, headers, args.idle, 0)
        log(f"flood {args.duration:.0f} s with {args.flooders} connections")
        flooded = measure(
            server.port, server.proc.pid, combo.auth, headers, args.duration, args.flooders
        )

    live_p95 = flooded["live"]["p95"]
    me_ratio = flooded["me"]["p50"] / idle["me"]["p50"]
    print(
        f"{combo.id}: {args.flooders} flooding connections for {args.duration:.0f} s"
        f"{' (per-client limits out of reach)' if args.no_client_limits else ''}"
    )
    for name, label in (("live", "GET /health/live"), ("me", "GET /auth/me")):
        i, f = idle[name], flooded[name]
        print(
            f"  {label:17} idle p50 {i['p50']:7.1f} ms | flood p50 {f['p50']:7.1f} ms"
            f" p95 {f['p95']:7.1f} ms max {f['max']:7.1f} ms (n={f['n']})"
            f" | p50 x{f['p50'] / i['p50']:.1f}"
        )
    print(
        f"  worker RSS: idle {idle['rss_max_mib']:.0f} MiB, flood max"
        f" {flooded['rss_max_mib']:.0f} MiB"
    )
    print(f"  flood answers: {flooded['statuses']}")
    print(
        f"  budget: /health/live p95 {live_p95:.1f} ms < {LIVE_BUDGET_MS:.0f} ms:"
        f" {'yes' if live_p95 < LIVE_BUDGET_MS else 'NO'};"
        f" /auth/me p50 x{me_ratio:.1f} < x{ME_BUDGET_RATIO:.0f}:"
        f" {'yes' if me_ratio < ME_BUDGET_RATIO else 'NO'}"
    )
    if args.json:
        args.json.write_text(json.dumps({"combo": combo.id, "idle": idle, "flood": flooded}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
