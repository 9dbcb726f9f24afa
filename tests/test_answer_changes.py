"""Answer changes on a migrated database: the migration chain carries it forward.

For PostgreSQL, MariaDB and SQLite in both modes, a project is generated (auth session,
sessions in the database, the shop), its database migrated and given a user and a
product; then each table-shaping answer changes in turn (auth jwt, sessions to Redis, the
shop dropped, sessions back in the database, auth none, auth session and the shop again).
After each `copier update`: no migration the database ran was edited or removed,
`alembic upgrade head` and `alembic check` pass, and the users made before log in.

Plain Copier renders here (from a git snapshot of the working tree's template), so the
test holds for `copier update` and `sessionforge update` alike; sessionforge's own checks
of answer changes are tested in tests/test_cli.py and below.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml

from sessionforge.errors import UsageError
from sessionforge.update import plan_answers
from tests.support.combos import Combo
from tests.support.databases import PROBE, _server_database
from tests.support.envs import (
    REDIS_URL,
    ensure_env,
    project_dependencies,
    project_env,
    require_servers,
)
from tests.support.git import GIT_ENV, commit_all, copy_template, git


def _template_repo(root: Path) -> Path:
    repo = copy_template(root / "template-repo")
    git(repo, "init", "--quiet")
    commit_all(repo, "template")
    git(repo, "tag", "v1.0.0")
    return repo


def _commit(project: Path, message: str) -> None:
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", message)


def _migrations(project: Path) -> dict[str, str]:
    versions = project / "migrations" / "versions"
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(versions.glob("*.py"))}


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


CHANGES: list[dict[str, Any]] = [
    {"auth": "jwt"},
    {"backend": "redis"},  # the data database stays (database=<same>)
    {"example_api": False},
    {"backend": "<db>"},
    {"auth": "none"},
    {"auth": "session", "example_api": True},
]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize("database", ["postgres", "mysql", "sqlite"])
def test_answer_changes_migrate_a_live_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: str, mode: str
) -> None:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    widest = Combo(mode, "redis", database, "jwt", True)
    require_servers(widest)
    template = _template_repo(tmp_path)
    # One environment holds every dependency of the walk (Redis and jwt included).
    probe_render = tmp_path / "widest"
    copier.run_copy(str(template), probe_render, data=widest.answers(), defaults=True, quiet=True)
    _, env_dir = ensure_env(project_dependencies(probe_render))
    env = project_env(widest, env_dir)
    env |= {"ENVIRONMENT": "test", "COOKIE_SECURE": "false", "REDIS_URL": REDIS_URL}
    env["REDIS_PREFIX"] = f"answers-{secrets.token_hex(4)}:"
    name = f"answers_{secrets.token_hex(4)}"
    if database == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'app.db'}"
    else:
        env["DATABASE_URL"] = _server_database(database, name)
    python = str(env_dir / "bin" / "python")
    env["PYTHONPATH"] = str(tmp_path / "svc" / "src")

    project = tmp_path / "svc"
    answers = {"project_name": "svc", "mode": mode, "backend": database, "auth": "session"}
    copier.run_copy(str(template), project, data=answers, defaults=True, quiet=True)
    git(project, "init", "--quiet")
    _commit(project, "generated")
    (tmp_path / "probe.py").write_text(PROBE.format(pkg="svc"), encoding="utf-8")

    def probe(auth: str, **action: Any) -> dict[str, Any]:
        import json

        out = _run([python, str(tmp_path / "probe.py"), auth, json.dumps(action)], project, env)
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result

    def migrate() -> None:
        _run([python, "-m", "alembic", "upgrade", "head"], project, env)
        _run([python, "-m", "alembic", "check"], project, env)

    try:
        migrate()
        product = probe(
            "session", register=["ann@example.com"], login=["ann@example.com"], product="kept"
        )["product"]
        state = dict(answers, example_api=True)
        users = ["ann@example.com"]
        for i, change in enumerate(CHANGES):
            change = {k: (database if v == "<db>" else v) for k, v in change.items()}
            if change.get("backend") == "redis":
                change["database"] = database
            before = _migrations(project)
            copier.run_update(
                project, data=change, defaults=True, overwrite=True, quiet=True, unsafe=True
            )
            after = _migrations(project)
            for file, text in before.items():
                assert after.get(file) == text, f"step {i} {change}: {file} edited or removed"
            assert len(after) == len(before) + 1, f"step {i} {change}: {sorted(after)}"
            _commit(project, f"answers {change}")
            state.update(change)
            migrate()
            if state["auth"] == "none":
                users = []
                probe("none")
                continue
            new_user = f"user{i}@example.com"
            action: dict[str, Any] = {"register": [new_user], "login": [*users, new_user]}
            if state["example_api"] and product is not None:
                action["read_product"] = product
            probe(state["auth"], **action)
            users.append(new_user)
            if not state["example_api"]:
                product = None
        history = yaml.safe_load((project / ".copier-answers.yml").read_text())["schema_history"]
        assert len(history) == 1 + len(CHANGES)
    finally:
        if database != "sqlite":
            _server_database(database, name, drop=True)
        shutil.rmtree(project, ignore_errors=True)


# --------------------------------------------------------------------------- plan_answers


def test_moving_the_sessions_to_redis_keeps_the_data_database() -> None:
    data, notices = plan_answers({"backend": "postgres", "auth": "session"}, {"backend": "redis"})
    assert data == {"backend": "redis", "database": "postgres"}
    assert notices == ["The sessions table changes: every session ends (users log in again)."]


@pytest.mark.parametrize(
    ("recorded", "change"),
    [
        ({"backend": "sqlite"}, {"backend": "postgres"}),
        ({"backend": "redis", "database": "sqlite"}, {"backend": "postgres"}),
        ({"backend": "postgres"}, {"backend": "redis", "database": "mongo"}),
        ({"backend": "mongo"}, {"backend": "mysql"}),
    ],
)
def test_a_new_data_database_is_refused(recorded: dict[str, Any], change: dict[str, Any]) -> None:
    with pytest.raises(UsageError, match="Refusing to move the data database"):
        plan_answers(recorded, change)


def test_dropping_tables_with_user_data_is_announced() -> None:
    _, notices = plan_answers(
        {"backend": "mysql", "auth": "jwt", "example_api": True},
        {"auth": "none", "example_api": False},
    )
    assert any("DROPS the users table" in n for n in notices)
    assert any("DROPS the shop's tables" in n for n in notices)
