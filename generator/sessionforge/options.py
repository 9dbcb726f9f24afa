"""The template's questions, read from copier.yml, and up-front answer checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sessionforge.errors import SessionforgeError, UsageError
from sessionforge.template import COPIER_FILE

_TRUE = frozenset({"y", "yes", "t", "true", "on", "1"})
_FALSE = frozenset({"n", "no", "f", "false", "off", "0"})


@dataclass(frozen=True)
class Question:
    """One question of copier.yml that a user can answer."""

    key: str
    help: str
    type: str
    choices: tuple[str, ...] | None
    labels: tuple[str, ...] | None
    default: Any

    @property
    def computed_default(self) -> bool:
        """True when the default is a Jinja expression of other answers."""
        return isinstance(self.default, str) and ("{{" in self.default or "{%" in self.default)

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "help": self.help,
            "type": self.type,
            "choices": list(self.choices) if self.choices is not None else None,
            "default": self.default,
        }


def _choices(raw: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """Return (values, labels) of a Copier ``choices`` entry, or None."""
    if raw is None:
        return None
    values: list[str] = []
    labels: list[str] = []
    items: list[tuple[Any, Any]]
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list):
        items = [(item, item) for item in raw]
    else:  # a Jinja/YAML string rendered by Copier at run time: not checkable here
        return None
    for label, value in items:
        if isinstance(value, dict):  # {"value": ..., "validator": ...}
            value = value.get("value")
        values.append(_as_text(value))
        labels.append(str(label))
    return tuple(values), tuple(labels)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_questions(root: Path) -> list[Question]:
    """The answerable questions of the template at *root*, in copier.yml order.

    Settings (keys starting with ``_``) and computed values (``when: false``)
    are skipped.
    """
    path = root / COPIER_FILE
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise SessionforgeError(f"Cannot read the template's {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SessionforgeError(f"The template's {path} is not a mapping of questions.")
    questions: list[Question] = []
    for key, spec in data.items():
        if not isinstance(key, str) or key.startswith("_"):
            continue
        if not isinstance(spec, dict):  # shorthand `key: default`
            spec = {"default": spec}
        if spec.get("when") is False:
            continue
        parsed = _choices(spec.get("choices"))
        questions.append(
            Question(
                key=key,
                help=str(spec.get("help") or "").strip(),
                type=str(spec.get("type") or "yaml"),
                choices=parsed[0] if parsed else None,
                labels=parsed[1] if parsed else None,
                default=spec.get("default"),
            )
        )
    return questions


def _join(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def check_answer(question: Question, value: str, source: str) -> Any:
    """Check one answer given on the command line; return the value for Copier.

    *source* names where it came from (``--backend``, ``--data backend=...``)
    for the error message. Free-text answers are left to Copier's validators.
    """
    if question.choices is not None:
        if value not in question.choices:
            raise UsageError(
                f'Invalid value for {source}: "{value}". '
                f"Valid {question.key} choices: {_join(question.choices)}."
            )
        return value
    if question.type == "bool":
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise UsageError(
            f'Invalid value for {source}: "{value}" is not a yes/no answer. '
            "Valid values: true, false (also yes, no, y, n, on, off, 1, 0)."
        )
    if question.type == "int":
        try:
            return int(value)
        except ValueError:
            raise UsageError(f'Invalid value for {source}: "{value}" is not an integer.') from None
    return value


def parse_data(items: list[str]) -> list[tuple[str, str]]:
    """Split ``--data KEY=VALUE`` items."""
    pairs: list[tuple[str, str]] = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(
                f'Invalid --data "{item}": expected KEY=VALUE, for example --data backend=sqlite.'
            )
        pairs.append((key, value))
    return pairs


def by_key(questions: list[Question]) -> dict[str, Question]:
    return {q.key: q for q in questions}


def unknown_key_error(key: str, questions: list[Question]) -> UsageError:
    return UsageError(
        f'Unknown answer key "{key}" in --data. Valid keys: {", ".join(q.key for q in questions)}.'
    )
