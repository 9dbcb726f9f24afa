"""Property-based API testing of generated services with Schemathesis.

For a few combinations: render the project, migrate a database of its own, serve it with
uvicorn on a free loopback port, and let Schemathesis generate requests from the service's
OpenAPI document. Two checks: no response is a server error (5xx), and every status code
is one the document lists for its operation. Runs are bounded (examples per operation) and
derandomised (a fixed seed, deterministic generation), so a failure reproduces.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.combos import Combo
from tests.support.envs import (
    EnvError,
    ensure_env,
    project_dependencies,
    project_env,
    require_servers,
)
from tests.support.matrix import COMBOS
from tests.support.rendering import render

IDS = ["async-sqlite-none-example", "sync-sqlite-jwt-example", "async-postgres-none-example"]
MAX_EXAMPLES = 30
SEED = 20261201
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-c"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer 200 within {timeout} s")


@pytest.mark.slow
@pytest.mark.parametrize("combo", [c for c in COMBOS if c.id in IDS], ids=lambda c: c.id)
def test_schemathesis_finds_no_server_error(
    template_src: Path,
    tmp_path: Path,
    combo: Combo,
) -> None:
    project = tmp_path / "project"
    render(template_src, project, combo.answers())
    try:
        _, env_dir = ensure_env(project_dependencies(project))
    except EnvError as exc:
        pytest.fail(f"could not build the environment: {exc}")
    require_servers(combo)
    env = project_env(combo, env_dir)
    env.update(ENVIRONMENT="test", COOKIE_SECURE="false", SECRET_KEY=secrets.token_urlsafe(32))
    env["PYTHONPATH"] = str(project / "src")  # the environment holds its dependencies only
    database = None
    if combo.database == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'app.db'}"
    elif combo.database == "postgres":
        database = f"schemathesis_{secrets.token_hex(4)}"
        subprocess.run([*PSQL, f"CREATE DATABASE {database}"], check=True)
        env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{database}"
    python = str(env_dir / "bin" / "python")
    port = free_port()
    server = None
    try:
        subprocess.run(
            [python, "-m", "alembic", "upgrade", "head"],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
        )
        package = next(p.name for p in (project / "src").iterdir() if p.is_dir())
        server = subprocess.Popen(
            [
                *(python, "-m", "uvicorn", f"{package}.main:app"),
                *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
            ],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        wait_healthy(f"{base}/health", server)
        run = subprocess.run(
            [
                shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "not_a_server_error,status_code_conformance",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                str(SEED),
                "--generation-deterministic",
                "--continue-on-failure",
                "--workers",
                "1",
                "--no-color",
            ],
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            cwd=tmp_path,  # its example cache (.schemathesis/) stays out of the checkout
            capture_output=True,
            text=True,
            timeout=900,
        )
        report = run.stdout[-12000:]
        assert run.returncode == 0, f"{combo.id}: schemathesis found failures:\n{report}"
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        if database is not None:
            subprocess.run([*PSQL, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], check=False)
