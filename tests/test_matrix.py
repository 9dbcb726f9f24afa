"""Render the template for every option combination and check the generated projects.

The matrix is read from copier.yml, so new choices join it without touching this file.

- ``test_render_*``: cheap checks of the rendered tree (marker ``render``).
- ``test_generated_project``: for each combination, in the rendered project, with an
  environment holding the project's dependencies: ``ruff check``, ``ruff format --check``,
  ``mypy`` (strict, from the project's own config) and the project's own pytest run against
  the local servers (markers ``fast`` for two combinations, ``slow`` for the rest).

Environments are shared between combinations with the same dependency set and kept across
runs under ``<repo>/.cache/envs/<key>``; a file lock keeps xdist workers from building the
same one twice.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import copier
import pytest
import yaml
from filelock import FileLock
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from sessionforge.combos import (
    SESSION_ONLY_BACKENDS,
    SQL_DATABASES,
    Combo,
    all_combos,
    choice_values,
)

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
ENVS = CACHE / "envs"
PYTHON_VERSION = "3.11"
# Bump to invalidate every cached environment (e.g. after changing how they are built).
ENV_FORMAT = 1
ENV_MARKER = ".sessionforge-env.json"

# Seconds.
ENV_LOCK_TIMEOUT = 3600
ENV_BUILD_TIMEOUT = 1800
LINT_TIMEOUT = 300
MYPY_TIMEOUT = 1200
PYTEST_TIMEOUT = 1800

# The local servers; nothing here ever points anywhere but the loopback interface.
DATABASE_URLS = {
    "postgres": "postgresql://postgres@127.0.0.1:5432/test",
    "mysql": "mysql://root@127.0.0.1:3306/test",
}
REDIS_URL = "redis://127.0.0.1:6379/0"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
SERVERS = {
    "postgres": ("PostgreSQL", 5432),
    "mysql": ("MariaDB/MySQL", 3306),
    "redis": ("Redis", 6379),
}
FAST_IDS = frozenset({"async-sqlite-session-example", "sync-sqlite-none-noexample"})


def full_suite_ids(combos: list[Combo]) -> frozenset[str]:
    """The combinations whose generated tests run whole, the ``slow`` ones included.

    The generated ``slow`` tests start servers and processes of their own (uvicorn workers,
    PgBouncer, a private PostgreSQL or MariaDB, Redis Cluster and Sentinel): what they
    exercise differs by mode and by store and database, hardly by auth style or example.
    So they run once per (mode, backend, database), with the auth styles and the example
    spread so that every (mode, auth, example) is among them too; the other combinations
    run everything else (``-m "not slow"``: deselected, not skipped). That keeps the
    matrix inside its time without leaving a store, a database or a mode untried.
    """
    chosen: set[str] = set()
    for shift, mode in enumerate(sorted({c.mode for c in combos})):
        stores = sorted({(c.backend, c.database) for c in combos if c.mode == mode})
        variants = sorted({(c.auth, c.example_api) for c in combos if c.mode == mode})
        for number, store in enumerate(stores):
            auth, example_api = variants[(number + 3 * shift) % len(variants)]
            chosen.add(Combo(mode, *store, auth, example_api).id)
    return frozenset(chosen | FAST_IDS)


# Variables of the generated service (or of Python tooling) that must not leak in from the
# environment pytest runs in; the ones a combination needs are set again below.
DROPPED_ENV = frozenset(
    {
        "DATABASE_URL",
        "REDIS_URL",
        "MONGODB_URL",
        "SECRET_KEY",
        "ENVIRONMENT",
        "COOKIE_SECURE",
        "SESSION_IDLE_TIMEOUT",
        "SESSION_ABSOLUTE_TIMEOUT",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "PYTHONPATH",
        "PYTHONHOME",
        "MYPYPATH",
    }
)

ALLOWED_EMPTY = frozenset({"__init__.py", "py.typed", ".gitkeep"})
JINJA_LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|\{#")  # `${{ }}` is GitHub Actions, not Jinja
OUTPUT_LINES = 400


# --------------------------------------------------------------------------- the matrix


def load_copier_config() -> dict[str, Any]:
    with (REPO / "copier.yml").open(encoding="utf-8") as f:
        config = yaml.safe_load(f)
    assert isinstance(config, dict), "copier.yml is not a mapping"
    return config


CONFIG = load_copier_config()
COMBOS = all_combos(CONFIG)
FULL_SUITE_IDS = full_suite_ids(COMBOS)


def params(*, full: bool) -> list[Any]:
    result = []
    for combo in COMBOS:
        if full:
            marks = [pytest.mark.fast if combo.id in FAST_IDS else pytest.mark.slow]
        else:
            marks = [pytest.mark.render, *([pytest.mark.fast] if combo.id in FAST_IDS else [])]
        result.append(pytest.param(combo, id=combo.id, marks=marks))
    return result


# --------------------------------------------------------------------------- rendering


@pytest.fixture(scope="session")
def template_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of copier.yml + the template folder, made once per session (and xdist worker).

    Rendering from a plain folder makes Copier use the files as they are on disk, with
    uncommitted edits, instead of cloning the repository's HEAD.
    """
    src = tmp_path_factory.mktemp("template-src")
    shutil.copy2(REPO / "copier.yml", src / "copier.yml")
    subdirectory = str(CONFIG.get("_subdirectory") or "template")
    shutil.copytree(
        REPO / subdirectory,
        src / subdirectory,
        ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", ".pytest_cache"
        ),
    )
    return src


def render(src: Path, dst: Path, answers: Mapping[str, Any]) -> None:
    copier.run_copy(str(src), dst, data=dict(answers), defaults=True, unsafe=False, quiet=True)


def tree_problems(root: Path) -> list[str]:
    """Leftover Jinja, trailing whitespace, missing final newlines, unexpected empty files."""
    problems = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if JINJA_LEFTOVER.search(rel) or path.name.endswith(".jinja"):
            problems.append(f"{rel}: file name not rendered")
        if not path.is_file():
            continue
        data = path.read_bytes()
        if not data.strip():
            if path.name not in ALLOWED_EMPTY:
                problems.append(f"{rel}: empty file")
            continue
        if b"\0" in data:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.split("\n"), 1):
            if JINJA_LEFTOVER.search(line):
                problems.append(f"{rel}:{number}: leftover Jinja: {line.strip()[:100]}")
            if line != line.rstrip():
                problems.append(f"{rel}:{number}: trailing whitespace: {line[:100]!r}")
        if not text.endswith("\n"):
            problems.append(f"{rel}: no newline at end of file")
    return problems


def layout_problems(root: Path, combo: Combo, package_name: str) -> list[str]:
    """The generated project's layout as the contract (section 3) describes it."""
    expected = [
        "pyproject.toml",
        "README.md",
        ".copier-answers.yml",
        ".env.example",
        ".gitignore",
        "Dockerfile",
        ".dockerignore",
        "compose.yaml",
        ".github/workflows/ci.yml",
        ".pre-commit-config.yaml",
        f"src/{package_name}/",
        "tests/",
    ]
    sql = combo.database in SQL_DATABASES
    if sql:
        expected += ["alembic.ini", "migrations/"]
    problems = [f"missing {name}" for name in expected if not (root / name).exists()]
    if not sql:
        problems += [
            f"unexpected {n}" for n in ("alembic.ini", "migrations") if (root / n).exists()
        ]
    return problems


@pytest.mark.parametrize("combo", params(full=False))
def test_render(template_src: Path, tmp_path: Path, combo: Combo) -> None:
    dst = tmp_path / "project"
    answers = combo.answers()
    render(template_src, dst, answers)

    answers_file = dst / ".copier-answers.yml"
    assert answers_file.is_file(), ".copier-answers.yml was not written"
    recorded = yaml.safe_load(answers_file.read_text(encoding="utf-8")) or {}
    for key, value in answers.items():
        assert recorded.get(key) == value, f".copier-answers.yml: {key}={recorded.get(key)!r}"
    if not combo.separate_database:
        # Not asked, so normally not recorded; if it is, it must equal the backend.
        assert recorded.get("database", combo.database) == combo.database

    problems = tree_problems(dst)
    problems += layout_problems(dst, combo, str(recorded.get("package_name", "")))
    assert not problems, f"{combo.id} renders badly ({dst}):\n" + "\n".join(problems)


BASE_ANSWERS = {"project_name": "svc invalid"}


@pytest.mark.render
@pytest.mark.fast
@pytest.mark.parametrize("key", ["mode", "backend", "database", "auth"])
def test_render_refuses_invalid_choice(template_src: Path, tmp_path: Path, key: str) -> None:
    answers: dict[str, Any] = {**BASE_ANSWERS, key: "no-such-choice"}
    if key == "database":
        session_only = [b for b in choice_values(CONFIG, "backend") if b in SESSION_ONLY_BACKENDS]
        if session_only:
            answers["backend"] = session_only[0]
    dst = tmp_path / "project"
    with pytest.raises(ValueError):
        render(template_src, dst, answers)
    assert not dst.exists() or not any(dst.iterdir()), "files were written"


@pytest.mark.render
@pytest.mark.fast
@pytest.mark.parametrize(
    "backend",
    [b for b in choice_values(CONFIG, "backend") if b not in SESSION_ONLY_BACKENDS],
)
def test_render_refuses_database_other_than_backend(
    template_src: Path, tmp_path: Path, backend: str
) -> None:
    others = [d for d in choice_values(CONFIG, "database") if d != backend]
    if not others:
        pytest.skip("no database choice differs from this backend yet")
    dst = tmp_path / "project"
    with pytest.raises(ValueError):
        render(template_src, dst, {**BASE_ANSWERS, "backend": backend, "database": others[0]})
    assert not dst.exists() or not any(dst.iterdir()), "files were written"


# --------------------------------------------------------------------------- shipping files
#
# Per combination: the Dockerfile under hadolint, compose.yaml against the Compose
# specification (and `docker-compose config`, when installed), the CI workflow against
# GitHub's workflow schema, the pre-commit config by pre-commit itself, and what each
# of them must say for exactly these options.

# Top-level modules a generated project imports -> the distribution that provides them.
# A module missing here fails the check: add it (and declare it in the template).
MODULE_DISTRIBUTIONS = {
    "aiosqlite": "aiosqlite",
    "alembic": "alembic",
    "anyio": "anyio",
    "asgi_correlation_id": "asgi-correlation-id",
    "asyncmy": "asyncmy",
    "asyncpg": "asyncpg",
    "bson": "pymongo",
    "fastapi": "fastapi",
    "httpx": "httpx",
    "jwt": "pyjwt",
    "mongomock": "mongomock",
    "psycopg": "psycopg",
    "pwdlib": "pwdlib",
    "pydantic": "pydantic",
    "pydantic_settings": "pydantic-settings",
    "pymongo": "pymongo",
    "pymysql": "pymysql",
    "pytest": "pytest",
    "pythonjsonlogger": "python-json-logger",
    "redis": "redis",
    "sqlalchemy": "sqlalchemy",
    "starlette": "starlette",
    "uvicorn": "uvicorn",
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
    if "--proxy-headers" not in text or "WEB_CONCURRENCY" not in text:
        problems.append("Dockerfile: uvicorn without --proxy-headers or WEB_CONCURRENCY")
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
    if set(services) != expected:
        problems.append(f"compose.yaml: services {sorted(services)}, expected {sorted(expected)}")
    app = services.get("app") or {}
    if app.get("build") != ".":
        problems.append("compose.yaml: the app is not built from the Dockerfile (build: .)")
    environment = app.get("environment") or {}
    wanted = {"DATABASE_URL"} | ({"REDIS_URL"} if combo.backend == "redis" else set())
    if not isinstance(environment, dict) or not wanted <= set(environment):
        problems.append(f"compose.yaml: app environment {environment}, expected {wanted}")
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


@pytest.mark.parametrize("combo", params(full=False))
def test_render_shipping_files(template_src: Path, tmp_path: Path, combo: Combo) -> None:
    project = tmp_path / "project"
    render(template_src, project, combo.answers())
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    package_name = str(recorded["package_name"])
    problems = [
        *pyproject_problems(project, package_name),
        *dockerfile_problems(project, combo),
        *compose_problems(project, combo),
        *workflow_problems(project, combo),
    ]
    assert not problems, f"{combo.id} ({project}):\n" + "\n".join(problems)


# --------------------------------------------------------------------------- environments


class EnvError(Exception):
    pass


def project_dependencies(project: Path) -> list[str]:
    """The project's dependencies plus its dev extra, self-references expanded, sorted."""
    data = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    table = data.get("project", {})
    name = canonicalize_name(str(table.get("name", "")))
    extras: dict[str, list[str]] = table.get("optional-dependencies", {})
    dev = extras.get("dev")
    if dev is None:  # a PEP 735 group is fine too
        dev = [d for d in data.get("dependency-groups", {}).get("dev", []) if isinstance(d, str)]
    found: set[str] = set()
    seen_extras: set[str] = set()

    def add(requirements: list[str]) -> None:
        for text in requirements:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                found.add(text)
                continue
            if name and canonicalize_name(req.name) == name:
                for extra in sorted(req.extras - seen_extras):
                    seen_extras.add(extra)
                    add(extras.get(extra, []))
            else:
                found.add(text.strip())

    add(list(table.get("dependencies", [])))
    add(list(dev))
    return sorted(found)


def env_key(deps: list[str]) -> str:
    payload = json.dumps({"format": ENV_FORMAT, "python": PYTHON_VERSION, "deps": deps})
    return hashlib.sha256(payload.encode()).hexdigest()


def uv_command() -> list[str] | None:
    on_path = shutil.which("uv")
    if on_path:
        return [on_path]
    beside = Path(sys.executable).parent / "uv"  # an unactivated venv's own uv
    if beside.is_file():
        return [str(beside)]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    return None


def _tool_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}


def _check(cmd: list[str], timeout: float, cwd: Path) -> None:
    try:
        proc = subprocess.run(
            cmd,
            check=False,
            cwd=cwd,
            env=_tool_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise EnvError(f"timed out after {timeout}s: {' '.join(cmd)}") from exc
    if proc.returncode != 0:
        raise EnvError(f"exit {proc.returncode}: {' '.join(cmd)}\n{proc.stdout}")


def build_env(env_dir: Path, deps: list[str]) -> None:
    python = env_dir / "bin" / "python"
    uv = uv_command()
    if uv is not None:
        try:
            _check([*uv, "venv", "--quiet", "--python", PYTHON_VERSION, str(env_dir)], 300, ENVS)
        except EnvError:
            # No such Python to be found here: use the running interpreter instead.
            shutil.rmtree(env_dir, ignore_errors=True)
            _check([*uv, "venv", "--quiet", "--python", sys.executable, str(env_dir)], 300, ENVS)
        _check(
            # Bytecode compiled once here, as pip does by default: without it, every
            # process of the project's checks compiles each module it imports again
            # when PYTHONDONTWRITEBYTECODE is set.
            [
                *uv,
                "pip",
                "install",
                "--quiet",
                "--compile-bytecode",
                "--python",
                str(python),
                *deps,
            ],
            ENV_BUILD_TIMEOUT,
            ENVS,
        )
    else:
        _check([sys.executable, "-m", "venv", str(env_dir)], 300, ENVS)
        _check(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *deps],
            ENV_BUILD_TIMEOUT,
            ENVS,
        )


def ensure_env(deps: list[str]) -> tuple[str, Path]:
    """(key, env dir) of a ready environment with `deps`, built once and then reused."""
    key = env_key(deps)[:12]
    env_dir = ENVS / key
    python = env_dir / "bin" / "python"
    marker = env_dir / ENV_MARKER
    expected = json.dumps({"format": ENV_FORMAT, "python": PYTHON_VERSION, "deps": deps})
    ENVS.mkdir(parents=True, exist_ok=True)
    with FileLock(str(ENVS / f"{key}.lock"), timeout=ENV_LOCK_TIMEOUT):
        if python.is_file() and marker.is_file() and marker.read_text() == expected:
            return key, env_dir
        shutil.rmtree(env_dir, ignore_errors=True)  # absent, or left incomplete
        build_env(env_dir, deps)
        marker.write_text(expected)  # written last: its presence means complete
    return key, env_dir


# --------------------------------------------------------------------------- running


def is_loopback_url(url: str) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host in LOOPBACK_HOSTS


def project_env(combo: Combo, env_dir: Path) -> dict[str, str]:
    """The environment for the project's tools: its venv first, the servers it needs."""
    outer_mongo = os.environ.get("MONGODB_URL")
    env = {
        k: v for k, v in os.environ.items() if k not in DROPPED_ENV and not k.startswith("PYTEST_")
    }
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}"
    env["VIRTUAL_ENV"] = str(env_dir)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if combo.database in DATABASE_URLS:
        env["DATABASE_URL"] = DATABASE_URLS[combo.database]
    if combo.backend == "redis":
        env["REDIS_URL"] = REDIS_URL
    if "mongo" in (combo.backend, combo.database) and outer_mongo:
        if not is_loopback_url(outer_mongo):
            pytest.fail(f"MONGODB_URL must point at this machine (127.0.0.1), not {outer_mongo}")
        env["MONGODB_URL"] = outer_mongo
        env["DATABASE_URL"] = outer_mongo
    return env


def require_servers(combo: Combo) -> None:
    needed = {combo.database, combo.backend} & SERVERS.keys()
    for name in sorted(needed):
        label, port = SERVERS[name]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
        except OSError as exc:
            pytest.fail(
                f"{label} is not reachable on 127.0.0.1:{port} ({exc}); "
                "start the local services (bash .ci/run starts them)"
            )


@dataclass
class Step:
    name: str
    cmd: list[str]
    returncode: int
    output: str
    seconds: float

    def report(self) -> str:
        lines = self.output.rstrip().splitlines()
        if len(lines) > OUTPUT_LINES:
            lines = [f"[... {len(lines) - OUTPUT_LINES} lines cut ...]", *lines[-OUTPUT_LINES:]]
        body = "\n".join(lines)
        return f"----- {self.name}: exit {self.returncode}: {' '.join(self.cmd)}\n{body}"


def run_step(name: str, cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Step:
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            check=False,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        returncode, output = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        output = out.decode(errors="replace") if isinstance(out, bytes) else out
        returncode, output = -1, f"{output}\n[timed out after {timeout}s]"
    return Step(name, cmd, returncode, output, time.monotonic() - start)


SUMMARY_COUNT = re.compile(
    r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?|rerun)"
)
SUMMARY_TIME = re.compile(r"\bin \d+(?:\.\d+)?s\b")


def pytest_summary(output: str) -> dict[str, int] | None:
    """Counts from pytest's closing line ("3 passed, 1 skipped in 0.52s"), or None."""
    for line in reversed(output.splitlines()):
        text = line.strip().strip("=").strip()
        if not SUMMARY_TIME.search(text):
            continue
        if "no tests ran" in text:
            return {}
        counts = SUMMARY_COUNT.findall(text)
        if counts:
            result: dict[str, int] = {}
            for number, word in counts:
                word = {"error": "errors", "warning": "warnings"}.get(word, word)
                result[word] = result.get(word, 0) + int(number)
            return result
    return None


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.mark.parametrize("combo", params(full=True))
def test_generated_project(
    template_src: Path,
    tmp_path: Path,
    combo: Combo,
    record_property: Any,
) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()

    def done(stage: str, since: float) -> float:
        now = time.monotonic()
        timings[stage] = now - since
        return now

    project = tmp_path / "project"
    render(template_src, project, combo.answers())
    mark = done("render", started)

    deps = project_dependencies(project)
    assert deps, "the generated pyproject.toml lists no dependencies"
    try:
        key, env_dir = ensure_env(deps)
    except EnvError as exc:
        pytest.fail(f"could not build the environment for {combo.id}:\n{exc}")
    mark = done("env", mark)

    require_servers(combo)
    env = project_env(combo, env_dir)
    python = str(env_dir / "bin" / "python")
    mypy_cache = CACHE / "mypy" / f"{key}-{worker_id()}"
    steps = [
        ("ruff-check", [python, "-m", "ruff", "check", "--no-cache", "."], LINT_TIMEOUT),
        ("ruff-format", [python, "-m", "ruff", "format", "--check", "--no-cache", "."], 300),
        ("mypy", [python, "-m", "mypy", "--cache-dir", str(mypy_cache)], MYPY_TIMEOUT),
        (
            "pytest",
            [
                *(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"),
                *(() if combo.id in FULL_SUITE_IDS else ("-m", "not slow")),
            ],
            PYTEST_TIMEOUT,
        ),
    ]
    results = []
    for name, cmd, timeout in steps:
        step = run_step(name, cmd, project, env, timeout)
        timings[name] = step.seconds
        results.append(step)
    timings["total"] = time.monotonic() - started

    timing = ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in timings.items())
    record_property("timing", f"{timing} (env {key})")
    for stage, seconds in timings.items():
        record_property(f"seconds_{stage}", f"{seconds:.2f}")
    print(f"{combo.id}: {timing} (env {key}, project {project})")

    failures = [step.report() for step in results if step.returncode != 0]
    pytest_step = results[-1]
    summary = pytest_summary(pytest_step.output)
    if pytest_step.returncode == 0:
        if summary is None:
            failures.append("----- pytest: no summary line found\n" + pytest_step.report())
        elif summary.get("passed", 0) < 1 or summary.get("failed", 0) or summary.get("errors", 0):
            failures.append(f"----- pytest summary {summary}\n" + pytest_step.report())
        elif summary.get("skipped", 0):
            # This machine has every server the generated tests need: a skip here
            # would hide a test that never ran.
            failures.append(f"----- pytest skipped tests {summary}\n" + pytest_step.report())
    assert not failures, f"{combo.id} ({project}):\n" + "\n".join(failures)


# --------------------------------------------------------------------------- install paths
#
# The generated README's two ways in, each run for real in a fresh project: uv (`uv sync`
# installs the dev group, then `uv run pytest`) and pip (`pip install -e '.[dev]'` into a
# fresh virtualenv). uv and pip keep their download caches between runs.

UV_PATH_ID = "async-sqlite-session-example"  # the default answers
PIP_PATH_ID = "sync-redis-postgres-jwt-example"
INSTALL_TIMEOUT = 1800


def _combo(combo_id: str) -> Combo:
    return next(combo for combo in COMBOS if combo.id == combo_id)


def _path_step(name: str, cmd: list[str], project: Path, env: dict[str, str]) -> Step:
    step = run_step(name, cmd, project, env, INSTALL_TIMEOUT)
    assert step.returncode == 0, step.report()
    return step


def _passed(step: Step) -> dict[str, int]:
    summary = pytest_summary(step.output)
    assert summary, f"no pytest summary line:\n{step.report()}"
    assert summary.get("passed", 0) > 0, summary
    assert not (summary.get("failed") or summary.get("errors") or summary.get("skipped")), (
        f"{summary}\n{step.report()}"
    )
    return summary


@pytest.mark.slow
def test_uv_path(template_src: Path, tmp_path: Path) -> None:
    uv = uv_command()
    if uv is None:
        pytest.fail("uv is not installed: pip install -e '.[test]'")
    combo = _combo(UV_PATH_ID)
    require_servers(combo)
    project = tmp_path / "project"
    render(template_src, project, combo.answers())
    venv = project / ".venv"
    env = project_env(combo, venv)
    # Only the project's own .venv: no tool from the environment running this test.
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if Path(p).resolve() != Path(sys.executable).parent
    )
    env.pop("VIRTUAL_ENV")
    env["UV_PYTHON"] = PYTHON_VERSION
    _path_step("uv sync", [*uv, "sync"], project, env)
    for tool in ("pytest", "ruff", "mypy"):
        assert (venv / "bin" / tool).is_file(), f"uv sync did not install the dev tool {tool}"
    step = _path_step(
        "uv run pytest", [*uv, "run", "pytest", "-q", "-p", "no:cacheprovider"], project, env
    )
    print(f"{combo.id} by uv: {_passed(step)} in {step.seconds:.1f}s")


@pytest.mark.slow
def test_pip_path(template_src: Path, tmp_path: Path) -> None:
    combo = _combo(PIP_PATH_ID)
    require_servers(combo)
    project = tmp_path / "project"
    render(template_src, project, combo.answers())
    venv = tmp_path / "venv"
    env = project_env(combo, venv)
    _path_step("venv", [sys.executable, "-m", "venv", str(venv)], project, env)
    python = str(venv / "bin" / "python")
    _path_step(
        "pip install",
        [python, "-m", "pip", "install", "--quiet", "-e", ".[dev]"],
        project,
        env,
    )
    step = _path_step(
        "pytest", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, env
    )
    print(f"{combo.id} by pip: {_passed(step)} in {step.seconds:.1f}s")


# --------------------------------------------------------------------------- self-checks


@pytest.mark.render
@pytest.mark.fast
def test_matrix_is_well_formed() -> None:
    ids = [combo.id for combo in COMBOS]
    assert ids, "copier.yml yields no combinations"
    assert len(ids) == len(set(ids)), "combination ids collide"
    assert set(ids) >= FAST_IDS, f"fast combinations missing from the matrix: {FAST_IDS - set(ids)}"
    assert {UV_PATH_ID, PIP_PATH_ID} <= set(ids), "an install-path combination left the matrix"
    assert pytest_summary("==== 3 passed, 1 skipped, 2 warnings in 0.52s ====") == {
        "passed": 3,
        "skipped": 1,
        "warnings": 2,
    }
    assert pytest_summary("1 failed, 1 error in 61.20s (0:01:01)") == {"failed": 1, "errors": 1}
    assert pytest_summary("no tests ran in 0.01s") == {}
    assert pytest_summary("collected 0 items") is None
