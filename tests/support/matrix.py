"""The combinations the matrix tests run, read from copier.yml, and their markers.

- ``fast``: two combinations (``FAST_IDS``), in full and in the render checks.
- ``slow``: every other full generated-project check.
- ``render``: the render-only checks of every combination.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.support.combos import Combo, all_combos
from tests.support.paths import REPO

FAST_IDS = frozenset({"async-sqlite-session-example", "sync-sqlite-none-noexample"})


def full_suite_ids(combos: list[Combo]) -> frozenset[str]:
    """The combinations whose generated tests run whole, the ``slow`` ones included.

    The generated ``slow`` tests start servers and processes of their own (uvicorn workers,
    PgBouncer, a private PostgreSQL or MariaDB, Redis Cluster and Sentinel): what they
    exercise differs by mode and by store and database, hardly by auth style or example.
    So they run once per (mode, backend, database), with the auth styles and the example
    spread so that every (mode, auth, example) is among them too; the other combinations
    run everything else (``-m "not slow"``: deselected, not skipped). That keeps the
    matrix inside its time without leaving a store, a database or a mode untried.
    """
    chosen: set[str] = set()
    for shift, mode in enumerate(sorted({c.mode for c in combos})):
        stores = sorted({(c.backend, c.database) for c in combos if c.mode == mode})
        variants = sorted({(c.auth, c.example_api) for c in combos if c.mode == mode})
        for number, store in enumerate(stores):
            auth, example_api = variants[(number + 3 * shift) % len(variants)]
            chosen.add(Combo(mode, *store, auth, example_api).id)
    return frozenset(chosen | FAST_IDS)


def load_copier_config() -> dict[str, Any]:
    with (REPO / "copier.yml").open(encoding="utf-8") as f:
        config = yaml.safe_load(f)
    assert isinstance(config, dict), "copier.yml is not a mapping"
    return config


CONFIG = load_copier_config()
COMBOS = all_combos(CONFIG)
FULL_SUITE_IDS = full_suite_ids(COMBOS)


def params(*, full: bool) -> list[Any]:
    result = []
    for combo in COMBOS:
        if full:
            marks = [pytest.mark.fast if combo.id in FAST_IDS else pytest.mark.slow]
        else:
            marks = [pytest.mark.render, *([pytest.mark.fast] if combo.id in FAST_IDS else [])]
        result.append(pytest.param(combo, id=combo.id, marks=marks))
    return result


def combo_by_id(combo_id: str) -> Combo:
    return next(combo for combo in COMBOS if combo.id == combo_id)
