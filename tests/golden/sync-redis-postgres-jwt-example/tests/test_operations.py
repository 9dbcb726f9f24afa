"""Operations: request ids, CORS, and the service as uvicorn runs it (start-up
errors, JSON logs, graceful shutdown, several workers)."""

import concurrent.futures
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from httpx import AsyncClient
from pydantic import ValidationError

from svc_sync_redis_postgres_jwt_ex.config import Settings

from .conftest import ROOT, TEST_KEY, AppFactory, ClientFactory

ORIGIN = "https://app.example.com"
PASSWORD = "correct horse battery"


@pytest.mark.anyio
async def test_every_response_carries_a_request_id(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    client = await make_client(await make_app(max_body_size=16))
    first = await client.get("/health/live")
    assert first.json() == {"status": "ok"}
    request_id = first.headers["X-Request-ID"]
    assert uuid.UUID(request_id).hex == request_id
    assert (await client.get("/health/live")).headers["X-Request-ID"] != request_id
    # A proxy's id is kept, so one id follows the request through every service.
    given = uuid.uuid4().hex
    missing = await client.get("/no/such/route", headers={"X-Request-ID": given})
    assert missing.status_code == 404
    assert missing.headers["X-Request-ID"] == given
    # Refusals before any route too; an id that is not a UUID is replaced.
    refused = await client.post("/health/live", content=b"x" * 17, headers={"X-Request-ID": "a b"})
    assert refused.status_code == 413
    assert uuid.UUID(refused.headers["X-Request-ID"])


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization",
    }


@pytest.mark.anyio
async def test_cors_is_off_by_default(client: AsyncClient) -> None:
    answer = await client.options("/health", headers=preflight(ORIGIN))
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-origin" not in (await client.get("/health")).headers


@pytest.mark.anyio
async def test_cors_admits_allowed_origins_only(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    client = await make_client(await make_app(allowed_origins=[ORIGIN]))
    answer = await client.options("/health", headers=preflight(ORIGIN))
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    simple = await client.get("/health", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()

    other = await client.options("/health", headers=preflight("https://evil.example"))
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    read = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in read.headers


def test_allowed_origins_must_be_origins(settings: Settings) -> None:
    base = settings.model_dump()
    for bad in ("*", "app.example.com", "https://app.example.com/app", "ftp://files.example"):
        with pytest.raises(ValidationError, match="ALLOWED_ORIGINS"):
            Settings.model_validate(base | {"allowed_origins": bad})
    good = Settings.model_validate(
        base | {"allowed_origins": "https://App.example.com/, http://127.0.0.1:5173"}
    )
    assert good.allowed_origins == ["https://app.example.com", "http://127.0.0.1:5173"]


# --------------------------------------------------------------- the service as uvicorn runs it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def uvicorn_command(port: int, *options: str) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", "svc_sync_redis_postgres_jwt_ex.main:app"]
    return [*command, "--host", "127.0.0.1", "--port", str(port), *options]


@pytest.fixture
def service_env(
    database_url: str,
    redis_prefix: str,
) -> dict[str, str]:
    """The environment of a uvicorn process on this test's database and Redis prefix."""
    return os.environ | {
        "PYTHONPATH": str(ROOT / "src"),
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "REDIS_PREFIX": redis_prefix,
        "SECRET_KEY": TEST_KEY,
    }


class Service:
    """uvicorn serving this app in processes of its own; its output goes to a file."""

    def __init__(self, env: dict[str, str], folder: Path, *options: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = folder / f"uvicorn-{port}.log"
        with self.log.open("wb") as output:
            # Started in `folder`, so no `.env` of the project is read.
            self.process = subprocess.Popen(
                uvicorn_command(port, *options),
                env=env,
                cwd=folder,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        # Generous: on a loaded machine fresh interpreters can take a while to start.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.url} did not become healthy:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def records(self) -> list[dict[str, object]]:
        """The JSON log lines (uvicorn's supervisor of several workers writes text)."""
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]

    def stop(self) -> int:
        """SIGTERM, as a container runtime sends it; the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=60)


@pytest.fixture
def start_service(service_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(*options: str) -> Service:
        started.append(Service(service_env, tmp_path, *options))
        return started[-1]

    yield start
    for service in started:
        service.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("settings", "variable"),
    [
        ({"ENVIRONMENT": "prod", "SECRET_KEY": ""}, "SECRET_KEY"),
        # 24 characters: shorter than the 32 bytes required.
        ({"ENVIRONMENT": "prod", "SECRET_KEY": secrets.token_hex(12)}, "SECRET_KEY"),
        # 32 bytes of one character: a placeholder, not a key.
        ({"ENVIRONMENT": "prod", "SECRET_KEY": "a" * 32}, "SECRET_KEY"),
        ({"SESSION_IDLE_TIMEOUT": "soon"}, "SESSION_IDLE_TIMEOUT"),
        # Production mails: nowhere to send them.
        (
            {"ENVIRONMENT": "prod", "SECRET_KEY": secrets.token_urlsafe(32), "SMTP_URL": ""},
            "SMTP_URL",
        ),
        ({"SMTP_URL": "http://mail.example.com"}, "SMTP_URL"),
    ],
    ids=[
        "missing-key",
        "short-key",
        "placeholder-key",
        "not-a-number",
        "no-smtp-in-production",
        "not-an-smtp-url",
    ],
)
def test_a_bad_setting_stops_start_up_with_one_line(
    service_env: dict[str, str], tmp_path: Path, settings: dict[str, str], variable: str
) -> None:
    result = subprocess.run(
        uvicorn_command(free_port()),
        env=service_env | settings,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith(f"Invalid settings: {variable}:"), output
    assert "Fix: set it in the environment or in .env" in lines[0]
    secret = settings.get("SECRET_KEY", "")
    # Not even part of a secret.
    assert not any(secret[i : i + 6] in output for i in range(len(secret) - 5)), output


@pytest.mark.slow
def test_several_workers_stop_on_a_bad_setting(service_env: dict[str, str], tmp_path: Path) -> None:
    """uvicorn's supervisor gives up on workers that fail to start (rather than
    restarting them for ever; it then exits 0), and each said why in one line."""
    result = subprocess.run(
        uvicorn_command(free_port(), "--workers", "2"),
        env=service_env | {"ENVIRONMENT": "prod", "SECRET_KEY": ""},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "failed to start, stopping the parent process" in output
    assert "Invalid settings: SECRET_KEY: required when ENVIRONMENT is prod" in output
    assert "Traceback" not in output


@pytest.mark.slow
def test_logs_are_json_lines_with_request_ids_and_no_secrets(
    start_service: Callable[..., Service],
) -> None:
    service = start_service()
    responses: list[httpx.Response] = []
    secret_values: list[str] = []
    with httpx.Client(base_url=service.url) as client:
        credentials = {"email": "ada@example.com", "password": PASSWORD}
        responses.append(client.post("/auth/register", json=credentials))
        form = {"username": credentials["email"], "password": PASSWORD}
        login = client.post("/auth/token", data=form)
        assert login.status_code == 200
        responses.append(login)
        tokens = login.json()
        secret_values += [PASSWORD, tokens["access_token"], tokens["refresh_token"]]
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        responses.append(client.get("/auth/me", headers=bearer))
        assert responses[-1].status_code == 200
        # Errors: a wrong password, a tampered token, a used refresh token.
        responses.append(client.post("/auth/token", data=form | {"password": "not the password"}))
        assert responses[-1].status_code == 401
        secret_values.append("not the password")
        tampered = {"Authorization": f"Bearer {tokens['access_token']}x"}
        responses.append(client.get("/auth/me", headers=tampered))
        assert responses[-1].status_code == 401
        refresh = {"refresh_token": tokens["refresh_token"]}
        responses.append(client.post("/auth/refresh", json=refresh))
        assert responses[-1].status_code == 200
        renewed = responses[-1].json()
        secret_values += [renewed["access_token"], renewed["refresh_token"]]
        responses.append(client.post("/auth/refresh", json=refresh))
        assert responses[-1].status_code == 401
    # SIGTERM: requests in flight finish, the lifespan closes its clients, then
    # uvicorn ends by the same signal (as an unhandled SIGTERM would).
    assert service.stop() in {0, -signal.SIGTERM}
    output = service.output()
    lines = output.splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert records, output
    assert all({"time", "level", "logger", "request_id", "message"} <= set(r) for r in records)
    request_ids = {response.headers["X-Request-ID"] for response in responses}
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert all(r["request_id"] for r in access)
    assert request_ids <= {r["request_id"] for r in access}
    assert "Application shutdown complete." in [r["message"] for r in records]
    for secret in secret_values:
        assert secret not in output


@pytest.mark.slow
def test_sessions_work_across_several_workers(start_service: Callable[..., Service]) -> None:
    """`uvicorn --workers 2`: requests land on either process, and the session
    made on one is valid on the other."""
    service = start_service("--workers", "2")
    with httpx.Client(base_url=service.url) as client:
        credentials = {"email": "ada@example.com", "password": PASSWORD}
        assert client.post("/auth/register", json=credentials).status_code == 201
        form = {"username": credentials["email"], "password": PASSWORD}
        tokens = client.post("/auth/token", data=form).json()
        cookies: dict[str, str] = {}
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        path = "/auth/me"
        expected = client.get(path, headers=headers).json()
    assert expected == expected | {"email": "ada@example.com"}

    def use_session() -> tuple[object, str]:
        # A connection of its own each time, so that any worker may accept it.
        with httpx.Client(base_url=service.url, cookies=cookies, headers=headers) as fresh:
            response = fresh.get(path)
            return response.json(), response.headers["X-Request-ID"]

    served_by: set[object] = set()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for _ in range(20):
            results = list(pool.map(lambda _: use_session(), range(16)))
            assert all(body == expected for body, _ in results)
            ids = {request_id for _, request_id in results}
            served_by |= {r["process"] for r in service.records() if r.get("request_id") in ids}
            if len(served_by) > 1:
                break
    assert len(served_by) == 2, f"every request landed on one worker: {served_by}"
