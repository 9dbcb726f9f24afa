"""Where the Copier template lives, and how to hand it to Copier."""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from sessionforge.errors import SessionforgeError
from sessionforge.history import (
    BUNDLE_NAME,
    SOURCE_MARKER,
    HistoryError,
    build_history,
    bundle_tip,
    checkout_name,
    version_at,
)

#: Set to a directory holding a copier.yml to use that template instead.
TEMPLATE_ENV = "SESSIONFORGE_TEMPLATE"
COPIER_FILE = "copier.yml"
_PACKAGED = Path(__file__).resolve().parent / "_template"


def _is_template_dir(path: Path) -> bool:
    return (path / COPIER_FILE).is_file()


def template_root() -> Path:
    """Return the directory that holds copier.yml.

    In order: ``$SESSIONFORGE_TEMPLATE``; the copy packaged in the wheel
    (``sessionforge/_template``); the repository root of a checkout or an
    editable install (found above this file).
    """
    override = os.environ.get(TEMPLATE_ENV)
    if override:
        path = Path(override).expanduser().resolve()
        if not _is_template_dir(path):
            raise SessionforgeError(f"{TEMPLATE_ENV}={override} has no {COPIER_FILE}.")
        return path
    if _is_template_dir(_PACKAGED):
        return _PACKAGED
    for parent in Path(__file__).resolve().parents:
        if _is_template_dir(parent) and (parent / "generator" / "sessionforge").is_dir():
            return parent
    raise SessionforgeError(
        "The sessionforge template was not found: this installation is incomplete. "
        "Reinstall with `pip install .` from the sessionforge repository."
    )


def _is_git_root(path: Path) -> bool:
    # `.git` is a directory in a clone and a file in a worktree or submodule.
    return (path / ".git").exists()


def _subdirectory(root: Path) -> str:
    with (root / COPIER_FILE).open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    sub = data.get("_subdirectory", "") if isinstance(data, dict) else ""
    return str(sub or "")


@contextmanager
def copier_source(root: Path) -> Iterator[Path]:
    """Yield the path to give Copier as ``src_path`` for the template at *root*.

    Copier treats a local directory that is a git repository root as a repo: it
    clones it and renders the clone's HEAD (plus, in recent versions, a
    "draft" commit of the dirty work tree, with a warning). In a development
    checkout that is slow, depends on the state of the whole work tree, and
    fails outright in a repository without commits. So for a git checkout we
    hand Copier a plain snapshot of copier.yml and the template subdirectory
    instead; the packaged template (site-packages) is not a repo and is used
    as is. ``record_source`` then puts the real root back into ``_src_path``.
    """
    if not _is_git_root(root):
        yield root
        return
    with tempfile.TemporaryDirectory(prefix="sessionforge-template-") as tmp:
        snapshot = Path(tmp) / "template-src"
        snapshot.mkdir()
        shutil.copy2(root / COPIER_FILE, snapshot / COPIER_FILE)
        sub = _subdirectory(root)
        if sub:
            shutil.copytree(
                root / sub,
                snapshot / sub,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"),
            )
        else:  # a template at the root: everything but VCS metadata
            shutil.copytree(
                root,
                snapshot,
                symlinks=True,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc"),
            )
        yield snapshot


_SRC_PATH_LINE = re.compile(r"^_src_path:.*$", re.MULTILINE)
_COMMIT_LINE = re.compile(r"^_commit:.*\n?", re.MULTILINE)


def packaged_history() -> Path | None:
    """The template history bundle of this installation (see ``sessionforge.history``)."""
    bundle = _PACKAGED.parent / BUNDLE_NAME
    return bundle if bundle.is_file() else None


def _checkout() -> Path | None:
    """The repository root this sessionforge runs from (an editable install), if any."""
    for parent in Path(__file__).resolve().parents:
        if _is_git_root(parent) and (parent / "generator" / "sessionforge").is_dir():
            return parent
    return None


def template_history() -> Path:
    """A git bundle of the template's history: the wheel's, or one built from the checkout.

    An editable install carries no bundle; it builds one from its own repository, once
    per process, into a temporary directory removed at exit.
    """
    bundle = packaged_history()
    if bundle is not None:
        return bundle
    repo = _checkout()
    if repo is None:
        raise SessionforgeError(
            "This sessionforge carries no template history (it was installed without one): "
            "reinstall it with `pip install .` from a clone of its repository."
        )
    return _checkout_history(repo)


@functools.cache
def _checkout_history(repo: Path) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix="sessionforge-history-"))
    atexit.register(shutil.rmtree, tmp, True)
    built = tmp / BUNDLE_NAME
    try:
        build_history(built, template=repo, version=version_at(repo, "HEAD"), repo=repo)
    except HistoryError as exc:
        raise SessionforgeError(f"Cannot read the template history of {repo}: {exc}.") from exc
    return built


def source_record(root: Path) -> tuple[str, str | None]:
    """``(_src_path, _commit)`` to record for a project generated from the template at *root*.

    - The template packaged in the wheel, or a checkout's (an editable install): the
      marker ``sessionforge`` (updates come from the history of whichever sessionforge
      runs `sessionforge update`, never from a path that goes with a virtual
      environment) and the name of the template commit (``v0.2.0-3-g1a2b3c4``). A
      checkout with uncommitted template changes has no such commit: none is recorded.
    - Anything else (``$SESSIONFORGE_TEMPLATE``): the directory, and no commit.
    """
    bundle = packaged_history()
    if root == _PACKAGED and bundle is not None:
        return SOURCE_MARKER, bundle_tip(bundle)
    if _is_git_root(root) and root == _checkout():
        try:
            return SOURCE_MARKER, checkout_name(root)
        except HistoryError:
            return SOURCE_MARKER, None
    return str(root), None


def record_source(answers_file: Path, src_path: str, commit: str | None) -> None:
    """Set ``_src_path`` and ``_commit`` of a generated answers file.

    Needed because Copier rendered a plain directory (see ``copier_source``): it
    recorded that directory's path, and no commit.
    """
    if not answers_file.is_file():
        return
    text = _COMMIT_LINE.sub("", answers_file.read_text(encoding="utf-8"))
    line = yaml.safe_dump({"_src_path": src_path}, default_flow_style=False).strip()
    if commit:
        line = yaml.safe_dump({"_commit": commit}, default_flow_style=False) + line
    new_text, count = _SRC_PATH_LINE.subn(lambda _m: line, text, count=1)
    if count:
        answers_file.write_text(new_text, encoding="utf-8")
