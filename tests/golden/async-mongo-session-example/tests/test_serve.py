"""The production server, `__main__.py`, as a process of its own: its limits
on slow and oversized requests, whom it trusts for forwarded headers, and
what it logs."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import ROOT, TEST_KEY

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Served:
    """One process of the production server; its output goes to a file."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"serve-{self.port}.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "svc_async_mongo_session_ex"],
                env=env | {"HOST": "127.0.0.1", "PORT": str(self.port)},
                cwd=folder,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def wait_until_live(self) -> None:
        # Generous: on a loaded machine a fresh interpreter can take a while to start.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health/live").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.url} did not come up:\n{self.output()}")

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


Serve = Callable[..., Served]


@pytest.fixture
def serve(
    database_url: str,
    tmp_path: Path,
) -> Iterator[Serve]:
    """Start the server with these settings (on top of a test database)."""
    started: list[Served] = []
    base = os.environ | {
        "PYTHONPATH": str(ROOT / "src"),
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "SECRET_KEY": TEST_KEY,
    }
    for name in (
        "FORWARDED_ALLOW_IPS",
        "LOG_LEVEL",
        "REQUEST_BODY_TIMEOUT",
        "REQUEST_HEADER_TIMEOUT",
        "WEB_CONCURRENCY",
    ):
        base.pop(name, None)

    def start(**settings: str) -> Served:
        served = Served(tmp_path, base | settings)
        started.append(served)
        served.wait_until_live()
        return served

    try:
        yield start
    finally:
        for served in started:
            served.stop()


def test_a_forwarded_allow_ips_of_star_stops_start_up_with_one_line(
    database_url: str, tmp_path: Path
) -> None:
    """`*` would let anyone forge their address: refused, like any bad setting."""
    env = os.environ | {
        "PYTHONPATH": str(ROOT / "src"),
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "FORWARDED_ALLOW_IPS": "*",
        "PORT": str(free_port()),
    }
    started = subprocess.run(
        [sys.executable, "-m", "svc_async_mongo_session_ex"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 3
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "FORWARDED_ALLOW_IPS" in lines[0]


def status_line(sock: socket.socket) -> bytes:
    return sock.recv(65536).split(b"\r\n", 1)[0]


def test_request_headers_over_16_kib_get_431(serve: Serve) -> None:
    served = serve()
    request = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    with served.connect() as sock:
        sock.sendall(request + b"a" * 17 * 1024 + b"\r\n\r\n")
        assert status_line(sock).startswith(b"HTTP/1.1 431")
    # Headers under the cap are served.
    headers = {"X-Big": "a" * 8 * 1024}
    assert httpx.get(f"{served.url}/health/live", headers=headers).status_code == 200


def test_a_client_slow_to_send_its_headers_is_disconnected(serve: Serve) -> None:
    """REQUEST_HEADER_TIMEOUT=1: a client trickling header lines (each well
    within any per-read timeout) is cut off, however steadily it sends."""
    served = serve(REQUEST_HEADER_TIMEOUT="1")
    with served.connect() as sock:
        sock.settimeout(0.25)
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = False
        for line in range(40):  # about 10 s of trickling, ten times the deadline
            try:
                sock.sendall(f"X-Slow-{line}: x\r\n".encode())
                closed = sock.recv(4096) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
            if closed:
                break
        assert closed, "the server still waits for the headers of a slow client"
    # Everyone else is served meanwhile.
    assert httpx.get(f"{served.url}/health/live").status_code == 200


def test_a_client_slow_to_send_its_body_gets_408(serve: Serve) -> None:
    """REQUEST_BODY_TIMEOUT=1: a body trickled a byte at a time (each byte
    well within any per-read timeout) is cut off with 408."""
    served = serve(REQUEST_BODY_TIMEOUT="1")
    body = b'{"email": "slow@example.com", "password": "a long enough password"}'
    head = (
        b"POST /auth/register HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    started = time.monotonic()
    with served.connect() as sock:
        sock.settimeout(0.25)
        sock.sendall(head)
        answer = b""
        for byte in body:  # about 17 s of trickling at most
            try:
                sock.sendall(bytes([byte]))
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            if answer:
                break
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert time.monotonic() - started < 10


def test_forwarded_headers_are_not_trusted_by_default(serve: Serve) -> None:
    """Without FORWARDED_ALLOW_IPS a client cannot pass itself off as another
    (nor as HTTPS): the redirect to `/health` keeps the peer's scheme."""
    served = serve()
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    response = httpx.get(f"{served.url}/health/", headers=forged)
    assert response.status_code == 307
    assert response.headers["location"] == f"{served.url}/health"


def test_forwarded_headers_are_trusted_from_forwarded_allow_ips(serve: Serve) -> None:
    served = serve(FORWARDED_ALLOW_IPS="127.0.0.1")
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    response = httpx.get(f"{served.url}/health/", headers=forwarded)
    assert response.status_code == 307
    assert response.headers["location"] == f"https://127.0.0.1:{served.port}/health"


def test_the_per_client_login_limit_counts_forwarded_addresses_from_trusted_proxies_only(
    serve: Serve,
) -> None:
    """A forged `X-Forwarded-For` does not buy a client fresh login attempts;
    from a trusted proxy, each forwarded client has its own."""
    limits = {"LOGIN_ATTEMPTS_PER_CLIENT": "1"}
    for trusted, second_status in ((False, 429), (True, 401)):
        served = serve(**limits, **({"FORWARDED_ALLOW_IPS": "127.0.0.1"} if trusted else {}))
        statuses = []
        for n, address in enumerate(("203.0.113.7", "203.0.113.8")):
            forwarded = {"X-Forwarded-For": address}
            body = {"email": f"nobody{n}@example.com", "password": "wrong password"}
            response = httpx.post(f"{served.url}/auth/login", json=body, headers=forwarded)
            statuses.append(response.status_code)
        assert statuses == [401, second_status], f"trusted={trusted}"


def test_responses_name_no_server(serve: Serve) -> None:
    served = serve()
    response = httpx.get(f"{served.url}/health/live")
    assert response.status_code == 200
    assert not response.headers.get("server")


def test_log_level_warning_leaves_out_the_servers_info_lines(serve: Serve) -> None:
    """Two workers: the supervising process, which does not import the app,
    logs at LOG_LEVEL too."""
    served = serve(LOG_LEVEL="WARNING", WEB_CONCURRENCY="2")
    assert httpx.get(f"{served.url}/health/live").status_code == 200
    served.stop()
    output = served.output()
    assert "INFO" not in output, output
