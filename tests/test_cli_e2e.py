"""End-to-end tests of the `sessionforge` command, in subprocesses.

- The wheel carries the template: build it, install it into a fresh virtualenv and
  generate a project from a directory outside the repository.
- On a terminal the questions are asked: answer them on a pseudo-terminal.
- The README's quick start: `sessionforge new my-service --defaults --check`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from sessionforge.history import bundle_tip
from tests.support.paths import REPO
from tests.support.wheels import BIN, EXE, _clean_env, _run, _uv


def test_wheel_carries_the_template(tmp_path: Path) -> None:
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    env = _clean_env()
    uv = _uv()
    if uv:
        _run([uv, "build", "--wheel", "--out-dir", str(dist), str(REPO)], env=env, cwd=tmp_path)
    else:
        _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)], env=env)
    wheels = list(dist.glob("sessionforge-*.whl"))
    assert len(wheels) == 1, wheels
    python = venv / BIN / f"python{EXE}"
    if uv:
        _run([uv, "venv", "--python", sys.executable, str(venv)], env=env, cwd=tmp_path)
        _run([uv, "pip", "install", "--python", str(python), str(wheels[0])], env=env, cwd=tmp_path)
    else:
        _run([sys.executable, "-m", "venv", str(venv)], env=env)
        _run([str(python), "-m", "pip", "install", "-q", str(wheels[0])], env=env)

    sessionforge = str(venv / BIN / f"sessionforge{EXE}")
    version = _run([sessionforge, "--version"], env=env, cwd=work)
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert version.stdout.strip() == f"sessionforge {expected}"

    _run([sessionforge, "new", "x", "--defaults"], env=env, cwd=work)
    project = work / "x"
    assert (project / ".copier-answers.yml").is_file()
    assert (project / "pyproject.toml").is_file()
    assert (project / "src" / "x" / "main.py").is_file()
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    # Rendered from the installed copy, not from this checkout; updates come from the
    # template history packaged next to it, at this version's tag.
    assert answers["_src_path"] == "sessionforge"
    (bundle,) = venv.glob("lib/python*/site-packages/sessionforge/_history.bundle")
    # The name of the template commit it packages: v<version>, or v<version>-N-g<commit>.
    assert answers["_commit"] == bundle_tip(bundle)
    assert answers["_commit"].startswith(f"v{expected}")

    options = _run([sessionforge, "options", "--json"], env=env, cwd=work)
    assert '"project_name"' in options.stdout


@pytest.mark.skipif(os.name == "nt", reason="pexpect needs a POSIX pseudo-terminal")
def test_questions_are_asked_on_a_terminal(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    copier_yml = yaml.safe_load((REPO / "copier.yml").read_text())
    help_of = {
        key: str(spec.get("help", key))
        for key, spec in copier_yml.items()
        if isinstance(spec, dict) and not key.startswith("_")
    }
    mode_choices = list(copier_yml["mode"]["choices"].values())

    env = _clean_env()
    env.update(
        PYTHONPATH=str(REPO / "generator"),
        TERM="xterm",
        PROMPT_TOOLKIT_NO_CPR="1",  # do not wait for cursor-position replies
        COLUMNS="200",
    )
    child = pexpect.spawn(
        sys.executable,
        ["-m", "sessionforge", "new", "ia-service"],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(50, 200),
    )
    try:
        # Questions in copier.yml order; `database` is not asked for the default backend.
        script = [
            ("project_name", "\r"),  # default: the folder name
            ("package_name", "\r"),  # default: derived from it
            ("mode", "\x1b[B\r"),  # arrow down: the second choice
            ("backend", "\r"),
            ("auth", "\r"),
            ("example_api", "n"),  # a confirm prompt answers on the key
        ]
        for key, keys in script:
            child.expect_exact(help_of[key][:40])
            child.send(keys)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before

    answers = yaml.safe_load((tmp_path / "ia-service" / ".copier-answers.yml").read_text())
    assert answers["project_name"] == "ia-service"
    assert answers["package_name"] == "ia_service"
    assert answers["mode"] == mode_choices[1]
    assert answers["example_api"] is False
    assert (tmp_path / "ia-service" / "src" / "ia_service" / "main.py").is_file()


def test_quick_start_check(tmp_path: Path) -> None:
    """The README's quick start: generate with defaults, then --check installs and tests it."""
    env = _clean_env()
    env["PYTHONPATH"] = str(REPO / "generator")
    proc = subprocess.run(
        [sys.executable, "-m", "sessionforge", "new", "my-service", "--defaults", "--check"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout
    for step in ("[1/3]", "[2/3]", "[3/3]"):
        assert step in proc.stdout
    assert "passed" in proc.stdout
    assert (tmp_path / "my-service" / ".venv").is_dir()
