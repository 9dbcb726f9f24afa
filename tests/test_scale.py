"""Many hosts, one store: a generated Redis service as three hosts on loopback addresses.

One combination (async, Redis sessions, PostgreSQL data, cookie login, the shop) is
rendered, migrated, and started as three uvicorn processes bound to 127.0.0.11, .12 and
.13 (one port), in front of the local Redis and PostgreSQL. A user logs in through one
host and is served by the others; then several users shop on all three at once while
one host is killed (SIGKILL). Requests to the survivors must all succeed, and no session
(or cart line) may be lost. Requests that meet the dead host fail to connect and are
retried on the next host, as a load balancer would.

Nothing is sent anywhere but the loopback interface.
"""

from __future__ import annotations

import http.client
import json
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.combos import Combo
from tests.support.envs import ensure_env, project_dependencies, project_env, require_servers
from tests.support.rendering import render

COMBO = Combo(mode="async", backend="redis", database="postgres", auth="session", example_api=True)
HOSTS = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
USERS = 6
LOAD_SECONDS = 4.0
KILL_AFTER = 1.5
START_TIMEOUT = 120


def free_port_on_all(hosts: tuple[str, ...]) -> int:
    """A port that is free on every one of `hosts`."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port: int = probe.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on all hosts")


@dataclass
class Answer:
    status: int
    body: Any
    cookie: str | None


def call(
    host: str,
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One HTTP request (stdlib only: this suite's environment has no httpx)."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json"} | (headers or {})
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        raw = response.read()
        cookie = None
        for value in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            if name == "session":
                cookie = rest.split(";", 1)[0]
        return Answer(response.status, json.loads(raw) if raw else None, cookie)
    finally:
        connection.close()


@dataclass
class User:
    email: str
    cookie: str = ""
    csrf: str = ""
    adds_ok: int = 0
    adds_unknown: int = 0  # an add sent to the host as it died: applied or not
    log: list[tuple[str, str, int | str]] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": f"session={self.cookie}", "X-CSRF-Token": self.csrf}


class Fleet:
    """Three hosts of the service, one port."""

    def __init__(self, project: Path, env: dict[str, str], python: str, logs: Path) -> None:
        self.port = free_port_on_all(HOSTS)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        package = next(path.name for path in (project / "src").iterdir() if path.is_dir())
        for host in HOSTS:
            log = (logs / f"uvicorn-{host}.log").open("wb")
            self.processes[host] = subprocess.Popen(
                [
                    *(python, "-m", "uvicorn", f"{package}.main:app"),
                    *("--host", host, "--port", str(self.port)),
                ],
                cwd=project,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        for host in HOSTS:
            self.wait_healthy(host)
        self.dead: set[str] = set()

    def wait_healthy(self, host: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.processes[host].poll() is not None:
                raise RuntimeError(f"uvicorn on {host} exited")
            try:
                if call(host, self.port, "GET", "/health").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"uvicorn on {host} did not become healthy")

    def kill(self, host: str) -> None:
        self.processes[host].send_signal(signal.SIGKILL)
        self.processes[host].wait(timeout=10)
        self.dead.add(host)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def fleet(template_src: Path, tmp_path: Path) -> Iterator[Fleet]:
    project = tmp_path / "project"
    render(template_src, project, COMBO.answers())
    _, env_dir = ensure_env(project_dependencies(project))
    require_servers(COMBO)
    database = f"scale_{secrets.token_hex(4)}"
    prefix = f"test:scale:{secrets.token_hex(6)}:"
    env = project_env(COMBO, env_dir) | {
        "PYTHONPATH": str(project / "src"),
        "ENVIRONMENT": "test",
        "DATABASE_URL": f"{POSTGRES}/{database}",
        "REDIS_PREFIX": prefix,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "COOKIE_SECURE": "false",
    }
    python = str(env_dir / "bin" / "python")
    psql = ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"]
    subprocess.run([*psql, f"CREATE DATABASE {database}"], check=True, timeout=60)
    started: Fleet | None = None
    try:
        subprocess.run(
            [python, "-m", "alembic", "upgrade", "head"],
            cwd=project,
            env=env,
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
        )
        started = Fleet(project, env, python, tmp_path)
        yield started
    finally:
        if started is not None:
            started.stop()
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {database}"], check=False, timeout=60)
        keys = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "--scan", "--pattern", f"{prefix}*"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.split()
        if keys:
            subprocess.run(["redis-cli", "-h", "127.0.0.1", "DEL", *keys], check=False, timeout=60)


def log_in(fleet: Fleet, user: User, host: str) -> None:
    password = {"email": user.email, "password": "correct horse"}
    assert call(host, fleet.port, "POST", "/auth/register", password).status == 201
    answer = call(host, fleet.port, "POST", "/auth/login", password)
    assert answer.status == 200, answer.body
    assert answer.cookie
    user.cookie, user.csrf = answer.cookie, answer.body["csrf_token"]


@pytest.mark.slow
def test_three_hosts_share_sessions_and_survive_one_killed(fleet: Fleet) -> None:
    port = fleet.port
    ada = User("ada@example.com")
    log_in(fleet, ada, HOSTS[0])
    me = [call(host, port, "GET", "/auth/me", headers=ada.headers) for host in HOSTS]
    assert [answer.status for answer in me] == [200, 200, 200]
    assert len({answer.body["id"] for answer in me}) == 1

    product = call(
        HOSTS[1],
        port,
        "POST",
        "/products",
        {"name": "Tea", "price_cents": 250, "stock": 100_000},
        ada.headers,
    )
    assert product.status == 201, product.body
    item = {"product_id": product.body["id"], "quantity": 1}
    assert call(HOSTS[1], port, "POST", "/cart/items", item, ada.headers).status == 200
    cart = call(HOSTS[2], port, "GET", "/cart", headers=ada.headers)
    assert cart.body == {"items": [item]}, "the cart added on one host is seen on another"

    users = [User(f"shopper{number}@example.com") for number in range(USERS)]
    for number, user in enumerate(users):
        log_in(fleet, user, HOSTS[number % len(HOSTS)])

    victim = HOSTS[2]
    stop = threading.Event()

    def shop(user: User, first: int) -> None:
        """Round-robin over the hosts; a request that cannot reach its host
        goes to the next one."""
        turn = first
        step = 0
        while not stop.is_set():
            step += 1
            method, path, body = (
                ("POST", "/cart/items", item) if step % 2 else ("GET", "/auth/me", None)
            )
            for attempt in range(len(HOSTS)):
                host = HOSTS[(turn + attempt) % len(HOSTS)]
                try:
                    answer = call(host, port, method, path, body, user.headers)
                except OSError as exc:
                    # Only the killed host may fail to answer.
                    user.log.append((host, path, type(exc).__name__))
                    if (
                        method == "POST"
                        and host == victim
                        and not isinstance(exc, ConnectionRefusedError)
                    ):
                        user.adds_unknown += 1
                    continue
                user.log.append((host, path, answer.status))
                if method == "POST" and answer.status == 200:
                    user.adds_ok += 1
                break
            turn += 1

    threads = [
        threading.Thread(target=shop, args=(user, number)) for number, user in enumerate(users)
    ]
    for thread in threads:
        thread.start()
    time.sleep(KILL_AFTER)
    fleet.kill(victim)
    killed_at = time.monotonic()
    time.sleep(LOAD_SECONDS - KILL_AFTER)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    entries = [entry for user in users for entry in user.log]
    to_survivors = [status for host, _, status in entries if host != victim]
    to_victim = [status for host, _, status in entries if host == victim]
    assert to_survivors.count(200) == len(to_survivors), (
        f"requests to the surviving hosts that failed: "
        f"{[status for status in to_survivors if status != 200]}"
    )
    assert to_victim.count(200) > 0, "the victim served requests before it was killed"
    assert len(to_survivors) > 50, "enough load"
    failed_to_connect = sum(1 for status in to_victim if not isinstance(status, int))
    assert failed_to_connect > 0, "requests met the dead host (and were retried)"
    print(
        f"three hosts: {len(to_survivors)} requests to survivors, all 200; "
        f"{len(to_victim)} to the killed host ({failed_to_connect} failed to connect, retried); "
        f"killed {time.monotonic() - killed_at:.1f} s before the end"
    )

    # No session lost, no cart line lost: every user is still logged in on
    # both survivors, with every add that was answered 200.
    for user in [ada, *users]:
        for host in HOSTS[:2]:
            answer = call(host, port, "GET", "/auth/me", headers=user.headers)
            assert answer.status == 200, (user.email, host, answer.status)
    for user in users:
        cart = call(HOSTS[0], port, "GET", "/cart", headers=user.headers).body["items"]
        quantity = cart[0]["quantity"] if cart else 0
        assert user.adds_ok <= quantity <= user.adds_ok + user.adds_unknown, (user, cart)
