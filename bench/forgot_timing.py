"""Does `POST /auth/password/forgot` tell known addresses from unknown ones by its time?

    python -m bench.forgot_timing                       # async-postgres-session-example
    python -m bench.forgot_timing --combo sync-sqlite-jwt-noexample --requests 100

Renders one generated project from the working tree, serves it with one uvicorn worker
(`bench/serve.py`, as `bench.hash_flood` does), registers one account, then posts
`--requests` password reset requests for its address and as many for an address without an
account, alternating, on one keep-alive connection, with the reset limits out of reach. It
prints the median and p90 of each and their difference. The SMTP server is unreachable
(`bench.subjects`): the mails wait in the outbox, which is the sender's business, not the
request's. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time

from bench.processes import REPO, log
from bench.subjects import PASSWORD, served_project
from tests.support.combos import all_combos, load_config

KNOWN = "known@example.com"
UNKNOWN = "nobody@example.com"


def post(conn: http.client.HTTPConnection, path: str, body: dict[str, str]) -> tuple[int, float]:
    """(status, milliseconds) of one JSON POST."""
    payload = json.dumps(body).encode()
    started = time.perf_counter()
    conn.request("POST", path, payload, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status, (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--combo", default="async-postgres-session-example")
    parser.add_argument("--requests", type=int, default=50, help="per address")
    args = parser.parse_args(argv)
    combo = {c.id: c for c in all_combos(load_config(REPO / "copier.yml"))}[args.combo]
    if combo.auth == "none":
        parser.error("the combination has no accounts")
    timings: dict[str, list[float]] = {KNOWN: [], UNKNOWN: []}
    limits_off = {"PASSWORD_RESETS_PER_ADDRESS": "1000000", "PASSWORD_RESETS_PER_CLIENT": "1000000"}
    with served_project(combo, REPO, "forgot-timing-", limits_off) as (server, _subject):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        status, _ = post(conn, "/auth/register", {"email": KNOWN, "password": PASSWORD})
        assert status == 201, status
        # Warm-up, untimed.
        for email in (KNOWN, UNKNOWN) * 5:
            post(conn, "/auth/password/forgot", {"email": email})
        log(f"{args.requests} requests per address, alternating")
        for _ in range(args.requests):
            for email in (KNOWN, UNKNOWN):
                status, ms = post(conn, "/auth/password/forgot", {"email": email})
                assert status == 202, status
                timings[email].append(ms)
    medians = {email: statistics.median(values) for email, values in timings.items()}
    print(f"{combo.id}: POST /auth/password/forgot, {args.requests} requests per address")
    for email, values in timings.items():
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"  {email:20} median {medians[email]:6.2f} ms  p90 {p90:6.2f} ms")
    print(f"  difference of the medians: {medians[KNOWN] - medians[UNKNOWN]:+.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
