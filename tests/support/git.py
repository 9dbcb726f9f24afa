"""git with a fixed identity and no user or system configuration, and template repositories.

Copier runs git too (for its own temporary commits): tests that update projects set
``GIT_ENV`` in the environment (tests/conftest.py has a fixture for it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sessionforge.history import TEMPLATE_PATHS
from tests.support.paths import REPO

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Update Test",
    "GIT_AUTHOR_EMAIL": "update-test@localhost",
    "GIT_COMMITTER_NAME": "Update Test",
    "GIT_COMMITTER_EMAIL": "update-test@localhost",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"git {' '.join(args)} in {cwd}: {proc.stderr}"
    return proc.stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--no-verify", "-m", message)


def copy_template(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in TEMPLATE_PATHS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=IGNORE)
        elif source.is_file():
            shutil.copy2(source, dest / name)
    return dest
