"""The service on a Redis Cluster, and on a Sentinel-managed master through a failover.

Both for real: redis-server processes of these tests' own on free ports of
127.0.0.1, started once per test session and removed at its end. The
failover kills the master in the middle of a stream of requests.
"""

import logging
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from svc_async_redis_mongo_none_noex.sessions.deps import CurrentSession

from .conftest import AppFactory, ClientFactory

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
        reason="needs redis-server and redis-cli",
    ),
]

# Seconds.
START_TIMEOUT = 30
# Sentinel retries a failover that went wrong after twice its failover-timeout (10 s
# here): room for a few tries on a loaded machine.
RECOVERY_TIMEOUT = 60
SERVICE = "mymaster"


def free_port(*, bus: bool = False) -> int:
    """A free port of 127.0.0.1; with `bus`, its cluster bus port (+10000) is free too."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if not bus:
            return port
        if port + 10000 < 65536:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def command(client: Redis, *args: Any) -> Any:
    """A command, its reply parsed as redis-py's own method would ("CLUSTER INFO":
    a dict); redis-py leaves `execute_command` unannotated."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except RedisConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def replicated(master: Redis, timeout_ms: int) -> bool:
    """Whether a replica has acknowledged every write the master took so far.

    WAIT counts the replicas that acknowledged the writes of its own
    connection: on one that wrote nothing it answers at once, whatever the
    replica holds. So a marker is written first, and WAIT sent on the same
    connection (one pipeline); the replication stream is in order, so once
    the marker is acknowledged, so is every write before it, the app's too.
    """
    with master.pipeline(transaction=False) as pipeline:
        pipeline.set("test:replication-marker", time.monotonic())
        pipeline.wait(1, timeout_ms)
        acknowledged = pipeline.execute()[-1]
    return int(acknowledged) >= 1


class Servers:
    """redis-server processes in a temporary directory; `close` removes them all."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="redis-ha-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.clients: list[Redis] = []

    def spawn(self, *args: str) -> None:
        process = subprocess.Popen(
            ["redis-server", *args],
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)

    def server(self, port: int, *options: str) -> Redis:
        """A redis-server on `port` that persists nothing; returns a client of it."""
        self.spawn(
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.dir)),
            *("--save", "", "--appendonly", "no"),
            *options,
        )
        return self.client(port)

    def client(self, port: int) -> Redis:
        client = Redis("127.0.0.1", port, decode_responses=True, socket_timeout=5)
        self.clients.append(client)
        wait_for(f"redis-server on port {port}", lambda: bool(client.ping()))
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for process in self.processes:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    """Three masters sharing the 16384 slots."""

    def __init__(self, servers: Servers) -> None:
        ports = [free_port(bus=True) for _ in range(3)]
        cluster_options = ("--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
        for port in ports:
            servers.server(port, *cluster_options, "--cluster-config-file", f"nodes-{port}.conf")
        subprocess.run(
            [
                *("redis-cli", "--cluster", "create"),
                *(f"127.0.0.1:{port}" for port in ports),
                *("--cluster-replicas", "0", "--cluster-yes"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=START_TIMEOUT,
        )
        self.nodes = [servers.client(port) for port in ports]
        for node in self.nodes:
            wait_for("cluster_state:ok", partial(self.ready, node))
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)

    def ready(self, node: Redis) -> bool:
        info: dict[str, Any] = command(node, "CLUSTER INFO")
        return info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == 3

    def slots_holding(self, prefix: str) -> int:
        """How many hash slots hold keys under `prefix` (a command over keys of
        different slots fails with CROSSSLOT)."""
        return len(
            {
                command(node, "CLUSTER KEYSLOT", key)
                for node in self.nodes
                for key in node.scan_iter(f"{prefix}*")
            }
        )


class SentinelSet:
    """A master, its replica, and three Sentinels watching them."""

    def __init__(self, servers: Servers) -> None:
        master_port, replica_port = free_port(), free_port()
        self.master = servers.server(master_port)
        self.master_process = servers.processes[-1]
        replica = servers.server(replica_port, "--replicaof", "127.0.0.1", str(master_port))
        wait_for("replication", lambda: replica.info("replication")["master_link_status"] == "up")
        self.sentinels: list[Redis] = []
        ports = [free_port() for _ in range(3)]
        for port in ports:
            conf = servers.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\n"
                "bind 127.0.0.1\n"
                f"dir {servers.dir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
            )
            servers.spawn(str(conf), "--sentinel")
            self.sentinels.append(servers.client(port))
        for sentinel in self.sentinels:
            wait_for("the Sentinels to know each other", partial(self.ready, sentinel))
        self.url = "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in ports) + f"/{SERVICE}/0"

    def ready(self, sentinel: Redis) -> bool:
        replicas: list[dict[str, Any]] = command(sentinel, "SENTINEL SLAVES", SERVICE)
        others: list[dict[str, Any]] = command(sentinel, "SENTINEL SENTINELS", SERVICE)
        # Two Sentinels must agree that the master is down, and elect one to fail over.
        known = len(others) == len(self.sentinels) - 1
        return known and any(replica["master-link-status"] == "ok" for replica in replicas)

    def master_port(self) -> int:
        address: tuple[str, int] = command(
            self.sentinels[0], "SENTINEL GET-MASTER-ADDR-BY-NAME", SERVICE
        )
        return int(address[1])

    def state(self) -> str:
        """What each Sentinel thinks of the master and the replica, for a failure message."""
        views = []
        for sentinel in self.sentinels:
            master: dict[str, Any] = command(sentinel, "SENTINEL MASTER", SERVICE)
            replicas: list[dict[str, Any]] = command(sentinel, "SENTINEL SLAVES", SERVICE)
            seen = [f"{r['port']} {r['flags']}" for r in replicas]
            views.append(f"master {master['port']} {master['flags']}; replicas {seen}")
        return "\n".join(views)

    def kill_master(self) -> None:
        """The master dies: the Sentinels notice, agree, and promote the replica."""
        self.master_process.kill()
        self.master_process.wait(timeout=10)


def caught_up(master: Redis) -> bool:
    info: dict[str, Any] = master.info("replication")
    return bool(info["slave0"]["offset"] == info["master_repl_offset"])


def test_the_replication_check_sees_a_replica_that_lags() -> None:
    """`replicated`, which the failover test relies on, is false while the
    replica is stopped and has not taken writes made on other connections."""
    servers = Servers()
    try:
        master_port = free_port()
        master = servers.server(master_port)
        replica = servers.server(free_port(), "--replicaof", "127.0.0.1", str(master_port))
        replica_process = servers.processes[-1]
        wait_for("replication", lambda: replica.info("replication")["master_link_status"] == "up")
        # Another connection, as the app's are.
        app = servers.client(master_port)
        app.set("session", "before")
        assert replicated(master, 5000)
        # The replica has acknowledged all the master sent (as INFO shows), so a
        # WAIT that counted stale acknowledgements would answer 1 from now on.
        wait_for("the replica to acknowledge everything", partial(caught_up, master))
        replica_process.send_signal(signal.SIGSTOP)
        try:
            app.set("session", "while stopped")
            assert not replicated(master, 200)
        finally:
            replica_process.send_signal(signal.SIGCONT)
        assert replicated(master, 5000)
        assert replica.get("session") == "while stopped"
    finally:
        servers.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Cluster]:
    servers = Servers()
    try:
        yield Cluster(servers)
    finally:
        servers.close()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[SentinelSet]:
    servers = Servers()
    try:
        yield SentinelSet(servers)
    finally:
        servers.close()


def add_test_routes(app: FastAPI) -> None:
    """Routes that write and read the session's data."""

    @app.post("/test/session")
    async def write(values: dict[str, Any], session: CurrentSession) -> dict[str, Any]:
        session.update(values)
        return dict(session)

    @app.get("/test/session")
    async def read(session: CurrentSession) -> dict[str, Any]:
        return dict(session)


async def test_sessions_on_a_cluster(
    make_app: AppFactory,
    make_client: ClientFactory,
    redis_cluster: Cluster,
    redis_prefix: str,
) -> None:
    app = await make_app(redis_url=redis_cluster.url)
    add_test_routes(app)
    client = await make_client(app)
    health = await client.get("/health")
    assert health.json() == {"status": "ok", "database": "ok", "sessions": "ok"}

    # Anonymous sessions, each in a slot of its own.
    browsers = [client, *[await make_client(app) for _ in range(3)]]
    for number, browser in enumerate(browsers):
        assert (await browser.post("/test/session", json={"n": number})).status_code == 200
    for number, browser in enumerate(browsers):
        assert (await browser.get("/test/session")).json() == {"n": number}
    assert redis_cluster.slots_holding(redis_prefix) > 1


async def test_a_cluster_out_of_reach_is_503(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    app = await make_app(redis_url=f"redis+cluster://127.0.0.1:{free_port()}")
    add_test_routes(app)
    client = await make_client(app, raise_app_exceptions=False)
    health = await client.get("/health")
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "database": "ok", "sessions": "unavailable"}
    response = await client.post("/test/session", json={"colour": "blue"})
    assert response.status_code == 503
    assert response.json() == {"detail": "Session store unavailable"}


async def test_a_sentinel_without_a_master_is_503_with_one_log_line(
    make_app: AppFactory, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A Sentinel that knows no master for the service: the service starts,
    its requests get 503, and the first logs one line naming the Sentinel."""
    servers = Servers()
    try:
        port = free_port()
        conf = servers.dir / "sentinel-without-a-master.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\n")
        servers.spawn(str(conf), "--sentinel")
        servers.client(port)
        app = await make_app(redis_url=f"redis+sentinel://127.0.0.1:{port}/{SERVICE}/0")
        add_test_routes(app)
        client = await make_client(app, raise_app_exceptions=False)
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["sessions"] == "unavailable"
        for attempt in range(2):
            caplog.clear()
            response = await client.post("/test/session", json={"colour": "blue"})
            assert response.status_code == 503
            assert response.json() == {"detail": "Session store unavailable"}
            lines = [record for record in caplog.records if record.levelno >= logging.WARNING]
            if attempt == 0:
                [line] = lines
                assert line.exc_info is None
                assert f"127.0.0.1:{port}" in line.getMessage()
                assert SERVICE in line.getMessage()
            else:
                assert lines == [], "the same outage is logged once"
    finally:
        servers.close()


async def test_health_sees_a_cluster_that_lost_a_master(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    """`/health` asks the cluster for its state: with a master down, every
    request on its slots fails, so the instance must leave the rotation, even
    though the other nodes still answer a PING."""
    servers = Servers()
    try:
        cluster = Cluster(servers)
        app = await make_app(redis_url=cluster.url)
        client = await make_client(app, raise_app_exceptions=False)
        assert (await client.get("/health")).status_code == 200
        servers.processes[0].kill()
        servers.processes[0].wait(timeout=10)
        wait_for(
            "the cluster to mark the master failed",
            lambda: command(cluster.nodes[1], "CLUSTER INFO")["cluster_state"] == "fail",
        )
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["sessions"] == "unavailable"
    finally:
        servers.close()


async def test_a_sentinel_failover_keeps_sessions_and_gives_no_500(
    make_app: AppFactory, make_client: ClientFactory, redis_sentinel: SentinelSet
) -> None:
    app = await make_app(redis_url=redis_sentinel.url)
    add_test_routes(app)
    browsers = [await make_client(app, raise_app_exceptions=False) for _ in range(3)]
    for number, browser in enumerate(browsers):
        assert (await browser.post("/test/session", json={"n": number})).status_code == 200
    # Replicated before the failover: Redis replication is asynchronous.
    assert replicated(redis_sentinel.master, 5000), "the replica lags behind the master"
    old_master = redis_sentinel.master_port()

    stream = browsers[0]

    async def request(number: int) -> int:
        """Reads and writes of the session, in turn."""
        if number % 2:
            return (await stream.post("/test/session", json={"n": number})).status_code
        return (await stream.get("/test/session")).status_code

    answers: list[tuple[float, int]] = []
    started = time.monotonic()
    failed_over = 0.0
    for number in range(100_000):
        now = time.monotonic()
        if not failed_over and now - started > 0.5:
            redis_sentinel.kill_master()
            failed_over = time.monotonic()
        answers.append((time.monotonic(), await request(number)))
        if failed_over and now - failed_over > RECOVERY_TIMEOUT:
            break
        recent = [status for _, status in answers[-20:]]
        settled = failed_over and now - failed_over > 2 and recent == [200] * 20
        if settled and redis_sentinel.master_port() != old_master:
            break

    statuses = [status for _, status in answers]
    assert set(statuses) <= {200, 503}, f"answers other than 200 and 503: {statuses}"
    promoted = redis_sentinel.master_port() != old_master
    assert promoted, f"no replica promoted in {RECOVERY_TIMEOUT} s:\n{redis_sentinel.state()}"
    failures = [at for at, status in answers if status != 200]
    recovery = max(failures) - failed_over if failures else 0.0
    after = [status for at, status in answers if failures and at > max(failures)]
    assert after[-20:] == [200] * 20 if failures else statuses[-20:] == [200] * 20
    assert recovery < RECOVERY_TIMEOUT
    print(
        f"Sentinel failover: recovered in {recovery:.2f} s; "
        f"{len(failures)} answers 503 of {len(answers)}, 0 after recovery"
    )

    # Every session made before the failover is still there.
    for number, browser in enumerate(browsers[1:], 1):
        assert (await browser.get("/test/session")).json() == {"n": number}
