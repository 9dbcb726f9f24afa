"""Rename answers in a Copier answers file, for `_migrations` in copier.yml.

    python rename_answers.py .copier-answers.yml OLD=NEW [OLD=NEW ...]

Run by Copier before an update renders (stage "before"), when a question was renamed
between template versions, so the project keeps its answer under the new key instead of
getting the new question's default. Only top-level keys are renamed, in place: the rest of
the file is left as it is. A key that is absent, or whose new name is already answered,
is left alone, so running it twice changes nothing. Standard library only: Copier runs it
with its own Python (`_copier_python`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def rename(text: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        if re.search(rf"^{re.escape(new)}:", text, re.MULTILINE):
            continue
        text = re.sub(rf"^{re.escape(old)}:", f"{new}:", text, count=1, flags=re.MULTILINE)
    return text


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not all("=" in pair for pair in argv[1:]):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[0])
    renames = dict(pair.split("=", 1) for pair in argv[1:])
    path.write_text(rename(path.read_text(encoding="utf-8"), renames), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
