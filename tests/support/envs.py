"""Environments holding a generated project's dependencies, and the environment its tools run in.

Environments are shared between combinations with the same dependency set and kept across
runs under ``<repo>/.cache/envs/<key>``; a file lock keeps xdist workers from building the
same one twice. The benchmark (bench/) installs its projects in the same environments.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from filelock import FileLock
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tests.support.combos import Combo
from tests.support.paths import CACHE

ENVS = CACHE / "envs"
PYTHON_VERSION = "3.11"
# Bump to invalidate every cached environment (e.g. after changing how they are built).
ENV_FORMAT = 1
ENV_MARKER = ".sessionforge-env.json"

# Seconds.
ENV_LOCK_TIMEOUT = 3600
ENV_BUILD_TIMEOUT = 1800

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
