"""A keep-alive HTTP/1.1 load generator: asyncio protocols, one request in flight per connection.

Run as a separate process (``python -m bench.loadgen SPEC.json``; it prints a JSON result) so
the server and the load share no interpreter. Each connection replays its own *scenario*, a list
of raw requests sent one after the other forever (e.g. ``POST /cart/items`` then
``POST /orders``), so every connection can carry its own session cookie. Requests are prepared
bytes and responses are parsed just enough to find their end (``Content-Length``), which keeps
the generator's own cost per request far below the server's. uvloop is used when installed.

Only the standard library is required, so the tests can run it anywhere.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

HEADER_END = b"\r\n\r\n"


@dataclass
class Step:
    """One request of a scenario: raw bytes, and whether its latency is reported."""

    raw: bytes
    record: bool = True


@dataclass
class Result:
    requests: int = 0  # responses received, every step
    sequences: int = 0  # scenarios completed
    recorded: int = 0  # responses of recorded steps
    errors: int = 0  # connection failures and malformed responses
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ns: array = field(default_factory=lambda: array("q"))
    elapsed: float = 0.0

    @property
    def failed(self) -> int:
        """Requests that did not get a 2xx, plus transport errors."""
        bad = sum(count for status, count in self.statuses.items() if not 200 <= status < 300)
        return bad + self.errors

    def percentile_us(self, fraction: float) -> float | None:
        if not self.latencies_ns:
            return None
        ordered = sorted(self.latencies_ns)
        index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
        return ordered[index] / 1000

    def summary(self) -> dict[str, Any]:
        elapsed = self.elapsed or float("nan")
        return {
            "requests": self.requests,
            "sequences": self.sequences,
            "recorded": self.recorded,
            "errors": self.errors,
            "failed": self.failed,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "elapsed": self.elapsed,
            "requests_per_s": self.requests / elapsed,
            "sequences_per_s": self.sequences / elapsed,
            "recorded_per_s": self.recorded / elapsed,
            "p50_us": self.percentile_us(0.50),
            "p99_us": self.percentile_us(0.99),
            "max_us": max(self.latencies_ns) / 1000 if self.latencies_ns else None,
        }


class _Client(asyncio.Protocol):
    def __init__(self, steps: list[Step], result: Result, deadline: float, done: asyncio.Future):
        self.steps = steps
        self.result = result
        self.deadline = deadline
        self.done = done
        self.index = 0
        self.buffer = bytearray()
        self.need: int | None = None  # bytes of the current response, once its head is in
        self.status = 0
        self.sent_at = 0
        self.transport: asyncio.Transport | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        self._send()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.need is None:
                end = self.buffer.find(HEADER_END)
                if end < 0:
                    return
                head = bytes(self.buffer[:end]).lower()
                try:
                    self.status = int(head[9:12])
                    at = head.index(b"content-length:") + 15
                    stop = head.find(b"\r\n", at)
                    length = int(head[at : stop if stop >= 0 else len(head)])
                except ValueError:
                    self._fail()
                    return
                self.need = end + 4 + length
            if len(self.buffer) < self.need:
                return
            del self.buffer[: self.need]
            self.need = None
            self._completed()
            if self.transport is None or self.transport.is_closing():
                return
            if self.buffer:  # nothing is pipelined, so nothing may follow a response
                self._fail()
                return

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is not None or self.need is not None or self.sent_at:
                self.result.errors += 1
            self.done.set_result(None)

    # -- the loop
    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.steps[self.index].raw)

    def _completed(self) -> None:
        now = time.perf_counter_ns()
        result = self.result
        step = self.steps[self.index]
        result.requests += 1
        result.statuses[self.status] += 1
        if step.record:
            result.recorded += 1
            result.latencies_ns.append(now - self.sent_at)
        self.index += 1
        if self.index == len(self.steps):
            self.index = 0
            result.sequences += 1
        self.sent_at = 0
        if now >= self.deadline:
            self._finish()
        else:
            self._send()

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def _fail(self) -> None:
        self.result.errors += 1
        self.sent_at = 0
        self._finish()


async def run_load(
    host: str,
    port: int,
    scenarios: list[list[Step]],
    *,
    duration: float,
    connections: int,
) -> Result:
    """`connections` keep-alive connections, connection i replaying scenarios[i % len]."""
    loop = asyncio.get_running_loop()
    result = Result()
    start = time.perf_counter_ns()
    deadline = start + int(duration * 1e9)
    waits = []
    for i in range(connections):
        done: asyncio.Future = loop.create_future()
        steps = scenarios[i % len(scenarios)]
        try:
            await loop.create_connection(
                lambda steps=steps, done=done: _Client(steps, result, deadline, done), host, port
            )
        except OSError:
            result.errors += 1
            continue
        waits.append(done)
    if waits:
        await asyncio.wait(waits, timeout=duration + 30)
    result.elapsed = (time.perf_counter_ns() - start) / 1e9
    return result


def build_request(
    method: str,
    path: str,
    *,
    host: str = "127.0.0.1",
    headers: dict[str, str] | None = None,
    body: bytes | str | dict | list | None = None,
) -> bytes:
    """Raw HTTP/1.1 request bytes (a dict or list body is sent as JSON)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    extra = dict(headers or {})
    if isinstance(body, dict | list):
        body = json.dumps(body, separators=(",", ":"))
        extra.setdefault("Content-Type", "application/json")
    payload = body.encode() if isinstance(body, str) else (body or b"")
    if payload or method not in {"GET", "HEAD", "DELETE"}:
        extra["Content-Length"] = str(len(payload))
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def spec_scenarios(spec: dict[str, Any]) -> list[list[Step]]:
    return [
        [Step(step["raw"].encode("latin-1"), bool(step.get("record", True))) for step in scenario]
        for scenario in spec["scenarios"]
    ]


def main(argv: list[str]) -> int:
    """`python -m bench.loadgen SPEC.json`: print the result as JSON on standard output.

    SPEC: {"host", "port", "connections", "duration", "warmup" (seconds, unrecorded),
    "scenarios": [[{"raw": "<request as latin-1 text>", "record": true}, ...], ...]}.
    """
    with open(argv[0], encoding="utf-8") as f:
        spec = json.load(f)
    try:
        import uvloop  # type: ignore[import-not-found]

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    scenarios = spec_scenarios(spec)
    args = (spec.get("host", "127.0.0.1"), int(spec["port"]), scenarios)
    connections = int(spec.get("connections", 50))
    if spec.get("warmup"):
        runner(run_load(*args, duration=float(spec["warmup"]), connections=connections))
    if spec.get("handshake"):
        # Warm: let the caller read its counters, then measure when it says so.
        print("ready", flush=True)
        sys.stdin.readline()
    result = runner(run_load(*args, duration=float(spec["duration"]), connections=connections))
    json.dump(result.summary(), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
