"""Which ASGI server for `python -m <package>`? Throughput and limits of the candidates, one run.

    python -m bench.servers [--python ENV/bin/python] [--duration 5] [--connections 16]

The servers run in an environment with fastapi, uvicorn[standard], granian and hypercorn
(`SERVER_DEPS`): built from PyPI on the first run and cached under .cache/envs like the
other benchmark environments, unless `--python` names one. Each
candidate serves the same small FastAPI app (`GET /health/live`, one worker, on 127.0.0.1,
pinned to CPU 0 while the load runs on CPU 1 when there are two) with the limits it can be
given: 16 KiB of request headers, a 5 s deadline for them, a 5 s keep-alive. Then, per
candidate, this prints:

- requests/s of a keep-alive GET loop (bench/loadgen.py), and the ratio to the first;
- the answer to a request with 32 KiB of headers (the status line, or "closed");
- how long a client trickling one header line a second is kept (capped at TRICKLE_CAP s);
- how long an idle keep-alive connection is kept after a response (capped);
- whether a new client is served while 480 idle connections each hold a half-sent request,
  and in how long;
- the seconds after which those 480 half-sent connections are closed (capped).

All traffic goes to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.loadgen import build_request
from bench.processes import LOAD_CPU, SERVER_CPU, free_port, log, pinned

REPO = Path(__file__).resolve().parent.parent
HEADER_LIMIT = 16 * 1024
DEADLINE = 5  # seconds for a request's headers (where the server has such a deadline)
KEEP_ALIVE = 5
TRICKLE_CAP = 20.0
HALF_OPEN = 480
HALF_OPEN_CAP = 15.0
HALF_SENT = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
# The environment the candidates run in (see the module docstring).
SERVER_DEPS = ["fastapi", "uvicorn[standard]", "granian", "hypercorn"]
CANDIDATES = ["uvicorn-httptools-defaults", "uvicorn-h11", "hypercorn", "granian"]


# ------------------------------------------------------------------ the served app and servers
def make_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(name: str, port: int) -> None:
    """Run candidate `name` in this process (the server side of the benchmark)."""
    target = "bench.servers:app"
    if name == "uvicorn-httptools-defaults":  # what the image ran before: uvicorn's defaults
        import uvicorn

        uvicorn.run(target, host="127.0.0.1", port=port, log_level="warning")
    elif name == "uvicorn-h11":
        import uvicorn

        uvicorn.run(
            target,
            host="127.0.0.1",
            port=port,
            http="h11",
            h11_max_incomplete_event_size=HEADER_LIMIT,
            timeout_keep_alive=KEEP_ALIVE,
            server_header=False,
            log_level="warning",
        )
    elif name == "hypercorn":
        import asyncio

        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.h11_max_incomplete_size = HEADER_LIMIT
        config.read_timeout = DEADLINE
        config.keep_alive_timeout = KEEP_ALIVE
        config.include_server_header = False
        config.loglevel = "WARNING"
        asyncio.run(hypercorn_serve(make_app(), config))
    elif name == "granian":
        from granian.constants import HTTPModes, Interfaces
        from granian.http import HTTP1Settings
        from granian.log import LogLevels
        from granian.server import Server

        Server(
            target,
            address="127.0.0.1",
            port=port,
            interface=Interfaces.ASGI,
            http=HTTPModes.http1,
            websockets=False,
            http1_settings=HTTP1Settings(
                header_read_timeout=DEADLINE * 1000, max_buffer_size=HEADER_LIMIT
            ),
            log_level=LogLevels.warning,
        ).serve()
    else:
        raise SystemExit(f"unknown server {name}")


app: Any  # `bench.servers:app`: built on first use, by the server process only


def __getattr__(name: str) -> Any:
    if name == "app":
        global app
        app = make_app()
        return app
    raise AttributeError(name)


# ------------------------------------------------------------------ probes (plain sockets)
def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def get_live(port: int, timeout: float = 10) -> tuple[int | None, float]:
    """Status of one fresh GET /health/live, and seconds it took (None: no answer)."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(build_request("GET", "/health/live", headers={"Connection": "close"}))
            data = sock.recv(65536)
    except OSError:
        return None, time.monotonic() - started
    status = int(data[9:12]) if data.startswith(b"HTTP/1.") else None
    return status, time.monotonic() - started


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}")
        if get_live(port, 2)[0] == 200:
            return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def big_header(port: int) -> str:
    """The answer to a request with 32 KiB of headers: its status line, or how it ended."""
    request = build_request("GET", "/health/live", headers={"X-Big": "a" * 32768})
    with connect(port) as sock:
        try:
            sock.sendall(request)
        except OSError as exc:
            return f"send failed ({type(exc).__name__})"
        try:
            data = sock.recv(65536)
        except OSError as exc:
            return f"reset ({type(exc).__name__})"
    if not data:
        return "closed"
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def trickle(port: int) -> float:
    """Seconds a client sending one header line a second is kept (capped at TRICKLE_CAP)."""
    started = time.monotonic()
    with connect(port) as sock:
        sock.settimeout(1.0)
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        n = 0
        while time.monotonic() - started < TRICKLE_CAP:
            try:
                if sock.recv(4096) == b"":
                    return time.monotonic() - started
                return time.monotonic() - started  # an answer (an error status) ends it too
            except TimeoutError:
                pass
            except OSError:
                return time.monotonic() - started
            try:
                sock.sendall(f"X-Slow-{n}: x\r\n".encode())
            except OSError:
                return time.monotonic() - started
            n += 1
    return TRICKLE_CAP


def idle_keep_alive(port: int) -> float:
    """Seconds an idle keep-alive connection is kept after a response (capped)."""
    with connect(port) as sock:
        sock.sendall(build_request("GET", "/health/live"))
        received = b""
        while not received.endswith(b'{"status":"ok"}'):  # the whole response
            chunk = sock.recv(65536)
            if not chunk:
                return 0.0
            received += chunk
        started = time.monotonic()
        sock.settimeout(HALF_OPEN_CAP)
        try:
            sock.recv(4096)
        except TimeoutError:
            return HALF_OPEN_CAP
        except OSError:
            pass
        return time.monotonic() - started


def half_open(port: int) -> dict[str, Any]:
    """HALF_OPEN connections each holding a half-sent request; then one new client."""
    socks: list[socket.socket] = []
    try:
        for _ in range(HALF_OPEN):
            try:
                sock = connect(port)
                sock.sendall(HALF_SENT)
                socks.append(sock)
            except OSError:
                break
        opened = len(socks)
        status, took = get_live(port, timeout=10)
        # How long until the server closes the half-sent ones (counted from now).
        started = time.monotonic()
        for sock in socks:
            sock.setblocking(False)
        open_ = set(range(len(socks)))
        while open_ and time.monotonic() - started < HALF_OPEN_CAP:
            for i in list(open_):
                try:
                    if socks[i].recv(4096) == b"":
                        open_.discard(i)
                except BlockingIOError:
                    pass
                except OSError:
                    open_.discard(i)
            time.sleep(0.2)
        return {
            "opened": opened,
            "new_client_status": status,
            "new_client_s": round(took, 3),
            "half_open_closed_after_s": (
                round(time.monotonic() - started, 1) if not open_ else f">{HALF_OPEN_CAP}"
            ),
            "half_open_still_open": len(open_),
        }
    finally:
        for sock in socks:
            sock.close()


def throughput(python: str, port: int, duration: float, connections: int) -> float:
    spec = {
        "port": port,
        "connections": connections,
        "duration": duration,
        "warmup": 1,
        "scenarios": [[{"raw": build_request("GET", "/health/live").decode("latin-1")}]],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        out = subprocess.run(
            [python, "-m", "bench.loadgen", f.name],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=duration + 60,
            preexec_fn=pinned(LOAD_CPU),
        ).stdout
    finally:
        os.unlink(f.name)
    result = json.loads(out.strip().splitlines()[-1])
    if result["failed"]:
        log(f"  load: {result['failed']} failed ({result['statuses']})")
    return float(result["requests_per_s"])


def measure(name: str, python: str, duration: float, connections: int) -> dict[str, Any]:
    port = free_port()
    process = subprocess.Popen(
        [python, "-m", "bench.servers", "--serve", name, "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=pinned(SERVER_CPU),
    )
    try:
        wait_ready(port, process)
        log(f"{name}: throughput")
        rps = throughput(python, port, duration, connections)
        log(f"{name}: limits")
        figures = {"requests_per_s": round(rps), "32KiB_headers": big_header(port)}
        figures["trickle_kept_s"] = round(trickle(port), 1)
        figures["idle_keep_alive_kept_s"] = round(idle_keep_alive(port), 1)
        figures |= half_open(port)
        return figures
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", help="the servers' environment (default: built, cached)")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", action="append", choices=CANDIDATES)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.python is None and not args.serve:
        # Here, not at the top: `--serve` runs this module in the servers' environment,
        # which has none of the test helpers' dependencies.
        from tests.support.envs import ensure_env

        args.python = str(ensure_env(SERVER_DEPS)[1] / "bin" / "python")
    if args.serve:
        serve(args.serve, args.port)
        return
    results = {
        name: measure(name, args.python, args.duration, args.connections)
        for name in args.only or CANDIDATES
    }
    first = next(iter(results.values()))["requests_per_s"]
    print(
        f"limits asked: headers {HEADER_LIMIT} B, header deadline {DEADLINE} s, "
        f"keep-alive {KEEP_ALIVE} s; load: {args.connections} connections, {args.duration} s"
    )
    for name, figures in results.items():
        figures["ratio_to_first"] = round(figures["requests_per_s"] / first, 2)
        print(f"{name}: " + json.dumps(figures))


if __name__ == "__main__":
    main()
