"""Updating generated projects: `copier update`, `sessionforge update`, answer migrations.

Nothing here depends on tags of this repository: each test builds its own git repository of
the template (copier.yml, template/, copier_tasks/ copied from the working tree) with two
tagged versions, v1.0.0 (the template as it is) and v2.0.0 (changes in files that the
user edits too), generates a project from v1.0.0, commits user edits and updates it.

git runs with its identity in the environment and without the user's or the system's git
configuration (Copier runs git too, for its own temporary commits).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from typer.testing import CliRunner

import sessionforge
from sessionforge import template as template_mod
from sessionforge.cli import app
from sessionforge.history import build_history, bundle_tags
from tests.support.combos import Combo
from tests.support.git import GIT_ENV, IGNORE, commit_all, copy_template, git
from tests.support.rendering import tree
from tests.support.running import run_project_tests
from tests.support.wheels import _clean_env, _run, build_wheel, install_wheel

REPO = Path(__file__).resolve().parent.parent
V1, V2 = "v1.0.0", "v2.0.0"
SESSION = Combo("async", "sqlite", "sqlite", "session", True)
CONFLICT = re.compile(r"^(<{7}|>{7})( |$)", re.MULTILINE)

# Template v2 (what a later release changes) ...
V2_DOC = "# Template v2: one endpoint reports every server this service needs."
V2_SETTING = '    log_level: str = "info"'
V2_FILE = "UPGRADING.md"
# ... and the user's own edits.
USER_ROUTE = '@router.get("/health", summary="Liveness and dependencies")'
USER_SETTING = "session_absolute_timeout: int = Field(default=28800, gt=0)"
USER_MODULE = '"""Added by the user."""\n\n\ndef answer() -> int:\n    return 42\n'
USER_TEST = (
    '"""Added by the user."""\n\nfrom {pkg}.extra import answer\n\n\n'
    "def test_answer() -> None:\n    assert answer() == 42\n"
)


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SESSIONFORGE_TEMPLATE", raising=False)


def edit(path: Path, old: str | re.Pattern[str], new: str) -> None:
    """Replace exactly one occurrence of *old* in *path*."""
    text = path.read_text(encoding="utf-8")
    if isinstance(old, str):
        assert text.count(old) == 1, f"{path}: {old!r} found {text.count(old)} times"
        text = text.replace(old, new)
    else:
        text, count = old.subn(new, text, count=1)
        assert count == 1, f"{path}: {old.pattern!r} not found"
    path.write_text(text, encoding="utf-8")


def src_file(repo: Path, name: str) -> Path:
    return repo / "template" / "src" / "{{package_name}}" / name


def change_template_v2(repo: Path) -> None:
    """v2: a comment atop health.py, a new setting, a new file (files the user edits too)."""
    edit(
        src_file(repo, "health.py.jinja"),
        # After the file's docstring (and the Jinja comment atop it, if any).
        re.compile(r"\A((?:\{#.*?#\}\n)?\"\"\".*?\"\"\"\n)", re.DOTALL),
        rf"\1{V2_DOC}\n",
    )
    edit(
        src_file(repo, "config.py.jinja"),
        re.compile(r"^(    environment: .*\n)", re.MULTILINE),
        rf"\1{V2_SETTING}\n",
    )
    (repo / "template" / V2_FILE).write_text("# Upgrading\n\nTemplate v2 added this file.\n")


def template_repo(
    root: Path, v2_change: Callable[[Path], None] = change_template_v2, *, v2: bool = True
) -> Path:
    """A git repository of the template: tag v1.0.0, then (*v2*) *v2_change* tagged v2.0.0."""
    repo = copy_template(root / "template-repo")
    # The version each commit releases (sessionforge.history reads it from here).
    (repo / "pyproject.toml").write_text('[project]\nname = "t"\nversion = "1.0.0"\n')
    git(repo, "init", "--quiet")
    commit_all(repo, "template v1")
    git(repo, "tag", V1)
    if v2:
        v2_change(repo)
        set_version(repo, "2.0.0")
        commit_all(repo, "template v2")
        git(repo, "tag", V2)
    return repo


def answers_of(project: Path) -> dict[str, Any]:
    data = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def user_answers(answers: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answers.items() if not k.startswith("_")}


def generate_v1(repo: Path, project: Path, answers: dict[str, Any]) -> None:
    copier.run_copy(
        str(repo), project, data=answers, vcs_ref=V1, defaults=True, unsafe=False, quiet=True
    )
    git(project, "init", "--quiet")
    commit_all(project, "generated from the template")


def package_dir(project: Path) -> Path:
    return project / "src" / str(answers_of(project)["package_name"])


def make_user_edits(project: Path) -> None:
    """A changed route, an added module (with a test), a changed setting; committed."""
    package = package_dir(project)
    edit(package / "health.py", '@router.get("/health")', USER_ROUTE)
    edit(
        package / "config.py",
        "session_absolute_timeout: int = Field(default=43200, gt=0)",
        USER_SETTING,
    )
    (package / "extra.py").write_text(USER_MODULE)
    (project / "tests" / "test_extra.py").write_text(USER_TEST.format(pkg=package.name))
    commit_all(project, "user edits")


def assert_user_edits_kept(
    project: Path, first_commit: str = "generated from the template"
) -> None:
    package = package_dir(project)
    assert USER_ROUTE in (package / "health.py").read_text()
    assert USER_SETTING in (package / "config.py").read_text()
    assert (package / "extra.py").read_text() == USER_MODULE
    assert (project / "tests" / "test_extra.py").read_text() == USER_TEST.format(pkg=package.name)
    # The project's own history is untouched: Copier merges into the work tree only.
    assert git(project, "log", "--format=%s").split("\n")[:2] == ["user edits", first_commit]


def assert_v2_changes_present(project: Path) -> None:
    package = package_dir(project)
    assert V2_DOC in (package / "health.py").read_text()
    assert V2_SETTING in (package / "config.py").read_text()
    assert (project / V2_FILE).is_file()


def conflicted_files(project: Path) -> list[str]:
    return sorted(
        str(p.relative_to(project))
        for p in project.rglob("*")
        if p.is_file() and ".git" not in p.parts and CONFLICT.search(p.read_text(errors="replace"))
    )


# --------------------------------------------------------------------------- copier update


def test_copier_update_merges_template_changes_into_user_edits(tmp_path: Path) -> None:
    repo = template_repo(tmp_path)
    project = tmp_path / "project"
    generate_v1(repo, project, SESSION.answers())
    v1_answers = answers_of(project)
    assert v1_answers["_commit"] == V1
    assert v1_answers["_src_path"] == str(repo)
    make_user_edits(project)

    copier.run_update(project, defaults=True, overwrite=True, unsafe=False, quiet=True)

    answers = answers_of(project)
    assert answers["_commit"] == V2
    assert answers["_src_path"] == str(repo)
    assert user_answers(answers) == user_answers(v1_answers)
    assert_user_edits_kept(project)
    assert_v2_changes_present(project)
    assert conflicted_files(project) == []
    run_project_tests(project, SESSION)


def test_copier_update_with_a_changed_answer(tmp_path: Path) -> None:
    repo = template_repo(tmp_path)
    project = tmp_path / "project"
    generate_v1(repo, project, SESSION.answers())
    make_user_edits(project)
    package = package_dir(project)
    assert (package / "sessions" / "middleware.py").is_file()
    assert not (package / "auth" / "tokens.py").exists()
    initial = "migrations/versions/0001_initial.py"
    ran = (project / initial).read_bytes()  # what a deployed database already ran

    copier.run_update(
        project, data={"auth": "jwt"}, defaults=True, overwrite=True, unsafe=False, quiet=True
    )

    answers = answers_of(project)
    assert answers["auth"] == "jwt"
    assert answers["_commit"] == V2
    assert not (package / "sessions" / "middleware.py").exists()
    assert (package / "auth" / "tokens.py").is_file()
    assert_user_edits_kept(project)
    assert_v2_changes_present(project)
    assert conflicted_files(project) == []
    # Consistent: apart from the user's edits, the project is exactly what a first copy
    # with the new answer gives (so are its migration and its tests, which the matrix runs
    # for that combination): no file of the old option left, none of the new one missing.
    fresh = tmp_path / "fresh"
    copier.run_copy(
        str(repo), fresh, data={**SESSION.answers(), "auth": "jwt"}, defaults=True, quiet=True
    )
    added = {f"src/{package.name}/extra.py", "tests/test_extra.py"}
    edited = {f"src/{package.name}/health.py", f"src/{package.name}/config.py"}
    # ... except the migration chain: the initial migration stays as the database ran it,
    # and a new one takes the tables to the new answer (the answers file records why).
    # It follows the template's own steps, which a first copy has all of.
    steps = [name for name in tree(fresh) if name.startswith("migrations/versions/")]
    change = f"migrations/versions/{len(steps) + 1:04d}_auth_jwt.py"
    assert tree(project) - added == tree(fresh) | {change}
    assert (project / initial).read_bytes() == ran
    assert 'op.drop_table("sessions")' in (project / change).read_text()
    assert [step["auth"] for step in answers["schema_history"]] == ["session", "jwt"]
    for name in sorted(tree(fresh) - edited - {initial, ".copier-answers.yml"}):
        assert (project / name).read_bytes() == (fresh / name).read_bytes(), name
    # The edited settings file got the new option's settings too.
    config = (package / "config.py").read_text()
    assert "access_token_lifetime" in config and "cookie_secure" not in config


# --------------------------------------------------------------------------- sessionforge update


def install_sessionforge(
    monkeypatch: pytest.MonkeyPatch, place: Path, template: Path, version: str, repo: Path
) -> Path:
    """Make the running sessionforge look like an installed *version*: packaged template
    and history bundle under *place* (as the wheel lays them out), built from *template*
    (the working files) and the tags of *repo*."""
    package = place / "sessionforge"
    packaged = package / "_template"
    packaged.mkdir(parents=True)
    shutil.copy2(template / "copier.yml", packaged / "copier.yml")
    shutil.copytree(template / "template", packaged / "template", ignore=IGNORE)
    build_history(package / "_history.bundle", template=template, version=version, repo=repo)
    monkeypatch.setattr(template_mod, "_PACKAGED", packaged)
    monkeypatch.setattr(sessionforge, "__version__", version)
    return package / "_history.bundle"


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_sessionforge_update_from_the_packaged_history_with_a_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def conflicting_v2(repo: Path) -> None:
        change_template_v2(repo)
        edit(src_file(repo, "config.py.jinja"), "default=1800,", "default=3600,")

    repo = template_repo(tmp_path, v2=False)
    # Installed 1.0.0: `new` records its bundle and tag.
    first = install_sessionforge(monkeypatch, tmp_path / "site-1", repo, "1.0.0", repo)
    assert bundle_tags(first) == [V1]
    monkeypatch.chdir(tmp_path)
    result = cli("new", "project", "--defaults")
    assert result.exit_code == 0, result.output
    project = tmp_path / "project"
    assert answers_of(project)["_commit"] == V1
    # Not the installation's path: it goes with the installation.
    assert answers_of(project)["_src_path"] == "sessionforge"
    v1_answers = answers_of(project)
    # `new` made it a repository with one commit.
    assert git(project, "log", "--format=%s").splitlines() == ["Generated by sessionforge 1.0.0"]
    assert git(project, "status", "--porcelain") == ""
    make_user_edits(project)
    config = package_dir(project) / "config.py"
    edit(config, "Field(default=1800, gt=0)", "Field(default=900, gt=0)")
    commit_all(project, "user edits")

    # Then 2.0.0 is installed somewhere else, and the first installation is gone.
    conflicting_v2(repo)
    set_version(repo, "2.0.0")
    commit_all(repo, "template v2")
    shutil.rmtree(tmp_path / "site-1")
    second = install_sessionforge(monkeypatch, tmp_path / "site-2", repo, "2.0.0", repo)
    assert bundle_tags(second) == [V1, V2]

    result = cli("update", str(project), "--defaults")
    # Files left with conflicts: listed, then exit 1 with one line.
    assert result.exit_code == 1, result.output
    assert f"from template {V1} to {V2}" in result.output
    assert "package_name" not in result.output
    # The conflicting setting holds both sides between markers, and is reported.
    assert conflicted_files(project) == [str(config.relative_to(project))]
    assert "Conflicts" in result.stdout and "config.py" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: 1 file left with conflicts: resolve them, review the changes with "
        "`git diff`, then commit."
    ]
    assert "Traceback" not in result.output
    text = config.read_text()
    assert "default=900" in text and "default=3600" in text
    # Everything else merged.
    assert_v2_changes_present(project)
    assert USER_ROUTE in (package_dir(project) / "health.py").read_text()
    assert (package_dir(project) / "extra.py").read_text() == USER_MODULE
    answers = answers_of(project)
    assert answers["_commit"] == V2
    assert answers["_src_path"] == "sessionforge"
    assert user_answers(answers) == user_answers(v1_answers)


def test_sessionforge_update_refuses_an_unknown_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = template_repo(tmp_path, v2=False)
    install_sessionforge(monkeypatch, tmp_path / "site", repo, "1.0.0", repo)
    monkeypatch.chdir(tmp_path)
    assert cli("new", "project", "--defaults").exit_code == 0
    answers_file = tmp_path / "project" / ".copier-answers.yml"
    answers_file.write_text(answers_file.read_text().replace(f"_commit: {V1}", "_commit: v9.0.0"))
    git(tmp_path / "project", "init", "--quiet")
    commit_all(tmp_path / "project", "recorded a version this sessionforge does not know")
    result = cli("update", "project", "--defaults")
    assert result.exit_code == 1
    assert "v9.0.0" in result.stderr and V1 in result.stderr


def test_sessionforge_update_without_a_recorded_version(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / ".copier-answers.yml").write_text("_src_path: /somewhere/_template\nmode: sync\n")
    result = cli("update", str(project), "--defaults")
    assert result.exit_code == 1
    assert "_commit" in result.stderr
    assert "Traceback" not in result.output


def sessionforge_source(dest: Path, version: str) -> Path:
    """This repository's files as a source tree of sessionforge *version*."""
    copy_template(dest)
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md", "hatch_build.py"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(
        REPO / "generator",
        dest / "generator",
        ignore=shutil.ignore_patterns("_template", "*.bundle", "__pycache__", "*.pyc"),
    )
    set_version(dest, version)
    return dest


def set_version(source: Path, version: str) -> None:
    edit(source / "pyproject.toml", re.compile(r'^version = ".*"$', re.M), f'version = "{version}"')


def test_sessionforge_update_after_installing_a_newer_wheel(tmp_path: Path) -> None:
    """No clone anywhere: sessionforge 1.0.0 generates, sessionforge 2.0.0 (installed in
    another environment, the first one removed) updates."""
    env = _clean_env()
    source = sessionforge_source(tmp_path / "source", "1.0.0")
    git(source, "init", "--quiet")
    commit_all(source, "sessionforge 1.0.0")
    git(source, "tag", V1)
    wheel_1 = build_wheel(source, tmp_path / "dist-1", env)
    change_template_v2(source)
    set_version(source, "2.0.0")
    commit_all(source, "sessionforge 2.0.0")
    wheel_2 = build_wheel(source, tmp_path / "dist-2", env)
    shutil.rmtree(source)

    work = tmp_path / "work"
    work.mkdir()
    sessionforge_1 = install_wheel(wheel_1, tmp_path / "venv-1", env)
    _run([sessionforge_1, "new", "project", "--defaults"], env=env, cwd=work)
    project = work / "project"
    v1_answers = answers_of(project)
    assert v1_answers["_commit"] == V1
    # `new` made it a repository with one commit.
    assert git(project, "log", "--format=%s").splitlines() == ["Generated by sessionforge 1.0.0"]
    make_user_edits(project)
    shutil.rmtree(tmp_path / "venv-1")

    sessionforge_2 = install_wheel(wheel_2, tmp_path / "venv-2", env)
    result = _run(
        [sessionforge_2, "update", "project"], env=env, cwd=work, stdin=subprocess.DEVNULL
    )
    assert f"from template {V1} to {V2}" in " ".join(result.stdout.split())

    answers = answers_of(project)
    assert answers["_commit"] == V2
    assert answers["_src_path"] == "sessionforge"
    assert user_answers(answers) == user_answers(v1_answers)
    assert_user_edits_kept(project, first_commit="Generated by sessionforge 1.0.0")
    assert_v2_changes_present(project)
    assert conflicted_files(project) == []


def test_sessionforge_update_checks_changed_answers_first(tmp_path: Path) -> None:
    result = cli("update", str(tmp_path), "--data", "auth=bogus")
    assert result.exit_code == 2
    assert "bogus" in result.stderr
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- migrations


def rename_example_api(repo: Path) -> None:
    """v2 renames the question `example_api` to `shop_example`, with a migration."""
    for path in sorted((repo / "template").rglob("*"), reverse=True):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if "example_api" in text:
                path.write_text(text.replace("example_api", "shop_example"), encoding="utf-8")
        if "example_api" in path.name:
            path.rename(path.with_name(path.name.replace("example_api", "shop_example")))
    copier_yml = repo / "copier.yml"
    edit(copier_yml, re.compile(r"^example_api:", re.MULTILINE), "shop_example:")
    copier_yml.write_text(copier_yml.read_text().replace("example_api", "shop_example"))
    migration = (
        "_migrations:\n"
        f"  - version: {V2}\n"
        "    when: \"{{ _stage == 'before' }}\"\n"
        '    command: ["{{ _copier_python }}", '
        '"{{ _copier_conf.src_path }}/copier_tasks/rename_answers.py", '
        '"{{ _copier_conf.answers_file }}", "example_api=shop_example"]\n'
    )
    edit(copier_yml, re.compile(r"^_migrations: \[\]\n", re.MULTILINE), migration)


@pytest.mark.parametrize("migrate", [True, False], ids=["migration", "no-migration"])
def test_answer_rename_migration(tmp_path: Path, migrate: bool) -> None:
    def v2(repo: Path) -> None:
        rename_example_api(repo)
        if not migrate:  # the control: without the migration the answer is lost
            edit(repo / "copier.yml", re.compile(r"^_migrations:\n(  .*\n)+", re.M), "")

    repo = template_repo(tmp_path, v2)
    project = tmp_path / "project"
    generate_v1(repo, project, {"project_name": "renamed", "example_api": False})
    assert not (project / "src" / "renamed" / "shop").exists()

    # Migrations run commands: Copier wants trust (sessionforge trusts its own template).
    copier.run_update(project, defaults=True, overwrite=True, unsafe=True, quiet=True)

    answers = answers_of(project)
    assert answers["_commit"] == V2
    assert "example_api" not in answers
    if migrate:
        assert answers["shop_example"] is False
        assert not (project / "src" / "renamed" / "shop").exists()
    else:
        assert answers["shop_example"] is True  # the new question's default
        assert (project / "src" / "renamed" / "shop").is_dir()


def test_rename_answers_script(tmp_path: Path) -> None:
    answers = tmp_path / ".copier-answers.yml"
    answers.write_text("# header\n_commit: v1\nexample_api: false\nmode: sync\n")
    script = REPO / "copier_tasks" / "rename_answers.py"
    for _ in range(2):  # idempotent
        subprocess.run(
            [sys.executable, str(script), str(answers), "example_api=shop", "gone=x"], check=True
        )
        assert answers.read_text() == "# header\n_commit: v1\nshop: false\nmode: sync\n"
    bad = subprocess.run([sys.executable, str(script), str(answers)], capture_output=True)
    assert bad.returncode == 2
