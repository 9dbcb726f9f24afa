"""The template's source stays nearly free of Jinja, and backends differ by file, not by branch.

Counted as issue 24 counts them, over the file bodies of ``template/src`` (file names are
not counted: a conditional file name is how an option picks a module):

- density: ``{% … %}`` tags plus ``{{ … }}`` substitutions per line, at most ``MAX_DENSITY``;
- the files whose bodies branch on Redis or MongoDB (an ``if``/``elif`` naming them),
  at most ``MAX_BACKEND_BRANCHING``.

Both figures are printed (``pytest -s``), so a change that moves them shows by how much.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO

SRC = REPO / "template" / "src"
MAX_DENSITY = 0.08
MAX_BACKEND_BRANCHING = 2

TAG = re.compile(r"\{%.*?%\}", re.DOTALL)
SUBSTITUTION = re.compile(r"\{\{.*?\}\}", re.DOTALL)
# A branch: an `if` or `elif` whose condition names Redis or MongoDB (a `set` naming a
# Mongo client class in a Mongo-only file picks no option).
BACKEND_BRANCH = re.compile(r"\{%-?\s*(?:el)?if\b[^%]*(?:redis|mongo)", re.IGNORECASE)


@dataclass(frozen=True)
class Counts:
    tags: int
    substitutions: int
    lines: int
    backend_branching: tuple[str, ...]

    @property
    def density(self) -> float:
        return (self.tags + self.substitutions) / self.lines


def count(src: Path) -> Counts:
    tags = substitutions = lines = 0
    branching = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found = TAG.findall(text)
        tags += len(found)
        substitutions += len(SUBSTITUTION.findall(text))
        lines += len(text.splitlines())
        if any(BACKEND_BRANCH.match(tag) for tag in found):
            branching.append(str(path.relative_to(src)))
    return Counts(tags, substitutions, lines, tuple(branching))


def test_the_counting_rule() -> None:
    sample = "{% if a %}\nx = {{ b }}\n{%- endif %}\ny = 1\n"
    assert TAG.findall(sample) == ["{% if a %}", "{%- endif %}"]
    assert SUBSTITUTION.findall(sample) == ["{{ b }}"]
    assert BACKEND_BRANCH.match("{%- if backend == 'redis' %}")
    assert BACKEND_BRANCH.match("{% elif mongo %}")
    assert not BACKEND_BRANCH.match("{% if auth != 'none' %}")
    assert not BACKEND_BRANCH.match("{%- set client_t = 'AsyncMongoClient' %}")


@pytest.mark.render
@pytest.mark.fast
def test_template_src_is_nearly_free_of_jinja() -> None:
    counts = count(SRC)
    print(
        f"\ndensity {counts.density:.3f} = ({counts.tags} tags + {counts.substitutions}"
        f" substitutions) / {counts.lines} lines; bodies branching on Redis or MongoDB:"
        f" {len(counts.backend_branching)} {list(counts.backend_branching)}"
    )
    assert counts.density <= MAX_DENSITY, f"Jinja density {counts.density:.3f} > {MAX_DENSITY}"
    assert len(counts.backend_branching) <= MAX_BACKEND_BRANCHING, counts.backend_branching
