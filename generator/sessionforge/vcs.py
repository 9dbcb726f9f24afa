"""`sessionforge new` and git: the generated project as a repository with one commit.

`sessionforge update` (Copier) needs a git repository with everything committed,
so `new` makes DEST one at once. The identity of that commit is the user's; on
a machine without one (`git config user.email` empty, no GIT_*_EMAIL or EMAIL in
the environment) sessionforge's own is used for that commit only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FALLBACK_NAME = "sessionforge"
FALLBACK_EMAIL = "sessionforge@localhost"
# Never committed, even where no .gitignore covers it: it holds SECRET_KEY.
_NEVER_COMMITTED = ".env"


@dataclass(frozen=True)
class Before:
    """DEST as git saw it before generating."""

    git: str | None  # the git executable, None when not installed
    repo_root: bool = False  # DEST is the top of an existing work tree
    clean: bool = True  # ... with nothing to commit (untracked files included)


def _git(git: str, cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        proc = subprocess.run(
            [git, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
    except OSError as exc:
        return 127, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _is_repo_root(git: str, path: Path) -> bool:
    if not path.is_dir():
        return False
    code, top = _git(git, path, "rev-parse", "--show-toplevel")
    if code != 0 or not top:
        return False
    try:
        return Path(top).resolve() == path.resolve()
    except OSError:
        return False


def inspect(dest: Path) -> Before:
    """Look at DEST before generating (it may not exist yet)."""
    git = shutil.which("git")
    if git is None:
        return Before(git=None)
    if not _is_repo_root(git, dest):
        return Before(git=git)
    code, status = _git(git, dest, "status", "--porcelain")
    return Before(git=git, repo_root=True, clean=code == 0 and not status)


def _identity_env(git: str, dest: Path) -> dict[str, str]:
    """The environment for the commit: a fallback identity only when there is none."""
    env = dict(os.environ)
    _code, email = _git(git, dest, "config", "user.email")
    if email.strip() or env.get("EMAIL"):
        return env
    for role in ("AUTHOR", "COMMITTER"):
        if not env.get(f"GIT_{role}_EMAIL"):
            env[f"GIT_{role}_EMAIL"] = FALLBACK_EMAIL
            env.setdefault(f"GIT_{role}_NAME", FALLBACK_NAME)
    return env


def _first_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith(("fatal:", "error:"))]
    return (errors or lines or ["no output"])[0]


def commit_generated(dest: Path, before: Before, message: str) -> tuple[bool, str]:
    """Commit the generated files in *dest*; return (ok, one line for the user).

    A new repository is made unless DEST already was the root of one; there the
    files are committed only if its tree was clean before generating.
    """
    if before.git is None:
        return False, (
            "git is not installed, so the project is not a git repository; "
            "`sessionforge update` will need one (git init, git add -A, git commit)."
        )
    git = before.git
    if before.repo_root and not before.clean:
        return False, (
            f"{dest} is a git repository that had uncommitted changes, so the generated "
            "files are left uncommitted: review them with `git status`, then commit."
        )
    created = not before.repo_root
    if created:
        code, output = _git(git, dest, "init", "--quiet")
        if code != 0:
            return False, f"git init failed ({_first_line(output)}): the project is not committed."
    code, output = _git(git, dest, "add", "--all")
    if code != 0:
        return False, f"git add failed ({_first_line(output)}): the project is not committed."
    _code, staged = _git(git, dest, "diff", "--cached", "--name-only", "--", _NEVER_COMMITTED)
    if staged:  # no .gitignore covered it
        _git(git, dest, "rm", "--cached", "--quiet", "--", _NEVER_COMMITTED)
    code, _ = _git(git, dest, "diff", "--cached", "--quiet")
    if code == 0:
        return True, "The generated files are already committed: nothing changed."
    env = _identity_env(git, dest)
    code, output = _git(git, dest, "commit", "--quiet", "--no-verify", "-m", message, env=env)
    if code != 0:
        return False, (
            f"git commit failed ({_first_line(output)}): the generated files are staged "
            "but not committed."
        )
    where = "a new git repository" if created else "the existing git repository"
    return True, f'Committed the generated files to {where}: "{message}".'
