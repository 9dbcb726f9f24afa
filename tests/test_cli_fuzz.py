"""Bad input to the generator, fuzzed with Hypothesis (CONTRACT §1, §2).

Properties:

- ``sessionforge new`` with fuzzed DEST, --name, --mode/--backend/--database/--auth
  and --data KEY=VALUE items exits 0 or 2, never 1 and never with a traceback. On 2
  nothing is written (the work area is unchanged, no staging directory left); on 0
  the project is valid: ``src/<package_name>`` is a safe identifier, every .py file
  parses, ``ruff check`` and ``ruff format --check`` pass with the project's own
  configuration, pyproject's name is a valid distribution name, and
  ``.copier-answers.yml`` records the answers given.
- Plain Copier (``run_copy(defaults=True, unsafe=False)``) refuses a bad project_name
  or package_name with its validation error carrying our message (not an error raised
  inside our Jinja), and writes nothing; what it accepts is a valid project.
- For every project_name the validator accepts, the derived package_name is a
  lowercase ASCII identifier of at most 32 characters that is not reserved, and the
  package_name validator accepts it.

Examples are derandomized (the same on every run) and bounded so that the file runs
in about a minute.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import keyword
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from jinja2 import Template
from jinja2.sandbox import SandboxedEnvironment
from typer.testing import CliRunner, Result

from sessionforge.cli import app
from sessionforge.template import copier_source

REPO = Path(__file__).resolve().parent.parent
COPIER = yaml.safe_load((REPO / "copier.yml").read_text(encoding="utf-8"))
RESERVED_TEXT: str = COPIER["reserved_package_names"]["default"]
RESERVED: list[str] = RESERVED_TEXT.split()
KEYS = ["project_name", "package_name", "mode", "backend", "database", "auth", "example_api"]
TRACEBACK = "Traceback (most recent call last)"
# PEP 508 / packaging: what pip and hatchling accept as a distribution name.
DIST_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
STAGING = ".sessionforge-"


def _choices(key: str) -> list[str]:
    raw = COPIER[key]["choices"]
    values = raw.values() if isinstance(raw, dict) else raw
    return [str(v["value"] if isinstance(v, dict) else v) for v in values]


CHOICES = {key: _choices(key) for key in ("mode", "backend", "database", "auth")}

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strategies -----------------------------------------------------------------------

ODD = [
    "",
    " ",
    "=",
    "a=b",
    "\x00",
    "a\x00b",
    "\n",
    "a\nb",
    "\t",
    "café",
    "ünïcödé",
    "名前",
    "٣",
    "a\u00a0b",
    "..",
    ".",
    "a/b",
    "../x",
    "/abs",
    "C:\\x",
    "{{ 7 * 7 }}",
    "{% raw %}",
    "'\"",
    "None",
    "null",
    "true",
    "yes",
    "x" * 300,
    "\ud800",
]
RESERVED_LIKE = [
    "class",
    "None",
    "True",
    "async",
    "match",
    "type",
    "__init__",
    "__main__",
    "__future__",
    "_",
    "__",
    "_private",
    "email",
    "calendar",
    "os",
    "sys",
    "json",
    "pytest",
    "fastapi",
    "sessions",
    "app",
    "tests",
]

# Within copier.yml's project_name alphabet: leading digits, separators only, long.
allowed_names = st.text(alphabet="abcxyzABCXYZ0189 -_", min_size=0, max_size=70) | st.from_regex(
    r"[0-9 _-]{0,5}[A-Za-z0-9][A-Za-z0-9 _-]{0,40}", fullmatch=True
)
# Likely to be accepted: most CLI examples should get as far as a project.
good_names = st.from_regex(
    r"[A-Za-z][A-Za-z0-9]{0,10}([ _-]{1,2}[A-Za-z0-9]{1,10}){0,3}", fullmatch=True
)
project_names = st.one_of(
    allowed_names,
    st.sampled_from(ODD + RESERVED_LIKE),
    st.text(max_size=30),
    st.text(min_size=60, max_size=400),
)
package_names = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_]{0,40}", fullmatch=True),
    st.sampled_from(ODD + RESERVED_LIKE + ["Abc", "1abc", "a b", "a-b", "a.b", "x" * 33]),
    st.text(max_size=40),
)
values = st.one_of(st.sampled_from(ODD), st.text(max_size=20), st.text(min_size=200, max_size=3000))


def choice_values(key: str) -> st.SearchStrategy[str]:
    valid = CHOICES[key]
    odd = [v.upper() for v in valid] + [f" {valid[0]}", f"{valid[0]}\n", "mongo-ish"]
    return st.sampled_from(valid) | st.sampled_from(odd) | values


data_keys = st.sampled_from(KEYS) | st.sampled_from(
    ["is_async", "sql", "_src_path", "_commit", "colour", " mode", "mode ", "MODE", "", "é"]
)
# DEST is used relative to <base>/work/inner: never absolute, at most two levels up.
dests = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True),
    st.sampled_from(
        [
            ".",
            "./",
            "..",
            "../..",
            "",
            " ",
            "a/b/c",
            "a//b",
            "./x",
            "x/",
            "café",
            "my.service",
            "my service",
            "-x",
            "--",
            "\x00",
            "a\x00",
            "\ud800",
            "x" * 256,
            "d/" + "y" * 300,
            "/".join(["z" * 200] * 25),
            "file",
            "file/x",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_characters="/\\~"), max_size=20).filter(
        lambda s: ".." not in s and not s.startswith("-")
    ),
)


@dataclass
class Invocation:
    dest: str
    name: str | None = None
    flags: dict[str, str] = field(default_factory=dict)
    data: list[tuple[str, str]] = field(default_factory=list)
    example: bool | None = None

    def argv(self) -> list[str]:
        args = ["new", self.dest]
        if self.name is not None:
            args += ["--name", self.name]
        for flag, value in self.flags.items():
            args += [flag, value]
        if self.example is not None:
            args.append("--example" if self.example else "--no-example")
        for key, value in self.data:
            args += ["--data", f"{key}={value}"]
        return args


@st.composite
def plausible_invocations(draw: st.DrawFn) -> Invocation:
    """Valid-looking answers: most get as far as a project, which is then checked."""
    inv = Invocation(
        dest=draw(
            st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True) | st.just("nested/dir/svc")
        )
    )
    inv.name = draw(st.none() | good_names)
    backend = draw(st.sampled_from(CHOICES["backend"]))
    inv.flags = {
        "--mode": draw(st.sampled_from(CHOICES["mode"])),
        "--backend": backend,
        "--auth": draw(st.sampled_from(CHOICES["auth"])),
    }
    if backend == "redis":
        inv.flags["--database"] = draw(st.sampled_from(CHOICES["database"]))
    inv.example = draw(st.none() | st.booleans())
    if draw(st.booleans()):
        package = st.from_regex(r"[a-z][a-z0-9_]{0,24}", fullmatch=True)
        inv.data.append(("package_name", draw(package | package_names)))
    if inv.name is None and draw(st.booleans()):
        inv.data.append(("project_name", draw(good_names | allowed_names)))
    return inv


@st.composite
def fuzzy_invocations(draw: st.DrawFn) -> Invocation:
    inv = Invocation(dest=draw(dests))
    if draw(st.booleans()):
        inv.name = draw(good_names | project_names)
    for key in ("mode", "backend", "database", "auth"):
        if draw(st.integers(0, 3)) == 0:
            inv.flags[f"--{key}"] = draw(choice_values(key))
    inv.example = draw(st.none() | st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        key = draw(data_keys)
        if key == "project_name":
            value = draw(good_names | project_names)
        elif key == "package_name":
            value = draw(package_names)
        elif key in CHOICES:
            value = draw(choice_values(key))
        elif key == "example_api":
            value = draw(st.sampled_from(["true", "no", "1", "Off", "maybe", ""]) | values)
        else:
            value = draw(values)
        inv.data.append((key, value))
    return inv


# --- helpers --------------------------------------------------------------------------


def snapshot(root: Path) -> set[str]:
    """Every path under *root*, relative: what "nothing written" compares."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@contextlib.contextmanager
def work_area() -> Iterator[tuple[Path, Path]]:
    """(base, cwd): DEST is resolved in cwd = base/work/inner, next to a plain file."""
    with tempfile.TemporaryDirectory(prefix="sf-fuzz-") as tmp:
        base = Path(tmp)
        inner = base / "work" / "inner"
        inner.mkdir(parents=True)
        (inner / "file").write_text("a file, not a directory\n")
        with contextlib.chdir(inner):
            yield base, inner


def run(argv: list[str]) -> Result:
    env = {"SESSIONFORGE_DEBUG": None, "SESSIONFORGE_TEMPLATE": None, "COLUMNS": "200"}
    return CliRunner().invoke(app, argv, env=env)


def ruff(*args: str, cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache", "."],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)


def assert_safe_package_name(name: Any) -> None:
    assert isinstance(name, str)
    assert name.isascii() and name.isidentifier(), name
    assert name == name.lower() and name[:1].isalpha(), name
    assert len(name) <= 32, name
    assert not keyword.iskeyword(name) and not keyword.issoftkeyword(name), name
    assert name not in sys.stdlib_module_names, name
    assert name not in RESERVED, name


def assert_valid_project(dest: Path, given: dict[str, Any], *, lint: bool) -> None:
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text(encoding="utf-8"))
    package = answers["package_name"]
    assert_safe_package_name(package)
    assert [p.name for p in (dest / "src").iterdir()] == [package]
    assert (dest / "src" / package / "main.py").is_file()
    for path in dest.rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    pyproject = tomllib.loads((dest / "pyproject.toml").read_text(encoding="utf-8"))
    assert DIST_NAME.match(pyproject["project"]["name"]), pyproject["project"]["name"]
    for key, value in given.items():
        if key == "database" and answers.get("backend") != "redis":
            assert key not in answers  # asked only for redis; equal to backend otherwise
            continue
        assert answers[key] == value, (key, answers)
    if lint:
        ruff("check", cwd=dest)
        ruff("format", "--check", cwd=dest)


def _expected_answers(inv: Invocation) -> dict[str, Any]:
    """What the answers file must record when `new` succeeded."""
    given: dict[str, Any] = {}
    if inv.name is not None:
        given["project_name"] = inv.name
    for flag, value in inv.flags.items():
        given[flag.removeprefix("--")] = value
    if inv.example is not None:
        given["example_api"] = inv.example
    for raw_key, value in inv.data:
        key = raw_key.strip()  # as parse_data reads it
        if key == "example_api":
            given[key] = value.strip().lower() in {"y", "yes", "t", "true", "on", "1"}
        else:
            given[key] = value
    return given


# --- sessionforge new -----------------------------------------------------------------


@settings(FUZZ, max_examples=40)
@given(inv=plausible_invocations() | fuzzy_invocations())
# Inputs that once failed (see the git log), always tried besides the drawn ones.
@example(inv=Invocation(dest="x" * 300))
@example(inv=Invocation(dest="d/" + "y" * 300, name="ok"))
@example(inv=Invocation(dest="/".join(["z" * 200] * 25), name="ok"))
@example(inv=Invocation(dest="file/x", name="ok"))
@example(inv=Invocation(dest="email"))
@example(inv=Invocation(dest="svc", name=" -My App_ "))
@example(inv=Invocation(dest="svc", data=[("package_name", "__main__")]))
@example(inv=Invocation(dest="svc", data=[("package_name", "calendar")]))
@example(inv=Invocation(dest="svc", data=[("project_name", "a=b")]))
@example(inv=Invocation(dest="svc", name="123", data=[("package_name", "café")]))
def test_new_exits_0_or_2_and_writes_all_or_nothing(inv: Invocation) -> None:
    with work_area() as (base, cwd):
        before = snapshot(base)
        result = run(inv.argv())
        output = result.output
        event(f"exit {result.exit_code}")
        assert TRACEBACK not in output, output
        assert result.exit_code in (0, 2), (result.exit_code, output)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        if result.exit_code == 2:
            assert snapshot(base) == before, output
            # Ours ("Error: ...") or Click's usage error (e.g. DEST that looks like an option).
            assert result.stderr.startswith("Error: ") or "Usage:" in result.stderr, output
            return
        dest = Path(os.path.abspath(inv.dest))
        assert not [p for p in base.rglob(f"{STAGING}*")], "staging directory left behind"
        given = _expected_answers(inv)
        if "project_name" not in given:
            given["project_name"] = dest.name
        assert_valid_project(dest, given, lint=True)
        assert dest.is_relative_to(cwd) or dest == cwd


def test_empty_dest_is_refused() -> None:
    # An unset shell variable ("$DEST") must not mean the current directory.
    with tempfile.TemporaryDirectory(prefix="sf-fuzz-") as tmp, contextlib.chdir(tmp):
        result = run(["new", ""])
        assert result.exit_code == 2, result.output
        assert "DEST" in result.stderr
        assert not any(Path(tmp).iterdir())


# --- plain Copier ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def template_src() -> Iterator[Path]:
    """A plain snapshot of the template (copier would otherwise clone the checkout)."""
    with copier_source(REPO) as src:
        yield src


@settings(FUZZ, max_examples=25)
@given(
    project_name=good_names | project_names,
    package_name=st.none() | package_names,
)
@example(project_name="email", package_name=None)
@example(project_name="_a_", package_name=None)
@example(project_name="x", package_name="__future__")
@example(project_name="x", package_name="asyncpg")
def test_plain_copier_refuses_or_renders(
    template_src: Path, project_name: str, package_name: str | None
) -> None:
    from copier import run_copy

    data = {"project_name": project_name}
    if package_name is not None:
        data["package_name"] = package_name
    with tempfile.TemporaryDirectory(prefix="sf-fuzz-copier-") as tmp:
        dst = Path(tmp) / "out"
        try:
            run_copy(str(template_src), dst, data=data, defaults=True, unsafe=False, quiet=True)
        except ValueError as exc:
            event("refused")
            match = re.match(r"Validation error for question '(\w+)': (.*)", str(exc), re.S)
            assert match, repr(exc)
            key, message = match.groups()
            assert key in data, (key, data)
            # Our validator's own sentence, not an exception Copier caught while rendering it.
            assert message.startswith(key), message
            assert not dst.exists()
            return
        event("rendered")
        assert_valid_project(dst, data, lint=False)


# --- derivation of package_name -------------------------------------------------------


_JINJA = SandboxedEnvironment(keep_trailing_newline=True)  # as Copier's: sandboxed


@functools.cache
def _compiled(source: str) -> Template:
    return _JINJA.from_string(source)


def _render(source: str, **context: Any) -> str:
    return _compiled(source).render(reserved_package_names=RESERVED_TEXT, **context)


def project_name_error(name: str) -> str:
    return _render(COPIER["project_name"]["validator"], project_name=name).strip()


def derived_package_name(name: str) -> str:
    return _render(COPIER["package_name"]["default"], project_name=name)


def package_name_error(name: str) -> str:
    return _render(COPIER["package_name"]["validator"], package_name=name).strip()


def distribution_name(name: str) -> str:
    line = (REPO / "template" / "pyproject.toml.jinja").read_text(encoding="utf-8")
    template = re.search(r'^name = "(.*)"$', line, re.M)
    assert template
    return _render(template.group(1), project_name=name)


@settings(FUZZ, max_examples=600)
@given(
    name=st.one_of(
        allowed_names,
        st.sampled_from(RESERVED + RESERVED_LIKE).map(lambda s: s.upper() if len(s) % 2 else s),
        st.builds(lambda a, b: f"{a} {b}", st.sampled_from(RESERVED), allowed_names),
        st.text(alphabet="0123456789 -_", max_size=40),
        st.text(max_size=40),
    )
)
def test_derived_package_name_is_safe(name: str) -> None:
    if project_name_error(name):
        return
    package = derived_package_name(name)
    assert_safe_package_name(package)
    assert package_name_error(package) == ""
    assert DIST_NAME.match(distribution_name(name)), distribution_name(name)


def test_derivation_examples() -> None:
    # The property above accepts these; pin what they become.
    assert derived_package_name("My Shop 2") == "my_shop_2"
    assert derived_package_name("123") == "app_123"
    assert derived_package_name("email") == "email_service"
    assert derived_package_name("Class") == "class_service"
    assert derived_package_name("-_ a -_") == "a"
    assert len(derived_package_name("a" * 64)) == 32
    assert project_name_error("- _ -")
    assert project_name_error("café")
    assert package_name_error("__main__")
    assert package_name_error("calendar")
