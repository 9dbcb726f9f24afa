"""Validators of a generated project's shipped files.

Per combination: the Dockerfile under hadolint, compose.yaml against the Compose
specification (and `docker-compose config`, when installed), the CI workflow against
GitHub's workflow schema, the pre-commit config by pre-commit itself, and what each
of them must say for exactly these options.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.combos import SQL_DATABASES, Combo
from tests.support.envs import _tool_env

# Top-level modules a generated project imports -> the distribution that provides them.
# A module missing here fails the check: add it (and declare it in the template).
MODULE_DISTRIBUTIONS = {
    "aiosmtpd": "aiosmtpd",
    "aiosmtplib": "aiosmtplib",
    "aiosqlite": "aiosqlite",
    "alembic": "alembic",
    "anyio": "anyio",
    "asgi_correlation_id": "asgi-correlation-id",
    "asyncmy": "asyncmy",
    "asyncpg": "asyncpg",
    "bson": "pymongo",
    "confusable_homoglyphs": "confusable-homoglyphs",
    "cryptography": "cryptography",
    "fastapi": "fastapi",
    "httpx": "httpx",
    "jwt": "pyjwt",
    "mongomock": "mongomock",
    "psycopg": "psycopg",
    "pwdlib": "pwdlib",
    "pydantic": "pydantic",
    "pyotp": "pyotp",
    "pydantic_settings": "pydantic-settings",
    "pymongo": "pymongo",
    "pymysql": "pymysql",
    "pytest": "pytest",
    "pythonjsonlogger": "python-json-logger",
    "redis": "redis",
    "secure": "secure",
    "sqlalchemy": "sqlalchemy",
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "zxcvbn": "zxcvbn",
    "granian": "granian",
}
SHIP_TIMEOUT = 120


def _tool(name: str) -> str:
    """A validator from the test extra: beside this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def _validate(cmd: list[str], cwd: Path) -> str | None:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=_tool_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=SHIP_TIMEOUT,
        check=False,
    )
    if proc.returncode == 0:
        return None
    return f"{' '.join(cmd)}: exit {proc.returncode}\n{proc.stdout.strip()}"


def imported_modules(project: Path, package_name: str) -> dict[str, str]:
    """{top-level third-party module: first file importing it} over the project's .py files."""
    local = {package_name, "tests", "migrations"}
    found: dict[str, str] = {}
    for path in sorted(project.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, path.relative_to(project).as_posix())
    return found


def pyproject_problems(project: Path, package_name: str) -> list[str]:
    data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    extra = data.get("project", {}).get("optional-dependencies", {}).get("dev")
    group = data.get("dependency-groups", {}).get("dev")
    problems = []
    if group is None:
        problems.append("pyproject.toml: no [dependency-groups] dev (uv sync installs that)")
    if extra is None:
        problems.append("pyproject.toml: no dev extra (pip install -e '.[dev]' installs that)")
    if group is not None and extra is not None and sorted(group) != sorted(extra):
        problems.append(f"pyproject.toml: dev group {group} differs from the dev extra {extra}")
    declared = {
        canonicalize_name(Requirement(text).name)
        for text in [*data.get("project", {}).get("dependencies", []), *(extra or [])]
    }
    for module, where in sorted(imported_modules(project, package_name).items()):
        dist = MODULE_DISTRIBUTIONS.get(module)
        if dist is None:
            problems.append(f"{where} imports {module}: add it to MODULE_DISTRIBUTIONS")
        elif canonicalize_name(dist) not in declared:
            problems.append(f"{where} imports {module}, but pyproject.toml does not declare {dist}")
    return problems


def dockerfile_problems(project: Path, combo: Combo) -> list[str]:
    text = (project / "Dockerfile").read_text(encoding="utf-8")
    problems = []
    hadolint = _validate([_tool("hadolint"), "Dockerfile"], project)
    if hadolint:
        problems.append(hadolint)
    lines = [line.strip() for line in text.splitlines()]
    if not any(line.startswith("ARG PYTHON_IMAGE=") for line in lines):
        problems.append("Dockerfile: no ARG PYTHON_IMAGE=... for the base image")
    if sum(line.startswith("FROM ") for line in lines) < 2:
        problems.append("Dockerfile: not multi-stage")
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"Dockerfile: runs as root (USER {users})")
    copies = [i for i, line in enumerate(lines) if line.startswith("COPY ")]
    deps = [i for i in copies if "pyproject.toml" in lines[i]]
    source = [i for i in copies if lines[i].split()[1] == "src"]
    if not deps or not source or deps[0] > source[0]:
        problems.append("Dockerfile: pyproject.toml is not copied (and installed) before src/")
    (package,) = [path.name for path in (project / "src").iterdir() if path.is_dir()]
    commands = [line for line in lines if line.startswith("CMD ")]
    if commands[-1:] != [f'CMD ["python", "-m", "{package}"]'] or "WEB_CONCURRENCY" not in text:
        problems.append(
            f"Dockerfile: {commands} is not `python -m {package}`, or no WEB_CONCURRENCY"
        )
    if "FORWARDED_ALLOW_IPS=" in text:
        problems.append("Dockerfile: sets FORWARDED_ALLOW_IPS (anyone could forge X-Forwarded-For)")
    has_migrations = "COPY migrations" in text and "alembic upgrade head" in text
    if has_migrations != (combo.database in SQL_DATABASES):
        problems.append(f"Dockerfile: migrations copied and documented: {has_migrations}")
    return problems


def compose_problems(project: Path, combo: Combo) -> list[str]:
    problems = []
    schema = _validate(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml"],
        project,
    )
    if schema:
        problems.append(schema)
    docker_compose = shutil.which("docker-compose")
    if docker_compose:
        config = _validate([docker_compose, "-f", "compose.yaml", "config", "-q"], project)
        if config:
            problems.append(config)
    data = yaml.safe_load((project / "compose.yaml").read_text(encoding="utf-8"))
    services: dict[str, Any] = data.get("services") or {}
    servers = {"postgres": "postgres", "mysql": "mysql", "mongo": "mongo"}
    expected = {"app"} | {servers[combo.database]} if combo.database in servers else {"app"}
    if combo.database in SQL_DATABASES:
        expected.add("migrate")
    if combo.backend == "redis":
        expected.add("redis")
    if combo.auth != "none":
        # The mail catcher: the app's mails land there.
        expected.add("mailpit")
    if set(services) != expected:
        problems.append(f"compose.yaml: services {sorted(services)}, expected {sorted(expected)}")
    app = services.get("app") or {}
    if app.get("build") != ".":
        problems.append("compose.yaml: the app is not built from the Dockerfile (build: .)")
    environment = app.get("environment") or {}
    wanted = {"DATABASE_URL"} | ({"REDIS_URL"} if combo.backend == "redis" else set())
    if combo.auth != "none":
        wanted |= {"SMTP_URL", "PUBLIC_URL"}
    if not isinstance(environment, dict) or not wanted <= set(environment):
        problems.append(f"compose.yaml: app environment {environment}, expected {wanted}")
    if combo.auth != "none":
        mailpit = services.get("mailpit") or {}
        smtp_url = str(environment.get("SMTP_URL", "")) if isinstance(environment, dict) else ""
        if not smtp_url.startswith("smtp://mailpit:"):
            problems.append(f"compose.yaml: SMTP_URL {smtp_url!r} does not point at mailpit")
        if "127.0.0.1:8025:8025" not in [str(port) for port in mailpit.get("ports") or []]:
            problems.append("compose.yaml: Mailpit's web UI is not on 127.0.0.1:8025")
        if "mailpit" not in (app.get("depends_on") or {}):
            problems.append("compose.yaml: the app does not wait for mailpit")
    for name, service in services.items():
        for port in service.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"compose.yaml: {name} publishes {port} beyond 127.0.0.1")
        if name != "migrate" and "healthcheck" not in service:
            problems.append(f"compose.yaml: {name} has no healthcheck")
    return problems


def workflow_problems(project: Path, combo: Combo) -> list[str]:
    problems = []
    schema = _validate(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            ".github/workflows/ci.yml",
        ],
        project,
    )
    if schema:
        problems.append(schema)
    precommit = _validate(
        [_tool("pre-commit"), "validate-config", ".pre-commit-config.yaml"], project
    )
    if precommit:
        problems.append(precommit)
    workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text(encoding="utf-8"))
    jobs = list((workflow.get("jobs") or {}).values())
    if len(jobs) != 1:
        return [*problems, f"ci.yml: {len(jobs)} jobs, expected one"]
    job = jobs[0]
    services = set(job.get("services") or {})
    expected = {"postgres": {"postgres"}, "mysql": {"mariadb"}}.get(combo.database, set())
    if combo.backend == "redis":
        expected |= {"redis"}
    if services != expected:
        problems.append(f"ci.yml: services {sorted(services)}, expected {sorted(expected)}")
    runs = [str(step.get("run", "")) for step in job.get("steps") or []]
    mongo_started = any("--replSet" in run and "rs.initiate" in run for run in runs)
    if mongo_started != (combo.database == "mongo"):
        problems.append(f"ci.yml: MongoDB replica set started: {mongo_started}")
    commands = [
        "uv sync",
        "uv run ruff check .",
        "uv run ruff format --check .",
        "uv run mypy",
        *(["uv run alembic upgrade head"] if combo.database in SQL_DATABASES else []),
        "uv run pytest",
    ]
    simple = [run.strip() for run in runs if run.strip() and "\n" not in run.strip()]
    if simple != commands:
        problems.append(f"ci.yml: commands {simple}, expected {commands}")
    env = job.get("env") or {}
    wanted = set()
    if combo.database in ("postgres", "mysql", "mongo"):
        wanted.add("DATABASE_URL")
    if combo.database == "mongo":
        wanted.add("MONGODB_URL")
    if combo.backend == "redis":
        wanted.add("REDIS_URL")
    if set(env) != wanted:
        problems.append(f"ci.yml: env {sorted(env)}, expected {sorted(wanted)}")
    return problems
