"""Rendering and environments, done as the matrix tests do them (tests/test_matrix.py).

The benchmark installs each generated project in the matrix tests' cached environment for its
dependency set (``.cache/envs/<key>``, so a run after the tests builds nothing), and it renders
the same way, so it uses their code rather than a copy. tests/ is no package: the module is
loaded from its path, under a name of its own (under pytest it is imported a second time, which
only reads copier.yml again).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.processes import REPO

_NAME = "_sfbench_test_matrix"


def _matrix() -> ModuleType:
    if _NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(_NAME, REPO / "tests" / "test_matrix.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[_NAME]


def dropped_env() -> frozenset[str]:
    """Variables of a generated service that must not leak in from this environment."""
    names: frozenset[str] = _matrix().DROPPED_ENV
    return names


def render(src: Path, dst: Path, answers: Mapping[str, Any]) -> None:
    _matrix().render(src, dst, answers)


def project_dependencies(project: Path) -> list[str]:
    deps: list[str] = _matrix().project_dependencies(project)
    return deps


def ensure_env(deps: list[str]) -> tuple[str, Path]:
    """(key, folder) of a ready environment holding `deps`, built once and then reused."""
    key, folder = _matrix().ensure_env(deps)
    return str(key), Path(folder)
