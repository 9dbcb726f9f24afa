"""What is measured: the apps (generated projects and references), their routes, their clients.

A *subject* is one app served by one uvicorn worker; each of its routes is loaded by
``connections`` clients, each with its own credentials (a logged-in session, a bearer token or
an anonymous session cookie) made by the subject's set-up before the first round.

Generated projects are rendered from the working tree and installed in the matrix tests'
cached environments (``tests/support/envs.py``); the reference apps
(``bench/refapps.py``) share one environment of ``REF_DEPS``, installed from PyPI the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench.client import http_call
from bench.loadgen import build_request
from bench.processes import REPO, Database, PrivateRedis, Server, log
from tests.support.combos import Combo
from tests.support.envs import DROPPED_ENV, ensure_env, project_dependencies
from tests.support.rendering import render

REF_DEPS = [
    "fastapi>=0.121,<1",
    "uvicorn[standard]>=0.30",
    "starsessions>=2.2",
    "redis[hiredis]>=5.2",
    "itsdangerous>=2",
    "fastapi-users[sqlalchemy]>=15,<16",
    "sqlalchemy[asyncio]>=2.0",
    "asyncpg>=0.29",
]
PASSWORD = "correct horse battery"

# The reference apps, by name (the `subject` of their rows).
BARE = "bare"
STARLETTE = "starlette-cookie"
STARSESSIONS = "starsessions-redis"
FASTAPI_USERS_JWT = "fastapi-users-jwt"
FASTAPI_USERS_DB = "fastapi-users-db"
FASTAPI_USERS = (FASTAPI_USERS_JWT, FASTAPI_USERS_DB)

# json: bare FastAPI; nosession: a route that never touches the session (GET /docs);
# db: database, no session; read: a session read; me: the current user; write: a session
# read + write; order: an order (after a cart add on the same connection).
Kind = Literal["json", "nosession", "db", "read", "me", "write", "order"]


@dataclass
class Client:
    """One load connection's credentials."""

    headers: dict[str, str] = field(default_factory=dict)
    product_id: int | None = None


@dataclass
class Request:
    """One request of a scenario as the load generator takes it (latin-1 text)."""

    raw: str
    record: bool = True


def request(
    method: str, path: str, client: Client, body: object = None, *, record: bool = True
) -> Request:
    data = build_request(method, path, headers=client.headers, body=body)  # type: ignore[arg-type]
    return Request(data.decode("latin-1"), record)


@dataclass
class Route:
    name: str  # e.g. "GET /cart"
    kind: Kind
    scenario: Callable[[Client], list[Request]]


@dataclass
class Subject:
    name: str
    python: Path
    app: str
    cwd: Path
    env: dict[str, str]
    ready_path: str
    setup: Callable[[int, int], list[Client]]  # (port, connections) -> clients
    routes: list[Route]
    combo: Combo | None = None  # None: a reference app
    database: Database | None = None
    pool_check: bool = False


# --------------------------------------------------------------------------- generated projects


def project_routes(combo: Combo) -> list[Route]:
    def item(c: Client) -> dict[str, object]:
        return {"product_id": c.product_id, "quantity": 1}

    routes = [Route("GET /docs", "nosession", lambda c: [request("GET", "/docs", Client())])]
    if combo.auth == "none":
        routes.append(
            Route(
                "GET /products/{id}",
                "db",
                lambda c: [request("GET", f"/products/{c.product_id}", Client())],
            )
        )
    routes.append(Route("GET /cart", "read", lambda c: [request("GET", "/cart", c)]))
    if combo.auth != "none":
        routes.append(Route("GET /auth/me", "me", lambda c: [request("GET", "/auth/me", c)]))
    routes.append(
        Route("POST /cart/items", "write", lambda c: [request("POST", "/cart/items", c, item(c))])
    )
    routes.append(
        Route(
            "POST /orders (+cart add)",
            "order",
            lambda c: [
                request("POST", "/cart/items", c, item(c), record=False),
                request("POST", "/orders", c, {}),
            ],
        )
    )
    return routes


def project_setup(combo: Combo) -> Callable[[int, int], list[Client]]:
    def setup(port: int, connections: int) -> list[Client]:
        clients: list[Client] = []
        email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
        if combo.auth != "none":
            status, _, _ = http_call(
                port, "POST", "/auth/register", body={"email": email, "password": PASSWORD}
            )
            assert status == 201, f"register: {status}"
        for _ in range(connections):
            client = Client()
            if combo.auth == "session":
                status, cookies, data = http_call(
                    port, "POST", "/auth/login", body={"email": email, "password": PASSWORD}
                )
                assert status == 200, f"login: {status}"
                client.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
                client.headers["X-CSRF-Token"] = data["csrf_token"]
            elif combo.auth == "jwt":
                status, _, data = http_call(
                    port, "POST", "/auth/token", form={"username": email, "password": PASSWORD}
                )
                assert status == 200, f"token: {status}"
                client.headers["Authorization"] = f"Bearer {data['access_token']}"
            else:
                status, cookies, _ = http_call(port, "GET", "/cart")
                assert status == 200 and cookies, f"anonymous session: {status}"
                client.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
            clients.append(client)
        status, _, product = http_call(
            port,
            "POST",
            "/products",
            headers=clients[0].headers,
            body={"name": "bench", "price_cents": 100, "stock": 2_000_000_000},
        )
        assert status == 201, f"product: {status}"
        for client in clients:
            client.product_id = int(product["id"])
        return clients

    return setup


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}


def project_subject(
    combo: Combo, template_src: Path, root: Path, redis: PrivateRedis | None
) -> Subject:
    project = root / combo.id
    log(f"render {combo.id}")
    render(template_src, project, combo.answers())
    _key, env_dir = ensure_env(project_dependencies(project))
    answers = (project / ".copier-answers.yml").read_text()
    package = next(
        line.split(":", 1)[1].strip()
        for line in answers.splitlines()
        if line.startswith("package_name:")
    )
    env = base_env()
    env.update(
        {
            "PATH": f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}",
            "VIRTUAL_ENV": str(env_dir),
            "PYTHONPATH": f"{project / 'src'}{os.pathsep}{REPO}",
            "ENVIRONMENT": "prod",
            "SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
            # Production needs an SMTP server: none listens here, so the mails of the
            # set-up's registrations fail and wait, backing off, in the outbox.
            "SMTP_URL": "smtp://127.0.0.1:2",
            "COOKIE_SECURE": "false",
            # The docs are off in production by default; GET /docs is the bench's route
            # that ignores the session.
            "API_DOCS": "true",
        }
    )
    if combo.auth == "jwt":
        # Interleaved rounds reuse the tokens of the set-up for the whole run.
        env["ACCESS_TOKEN_LIFETIME"] = "86400"
    database = None
    if combo.sql:
        database = Database.create(combo.database, project, combo.id.replace("-", "_")[:20])
        env["DATABASE_URL"] = database.url
        subprocess.run(
            [str(env_dir / "bin" / "python"), "-m", "alembic", "upgrade", "head"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
        )
    if combo.separate_database:
        assert redis is not None
        env["REDIS_URL"] = redis.url
        env["REDIS_PREFIX"] = f"sfbench:{combo.id}:{uuid.uuid4().hex[:6]}:"
    return Subject(
        name=combo.id,
        python=env_dir / "bin" / "python",
        app=f"{package}.main:app",
        cwd=project,
        env=env,
        ready_path="/health",
        setup=project_setup(combo),
        routes=project_routes(combo),
        combo=combo,
        database=database,
        pool_check=True,
    )


# --------------------------------------------------------------------------- references


def cookie_setup(needs_session: bool) -> Callable[[int, int], list[Client]]:
    def setup(port: int, connections: int) -> list[Client]:
        clients = []
        for _ in range(connections):
            client = Client()
            if needs_session:
                status, cookies, _ = http_call(port, "POST", "/cart/items")
                assert status == 200 and cookies, f"reference session: {status}"
                client.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
            clients.append(client)
        return clients

    return setup


def fastapi_users_setup(port: int, connections: int) -> list[Client]:
    """One registered user, logged in once per connection (a token of its own each)."""
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    status, _, _ = http_call(
        port, "POST", "/auth/register", body={"email": email, "password": PASSWORD}
    )
    assert status == 201, f"fastapi-users register: {status}"
    clients = []
    for _ in range(connections):
        status, _, data = http_call(
            port, "POST", "/auth/login", form={"username": email, "password": PASSWORD}
        )
        assert status == 200, f"fastapi-users login: {status}"
        clients.append(Client({"Authorization": f"Bearer {data['access_token']}"}))
    return clients


REF_SESSION_ROUTES = [
    Route("GET /cart", "read", lambda c: [request("GET", "/cart", c)]),
    Route("POST /cart/items", "write", lambda c: [request("POST", "/cart/items", c)]),
]
USERS_ME = [Route("GET /users/me", "me", lambda c: [request("GET", "/users/me", c)])]


def ref_subjects(redis: PrivateRedis | None, root: Path) -> list[Subject]:
    _, env_dir = ensure_env(sorted(REF_DEPS))
    python = env_dir / "bin" / "python"
    env = {**base_env(), "PYTHONPATH": str(REPO)}
    subjects = [
        Subject(
            BARE,
            python,
            "bench.refapps:bare",
            REPO,
            env,
            "/json",
            cookie_setup(False),
            [
                Route("GET /json", "json", lambda c: [request("GET", "/json", c)]),
                Route("GET /docs", "nosession", lambda c: [request("GET", "/docs", c)]),
            ],
        ),
        Subject(
            STARLETTE,
            python,
            "bench.refapps:starlette",
            REPO,
            env,
            "/cart",
            cookie_setup(True),
            REF_SESSION_ROUTES,
        ),
    ]
    if redis is not None:
        subjects.append(
            Subject(
                STARSESSIONS,
                python,
                "bench.refapps:starsessions",
                REPO,
                {**env, "REDIS_URL": redis.url},
                "/cart",
                cookie_setup(True),
                REF_SESSION_ROUTES,
                pool_check=True,
            )
        )
    for name, app in ((FASTAPI_USERS_JWT, "jwt"), (FASTAPI_USERS_DB, "db")):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        database = Database.create("postgres", folder, name.replace("-", "_"))
        subjects.append(
            Subject(
                name,
                python,
                f"bench.refapps:fastapi_users_{app}",
                REPO,
                {**env, "DATABASE_URL": database.url, "SECRET_KEY": uuid.uuid4().hex * 2},
                "/health",
                fastapi_users_setup,
                USERS_ME,
                database=database,
                pool_check=True,
            )
        )
    return subjects


@contextlib.contextmanager
def served_project(
    combo: Combo, template: Path, prefix: str, env: Mapping[str, str] = {}
) -> Iterator[tuple[Server, Subject]]:
    """One generated project of `template/` (a folder holding copier.yml and template/),
    rendered and served with one worker (`bench/serve.py`) with `env` added to its settings,
    ready on `/health/live`; the server, its database, its private Redis and the files are
    gone afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    redis = PrivateRedis() if combo.separate_database else None
    server = subject = None
    try:
        template_src = root / "template-src"
        template_src.mkdir()
        shutil.copy2(template / "copier.yml", template_src / "copier.yml")
        shutil.copytree(template / "template", template_src / "template")
        subject = project_subject(combo, template_src, root, redis)
        server = Server(
            subject.python, subject.app, subject.cwd, {**subject.env, **env}, root / "server.log"
        )
        server.wait_ready("/health/live")
        yield server, subject
    finally:
        if server is not None:
            server.stop()
        if subject is not None and subject.database is not None:
            subject.database.drop()
        if redis is not None:
            redis.stop()
        shutil.rmtree(root, ignore_errors=True)
