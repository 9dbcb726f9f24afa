"""Rendering the template, and checks of a rendered tree."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import copier

from tests.support.combos import SQL_DATABASES, Combo
from tests.support.paths import REPO

ALLOWED_EMPTY = frozenset({"__init__.py", "py.typed", ".gitkeep"})
JINJA_LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|\{#")  # `${{ }}` is GitHub Actions, not Jinja


def template_copy(dst: Path, subdirectory: str = "template") -> Path:
    """copier.yml and the template folder into *dst*, as they are on disk.

    Rendering from a plain folder makes Copier use the files as they are on disk, with
    uncommitted edits, instead of cloning the repository's HEAD.
    """
    shutil.copy2(REPO / "copier.yml", dst / "copier.yml")
    shutil.copytree(
        REPO / subdirectory,
        dst / subdirectory,
        ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", ".pytest_cache"
        ),
    )
    return dst


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


def tree(root: Path) -> set[str]:
    """The files under *root*, relative, without git's."""
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }
