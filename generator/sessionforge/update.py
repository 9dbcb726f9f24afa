"""`sessionforge update`: merge a newer template version into a generated project.

Copier does the work (``copier update``): it renders the version the project came from
(``_commit`` in ``.copier-answers.yml``) and the new one, and merges their difference
into the project, so the user's own edits stay, and conflicts show as inline markers.

Projects made by ``sessionforge new`` record ``_src_path: sessionforge``: they are updated
from the template history of the sessionforge running now (see ``sessionforge.history``),
which holds every template commit since 0.1.0 under the names projects record. Projects
of 0.1.0 recorded the path of their installation's bundle instead; it is treated the same.
Copier's public API offers no way to give the old version a source other than the
recorded one (``run_update`` has no ``src_path``), so for these projects the update runs
through Copier's ``Worker`` with the recorded source replaced in memory. Every other
project (``copier copy`` from a git URL or checkout) gets a plain ``copier update``.

Answer changes are checked first: the data database cannot change (its data would have to
move between servers); a change that drops tables with user data is announced.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from copier import run_update
from copier.errors import CopierError, UnsafeTemplateError, UserMessageError
from packaging.version import InvalidVersion, Version

from sessionforge.errors import SessionforgeError, UsageError
from sessionforge.history import (
    DIRTY_SUFFIX,
    SOURCE_MARKER,
    HistoryError,
    base_version,
    bundle_tags,
    bundle_tip,
    is_history_path,
)
from sessionforge.template import record_source, template_history, template_root

ANSWERS_FILE = ".copier-answers.yml"
SQL = ("sqlite", "postgres", "mysql")


@dataclass
class Updated:
    """What `update_project` did."""

    dest: Path
    old: str
    new: str
    conflicts: list[str] = field(default_factory=list)
    #: What the answer changes do to the database (tables dropped, sessions ended).
    notices: list[str] = field(default_factory=list)
    #: The CHANGELOG sections of the versions this update brings in, oldest first.
    changes: list[str] = field(default_factory=list)
    #: Alembic migrations the update added (`alembic upgrade head` runs them).
    migrations: list[str] = field(default_factory=list)


def read_answers(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SessionforgeError(f"Cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _no_commit_error(answers_file: Path, src_path: str) -> SessionforgeError:
    if is_history_path(src_path) or src_path.endswith("_template"):
        how = (
            "it was generated from a sessionforge checkout with uncommitted template changes, "
            "or by a sessionforge that did not record it"
        )
    else:
        how = "it was generated from a template that is not a git repository"
    return SessionforgeError(
        f"{answers_file} records no template version (_commit): {how}, so there is no old "
        "version to merge from. Generate the project again with this sessionforge and copy "
        "your changes over, or add `_commit: <the version it was made from>` to that file "
        "and commit it."
    )


def _git(dest: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=dest, capture_output=True, text=True, check=False)


def _require_clean_repo(dest: Path) -> None:
    try:
        inside = _git(dest, "rev-parse", "--is-inside-work-tree")
    except OSError as exc:
        raise SessionforgeError(f"git could not be run ({exc}): updating needs git.") from exc
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise SessionforgeError(
            f"{dest} is not a git repository: run `git init && git add -A && git commit -m "
            '"Generated project"` in it first, so the update can merge and you can review it.'
        )
    if _git(dest, "rev-parse", "--verify", "--quiet", "HEAD").returncode != 0:
        raise SessionforgeError(
            f"{dest} has no commit yet: commit the project (`git add -A && git commit`) first."
        )
    if _git(dest, "status", "--porcelain", "--untracked-files=normal").stdout.strip():
        raise SessionforgeError(
            f"{dest} has uncommitted changes: commit or stash them (`git stash -u`), then run "
            "`sessionforge update` again."
        )


def _conflicts(dest: Path) -> list[str]:
    """Files that Copier left unmerged (with conflict markers), relative to *dest*."""
    try:
        out = _git(dest, "diff", "--name-only", "--diff-filter=U", "--relative").stdout
    except OSError:
        return []
    return sorted({line for line in out.splitlines() if line})


# --------------------------------------------------------------------------- answers


def _database(answers: dict[str, Any]) -> str:
    backend = str(answers.get("backend", "sqlite"))
    return backend if backend != "redis" else str(answers.get("database", "sqlite"))


def plan_answers(
    recorded: dict[str, Any], data: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Check the answer changes *data* against *recorded*; return the data to render with
    and what the changes do to the database.

    The data database stays: moving the sessions to Redis keeps it (``database`` is
    carried over), and a change that would move the data to another server (SQLite to
    PostgreSQL, SQL to MongoDB) is refused, as no migration can carry data across servers.
    """
    data = dict(data)
    old_db = _database(recorded)
    if data.get("backend") == "redis" and "database" not in data:
        data["database"] = old_db  # Copier would otherwise default it to sqlite
    new = {**recorded, **data}
    if new.get("backend") != "redis":
        new["database"] = new.get("backend", "sqlite")
    new_db = _database(new)
    if new_db != old_db:
        raise UsageError(
            f"Refusing to move the data database from {old_db} to {new_db}: no migration can "
            "carry its data to another server. Generate a new project with "
            f"database={new_db} and move the data yourself, or keep database={old_db} "
            "(with backend=redis, sessions can move to Redis while the data stays)."
        )
    notices: list[str] = []
    if new_db not in SQL:
        return data, notices
    old_auth, new_auth = str(recorded.get("auth", "session")), str(new.get("auth", "session"))
    old_shop, new_shop = bool(recorded.get("example_api", True)), bool(new.get("example_api", True))
    old_sql = str(recorded.get("backend", "sqlite")) in SQL
    new_sql = str(new.get("backend", "sqlite")) in SQL
    if old_auth != "none" and new_auth == "none":
        notices.append("auth=none: the new migration DROPS the users table, with every account.")
    if old_shop and not new_shop:
        notices.append(
            "example_api=false: the new migration DROPS the shop's tables (products, orders, "
            "order_items), with every row."
        )
    elif new_shop and (old_auth == "none") != (new_auth == "none"):
        notices.append(
            "The new migration makes the orders tables anew (orders now belong to "
            f"{'users' if new_auth != 'none' else 'anonymous sessions'}): the orders placed "
            "so far are deleted."
        )
    if old_sql != new_sql or (old_sql and new_sql and old_auth != new_auth):
        notices.append("The sessions table changes: every session ends (users log in again).")
    return data, notices


def _legacy_history(recorded: dict[str, Any]) -> list[dict[str, Any]]:
    """``schema_history`` of a project made before it was recorded (0.1.0): its answers."""
    return [
        {
            "at": 1,
            "auth": str(recorded.get("auth", "session")),
            "shop": bool(recorded.get("example_api", True)),
            "sql_sessions": str(recorded.get("backend", "sqlite")) in SQL,
        }
    ]


# --------------------------------------------------------------------------- changelog

_HEADING = re.compile(r"^## \[?v?(?P<version>[0-9][^\]\s]*)\]?", re.MULTILINE)


def changelog_path() -> Path | None:
    """CHANGELOG.md beside copier.yml: the wheel packages it there, a checkout has it there.

    Never the folder above: that is not ours in a checkout.
    """
    path = template_root() / "CHANGELOG.md"
    return path if path.is_file() else None


def changelog_sections(text: str, after: Version | None, upto: Version | None) -> list[str]:
    """The ``## <version>`` sections of *text* newer than *after*, up to *upto*, oldest first."""
    matches = list(_HEADING.finditer(text))
    sections: list[tuple[Version, str]] = []
    for i, match in enumerate(matches):
        try:
            version = Version(match["version"])
        except InvalidVersion:
            continue
        if after is not None and version <= after:
            continue
        if upto is not None and version > upto:
            continue
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        sections.append((version, text[match.start() : end].strip()))
    return [body for _, body in sorted(sections)]


def _changes(old: str, new: str) -> list[str]:
    path = changelog_path()
    if path is None:
        return []
    text = path.read_text(encoding="utf-8")
    return changelog_sections(text, base_version(old), base_version(new))


# --------------------------------------------------------------------------- update


def _from_history(
    bundle: Path, dest: Path, new: str, *, data: dict[str, Any], defaults: bool
) -> None:
    # Private API, used deliberately (see the module docstring); copier is pinned below 10
    # and tests/test_update.py exercises this path.
    try:
        from copier._main import Worker
    except ImportError:  # pragma: no cover - copier before 9.7 named it copier.main
        from copier.main import Worker

    with Worker(
        dst_path=dest,
        src_path=str(bundle),
        vcs_ref=new,
        data=data,
        defaults=defaults,
        overwrite=True,
        # sessionforge's own template: its migrations are part of what the user installed.
        unsafe=True,
        quiet=True,
    ) as worker:
        subproject = worker.subproject
        recorded = dict(subproject.last_answers)
        # `template` (the version the project came from) is read once, from these
        # answers, and cached; the answers themselves are read again from the file.
        subproject.__dict__["last_answers"] = {**recorded, "_src_path": str(bundle)}
        if subproject.template is None or str(subproject.template.url) != str(bundle):
            raise SessionforgeError(
                "This version of Copier cannot be pointed at the packaged template history."
            )
        del subproject.__dict__["last_answers"]
        worker.run_update()


def update_project(
    dest: Path,
    data: dict[str, Any],
    *,
    defaults: bool,
    trust: bool = False,
    announce: Callable[[list[str]], None] | None = None,
) -> Updated:
    """Update the project at *dest* to the template of this sessionforge (or its source's).

    *announce* receives what the answer changes do to the database before anything is
    written.
    """
    dest = Path(os.path.abspath(dest))
    answers_file = dest / ANSWERS_FILE
    if not answers_file.is_file():
        raise SessionforgeError(
            f"{dest} has no {ANSWERS_FILE}, so it was not generated from a template: "
            "nothing to update."
        )
    recorded = read_answers(answers_file)
    src_path = str(recorded.get("_src_path") or "")
    old = str(recorded.get("_commit") or "")
    if not old:
        raise _no_commit_error(answers_file, src_path)
    _require_clean_repo(dest)
    versions = dest / "migrations" / "versions"
    before = {p.name for p in versions.glob("*.py")}
    data, notices = plan_answers(recorded, data)
    if "schema_history" not in recorded and _database({**recorded, **data}) in SQL:
        data["schema_history"] = _legacy_history(recorded)
    if notices and announce is not None:
        announce(notices)

    try:
        if is_history_path(src_path):
            bundle = template_history()
            new = bundle_tip(bundle)
            known = bundle_tags(bundle)
            if old not in known:
                if old.endswith(DIRTY_SUFFIX):
                    raise SessionforgeError(
                        f"{dest} was generated from uncommitted template changes ({old}), "
                        "which no sessionforge release holds: there is no old version to "
                        "merge from. Generate the project again and copy your changes over."
                    )
                raise SessionforgeError(
                    f"{dest} was generated from template {old}, which this sessionforge "
                    f"(template {new}) does not know: install a newer sessionforge."
                )
            _from_history(bundle, dest, new, data=data, defaults=defaults)
            # Copier recorded the bundle's path; the project records where updates come from.
            record_source(answers_file, SOURCE_MARKER, new)
        else:
            worker = run_update(
                dst_path=dest,
                data=data,
                defaults=defaults,
                overwrite=True,
                unsafe=trust,
                quiet=True,
            )
            new = str(worker.template.commit or "")
    except UnsafeTemplateError as exc:
        raise SessionforgeError(
            f"{exc} Pass --trust if you trust the template at {src_path}."
        ) from exc
    except (CopierError, UserMessageError, HistoryError, ValueError) as exc:
        # Copier raises a plain ValueError for a commit it cannot find, too: exit 1.
        raise SessionforgeError(str(exc) or type(exc).__name__) from exc
    return Updated(
        dest=dest,
        old=old,
        new=new,
        conflicts=_conflicts(dest),
        notices=notices,
        changes=_changes(old, new) if old != new else [],
        migrations=sorted({p.name for p in versions.glob("*.py")} - before),
    )
