"""The template's release history, packaged with the CLI so that `sessionforge update` can merge.

Copier updates a project by rendering the template version the project came from and the
new one, and merging the difference into the project; it needs both versions as tags of a
git repository. The wheel carries them as a git bundle (``_history.bundle``, which Copier
reads like a repository) of a small synthetic repository: one commit per released template
version, holding only the template's own files (``TEMPLATE_PATHS``) and tagged with the
release tag; its last commit is the packaged template itself, tagged ``v<package version>``.
Only template files go in, never the generator or the tests, so the bundle stays small
(git stores each version as a delta of the one before).

The wheel build hook (``hatch_build.py``) runs this module too, so it needs nothing but the
standard library, ``packaging`` and a ``git`` executable.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePath

from packaging.version import InvalidVersion, Version

#: Tags are ``v`` + a PEP 440 version (``v0.1.0``).
TAG_PREFIX = "v"
#: What a template version consists of: the questions, the files, the migration helpers.
TEMPLATE_PATHS = ("copier.yml", "template", "copier_tasks")
BUNDLE_NAME = "_history.bundle"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")
_IDENTITY = {
    "GIT_AUTHOR_NAME": "sessionforge",
    "GIT_AUTHOR_EMAIL": "sessionforge@localhost",
    "GIT_COMMITTER_NAME": "sessionforge",
    "GIT_COMMITTER_EMAIL": "sessionforge@localhost",
}


class HistoryError(Exception):
    """git failed, or is missing, while building or reading the history."""


def release_tag(version: str) -> str:
    """The tag of a template version: ``v0.1.0`` for 0.1.0."""
    return f"{TAG_PREFIX}{version}"


def _git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> bytes:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    except OSError as exc:
        raise HistoryError(f"git could not be run: {exc}") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise HistoryError(f"git {' '.join(args)} failed: {err}")
    return proc.stdout


def release_tags(repo: Path) -> dict[Version, str]:
    """The tags of the git repository at *repo* that are PEP 440 versions: {version: tag}.

    A directory that is not a repository root (an unpacked sdist) has none.
    """
    if not (repo / ".git").exists():
        return {}
    try:
        names = _git("tag", "--list", cwd=repo).decode().split()
    except HistoryError:
        return {}
    tags: dict[Version, str] = {}
    for name in sorted(names):
        try:
            version = Version(name)
        except InvalidVersion:
            continue
        tags.setdefault(version, name)
    return tags


def _clear(work: Path) -> None:
    for child in work.iterdir():
        if child.name == ".git":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _extract_tag(repo: Path, tag: str, work: Path) -> None:
    present = [
        p
        for p in TEMPLATE_PATHS
        if subprocess.run(
            ["git", "cat-file", "-e", f"{tag}:{p}"], cwd=repo, capture_output=True, check=False
        ).returncode
        == 0
    ]
    if not present:
        raise HistoryError(f"tag {tag} holds none of {', '.join(TEMPLATE_PATHS)}")
    data = _git("archive", "--format=tar", tag, "--", *present, cwd=repo)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+
            archive.extractall(work, filter="data")
        else:  # pragma: no cover - our own git archive of our own tag
            archive.extractall(work)


def _copy_current(template: Path, work: Path) -> None:
    for name in TEMPLATE_PATHS:
        source = template / name
        if source.is_dir():
            shutil.copytree(source, work / name, symlinks=True, ignore=_IGNORE)
        elif source.is_file():
            shutil.copy2(source, work / name)


def _commit_and_tag(work: Path, tag: str, date: str | None) -> None:
    env = dict(_IDENTITY)
    if date:  # reproducible bundles: the release's own date
        env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    _git("add", "--all", cwd=work)
    _git(
        "-c",
        "commit.gpgsign=false",
        "commit",
        "--quiet",
        "--allow-empty",
        "--no-verify",
        "-m",
        f"sessionforge template {tag}",
        cwd=work,
        env=env,
    )
    _git("-c", "tag.gpgsign=false", "tag", tag, cwd=work, env=env)


def build_history(
    bundle: Path, *, template: Path, version: str, repo: Path | None = None
) -> list[str]:
    """Write the template history to the git bundle *bundle*; return its tags, oldest first.

    *template* holds the template files of this *version* (they get tag ``v<version>``).
    The release tags of the repository *repo* older than *version* come first, each
    holding that tag's template files.
    """
    current = Version(version)
    older = sorted((v, t) for v, t in release_tags(repo).items() if v < current) if repo else []
    tags: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sessionforge-history-") as tmp:
        work = Path(tmp)
        _git("-c", "init.defaultBranch=main", "init", "--quiet", cwd=work)
        for _version, tag in older:
            assert repo is not None
            _clear(work)
            _extract_tag(repo, tag, work)
            date = _git("log", "-1", "--format=%cI", tag, cwd=repo).decode().strip()
            _commit_and_tag(work, tag, date)
            tags.append(tag)
        _clear(work)
        _copy_current(template, work)
        if not (work / "copier.yml").is_file():
            raise HistoryError(f"{template} has no copier.yml")
        epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
        tag = release_tag(version)
        _commit_and_tag(work, tag, f"@{int(epoch)} +0000" if epoch.isdigit() else None)
        tags.append(tag)
        bundle.parent.mkdir(parents=True, exist_ok=True)
        _git("bundle", "create", "--quiet", str(bundle.resolve()), "--all", cwd=work)
    return tags


def bundle_tags(bundle: Path) -> list[str]:
    """The tags a history bundle holds."""
    heads = _git("bundle", "list-heads", str(bundle), cwd=bundle.parent).decode()
    prefix = "refs/tags/"
    return [
        ref[len(prefix) :]
        for ref in (line.split()[-1] for line in heads.splitlines() if line.strip())
        if ref.startswith(prefix)
    ]


def is_history_path(src_path: str) -> bool:
    """Whether an answers file's ``_src_path`` names a sessionforge history bundle."""
    return PurePath(src_path).name == BUNDLE_NAME
