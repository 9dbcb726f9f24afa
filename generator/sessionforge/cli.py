"""The `sessionforge` command line (see CONTRACT §2 and README.md)."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import sessionforge
from sessionforge import __version__, vcs
from sessionforge.errors import SessionforgeError, UsageError
from sessionforge.options import (
    Question,
    by_key,
    check_answer,
    load_questions,
    parse_data,
    unknown_key_error,
)
from sessionforge.template import template_root

P = ParamSpec("P")
R = TypeVar("R")

DEBUG_ENV = "SESSIONFORGE_DEBUG"

app = typer.Typer(
    name="sessionforge",
    help=(
        "Generate a FastAPI service with server-side sessions, a database and auth "
        "from the sessionforge Copier template."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

out = Console(highlight=False)


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn failures into a message on stderr and exit code 2 or 1, no traceback.

    With SESSIONFORGE_DEBUG=1 unexpected errors propagate with their traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except SessionforgeError as exc:
            if _debug():
                raise
            raise _fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("Aborted.", 1) from None
        except Exception as exc:
            if _debug():
                raise
            detail = str(exc) or type(exc).__name__
            raise _fail(
                f"{detail} ({type(exc).__name__}; set {DEBUG_ENV}=1 for the traceback)", 1
            ) from None

    return wrapper


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"sessionforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Show the version and exit.",
            callback=_version_callback,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Generate FastAPI services with server-side sessions, a database and auth."""


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):  # closed or detached stdin
        return False


# Flags of `new` and the answer keys they set.
_FLAG_KEYS: dict[str, str] = {
    "--name": "project_name",
    "--mode": "mode",
    "--backend": "backend",
    "--database": "database",
    "--auth": "auth",
}


def collect_answers(
    flags: dict[str, str | None],
    example: bool | None,
    data_items: list[str],
    root: Path,
) -> dict[str, Any]:
    """Check every answer given on the command line; return Copier's `data`.

    Raises UsageError (exit 2) for an unknown key, a malformed --data item, a
    value that is not among the choices of copier.yml, or contradicting answers.
    """
    questions = load_questions(root)
    known = by_key(questions)
    answers: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def put(key: str, raw: str | bool, source: str) -> None:
        if key not in known:
            raise unknown_key_error(key, questions)
        value = raw if isinstance(raw, bool) else check_answer(known[key], raw, source)
        if key in answers and answers[key] != value:
            raise UsageError(f'{source} contradicts {sources[key]}: give "{key}" only once.')
        answers[key] = value
        sources[key] = source

    for flag, raw_flag in flags.items():
        if raw_flag is not None:
            put(_FLAG_KEYS[flag], raw_flag, flag)
    if example is not None:
        put("example_api", example, "--example" if example else "--no-example")
    for key, raw in parse_data(data_items):
        put(key, raw, f"--data {key}={raw}")
    return answers


# Room left under DEST for the staging directory and the deepest generated file.
_PATH_ROOM = 256


def _path_limits(path: Path) -> tuple[int, int]:
    """(longest file name, longest path) in bytes on the file system holding *path*."""
    # os.path.isdir, unlike Path.exists, is False (not an error) for a name too long.
    existing = next((p for p in (path, *path.parents) if os.path.isdir(p)), Path("/"))
    try:
        return os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):  # no pathconf (Windows) or no such limit
        return 255, 4096


def check_dest_path(raw: str) -> Path:
    """Refuse a DEST that no directory can have, before anything is written (exit 2).

    An empty DEST (an unset shell variable) would mean the current directory.
    """
    if not raw.strip():
        raise UsageError(
            "DEST is empty or blank: give the directory to create the project in "
            '("." for this one).'
        )
    if "\0" in raw:
        raise UsageError(f"DEST {raw!r} contains a NUL character: choose another destination.")
    try:
        target = Path(os.path.abspath(os.path.expanduser(raw)))
        encoded = [os.fsencode(part) for part in target.parts]
        name_max, path_max = _path_limits(target)
    except (UnicodeError, ValueError) as exc:
        raise UsageError(f"DEST {raw!r} is not a usable path ({exc}).") from None
    for part, raw_part in zip(target.parts, encoded, strict=True):
        if len(raw_part) > name_max:
            raise UsageError(
                f'DEST has a name of {len(raw_part)} bytes ("{part[:24]}..."): '
                f"file names here are at most {name_max} bytes."
            )
    length = len(os.fsencode(str(target)))
    if length + _PATH_ROOM > path_max:
        raise UsageError(
            f"DEST is too long ({length} bytes as an absolute path): the generated files "
            f"would exceed the {path_max}-byte path limit. Choose a shorter destination."
        )
    for parent in target.parents:
        if os.path.lexists(parent) and not os.path.isdir(parent):
            raise UsageError(
                f"{parent} is a file, so {target} cannot be created: choose another destination."
            )
    return target


@app.command()
@handle_errors
def new(
    dest: Annotated[
        str,
        typer.Argument(
            metavar="DEST", help="Directory to create the project in (must be empty or new)."
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="TEXT",
            help="Project name (project_name); default: the DEST folder name.",
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option("--mode", metavar="MODE", help="async or sync handlers and drivers."),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            metavar="BACKEND",
            help="Where server-side sessions live (choices: `sessionforge options`).",
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="DATABASE",
            help="Where app data lives (differs from --backend only for redis).",
        ),
    ] = None,
    auth: Annotated[
        str | None, typer.Option("--auth", metavar="AUTH", help="How clients authenticate.")
    ] = None,
    example: Annotated[
        bool | None,
        typer.Option("--example/--no-example", help="Include the shop example API (example_api)."),
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            "-d",
            metavar="KEY=VALUE",
            help="Any answer by its key (see `sessionforge options`); repeatable.",
        ),
    ] = None,
    defaults: Annotated[
        bool,
        typer.Option(
            "--defaults", "-y", help="Use defaults for every unanswered question; never ask."
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Generate into a non-empty DEST, over its files.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Then create DEST/.venv, install the project and run its tests."
        ),
    ] = False,
    no_git: Annotated[
        bool,
        typer.Option(
            "--no-git",
            help="Do not make DEST a git repository (by default: one commit of the "
            "generated files, which `sessionforge update` needs).",
        ),
    ] = False,
) -> None:
    """Generate a new service in DEST.

    Questions not answered by flags are asked on a terminal; with --defaults,
    or when standard input is not a terminal, their defaults are used.

    DEST becomes a git repository with one commit of the generated files
    ("Generated by sessionforge VERSION"; the .env written for local work is
    ignored by git, never committed), unless --no-git. Without a git identity,
    that commit is made as sessionforge <sessionforge@localhost>. With --force
    into an existing git repository, the files are committed only if its tree
    was clean; without git installed, a warning is printed and nothing else
    changes.
    """
    # Imported here: copier is slow to import, and --version/--help need none of it.
    from sessionforge.generate import check_destination, generate

    root = template_root()
    flags = {"--name": name, "--mode": mode, "--backend": backend}
    flags |= {"--database": database, "--auth": auth}
    answers = collect_answers(flags, example, list(data or []), root)
    target = check_dest_path(dest)
    check_destination(target, force=force)
    use_defaults = defaults or not _stdin_is_tty()
    before_git = None if no_git else vcs.inspect(target)

    result = generate(root, Path(dest), answers, defaults=use_defaults, force=force)

    project = result.answers.get("project_name", target.name)
    out.print(f"[green]Created[/green] {escape(str(project))} in {escape(str(result.dest))}")
    if before_git is not None:
        committed, line = vcs.commit_generated(
            result.dest, before_git, f"Generated by sessionforge {sessionforge.__version__}"
        )
        if committed:
            out.print(escape(line), soft_wrap=True)
        else:
            typer.echo(f"Warning: {line}", err=True)
    passed = True
    if check:
        from sessionforge.check import run_check

        out.print(f"Checking the project in {escape(str(result.dest))}:")
        passed = run_check(result.dest, out)
        if passed:
            out.print("[green]All checks passed.[/green]")
    # Printed after --check too, pass or fail: the next steps name the servers and
    # settings the project needs, most useful when its tests just failed for want of them.
    if result.message:
        out.print(escape(result.message), soft_wrap=True)
    if not passed:
        raise SessionforgeError("--check failed: see the output above.")


@app.command()
@handle_errors
def update(
    dest: Annotated[
        Path, typer.Argument(help="The generated project to update (default: here).")
    ] = Path("."),
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            "-d",
            metavar="KEY=VALUE",
            help="Change an answer on the way (e.g. --data auth=jwt); repeatable.",
        ),
    ] = None,
    defaults: Annotated[
        bool,
        typer.Option(
            "--defaults", "-y", help="Keep previous answers, defaults for new ones; never ask."
        ),
    ] = False,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Allow the migrations of a template other than sessionforge's own.",
        ),
    ] = False,
) -> None:
    """Merge this sessionforge's template into a generated project (wraps `copier update`).

    The project must be a git repository with everything committed. Your edits are
    kept; where they clash with the template's changes the files get conflict markers:
    they are listed, and the exit code is 1 until you resolve them.
    """
    from sessionforge.update import update_project

    answers = collect_answers({}, None, list(data or []), template_root()) if data else {}

    def announce(notices: list[str]) -> None:
        out.print("[yellow]What the answer changes do to the database:[/yellow]")
        for notice in notices:
            out.print(f"  {escape(notice)}", soft_wrap=True)

    result = update_project(
        dest,
        answers,
        defaults=defaults or not _stdin_is_tty(),
        trust=trust,
        announce=announce,
    )
    where = escape(str(result.dest))
    for section in result.changes:
        out.print(escape(section), soft_wrap=True, highlight=False)
        out.print()
    if result.old == result.new:
        out.print(
            f"[green]Re-rendered[/green] {where} at template {escape(result.new)}.",
            soft_wrap=True,
        )
    else:
        out.print(
            f"[green]Updated[/green] {where} from template {escape(result.old)} "
            f"to {escape(result.new)}.",
            soft_wrap=True,
        )
    if result.migrations:
        out.print(
            f"New migrations: {', '.join(result.migrations)}; after reviewing them, "
            "`alembic upgrade head` brings the database forward.",
            markup=False,
            soft_wrap=True,
        )
    if result.conflicts:
        out.print(
            "[yellow]Conflicts[/yellow] (your change and the template's meet; resolve the "
            "<<<<<<< markers, then `git add` the files):"
        )
        for name in result.conflicts:
            out.print(f"  {escape(name)}")
        count = len(result.conflicts)
        raise SessionforgeError(
            f"{count} file{'s' if count != 1 else ''} left with conflicts: resolve them, "
            "review the changes with `git diff`, then commit."
        )
    out.print("Review the changes with `git diff`, then commit them.", markup=False)


def _default_text(question: Question) -> str:
    if question.computed_default:
        return "derived"
    if isinstance(question.default, bool):
        return "yes" if question.default else "no"
    return "" if question.default is None else str(question.default)


@app.command()
@handle_errors
def options(
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print a JSON list of {key, help, type, choices, default}."),
    ] = False,
) -> None:
    """List the template's questions: keys, help, choices and defaults."""
    questions = load_questions(template_root())
    if as_json:
        typer.echo(json.dumps([q.as_json() for q in questions], indent=2, default=str))
        return
    table = Table(title="sessionforge options", show_lines=False)
    table.add_column("key", style="bold")
    table.add_column("type")
    table.add_column("choices")
    table.add_column("default")
    table.add_column("help")
    for q in questions:
        choices = ", ".join(q.choices) if q.choices is not None else ""
        if q.type == "bool" and not choices:
            choices = "yes, no"
        table.add_row(
            escape(q.key), q.type, escape(choices), escape(_default_text(q)), escape(q.help)
        )
    out.print(table)
    out.print(
        "Answer with `sessionforge new DEST --data KEY=VALUE` (or the matching flags), "
        "or `copier copy --data KEY=VALUE`.",
        markup=False,
    )


def main() -> None:
    """Entry point for `python -m sessionforge`."""
    app(prog_name="sessionforge")
