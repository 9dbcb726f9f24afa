"""The golden renders under tests/golden/ are what the template renders now.

A failure means the template changed without its golden renders: run
`python tests/golden.py`, then read the diff (`git diff tests/golden`) as a user would.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from tests.golden import GOLDEN, IDS, files, render_golden

MAX_DIFF_LINES = 200


@pytest.mark.render
@pytest.mark.fast
@pytest.mark.parametrize("combo_id", IDS)
def test_golden_render_is_current(
    template_src: Path,
    tmp_path: Path,
    combo_id: str,
) -> None:
    rendered = tmp_path / "project"
    render_golden(template_src, combo_id, rendered)
    expected, actual = files(GOLDEN / combo_id), files(rendered)
    assert expected, f"tests/golden/{combo_id} is missing: run `python tests/golden.py`"
    problems = [f"missing from the render: {name}" for name in sorted(expected.keys() - actual)]
    problems += [f"new in the render: {name}" for name in sorted(actual.keys() - expected)]
    for name in sorted(expected.keys() & actual.keys()):
        if expected[name] != actual[name]:
            diff = difflib.unified_diff(
                expected[name].decode(errors="replace").splitlines(),
                actual[name].decode(errors="replace").splitlines(),
                f"golden/{name}",
                f"render/{name}",
                lineterm="",
            )
            problems.append("\n".join(list(diff)[:MAX_DIFF_LINES]))
    assert not problems, (
        f"{combo_id}: the golden render differs (refresh with `python tests/golden.py`):\n"
        + "\n".join(problems)
    )
