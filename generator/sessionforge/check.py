"""`sessionforge new --check`: make the project's virtualenv, install it, run its tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

#: run(argv, cwd, env) -> (exit code, combined stdout and stderr)
Runner = Callable[[Sequence[str], Path, dict[str, str]], tuple[int, str]]

_TAIL_LINES = 200


@dataclass(frozen=True)
class Step:
    title: str
    argv: list[str]


def find_uv() -> str | None:
    """uv on PATH, else next to this interpreter (a venv's bin/), else None."""
    found = shutil.which("uv")
    if found:
        return found
    scripts = Path(sys.executable).parent
    for name in ("uv", "uv.exe"):
        candidate = scripts / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def venv_python(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def plan(dest: Path, uv: str | None) -> list[Step]:
    """The three steps of --check, with uv when available, else venv + pip."""
    venv = dest / ".venv"
    python = str(venv_python(venv))
    if venv_python(venv).exists():
        create = Step("creating virtualenv (.venv exists: reusing it)", [])
    elif uv:
        create = Step("creating virtualenv", [uv, "venv", "--python", sys.executable, str(venv)])
    else:
        create = Step("creating virtualenv", [sys.executable, "-m", "venv", str(venv)])
    if uv:
        install_argv = [uv, "pip", "install", "--python", python, "-e", ".[dev]"]
    else:
        install_argv = [python, "-m", "pip", "install", "-e", ".[dev]"]
    return [
        create,
        Step("installing the project: pip install -e '.[dev]'", install_argv),
        Step("running its tests: pytest", [python, "-m", "pytest"]),
    ]


def _environment(dest: Path) -> dict[str, str]:
    env = dict(os.environ)
    venv = dest / ".venv"
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv_python(venv).parent), env.get("PATH", "")])
    for var in ("PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX"):
        env.pop(var, None)
    return env


def subprocess_runner(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
    except OSError as exc:
        return 127, f"cannot run {argv[0]}: {exc}"
    return proc.returncode, proc.stdout


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1].strip("= ") if lines else ""


def run_check(
    dest: Path,
    console: Console,
    *,
    runner: Runner = subprocess_runner,
    uv: str | None = None,
    use_uv: bool = True,
) -> bool:
    """Run the steps in *dest*, showing progress; return True when all passed."""
    if use_uv and uv is None:
        uv = find_uv()
    steps = plan(dest, uv if use_uv else None)
    env = _environment(dest)
    total = len(steps)
    for number, step in enumerate(steps, start=1):
        label = f"[{number}/{total}] {step.title}"
        if not step.argv:
            console.print(f"{escape(label)} [green]ok[/green]")
            continue
        started = time.monotonic()
        with console.status(escape(label) + " ..."):
            code, output = runner(step.argv, dest, env)
        elapsed = time.monotonic() - started
        if code != 0:
            console.print(f"{escape(label)} [red]failed[/red] (exit {code}, {elapsed:.1f}s)")
            tail = output.splitlines()[-_TAIL_LINES:]
            if tail:
                console.print(escape("\n".join(tail)), soft_wrap=True, highlight=False)
            return False
        summary = _last_line(output) if number == total else ""
        detail = f" ({elapsed:.1f}s{', ' + summary if summary else ''})"
        console.print(f"{escape(label)} [green]ok[/green]{escape(detail)}", highlight=False)
    return True
