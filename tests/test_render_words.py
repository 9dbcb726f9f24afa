"""Nothing in a render that its options make wrong or dead (marker ``render``).

For every option combination, the rendered project is checked twice:

- Words: per option, words that cannot apply to it (cookies and CSRF in a jwt project,
  Redis without Redis, MongoDB without MongoDB, logins/passwords/users without auth,
  carts/orders/products without the shop, row locks on SQLite) must not appear in
  ``src/``, ``README.md`` or ``SECURITY.md``, except on the lines of ``ALLOWED`` that a
  reader judged right.
- Dead code: ``vulture`` over the rendered ``src/`` and ``tests/`` finds nothing, apart
  from the names of ``tests/support/vulture_whitelist.py`` (what frameworks call or
  users are meant to call).

Rendering is the same as tests/test_matrix.py's: Copier, from a copy of the template made
once per session, into a temporary folder.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import copier
import pytest

from tests.support.combos import Combo, all_combos, load_config
from tests.support.vulture_whitelist import IGNORED_NAMES

REPO = Path(__file__).resolve().parent.parent
CONFIG = load_config(REPO / "copier.yml")
COMBOS = all_combos(CONFIG)


@dataclass(frozen=True)
class Rule:
    """Words (case-insensitive regexes) that cannot apply to the combinations of `when`."""

    name: str
    when: Callable[[Combo], bool]
    words: tuple[str, ...]

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("|".join(self.words), re.IGNORECASE)


RULES = (
    # COOKIE_SECURE needs no exception: jwt renders have no such setting.
    Rule("auth jwt", lambda c: c.auth == "jwt", (r"\bcookies?\b", r"\bcsrf")),
    # Names too: `redis_client`, `REDIS_URL`, `MongoDB`, `pymongo`.
    Rule("no Redis", lambda c: c.backend != "redis", (r"\bredis",)),
    Rule("no Mongo", lambda c: "mongo" not in (c.backend, c.database), (r"\b(?:py)?mongo",)),
    # Words only: `user_id`, `username` are the URL parser's or a column's.
    Rule(
        "auth none",
        lambda c: c.auth == "none",
        (r"\blog-?ins?\b", r"\blogged in\b", r"\bpasswords?\b", r"\busers?\b"),
    ),
    Rule(
        "no shop",
        lambda c: not c.example_api,
        (r"\bcarts?\b", r"\borders?\b", r"\bproducts?\b"),
    ),
    Rule(
        "SQLite",
        lambda c: c.database == "sqlite",
        (r"\brow[- ]?locks?\b", r"\brow-level lock", r"\brows? stays? locked\b"),
    ),
)


@dataclass(frozen=True)
class Allowed:
    rule: str
    path: str  # regex over the path relative to the project, the package folder as PKG
    line: str  # regex searched in the line
    reason: str


ALLOWED = (
    Allowed(
        "auth none",
        r"^(README|SECURITY)\.md$",
        r"unprivileged user \(uid",
        "the container's operating-system user, not an account",
    ),
    Allowed(
        "auth none",
        r"^(README\.md|src/PKG/database_url\.py|src/PKG/sessions/redis_client\.py)$",
        r"user\]?:password@|\bpassword(=|\b.*(masked|included))|wrong password, no such database"
        r"|\b(username|password)\b.*(partition|unquote|target\.password|str \| None)",
        "the password (and user) of a database or Redis URL",
    ),
    Allowed(
        "auth none",
        r"^src/PKG/(db_errors\.py|engine\.py|sessions/redis_errors\.py)$",
        r"\b(url|target)\.password\)$|parsed\[\"password\"\]\)$",
        "the password of a database or Redis URL, kept out of the outage's log line",
    ),
    Allowed(
        "auth jwt",
        r"^SECURITY\.md$",
        r"^cookie to ride along\.$",
        'the end of "there is no cookie to ride along": why CSRF does not apply to jwt',
    ),
    Allowed(
        "no Redis",
        r"^README\.md$",
        r"\(or Redis sessions with one of them\)",
        "advice for SQLite projects: the options to choose for several processes",
    ),
    Allowed(
        "no shop",
        r"^README\.md$",
        r"`SECRET_KEY` list \(same order\)",
        "order as in sequence: the keys' order",
    ),
    Allowed(
        "no shop",
        r"^src/PKG/pool\.py$",
        r"in the order they came",
        "order as in sequence: the queue of waiting requests",
    ),
)

TEXT_FILES = ("README.md", "SECURITY.md")


def word_hits(project: Path, combo: Combo) -> dict[str, list[str]]:
    """Per rule, the lines (`path:number: text`) with a word that cannot apply."""
    package = next((project / "src").iterdir()).name
    files = [p for p in sorted((project / "src").rglob("*.py"))]
    files += [project / name for name in TEXT_FILES if (project / name).is_file()]
    hits: dict[str, list[str]] = {}
    for rule in RULES:
        if not rule.when(combo):
            continue
        pattern = rule.pattern
        allowed = [a for a in ALLOWED if a.rule == rule.name]
        for path in files:
            rel = path.relative_to(project).as_posix().replace(f"src/{package}/", "src/PKG/", 1)
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not pattern.search(line):
                    continue
                if any(re.search(a.path, rel) and re.search(a.line, line) for a in allowed):
                    continue
                hits.setdefault(rule.name, []).append(f"{rel}:{number}: {line.strip()}")
    return hits


VULTURE_DECORATORS = (
    "@router.*",
    "@app.*",
    "@pytest.fixture",
    "@field_validator",
    "@model_validator",
    "@event.listens_for",
)


def dead_code(project: Path) -> list[str]:
    """vulture's findings over the project's src/ and tests/."""
    cmd = [
        sys.executable,
        "-m",
        "vulture",
        "src",
        "tests",
        "--min-confidence",
        "60",
        "--ignore-decorators",
        ",".join(VULTURE_DECORATORS),
        "--ignore-names",
        ",".join(IGNORED_NAMES),
    ]
    result = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=120)
    if result.returncode not in (0, 3):  # 3: dead code found
        raise RuntimeError(f"vulture failed ({result.returncode}):\n{result.stderr}")
    return result.stdout.splitlines()


@pytest.fixture(scope="session")
def template_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """copier.yml + the template as they are on disk (uncommitted edits included)."""
    src = tmp_path_factory.mktemp("template-src")
    shutil.copy2(REPO / "copier.yml", src / "copier.yml")
    subdirectory = str(CONFIG.get("_subdirectory") or "template")
    shutil.copytree(
        REPO / subdirectory,
        src / subdirectory,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache"),
    )
    return src


@pytest.mark.render
@pytest.mark.parametrize("combo", [pytest.param(c, id=c.id) for c in COMBOS])
def test_render_words_and_dead_code(template_src: Path, tmp_path: Path, combo: Combo) -> None:
    project = tmp_path / "project"
    copier.run_copy(
        str(template_src), project, data=combo.answers(), defaults=True, unsafe=False, quiet=True
    )
    problems = [
        f"[{rule}] {hit}" for rule, hits in word_hits(project, combo).items() for hit in hits
    ]
    problems += [f"[dead code] {line}" for line in dead_code(project)]
    assert not problems, f"{combo.id} ({project}):\n" + "\n".join(problems)
