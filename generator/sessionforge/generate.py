"""Render the template into a destination, all or nothing."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from copier import run_copy
from copier.errors import (
    CopierAnswersInterrupt,
    CopierError,
    InteractiveSessionError,
    InvalidTypeError,
    UserMessageError,
)

from sessionforge.errors import SessionforgeError, UsageError
from sessionforge.template import copier_source, record_source, source_record

_VALIDATION = re.compile(r"^Validation error for question '(?P<key>[^']+)': (?P<msg>.*)$", re.S)
_STAGING_PREFIX = ".sessionforge-"


@dataclass
class Generated:
    """What `generate` produced."""

    dest: Path
    answers: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def absolute(path: Path) -> Path:
    """Absolute and normalised, without resolving symlinks."""
    return Path(os.path.abspath(path.expanduser()))


def check_destination(dest: Path, *, force: bool) -> None:
    """Refuse a destination that is a file, or a non-empty directory without --force."""
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} exists and is not a directory: choose another destination.")
    if dest.is_dir() and not force and any(dest.iterdir()):
        raise UsageError(
            f"{dest} is not empty: refusing to generate into it. "
            "Choose an empty or new directory, or pass --force to write over its files."
        )


def suggest_name(folder: str) -> str:
    """*folder* with characters other than ASCII letters, digits, ' ', '-', '_' as '-'."""
    name = re.sub(r"[^A-Za-z0-9 _-]+", "-", folder).strip(" -_")[:64].strip(" -_")
    return name or "service"


def _first_missing_ancestor(path: Path) -> Path | None:
    """The topmost directory of *path*'s parents that does not exist yet."""
    missing: Path | None = None
    for parent in path.parents:
        if parent.exists():
            break
        missing = parent
    return missing


def _copier_value_error(exc: Exception, *, name_from_folder: bool) -> UsageError:
    text = str(exc).strip()
    match = _VALIDATION.match(text)
    key = match.group("key") if match else ""
    message = match.group("msg").strip() if match else text
    if not message.endswith((".", "!", "?")):
        message += "."
    if key == "project_name" and name_from_folder:
        message += " The project name comes from the folder name: give one with --name."
    return UsageError(message)


def _render_message(worker: Any, dest: Path, *, dev_env: bool) -> str:
    """The template's `_message_after_copy`, rendered as if Copier wrote to *dest*.

    Copier rendered into a staging directory, so its own message would name
    that path; we render it again with the real destination, and tell it
    whether we wrote the project's `.env` (`_sessionforge_dev_env`).
    """
    try:
        text = worker.template.message_after_copy
        if not text:
            return ""
        context = dict(worker.answers.combined)
        context["_copier_conf"] = {"dst_path": dest, "answers_file": worker.answers_relpath}
        context["_folder_name"] = dest.name
        context["_sessionforge_dev_env"] = dev_env
        return str(worker.jinja_env.from_string(text).render(**context)).strip("\n")
    except Exception:  # a nicety: never fail a generation over the message
        return ""


ENV_HEADER = (
    "# Local settings, written by `sessionforge new` with a freshly generated SECRET_KEY."
    " Git ignores this file; .env.example documents every variable."
)


def write_dev_env(dest: Path) -> None:
    """Write *dest*/.env for local work: the project's `.env.example` with
    ENVIRONMENT=dev and a new SECRET_KEY (readable by the owner only).

    Done here, not by the template: Copier can make a secret only in a task,
    and tasks need `--trust`, which a first `copier copy` must not ask for.
    """
    example = dest / ".env.example"
    lines = example.read_text(encoding="utf-8").splitlines() if example.is_file() else []
    if lines and lines[0].startswith("#"):
        lines = lines[1:]  # its "copy to .env" heading
    wanted = {"ENVIRONMENT": "dev", "SECRET_KEY": secrets.token_urlsafe(32)}
    for number, line in enumerate(lines):
        name = line.partition("=")[0]
        if name in wanted:
            lines[number] = f"{name}={wanted.pop(name)}"
    missing = [f"{name}={value}" for name, value in wanted.items()]
    text = "\n".join([ENV_HEADER, *missing, *lines]) + "\n"
    path = dest / ".env"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _place(staged: Path, dest: Path) -> None:
    """Move the rendered tree into *dest* (merging over existing files with --force)."""
    if not dest.exists():
        shutil.move(str(staged), str(dest))
        return
    shutil.copytree(staged, dest, symlinks=True, dirs_exist_ok=True)


def generate(
    root: Path,
    dest: Path,
    data: dict[str, Any],
    *,
    defaults: bool,
    force: bool = False,
) -> Generated:
    """Render the template at *root* into *dest*; on failure nothing is written.

    The template is rendered into a staging directory next to *dest* (same
    file system) and moved into place only when Copier succeeded.
    """
    shown = dest  # as the user wrote it, for the message
    dest = absolute(dest)
    check_destination(dest, force=force)
    data = dict(data)
    user_defaults: dict[str, Any] = {}
    name_from_folder = "project_name" not in data
    if name_from_folder:
        if defaults:
            data["project_name"] = dest.name
        else:
            # Offered at the prompt. Copier validates defaults before it asks, so a
            # folder name it would refuse ("my.service") is offered tidied up instead.
            user_defaults["project_name"] = suggest_name(dest.name)

    # A `.env` already there (--force over a project) is the user's: kept.
    write_env = not (dest / ".env").exists()
    created_parent = _first_missing_ancestor(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=dest.parent))
    except OSError:  # parent not writable (e.g. DEST is an existing dir there)
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX))
    # Render into <staging>/<dest name>, so that Copier's `_folder_name` is right.
    target = staging / dest.name
    try:
        with copier_source(root) as src:
            worker = run_copy(
                src_path=str(src),
                dst_path=target,
                data=data,
                user_defaults=user_defaults,
                defaults=defaults,
                unsafe=False,
                quiet=True,
            )
            # Copier rendered a plain directory: record where updates come from instead.
            record_source(target / worker.answers_relpath, *source_record(root))
            message = _render_message(worker, shown, dev_env=write_env)
            answers = {
                k: v for k, v in worker.answers.combined.items() if not str(k).startswith("_")
            }
        _place(target, dest)
        if write_env:
            write_dev_env(dest)
    except BaseException as exc:
        if created_parent is not None:
            shutil.rmtree(created_parent, ignore_errors=True)
        translated = _translate(exc, name_from_folder=name_from_folder)
        if translated is exc:
            raise
        raise translated from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Generated(dest=dest, answers=answers, message=message)


def _translate(exc: BaseException, *, name_from_folder: bool) -> BaseException:
    """Map Copier's exceptions to ours (exit 2 for invalid answers, 1 otherwise)."""
    if isinstance(exc, SessionforgeError):
        return exc
    if isinstance(exc, CopierAnswersInterrupt | KeyboardInterrupt):
        return SessionforgeError("Aborted: nothing was written.")
    if isinstance(exc, InteractiveSessionError):
        return UsageError(
            "Standard input closed while asking questions: nothing was written. "
            "Use --defaults, or give the answers with flags."
        )
    if isinstance(exc, InvalidTypeError):
        return UsageError(f"{exc}.")
    if isinstance(exc, ValueError) and not isinstance(exc, CopierError):
        # Copier raises a plain ValueError for an answer its validators refuse.
        return _copier_value_error(exc, name_from_folder=name_from_folder)
    if isinstance(exc, UserMessageError | CopierError):
        return SessionforgeError(str(exc) or type(exc).__name__)
    return exc
