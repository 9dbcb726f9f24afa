"""Building sessionforge's wheel and installing it into a fresh virtualenv, as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

BIN = "Scripts" if os.name == "nt" else "bin"
EXE = ".exe" if os.name == "nt" else ""


def _uv() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    sibling = Path(sys.executable).parent / f"uv{EXE}"
    return str(sibling) if sibling.is_file() else None


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        timeout=600,
        **kwargs,
    )
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}"
    return proc


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONPATH", "VIRTUAL_ENV", "SESSIONFORGE_TEMPLATE", "SESSIONFORGE_DEBUG"):
        env.pop(var, None)
    return env


def build_wheel(source: Path, out: Path, env: dict[str, str]) -> Path:
    uv = _uv()
    if uv:
        _run([uv, "build", "--wheel", "--out-dir", str(out), str(source)], env=env, cwd=out.parent)
    else:
        _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)], env=env)
    (wheel,) = out.glob("sessionforge-*.whl")
    return wheel


def install_wheel(wheel: Path, venv: Path, env: dict[str, str]) -> str:
    python = venv / BIN / f"python{EXE}"
    uv = _uv()
    if uv:
        _run([uv, "venv", "--python", sys.executable, str(venv)], env=env, cwd=venv.parent)
        _run([uv, "pip", "install", "--python", str(python), str(wheel)], env=env, cwd=venv.parent)
    else:
        _run([sys.executable, "-m", "venv", str(venv)], env=env)
        _run([str(python), "-m", "pip", "install", "-q", str(wheel)], env=env)
    return str(venv / BIN / f"sessionforge{EXE}")
