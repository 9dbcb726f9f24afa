"""Shared pytest configuration: markers, fixtures and the per-combination timing summary.

Markers (registered here because pyproject.toml belongs to the package, not the tests):

- ``fast``: the quick edit-test loop (``pytest -m fast``): two full generated-project
  checks plus the cheap render checks of those two combinations.
- ``slow``: every other full generated-project check (plain ``pytest`` runs them all).
- ``render``: render-only checks of every combination (no environments, no servers).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.matrix import CONFIG
from tests.support.rendering import template_copy

# Golden renders are generated projects, with tests of their own: not ours to collect.
collect_ignore = ["golden"]

_TIMINGS: list[tuple[str, str, str]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fast: quick tier (two generated projects end to end, cheap render checks)",
    )
    config.addinivalue_line(
        "markers",
        "slow: the rest of the generated-project matrix (ruff, mypy, the project's pytest)",
    )
    config.addinivalue_line(
        "markers",
        "render: render-only checks of the template (no environments, no servers)",
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Runs in the controlling process under pytest-xdist too: user_properties travel
    # with the report, so the summary below covers every worker.
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == "timing":
            _TIMINGS.append((report.nodeid, report.outcome, str(value)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TIMINGS:
        return
    terminalreporter.section("generated-project timings")
    for nodeid, outcome, value in sorted(_TIMINGS):
        name = nodeid.rsplit("::", 1)[-1]
        terminalreporter.write_line(f"{name:<60} {outcome:<7} {value}")


@pytest.fixture(scope="session")
def template_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of copier.yml + the template folder, made once per session (and xdist worker).

    Rendering from a plain folder makes Copier use the files as they are on disk, with
    uncommitted edits, instead of cloning the repository's HEAD.
    """
    src = tmp_path_factory.mktemp("template-src")
    return template_copy(src, str(CONFIG.get("_subdirectory") or "template"))
