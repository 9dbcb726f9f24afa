"""The option combinations of the template, as a model shared by the tests and the benchmark.

A combination is one choice of each of copier.yml's ``mode``, ``backend``, ``database``
(asked only for a backend that keeps nothing but the sessions), ``auth`` and ``example_api``.
``all_combos`` reads the choices from copier.yml, so a new choice joins the matrix by itself.
Code that needs to know what a combination is asks its fields, never its id's spelling.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Backends that keep only the sessions, so the data database is asked separately.
SESSION_ONLY_BACKENDS = frozenset({"redis"})
SQL_DATABASES = frozenset({"sqlite", "postgres", "mysql"})


def load_config(copier_yml: Path) -> dict[str, Any]:
    """copier.yml as a mapping."""
    with copier_yml.open(encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict):
        raise TypeError(f"{copier_yml} is not a mapping")
    return config


def choice_values(config: Mapping[str, Any], key: str) -> list[Any]:
    """The values (not the labels) of a Copier question's choices, in order."""
    question = config.get(key)
    if not isinstance(question, dict):
        raise TypeError(f"copier.yml has no question {key!r}")
    if question.get("type") == "bool" and "choices" not in question:
        return [True, False]
    choices = question.get("choices")
    if isinstance(choices, dict):
        raw = list(choices.values())
    elif isinstance(choices, list):
        raw = [c[1] if isinstance(c, list | tuple) else c for c in choices]
    else:
        raise TypeError(f"copier.yml question {key!r} has no choices")
    return [v["value"] if isinstance(v, dict) else v for v in raw]


@dataclass(frozen=True)
class Combo:
    mode: str
    backend: str
    database: str
    auth: str
    example_api: bool

    @property
    def separate_database(self) -> bool:
        return self.backend in SESSION_ONLY_BACKENDS

    @property
    def sql(self) -> bool:
        """The data lives in a SQL database (with or without a separate session store)."""
        return self.database in SQL_DATABASES

    @property
    def parts(self) -> list[str]:
        parts = [self.mode, self.backend]
        if self.separate_database:
            parts.append(self.database)
        return [*parts, self.auth]

    @property
    def id(self) -> str:
        return "-".join([*self.parts, "example" if self.example_api else "noexample"])

    @property
    def project_name(self) -> str:
        return " ".join(["svc", *self.parts, "ex" if self.example_api else "noex"])

    def answers(self) -> dict[str, Any]:
        answers: dict[str, Any] = {
            "project_name": self.project_name,
            "mode": self.mode,
            "backend": self.backend,
            "auth": self.auth,
            "example_api": self.example_api,
        }
        if self.separate_database:
            answers["database"] = self.database
        return answers


def all_combos(config: Mapping[str, Any]) -> list[Combo]:
    databases = choice_values(config, "database")
    combos = []
    for mode, backend in itertools.product(
        choice_values(config, "mode"), choice_values(config, "backend")
    ):
        for database in databases if backend in SESSION_ONLY_BACKENDS else [backend]:
            for auth, example in itertools.product(
                choice_values(config, "auth"), choice_values(config, "example_api")
            ):
                combos.append(Combo(mode, backend, database, auth, bool(example)))
    return combos
