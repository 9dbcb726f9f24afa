"""Running a step of a generated project's checks, and reading pytest's closing line."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.combos import Combo
from tests.support.envs import (
    EnvError,
    ensure_env,
    project_dependencies,
    project_env,
    require_servers,
)

# Seconds.
LINT_TIMEOUT = 300
MYPY_TIMEOUT = 1200
PYTEST_TIMEOUT = 1800
INSTALL_TIMEOUT = 1800
OUTPUT_LINES = 400


@dataclass
class Step:
    name: str
    cmd: list[str]
    returncode: int
    output: str
    seconds: float

    def report(self) -> str:
        lines = self.output.rstrip().splitlines()
        if len(lines) > OUTPUT_LINES:
            lines = [f"[... {len(lines) - OUTPUT_LINES} lines cut ...]", *lines[-OUTPUT_LINES:]]
        body = "\n".join(lines)
        return f"----- {self.name}: exit {self.returncode}: {' '.join(self.cmd)}\n{body}"


def run_step(name: str, cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Step:
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            check=False,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        returncode, output = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        output = out.decode(errors="replace") if isinstance(out, bytes) else out
        returncode, output = -1, f"{output}\n[timed out after {timeout}s]"
    return Step(name, cmd, returncode, output, time.monotonic() - start)


SUMMARY_COUNT = re.compile(
    r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?|rerun)"
)
SUMMARY_TIME = re.compile(r"\bin \d+(?:\.\d+)?s\b")


def pytest_summary(output: str) -> dict[str, int] | None:
    """Counts from pytest's closing line ("3 passed, 1 skipped in 0.52s"), or None."""
    for line in reversed(output.splitlines()):
        text = line.strip().strip("=").strip()
        if not SUMMARY_TIME.search(text):
            continue
        if "no tests ran" in text:
            return {}
        counts = SUMMARY_COUNT.findall(text)
        if counts:
            result: dict[str, int] = {}
            for number, word in counts:
                word = {"error": "errors", "warning": "warnings"}.get(word, word)
                result[word] = result.get(word, 0) + int(number)
            return result
    return None


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _path_step(name: str, cmd: list[str], project: Path, env: dict[str, str]) -> Step:
    step = run_step(name, cmd, project, env, INSTALL_TIMEOUT)
    assert step.returncode == 0, step.report()
    return step


def _passed(step: Step) -> dict[str, int]:
    summary = pytest_summary(step.output)
    assert summary, f"no pytest summary line:\n{step.report()}"
    assert summary.get("passed", 0) > 0, summary
    assert not (summary.get("failed") or summary.get("errors") or summary.get("skipped")), (
        f"{summary}\n{step.report()}"
    )


def run_project_tests(project: Path, combo: Combo) -> None:
    """The project's own pytest, in the matrix's environment for its dependencies."""
    try:
        _key, env_dir = ensure_env(project_dependencies(project))
    except EnvError as exc:
        pytest.fail(f"could not build the environment for {combo.id}:\n{exc}")
    require_servers(combo)
    python = str(env_dir / "bin" / "python")
    step = run_step(
        "pytest",
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"],
        project,
        project_env(combo, env_dir),
        PYTEST_TIMEOUT,
    )
    summary = pytest_summary(step.output) or {}
    assert step.returncode == 0, step.report()
    assert summary.get("passed", 0) > 0, step.report()
    assert not summary.get("skipped") and not summary.get("failed"), step.report()
