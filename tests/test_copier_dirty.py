"""Plain `copier copy` from a clone with local changes renders every file.

Copier renders a dirty template repository by committing its work tree with
`git add -A`, which skips ignored files: a template file that a .gitignore of
the repository matches (as template/.gitignore's `.env.*` once matched
template/.env.example.jinja) silently goes missing from the project.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import copier
import pytest

REPO = Path(__file__).resolve().parent.parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Dirty Clone Test",
    "GIT_AUTHOR_EMAIL": "dirty-clone@localhost",
    "GIT_COMMITTER_NAME": "Dirty Clone Test",
    "GIT_COMMITTER_EMAIL": "dirty-clone@localhost",
}


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)} in {cwd}: {proc.stderr}"
    return proc.stdout


def template_files() -> list[str]:
    """The template's files that git tracks here (staged changes included)."""
    tracked = git(REPO, "ls-files", "-z", "--cached", "--", "copier.yml", "template")
    return [name for name in tracked.split("\0") if name and (REPO / name).is_file()]


def clone_with_this_template(dest: Path) -> Path:
    """A clone of this repository whose template is that of this work tree, committed
    (the state it would be in once these changes are pushed and cloned)."""
    git(dest.parent, "clone", "--quiet", "--no-local", str(REPO), str(dest))
    shutil.rmtree(dest / "template")
    files = template_files()
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)
    # --force: tracked files are in a clone whatever a .gitignore says.
    git(dest, "add", "--all", "--force", "--", "copier.yml", "template")
    if git(dest, "status", "--porcelain"):
        git(dest, "commit", "--quiet", "--no-verify", "-m", "this work tree's template")
    return dest


def test_no_template_file_is_ignored_by_git() -> None:
    """No .gitignore of this repository matches a file of template/."""
    files = template_files()
    assert files
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-z", "-v"],
        cwd=REPO,
        input="\0".join(files),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: nothing ignored
    assert proc.stdout == "", proc.stdout.replace("\0", " ")


@pytest.mark.fast
def test_copier_copy_from_a_dirty_clone_renders_every_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    clone = clone_with_this_template(tmp_path / "clone")
    # A local change: Copier now renders the work tree (`git add -A` into a draft commit).
    readme = clone / "template" / "README.md.jinja"
    readme.write_text(readme.read_text(encoding="utf-8") + "\nA local change.\n")
    assert git(clone, "status", "--porcelain")

    dst = tmp_path / "my-service"
    copier.run_copy(
        str(clone),
        dst,
        defaults=True,
        data={"project_name": "my-service"},
        unsafe=False,
        quiet=True,
    )
    assert "A local change." in (dst / "README.md").read_text(encoding="utf-8")
    for name in (".env.example", ".gitignore", ".dockerignore", ".copier-answers.yml"):
        assert (dst / name).is_file(), f"{name} missing from a render of a dirty clone"
    assert ".env\n" in (dst / ".gitignore").read_text(encoding="utf-8")
    # Copier rendered a draft commit that exists nowhere else: none is recorded, and the
    # after-copy message says why.
    answers = (dst / ".copier-answers.yml").read_text(encoding="utf-8")
    assert "_commit:" not in answers
    assert "_src_path:" in answers


@pytest.mark.fast
def test_copier_copy_from_a_clean_clone_records_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    clone = clone_with_this_template(tmp_path / "clone")
    head = git(clone, "rev-parse", "--short", "HEAD").strip()
    dst = tmp_path / "my-service"
    copier.run_copy(str(clone), dst, defaults=True, data={"project_name": "s"}, quiet=False)
    answers = (dst / ".copier-answers.yml").read_text(encoding="utf-8")
    assert f"_commit: {head}" in answers or f"-g{head}" in answers, answers
    captured = capsys.readouterr()
    assert "Next steps" in captured.out + captured.err
    assert "uncommitted changes" not in captured.out + captured.err


@pytest.mark.fast
def test_a_dirty_clone_is_told_in_the_after_copy_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    clone = clone_with_this_template(tmp_path / "clone")
    (clone / "template" / "NOTES.md").write_text("A local file.\n")
    dst = tmp_path / "my-service"
    copier.run_copy(str(clone), dst, defaults=True, data={"project_name": "s"}, quiet=False)
    captured = capsys.readouterr()
    out = " ".join((captured.out + captured.err).split())
    assert "The template had uncommitted changes" in out
    assert "_commit:" not in (dst / ".copier-answers.yml").read_text(encoding="utf-8")
