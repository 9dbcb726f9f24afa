"""Golden renders: a few generated projects, committed under tests/golden/<combination id>/.

Review a template change by reading its golden diff, as a user would read their project.
Refresh them after changing the template (the CI check, tests/test_golden.py, fails until then):

    python tests/golden.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
# The default, and one per kind of wiring: Redis sessions beside a SQL database in sync
# mode with tokens, MongoDB for both, and Redis sessions beside MongoDB.
IDS = (
    "async-sqlite-session-example",
    "sync-redis-postgres-jwt-example",
    "async-mongo-session-example",
    "async-redis-mongo-none-noexample",
)
# .copier-answers.yml names the folder rendered from, which differs on every run.
SRC_PATH_LINE = "_src_path:"


def normalize(path: Path) -> None:
    answers = path / ".copier-answers.yml"
    lines = answers.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(SRC_PATH_LINE)]
    answers.write_text("".join(kept), encoding="utf-8")


def render_golden(src: Path, combo_id: str, dst: Path) -> None:
    import copier

    from tests.support.matrix import COMBOS

    [combo] = [c for c in COMBOS if c.id == combo_id]
    copier.run_copy(str(src), dst, data=combo.answers(), defaults=True, unsafe=False, quiet=True)
    normalize(dst)


def files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def main() -> int:
    # As pytest's configuration does: the generator and the tests, from this checkout.
    sys.path[:0] = [str(REPO / "generator"), str(REPO)]
    from tests.support.rendering import template_copy

    with tempfile.TemporaryDirectory() as tmp:
        src = template_copy(Path(tmp))
        for combo_id in IDS:
            target = GOLDEN / combo_id
            shutil.rmtree(target, ignore_errors=True)
            render_golden(src, combo_id, target)
            print(f"refreshed {target.relative_to(REPO)} ({len(files(target))} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
