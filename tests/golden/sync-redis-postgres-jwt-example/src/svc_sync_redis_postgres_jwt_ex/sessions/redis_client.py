"""Redis clients: what a `REDIS_URL` names, and a client for it.

On its own (it imports nothing of this project), so that `config.py` can
check the URL at start-up with the same parser that builds the client.
"""

from dataclasses import dataclass
from typing import Any, Literal, TypeGuard
from urllib.parse import unquote, urlsplit

from redis import Redis
from redis.client import Pipeline
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.sentinel import Sentinel

# A client of one server (a Sentinel-managed master's client is one too), or of a Cluster.
RedisClient = Redis | RedisCluster
AnyPipeline = Pipeline | ClusterPipeline

SCHEMES = (
    *(f"{tls}{kind}" for tls in ("redis", "rediss") for kind in ("", "+sentinel", "+cluster")),
    "unix",
)
# Connections and pools: fail fast when a server is down, reconnect by themselves after.
CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    "health_check_interval": 30,
}


@dataclass(frozen=True)
class RedisTarget:
    """What a `REDIS_URL` names (the URL forms of redis-py and the `limits` library):

    redis://[[user]:password@]host:port/db               one server (rediss://: TLS;
                                                         unix:///path: its socket)
    redis+sentinel://[[user]:password@]host:port,.../service[/db]
                                                         the master that these Sentinels
                                                         know as `service`
    redis+cluster://[[user]:password@]host:port,...      a Cluster; these nodes are
                                                         where discovery starts
    Credentials are those of the Redis servers (the Sentinels are asked without any).
    """

    kind: Literal["server", "sentinel", "cluster"]
    url: str
    nodes: list[tuple[str, int]]
    service: str
    db: int
    username: str | None
    password: str | None
    ssl: bool


def _node(text: str, default_port: int) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or host.endswith(":"):  # no port (or an IPv6 address without brackets)
        host, port = text, str(default_port)
    if not host or not port.isdigit():
        msg = f"REDIS_URL: {text!r} is not host:port"
        raise ValueError(msg)
    return host.strip("[]"), int(port)


def parse_redis_url(url: str) -> RedisTarget:
    """The deployment that `url` names; ValueError, saying why, if it names none."""
    scheme, separator, _ = url.partition("://")
    if not separator or scheme not in SCHEMES:
        msg = f"REDIS_URL must start with one of {', '.join(s + '://' for s in SCHEMES)}"
        raise ValueError(msg)
    parts = urlsplit(url)
    if scheme == "unix":  # one server's socket: unix:///path/to/redis.sock?db=0
        return RedisTarget("server", url, [], "", 0, None, None, ssl=False)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    kind: Literal["server", "sentinel", "cluster"] = "server"
    if scheme.endswith("+sentinel"):
        kind = "sentinel"
    elif scheme.endswith("+cluster"):
        kind = "cluster"
    default_port = 26379 if kind == "sentinel" else 6379
    nodes = [_node(host, default_port) for host in hosts.split(",") if host]
    path = [segment for segment in parts.path.split("/") if segment]
    service = path.pop(0) if kind == "sentinel" and path else ""
    if not nodes or (kind == "sentinel" and not service):
        msg = "REDIS_URL names no Sentinel service (redis+sentinel://host:26379/service/0)"
        if not nodes:
            msg = f"REDIS_URL names no host: {scheme}://host:port"
        raise ValueError(msg)
    if kind == "server" and len(nodes) > 1:
        msg = "REDIS_URL names several hosts: use redis+sentinel:// or redis+cluster://"
        raise ValueError(msg)
    db = path[0] if path else "0"
    if len(path) > 1 or not db.isdigit() or (kind == "cluster" and db != "0"):
        msg = "REDIS_URL: a Cluster has database 0 only" if kind == "cluster" else ""
        raise ValueError(msg or f"REDIS_URL: {parts.path!r} is not a database number")
    return RedisTarget(
        kind=kind,
        url=url,
        nodes=nodes,
        service=service,
        db=int(db),
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=scheme.startswith("rediss"),
    )


def create_redis(url: str) -> RedisClient:
    """A client for the deployment that `url` names (see `RedisTarget`), with
    connection pools that reconnect by themselves after an outage. A Sentinel
    client asks the Sentinels for the master again when its master fails over."""
    target = parse_redis_url(url)
    if target.kind == "server":
        return Redis.from_url(url, **CLIENT_OPTIONS)
    credentials: dict[str, Any] = {
        "username": target.username,
        "password": target.password,
        "ssl": target.ssl,
    }
    if target.kind == "sentinel":
        # Some redis-py releases leave these unannotated, others do not.
        sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            target.nodes, socket_connect_timeout=2, socket_timeout=2
        )
        master: Redis = sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]
            target.service, db=target.db, **credentials, **CLIENT_OPTIONS
        )
        return master
    nodes = [
        ClusterNode(host, port)  # type: ignore[no-untyped-call, unused-ignore]
        for host, port in target.nodes
    ]
    return RedisCluster(
        startup_nodes=nodes,
        **credentials,
        **CLIENT_OPTIONS,
    )


def is_cluster(client: RedisClient) -> TypeGuard[RedisCluster]:
    """Is `client` a Redis Cluster's? Then whether requests can use it is the
    cluster's state, which one node's PING does not tell."""
    return isinstance(client, RedisCluster)
