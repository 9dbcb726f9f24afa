"""Tests of the `sessionforge` CLI (CONTRACT §2), in process with Typer's CliRunner.

Choices are read from copier.yml, so these tests keep working as the template
offers more backends and auth kinds. The end-to-end tests (the wheel, a real
pseudo-terminal) live in test_cli_e2e.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner, Result

import sessionforge
from sessionforge import check as check_mod
from sessionforge import generate as generate_mod
from sessionforge.cli import app
from sessionforge.errors import UsageError

REPO = Path(__file__).resolve().parent.parent
CONTRACT_KEYS = [
    "project_name",
    "package_name",
    "mode",
    "backend",
    "database",
    "auth",
    "example_api",
]
CHOICE_FLAGS = {
    "--mode": "mode",
    "--backend": "backend",
    "--database": "database",
    "--auth": "auth",
}
TRACEBACK = "Traceback (most recent call last)"


def _copier_yml() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "copier.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def choices(key: str) -> list[str]:
    raw = _copier_yml()[key]["choices"]
    values = raw.values() if isinstance(raw, dict) else raw
    return [str(v["value"] if isinstance(v, dict) else v) for v in values]


def default(key: str) -> Any:
    return _copier_yml()[key]["default"]


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def answers_of(dest: Path) -> dict[str, Any]:
    data = yaml.safe_load((dest / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def assert_refused(result: Result, *needles: str) -> None:
    """Exit 2, every needle named on stderr, no traceback."""
    assert result.exit_code == 2, result.output
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    assert TRACEBACK not in result.output


def assert_nothing_written(parent: Path, before: set[str]) -> None:
    """No DEST, no staging directory left behind."""
    assert {p.name for p in parent.iterdir()} == before


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SESSIONFORGE_DEBUG", raising=False)
    monkeypatch.delenv("SESSIONFORGE_TEMPLATE", raising=False)
    return tmp_path


# --- --version, options ---------------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"sessionforge {sessionforge.__version__}"


def test_no_arguments_shows_help() -> None:
    result = run()
    assert "new" in result.output
    assert "options" in result.output


def test_options_json_lists_the_contract_keys() -> None:
    result = run("options", "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert [item["key"] for item in items] == CONTRACT_KEYS
    for item in items:
        assert set(item) == {"key", "help", "type", "choices", "default"}
        assert item["help"]
    by_key = {item["key"]: item for item in items}
    for key in ("mode", "backend", "database", "auth"):
        assert by_key[key]["choices"] == choices(key)
    assert by_key["mode"]["default"] == "async"
    assert by_key["example_api"]["type"] == "bool"
    assert by_key["example_api"]["default"] is True
    assert by_key["project_name"]["choices"] is None


def test_options_table() -> None:
    result = CliRunner().invoke(app, ["options"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for key in CONTRACT_KEYS:
        assert key in result.stdout
    for value in choices("mode") + choices("auth"):
        assert value in result.stdout


# --- new: answers ---------------------------------------------------------------------


def test_defaults_when_stdin_is_not_a_terminal(workdir: Path) -> None:
    # CliRunner's stdin is not a TTY: nothing is asked, defaults are used.
    result = run("new", "my-service")
    assert result.exit_code == 0, result.output
    dest = workdir / "my-service"
    answers = answers_of(dest)
    assert answers["project_name"] == "my-service"
    assert answers["package_name"] == "my_service"
    assert answers["mode"] == default("mode")
    assert answers["backend"] == default("backend")
    assert answers["auth"] == default("auth")
    assert answers["example_api"] is default("example_api")
    assert (dest / "pyproject.toml").is_file()
    assert (dest / "src" / "my_service" / "main.py").is_file()
    assert "my-service" in result.stdout
    # Copier rendered a snapshot of the checkout; updates come from sessionforge's
    # template history, never from a path.
    assert answers["_src_path"] == "sessionforge"
    # Nothing left next to DEST.
    assert [p.name for p in workdir.iterdir()] == ["my-service"]


def test_message_names_dest_as_given(workdir: Path) -> None:
    result = run("new", "svc", "-y")
    assert result.exit_code == 0, result.output
    assert "cd svc" in result.stdout
    assert ".sessionforge-" not in result.stdout


@pytest.mark.parametrize("flag", ["--defaults", "-y"])
def test_defaults_flag(workdir: Path, flag: str) -> None:
    result = run("new", "svc", flag)
    assert result.exit_code == 0, result.output
    assert answers_of(workdir / "svc")["mode"] == default("mode")


def test_name_flag(workdir: Path) -> None:
    result = run("new", "dest-dir", "--name", "My Shop 2")
    assert result.exit_code == 0, result.output
    answers = answers_of(workdir / "dest-dir")
    assert answers["project_name"] == "My Shop 2"
    assert answers["package_name"] == "my_shop_2"
    assert (workdir / "dest-dir" / "src" / "my_shop_2").is_dir()


@pytest.mark.parametrize("flag", ["--mode", "--auth"])
def test_choice_flags_are_recorded(workdir: Path, flag: str) -> None:
    key = CHOICE_FLAGS[flag]
    for value in choices(key):
        dest = workdir / f"{key}-{value}"
        result = run("new", str(dest), flag, value)
        assert result.exit_code == 0, result.output
        assert answers_of(dest)[key] == value


@pytest.mark.parametrize("backend", choices("backend"))
def test_backend_and_database_flags(workdir: Path, backend: str) -> None:
    database = choices("database")[-1] if backend == "redis" else backend
    dest = workdir / f"b-{backend}"
    result = run("new", str(dest), "--backend", backend, "--database", database)
    assert result.exit_code == 0, result.output
    answers = answers_of(dest)
    assert answers["backend"] == backend
    if backend == "redis":  # asked only then; otherwise it equals backend, unrecorded
        assert answers["database"] == database


@pytest.mark.parametrize(("flag", "expected"), [("--example", True), ("--no-example", False)])
def test_example_flag(workdir: Path, flag: str, expected: bool) -> None:
    result = run("new", "svc", flag)
    assert result.exit_code == 0, result.output
    assert answers_of(workdir / "svc")["example_api"] is expected


def test_data_sets_any_answer(workdir: Path) -> None:
    mode = choices("mode")[-1]
    auth = choices("auth")[-1]
    result = run(
        "new",
        "svc",
        "--data",
        f"mode={mode}",
        "-d",
        f"auth={auth}",
        "--data",
        "example_api=false",
        "--data",
        "project_name=Data Service",
        "--data",
        "package_name=dataservice",
    )
    assert result.exit_code == 0, result.output
    answers = answers_of(workdir / "svc")
    assert answers["mode"] == mode
    assert answers["auth"] == auth
    assert answers["example_api"] is False
    assert answers["project_name"] == "Data Service"
    assert answers["package_name"] == "dataservice"


def test_data_value_may_contain_equals(workdir: Path) -> None:
    # Only the first "=" splits; the rest belongs to the value (refused by the validator).
    result = run("new", "svc", "--data", "project_name=a=b")
    assert_refused(result, "a=b")


def test_flag_and_data_agreeing(workdir: Path) -> None:
    result = run("new", "svc", "--mode", "sync", "--data", "mode=sync")
    assert result.exit_code == 0, result.output


def test_nested_dest_is_created(workdir: Path) -> None:
    result = run("new", "a/b/svc")
    assert result.exit_code == 0, result.output
    assert answers_of(workdir / "a" / "b" / "svc")["project_name"] == "svc"


def test_existing_empty_dest_is_fine(workdir: Path) -> None:
    (workdir / "svc").mkdir()
    result = run("new", "svc")
    assert result.exit_code == 0, result.output
    assert (workdir / "svc" / ".copier-answers.yml").is_file()


# --- new: refusals (exit 2, nothing written) ------------------------------------------


@pytest.mark.parametrize("flag", list(CHOICE_FLAGS))
def test_bad_choice_flag(workdir: Path, flag: str) -> None:
    result = run("new", "svc", flag, "nope")
    assert_refused(result, '"nope"', flag, *choices(CHOICE_FLAGS[flag]))
    assert_nothing_written(workdir, set())


@pytest.mark.parametrize("key", list(CHOICE_FLAGS.values()))
def test_bad_choice_in_data(workdir: Path, key: str) -> None:
    result = run("new", "svc", "--data", f"{key}=mongo-ish")
    assert_refused(result, '"mongo-ish"', key, *choices(key))
    assert_nothing_written(workdir, set())


def test_unknown_data_key(workdir: Path) -> None:
    result = run("new", "svc", "--data", "colour=blue")
    assert_refused(result, '"colour"', *CONTRACT_KEYS)
    assert_nothing_written(workdir, set())


@pytest.mark.parametrize("key", ["is_async", "sql", "_src_path"])
def test_computed_and_private_keys_are_not_answers(workdir: Path, key: str) -> None:
    result = run("new", "svc", "--data", f"{key}=true")
    assert_refused(result, key)
    assert_nothing_written(workdir, set())


@pytest.mark.parametrize("item", ["mode", "=sync", ""])
def test_malformed_data(workdir: Path, item: str) -> None:
    result = run("new", "svc", "--data", item)
    assert_refused(result, "KEY=VALUE")
    assert_nothing_written(workdir, set())


def test_bad_bool_in_data(workdir: Path) -> None:
    result = run("new", "svc", "--data", "example_api=maybe")
    assert_refused(result, '"maybe"', "true", "false")
    assert_nothing_written(workdir, set())


@pytest.mark.parametrize("name", ["bad.name", "über", "x/y", "!!!"])
def test_bad_project_name(workdir: Path, name: str) -> None:
    result = run("new", "svc", "--name", name)
    assert_refused(result, f'"{name}"', "project_name")
    assert_nothing_written(workdir, set())


def test_empty_project_name(workdir: Path) -> None:
    result = run("new", "svc", "--name", "")
    assert_refused(result, "project_name")
    assert_nothing_written(workdir, set())


def test_bad_folder_name_suggests_name_flag(workdir: Path) -> None:
    result = run("new", "my.service")
    assert_refused(result, '"my.service"', "--name")
    assert_nothing_written(workdir, set())
    # ...and --name fixes it.
    result = run("new", "my.service", "--name", "my-service")
    assert result.exit_code == 0, result.output
    assert answers_of(workdir / "my.service")["package_name"] == "my_service"


@pytest.mark.parametrize(
    ("package", "needle"), [("Bad", "lowercase"), ("1abc", "identifier"), ("json", "reserved")]
)
def test_bad_package_name(workdir: Path, package: str, needle: str) -> None:
    result = run("new", "svc", "--data", f"package_name={package}")
    assert_refused(result, f'"{package}"', needle)
    assert_nothing_written(workdir, set())


def test_database_must_match_backend_unless_redis(workdir: Path) -> None:
    others = [d for d in choices("database") if d not in ("sqlite", "redis")]
    if "sqlite" not in choices("backend") or not others:
        pytest.skip("needs a database choice other than the sqlite backend")
    result = run("new", "svc", "--backend", "sqlite", "--database", others[0])
    assert_refused(result, others[0], "backend")
    assert_nothing_written(workdir, set())


def test_contradicting_answers(workdir: Path) -> None:
    result = run("new", "svc", "--mode", "sync", "--data", "mode=async")
    assert_refused(result, "--mode", "mode=async")
    assert_nothing_written(workdir, set())


def test_missing_parents_are_not_left_behind(workdir: Path) -> None:
    result = run("new", "a/b/svc", "--name", "bad.name")
    assert_refused(result, '"bad.name"')
    assert_nothing_written(workdir, set())


def test_non_empty_dest_is_refused(workdir: Path) -> None:
    dest = workdir / "svc"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine\n")
    result = run("new", "svc")
    assert_refused(result, str(dest), "--force")
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    assert (dest / "keep.txt").read_text() == "mine\n"
    assert_nothing_written(workdir, {"svc"})


def test_force_writes_over_a_non_empty_dest(workdir: Path) -> None:
    dest = workdir / "svc"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine\n")
    (dest / "pyproject.toml").write_text("old\n")
    result = run("new", "svc", "--force", "--mode", "sync")
    assert result.exit_code == 0, result.output
    assert (dest / "keep.txt").read_text() == "mine\n"
    assert (dest / "pyproject.toml").read_text() != "old\n"
    assert answers_of(dest)["mode"] == "sync"
    assert_nothing_written(workdir, {"svc"})


def env_file(dest: Path) -> dict[str, str]:
    lines = (dest / ".env").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_new_writes_a_dev_env_with_a_fresh_secret_key(workdir: Path) -> None:
    assert run("new", "one", "-y").exit_code == 0
    result = run("new", "two", "-y", "--backend", "redis", "--database", "postgres")
    assert result.exit_code == 0, result.output
    first, second = env_file(workdir / "one"), env_file(workdir / "two")
    assert first["ENVIRONMENT"] == second["ENVIRONMENT"] == "dev"
    assert len(first["SECRET_KEY"]) >= 43  # secrets.token_urlsafe(32)
    assert first["SECRET_KEY"] != second["SECRET_KEY"]
    # The rest is the project's .env.example, every other setting as documented there.
    assert second["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert second["DATABASE_URL"].startswith("postgresql://")
    assert (workdir / "two" / ".env").stat().st_mode & 0o077 == 0
    assert ".env is written" in result.stdout
    assert "docker compose up -d --wait redis postgres" in result.stdout
    assert "cp .env.example" not in result.stdout


def test_new_keeps_an_existing_env(workdir: Path) -> None:
    dest = workdir / "svc"
    dest.mkdir()
    (dest / ".env").write_text("SECRET_KEY=mine\n")
    result = run("new", "svc", "-y", "--force")
    assert result.exit_code == 0, result.output
    assert (dest / ".env").read_text() == "SECRET_KEY=mine\n"
    assert "your .env is kept" in result.stdout


# --- git ------------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def commits(repo: Path) -> list[str]:
    return git(repo, "log", "--format=%an <%ae> %s").splitlines()


@pytest.fixture
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """A known identity from the environment, whatever this machine's git config says."""
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Some One")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "some.one@example.org")


def test_new_makes_a_git_repository_with_one_commit(workdir: Path, git_identity: None) -> None:
    result = run("new", "svc", "-y")
    assert result.exit_code == 0, result.output
    dest = workdir / "svc"
    assert commits(dest) == [
        f"Some One <some.one@example.org> Generated by sessionforge {sessionforge.__version__}"
    ]
    assert git(dest, "status", "--porcelain", "--untracked-files=all") == ""
    tracked = git(dest, "ls-files").splitlines()
    assert ".copier-answers.yml" in tracked and ".env.example" in tracked
    assert (dest / ".env").is_file()
    assert ".env" not in tracked  # SECRET_KEY stays out of git
    assert "Committed the generated files to a new git repository" in result.stdout


def test_new_commits_without_a_git_identity(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(workdir))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(workdir / "no-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in (
        "EMAIL",
        *(f"GIT_{r}_{k}" for r in ("AUTHOR", "COMMITTER") for k in ("NAME", "EMAIL")),
    ):
        monkeypatch.delenv(name, raising=False)
    result = run("new", "svc", "-y")
    assert result.exit_code == 0, result.output
    dest = workdir / "svc"
    assert git(dest, "log", "--format=%an <%ae> / %cn <%ce>").splitlines() == [
        "sessionforge <sessionforge@localhost> / sessionforge <sessionforge@localhost>"
    ]
    # For that commit only: nothing is written to the repository's config.
    assert "sessionforge" not in (dest / ".git" / "config").read_text()
    assert git(dest, "status", "--porcelain") == ""


def test_no_git_leaves_no_repository(workdir: Path) -> None:
    result = run("new", "svc", "-y", "--no-git")
    assert result.exit_code == 0, result.output
    assert (workdir / "svc" / ".copier-answers.yml").is_file()
    assert not (workdir / "svc" / ".git").exists()
    assert "Committed" not in result.stdout and not result.stderr


def test_new_without_git_installed_warns_and_succeeds(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(workdir / "empty-bin"))
    result = run("new", "svc", "-y")
    assert result.exit_code == 0, result.output
    assert not (workdir / "svc" / ".git").exists()
    warning = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and warning[0].startswith("Warning: git is not installed")


def test_force_into_a_clean_repository_commits_there(workdir: Path, git_identity: None) -> None:
    dest = workdir / "svc"
    dest.mkdir()
    git(dest, "init", "--quiet")
    (dest / "notes.txt").write_text("mine\n")
    git(dest, "add", "notes.txt")
    git(dest, "commit", "--quiet", "-m", "my notes")
    result = run("new", "svc", "-y", "--force")
    assert result.exit_code == 0, result.output
    assert [c.rsplit("> ", 1)[1] for c in commits(dest)] == [
        f"Generated by sessionforge {sessionforge.__version__}",
        "my notes",
    ]
    assert git(dest, "status", "--porcelain") == ""
    assert "existing git repository" in result.stdout


def test_force_into_a_dirty_repository_leaves_the_files_uncommitted(
    workdir: Path, git_identity: None
) -> None:
    dest = workdir / "svc"
    dest.mkdir()
    git(dest, "init", "--quiet")
    (dest / "notes.txt").write_text("mine\n")
    git(dest, "add", "notes.txt")
    git(dest, "commit", "--quiet", "-m", "my notes")
    (dest / "notes.txt").write_text("changed, not committed\n")
    result = run("new", "svc", "-y", "--force")
    assert result.exit_code == 0, result.output
    assert len(commits(dest)) == 1
    assert "uncommitted changes" in result.stderr
    status = git(dest, "status", "--porcelain")
    assert " M notes.txt" in status and "?? pyproject.toml" in status


def test_plain_copier_message_says_how_to_make_the_env(tmp_path: Path) -> None:
    dest = tmp_path / "svc"
    command = [sys.executable, "-m", "copier", "copy", "--defaults", "--data", "backend=mysql"]
    result = subprocess.run(
        [*command, str(REPO), str(dest)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert not (dest / ".env").exists()
    assert "cp .env.example .env" in result.stderr
    assert "docker compose up -d --wait mysql" in result.stderr


def test_force_still_checks_answers_first(workdir: Path) -> None:
    dest = workdir / "svc"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine\n")
    result = run("new", "svc", "--force", "--name", "bad.name")
    assert_refused(result, '"bad.name"')
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    assert_nothing_written(workdir, {"svc"})


def test_dest_that_is_a_file(workdir: Path) -> None:
    (workdir / "svc").write_text("x")
    result = run("new", "svc")
    assert_refused(result, "not a directory")


def test_missing_dest_is_a_usage_error() -> None:
    result = run("new")
    assert result.exit_code == 2


def test_debug_shows_the_exception(workdir: Path) -> None:
    result = run("new", "svc", "--mode", "nope", env={"SESSIONFORGE_DEBUG": "1"})
    assert result.exit_code != 0
    assert isinstance(result.exception, UsageError)


# --- new: interactive or not ----------------------------------------------------------


class _FakeWorker:
    answers_relpath = Path(".copier-answers.yml")

    class template:  # mimics copier.Worker.template
        message_after_copy = ""

    class answers:  # mimics copier.Worker.answers
        combined: ClassVar[dict[str, Any]] = {}


def _capture_run_copy(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake_run_copy(**kwargs: Any) -> _FakeWorker:
        seen.update(kwargs)
        Path(kwargs["dst_path"]).mkdir(parents=True)
        return _FakeWorker()

    monkeypatch.setattr(generate_mod, "run_copy", fake_run_copy)
    return seen


def test_terminal_without_defaults_prompts(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _capture_run_copy(monkeypatch)
    monkeypatch.setattr("sessionforge.cli._stdin_is_tty", lambda: True)
    result = run("new", "svc", "--mode", "sync")
    assert result.exit_code == 0, result.output
    assert seen["defaults"] is False
    assert seen["unsafe"] is False
    assert seen["data"] == {"mode": "sync"}
    # The folder name is offered as the default, not forced as the answer.
    assert seen["user_defaults"] == {"project_name": "svc"}


def test_terminal_offers_a_tidy_name_for_an_odd_folder(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _capture_run_copy(monkeypatch)
    monkeypatch.setattr("sessionforge.cli._stdin_is_tty", lambda: True)
    result = run("new", "my.service")
    assert result.exit_code == 0, result.output
    assert seen["user_defaults"] == {"project_name": "my-service"}


@pytest.mark.parametrize(
    ("folder", "name"),
    [("svc", "svc"), ("my.service", "my-service"), ("über app", "ber app"), ("...", "service")],
)
def test_suggest_name(folder: str, name: str) -> None:
    assert generate_mod.suggest_name(folder) == name


def test_terminal_with_defaults_does_not_prompt(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _capture_run_copy(monkeypatch)
    monkeypatch.setattr("sessionforge.cli._stdin_is_tty", lambda: True)
    result = run("new", "svc", "--defaults")
    assert result.exit_code == 0, result.output
    assert seen["defaults"] is True
    assert seen["data"] == {"project_name": "svc"}


# --- --check --------------------------------------------------------------------------


def test_check_runs_after_generation(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def fake_run_check(dest: Path, console: Console, **_: Any) -> bool:
        calls.append(dest)
        assert (dest / ".copier-answers.yml").is_file()
        return True

    monkeypatch.setattr(check_mod, "run_check", fake_run_check)
    result = run("new", "svc", "--check", "--backend", "postgres")
    assert result.exit_code == 0, result.output
    assert calls == [workdir / "svc"]
    # The next steps still follow: which servers, which settings.
    assert "Next steps" in result.stdout
    assert "docker compose up -d --wait postgres" in result.stdout
    assert ".env is written" in result.stdout


def test_check_failure_exits_1(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check_mod, "run_check", lambda *a, **k: False)
    result = run("new", "svc", "--check", "--backend", "redis", "--database", "mysql")
    assert result.exit_code == 1
    assert "--check failed" in result.stderr
    assert (workdir / "svc" / ".copier-answers.yml").is_file()  # the project stays
    # What the failing tests may have lacked: the servers to start, the settings.
    assert "Next steps" in result.stdout
    assert "docker compose up -d --wait redis mysql" in result.stdout


def _console() -> tuple[Console, Any]:
    import io

    buffer = io.StringIO()
    return Console(file=buffer, width=200, force_terminal=False), buffer


def test_run_check_steps_with_uv(tmp_path: Path) -> None:
    seen: list[tuple[list[str], Path, dict[str, str]]] = []

    def runner(argv: Any, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
        seen.append((list(argv), cwd, env))
        return 0, "collected 3 items\n\n3 passed in 0.5s\n"

    console, buffer = _console()
    assert check_mod.run_check(tmp_path, console, runner=runner, uv="/bin/uv")
    argvs = [argv for argv, _, _ in seen]
    assert argvs[0][:2] == ["/bin/uv", "venv"]
    assert argvs[1][:3] == ["/bin/uv", "pip", "install"]
    assert argvs[1][-2:] == ["-e", ".[dev]"]
    assert argvs[2][-2:] == ["-m", "pytest"]
    assert all(cwd == tmp_path for _, cwd, _ in seen)
    assert seen[2][2]["VIRTUAL_ENV"] == str(tmp_path / ".venv")
    text = buffer.getvalue()
    for n in (1, 2, 3):
        assert f"[{n}/3]" in text
    assert "3 passed" in text


def test_run_check_without_uv_uses_venv_and_pip(tmp_path: Path) -> None:
    steps = check_mod.plan(tmp_path, None)
    assert steps[0].argv[1:3] == ["-m", "venv"]
    assert steps[1].argv[1:4] == ["-m", "pip", "install"]


def test_run_check_stops_and_shows_the_failing_output(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def runner(argv: Any, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
        seen.append(list(argv))
        if len(seen) == 2:
            return 1, "ERROR: No matching distribution found for nothing-here\n"
        return 0, ""

    console, buffer = _console()
    assert not check_mod.run_check(tmp_path, console, runner=runner, uv="/bin/uv")
    assert len(seen) == 2  # the tests did not run
    text = buffer.getvalue()
    assert "failed" in text
    assert "No matching distribution found for nothing-here" in text


# --- update ---------------------------------------------------------------------------


def test_update_needs_an_answers_file(workdir: Path) -> None:
    result = run("update", str(workdir))
    assert result.exit_code == 1
    assert ".copier-answers.yml" in result.stderr
    assert TRACEBACK not in result.output


def test_update_reports_copier_refusals_plainly(workdir: Path) -> None:
    assert run("new", "svc", "-y", "--no-git").exit_code == 0
    # Not a git repository: Copier refuses to update, and we say why, without a traceback.
    result = run("update", "svc", "--defaults")
    assert result.exit_code == 1, result.output
    assert re.search(r"git", result.stderr)
    assert TRACEBACK not in result.output


def test_update_failing_in_copier_exits_1(workdir: Path) -> None:
    assert run("new", "svc", "-y", "--no-git").exit_code == 0
    answers_file = workdir / "svc" / ".copier-answers.yml"
    answers_file.write_text(answers_file.read_text() + "_commit: v0.0.0-nowhere\n")
    # Not a git repository, and a commit the template does not have: Copier refuses.
    result = run("update", "svc", "--defaults")
    assert result.exit_code == 1, result.output
    assert "Error: " in result.stderr
    assert TRACEBACK not in result.output


def test_interrupt_leaves_nothing(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(**kwargs: Any) -> None:
        Path(kwargs["dst_path"]).mkdir(parents=True)
        (Path(kwargs["dst_path"]) / "half.txt").write_text("x")
        raise KeyboardInterrupt

    monkeypatch.setattr(generate_mod, "run_copy", interrupted)
    result = run("new", "a/svc")
    assert result.exit_code == 1
    assert "Aborted" in result.stderr
    assert_nothing_written(workdir, set())


def test_missing_template_is_reported(workdir: Path) -> None:
    result = run("new", "svc", env={"SESSIONFORGE_TEMPLATE": str(workdir / "nowhere")})
    assert result.exit_code == 1
    assert "copier.yml" in result.stderr
    assert not (workdir / "svc").exists()


def test_packaged_template_dir_is_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionforge import template as template_mod

    packaged = tmp_path / "_template"
    packaged.mkdir()
    (packaged / "copier.yml").write_text("q: 1\n")
    monkeypatch.delenv("SESSIONFORGE_TEMPLATE", raising=False)
    monkeypatch.setattr(template_mod, "_PACKAGED", packaged)
    assert template_mod.template_root() == packaged
    monkeypatch.setattr(template_mod, "_PACKAGED", tmp_path / "missing")
    assert template_mod.template_root() == REPO
