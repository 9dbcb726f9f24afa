"""Render the template for every option combination and check the generated projects.

The matrix is read from copier.yml, so new choices join it without touching this file.

- ``test_render_*``: cheap checks of the rendered tree (marker ``render``).
- ``test_generated_project``: for each combination, in the rendered project, with an
  environment holding the project's dependencies: ``ruff check``, ``ruff format --check``,
  ``mypy`` (strict, from the project's own config) and the project's own pytest run against
  the local servers (markers ``fast`` for two combinations, ``slow`` for the rest).

The helpers live in tests/support/ (the combinations and their markers in ``matrix``,
environments in ``envs``, validators of the shipped files in ``validators``), the
``template_src`` fixture in tests/conftest.py.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.combos import SESSION_ONLY_BACKENDS, Combo, choice_values
from tests.support.envs import (
    PYTHON_VERSION,
    EnvError,
    ensure_env,
    project_dependencies,
    project_env,
    require_servers,
    uv_command,
)
from tests.support.matrix import (
    COMBOS,
    CONFIG,
    FAST_IDS,
    FULL_SUITE_IDS,
    combo_by_id,
    params,
)
from tests.support.paths import CACHE
from tests.support.rendering import layout_problems, render, tree_problems
from tests.support.running import (
    LINT_TIMEOUT,
    MYPY_TIMEOUT,
    PYTEST_TIMEOUT,
    _passed,
    _path_step,
    pytest_summary,
    run_step,
    worker_id,
)
from tests.support.validators import (
    compose_problems,
    dockerfile_problems,
    pyproject_problems,
    workflow_problems,
)

# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("combo", params(full=False))
def test_render(template_src: Path, tmp_path: Path, combo: Combo) -> None:
    dst = tmp_path / "project"
    answers = combo.answers()
    render(template_src, dst, answers)

    answers_file = dst / ".copier-answers.yml"
    assert answers_file.is_file(), ".copier-answers.yml was not written"
    recorded = yaml.safe_load(answers_file.read_text(encoding="utf-8")) or {}
    for key, value in answers.items():
        assert recorded.get(key) == value, f".copier-answers.yml: {key}={recorded.get(key)!r}"
    if not combo.separate_database:
        # Not asked, so normally not recorded; if it is, it must equal the backend.
        assert recorded.get("database", combo.database) == combo.database

    problems = tree_problems(dst)
    problems += layout_problems(dst, combo, str(recorded.get("package_name", "")))
    assert not problems, f"{combo.id} renders badly ({dst}):\n" + "\n".join(problems)


BASE_ANSWERS = {"project_name": "svc invalid"}


@pytest.mark.render
@pytest.mark.fast
@pytest.mark.parametrize("key", ["mode", "backend", "database", "auth"])
def test_render_refuses_invalid_choice(template_src: Path, tmp_path: Path, key: str) -> None:
    answers: dict[str, Any] = {**BASE_ANSWERS, key: "no-such-choice"}
    if key == "database":
        session_only = [b for b in choice_values(CONFIG, "backend") if b in SESSION_ONLY_BACKENDS]
        if session_only:
            answers["backend"] = session_only[0]
    dst = tmp_path / "project"
    with pytest.raises(ValueError):
        render(template_src, dst, answers)
    assert not dst.exists() or not any(dst.iterdir()), "files were written"


@pytest.mark.render
@pytest.mark.fast
@pytest.mark.parametrize(
    "backend",
    [b for b in choice_values(CONFIG, "backend") if b not in SESSION_ONLY_BACKENDS],
)
def test_render_refuses_database_other_than_backend(
    template_src: Path, tmp_path: Path, backend: str
) -> None:
    others = [d for d in choice_values(CONFIG, "database") if d != backend]
    if not others:
        pytest.skip("no database choice differs from this backend yet")
    dst = tmp_path / "project"
    with pytest.raises(ValueError):
        render(template_src, dst, {**BASE_ANSWERS, "backend": backend, "database": others[0]})
    assert not dst.exists() or not any(dst.iterdir()), "files were written"


# --------------------------------------------------------------------------- shipping files


@pytest.mark.parametrize("combo", params(full=False))
def test_render_shipping_files(template_src: Path, tmp_path: Path, combo: Combo) -> None:
    project = tmp_path / "project"
    render(template_src, project, combo.answers())
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    package_name = str(recorded["package_name"])
    problems = [
        *pyproject_problems(project, package_name),
        *dockerfile_problems(project, combo),
        *compose_problems(project, combo),
        *workflow_problems(project, combo),
    ]
    assert not problems, f"{combo.id} ({project}):\n" + "\n".join(problems)


# --------------------------------------------------------------------------- generated projects


@pytest.mark.parametrize("combo", params(full=True))
def test_generated_project(
    template_src: Path,
    tmp_path: Path,
    combo: Combo,
    record_property: Any,
) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()

    def done(stage: str, since: float) -> float:
        now = time.monotonic()
        timings[stage] = now - since
        return now

    project = tmp_path / "project"
    render(template_src, project, combo.answers())
    mark = done("render", started)

    deps = project_dependencies(project)
    assert deps, "the generated pyproject.toml lists no dependencies"
    try:
        key, env_dir = ensure_env(deps)
    except EnvError as exc:
        pytest.fail(f"could not build the environment for {combo.id}:\n{exc}")
    mark = done("env", mark)

    require_servers(combo)
    env = project_env(combo, env_dir)
    python = str(env_dir / "bin" / "python")
    mypy_cache = CACHE / "mypy" / f"{key}-{worker_id()}"
    steps = [
        ("ruff-check", [python, "-m", "ruff", "check", "--no-cache", "."], LINT_TIMEOUT),
        ("ruff-format", [python, "-m", "ruff", "format", "--check", "--no-cache", "."], 300),
        ("mypy", [python, "-m", "mypy", "--cache-dir", str(mypy_cache)], MYPY_TIMEOUT),
        (
            "pytest",
            [
                *(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"),
                *(() if combo.id in FULL_SUITE_IDS else ("-m", "not slow")),
            ],
            PYTEST_TIMEOUT,
        ),
    ]
    results = []
    for name, cmd, timeout in steps:
        step = run_step(name, cmd, project, env, timeout)
        timings[name] = step.seconds
        results.append(step)
    timings["total"] = time.monotonic() - started

    timing = ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in timings.items())
    record_property("timing", f"{timing} (env {key})")
    for stage, seconds in timings.items():
        record_property(f"seconds_{stage}", f"{seconds:.2f}")
    print(f"{combo.id}: {timing} (env {key}, project {project})")

    failures = [step.report() for step in results if step.returncode != 0]
    pytest_step = results[-1]
    summary = pytest_summary(pytest_step.output)
    if pytest_step.returncode == 0:
        if summary is None:
            failures.append("----- pytest: no summary line found\n" + pytest_step.report())
        elif summary.get("passed", 0) < 1 or summary.get("failed", 0) or summary.get("errors", 0):
            failures.append(f"----- pytest summary {summary}\n" + pytest_step.report())
        elif summary.get("skipped", 0):
            # This machine has every server the generated tests need: a skip here
            # would hide a test that never ran.
            failures.append(f"----- pytest skipped tests {summary}\n" + pytest_step.report())
    assert not failures, f"{combo.id} ({project}):\n" + "\n".join(failures)


# --------------------------------------------------------------------------- install paths
#
# The generated README's two ways in, each run for real in a fresh project: uv (`uv sync`
# installs the dev group, then `uv run pytest`) and pip (`pip install -e '.[dev]'` into a
# fresh virtualenv). uv and pip keep their download caches between runs.

UV_PATH_ID = "async-sqlite-session-example"  # the default answers
PIP_PATH_ID = "sync-redis-postgres-jwt-example"


@pytest.mark.slow
def test_uv_path(template_src: Path, tmp_path: Path) -> None:
    uv = uv_command()
    if uv is None:
        pytest.fail("uv is not installed: pip install -e '.[test]'")
    combo = combo_by_id(UV_PATH_ID)
    require_servers(combo)
    project = tmp_path / "project"
    render(template_src, project, combo.answers())
    venv = project / ".venv"
    env = project_env(combo, venv)
    # Only the project's own .venv: no tool from the environment running this test.
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if Path(p).resolve() != Path(sys.executable).parent
    )
    env.pop("VIRTUAL_ENV")
    env["UV_PYTHON"] = PYTHON_VERSION
    _path_step("uv sync", [*uv, "sync"], project, env)
    for tool in ("pytest", "ruff", "mypy"):
        assert (venv / "bin" / tool).is_file(), f"uv sync did not install the dev tool {tool}"
    step = _path_step(
        "uv run pytest", [*uv, "run", "pytest", "-q", "-p", "no:cacheprovider"], project, env
    )
    print(f"{combo.id} by uv: {_passed(step)} in {step.seconds:.1f}s")


@pytest.mark.slow
def test_pip_path(template_src: Path, tmp_path: Path) -> None:
    combo = combo_by_id(PIP_PATH_ID)
    require_servers(combo)
    project = tmp_path / "project"
    render(template_src, project, combo.answers())
    venv = tmp_path / "venv"
    env = project_env(combo, venv)
    _path_step("venv", [sys.executable, "-m", "venv", str(venv)], project, env)
    python = str(venv / "bin" / "python")
    _path_step(
        "pip install",
        [python, "-m", "pip", "install", "--quiet", "-e", ".[dev]"],
        project,
        env,
    )
    step = _path_step(
        "pytest", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, env
    )
    print(f"{combo.id} by pip: {_passed(step)} in {step.seconds:.1f}s")


# --------------------------------------------------------------------------- self-checks


@pytest.mark.render
@pytest.mark.fast
def test_matrix_is_well_formed() -> None:
    ids = [combo.id for combo in COMBOS]
    assert ids, "copier.yml yields no combinations"
    assert len(ids) == len(set(ids)), "combination ids collide"
    assert set(ids) >= FAST_IDS, f"fast combinations missing from the matrix: {FAST_IDS - set(ids)}"
    assert {UV_PATH_ID, PIP_PATH_ID} <= set(ids), "an install-path combination left the matrix"
    assert pytest_summary("==== 3 passed, 1 skipped, 2 warnings in 0.52s ====") == {
        "passed": 3,
        "skipped": 1,
        "warnings": 2,
    }
    assert pytest_summary("1 failed, 1 error in 61.20s (0:01:01)") == {"failed": 1, "errors": 1}
    assert pytest_summary("no tests ran in 0.01s") == {}
    assert pytest_summary("collected 0 items") is None
