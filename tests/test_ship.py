"""What a generated project ships with beyond its code: a clean tree from an installed
wheel, and a container image that builds and serves (see also tests/test_matrix.py, which
validates every combination's Dockerfile, compose.yaml and CI workflow).
"""

from __future__ import annotations

import compileall
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import copier

REPO = Path(__file__).resolve().parent.parent
# What a checkout holds that a build does not need (the template history falls back to
# the packaged version alone without .git, with a warning).
NOT_BUILT = (".git", ".cache", ".venv*", "__pycache__", "*.egg-info", "dist", "build")


def _bytecode(paths: list[str]) -> list[str]:
    return [p for p in paths if "__pycache__" in p.split("/") or p.endswith((".pyc", ".pyo"))]


def build_wheel(src: Path, out: Path) -> Path:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if Path(uv).is_file():
        cmd = [uv, "build", "--wheel", "--out-dir", str(out), str(src)]
    else:
        cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)]
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout}"
    wheels = list(out.glob("sessionforge-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_no_bytecode_from_an_installed_template(tmp_path: Path) -> None:
    # A checkout whose template has bytecode caches in it, as a test run or an editor
    # leaves them: none of it may reach the wheel.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*NOT_BUILT))
    stale = src / "template" / "tests" / "__pycache__" / "conftest.cpython-311.pyc"
    stale.parent.mkdir()
    stale.write_bytes(b"\0stale")
    wheel = build_wheel(src, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "sessionforge/_template/copier.yml" in names
        assert any(n.startswith("sessionforge/_template/template/src/") for n in names)
        assert not _bytecode(names), f"bytecode in the wheel: {_bytecode(names)}"
        site = tmp_path / "site"
        zf.extractall(site)

    # pip compiles every .py file it installs (the template has a few plain .py files),
    # so an installed template always has __pycache__ folders: Copier must skip them.
    template = site / "sessionforge" / "_template"
    assert compileall.compile_dir(str(template), quiet=1)
    compiled = [p.as_posix() for p in template.rglob("*.pyc")]
    assert compiled, "compileall compiled nothing: the check below would prove nothing"

    project = tmp_path / "project"
    copier.run_copy(
        str(template),
        project,
        data={"project_name": "from wheel"},
        defaults=True,
        unsafe=False,
        quiet=True,
    )
    assert (project / "src" / "from_wheel" / "__init__.py").is_file()
    rendered = [p.relative_to(project).as_posix() for p in project.rglob("*")]
    assert not _bytecode(rendered), f"bytecode in the project: {_bytecode(rendered)}"
