"""The `release` command line: parse, call one library function, print the typed result.

No logic lives here. Data (digests, JSON) goes to stdout; progress and verdicts go to
stderr. With `--json` exactly one JSON document is printed on stdout whatever the exit
code: the command's result when it has one (a failed check's result, with exit 1), else
`{"error", "details", "exit_code"}` (usage errors included).

Exit codes: 0 done/allowed, 1 a check said no, 2 bad usage/config/input, 3 an outside
system failed. `main` is the one exit path: a command never exits itself; a failing outcome
is a `release.errors` exception, which `main` turns into its exit code and one line on
stderr (`release: error: MESSAGE`, then its detail lines); `-v` adds the traceback.

Logging: library modules log through `logging.getLogger(__name__)`; `main` installs one
handler on the `release` logger for the duration of the command, writing plain one-line
messages to stderr: INFO and above by default, DEBUG too with `-v/--verbose`.

An option can be set through an environment variable exactly when its `--help` names one
(`[env: RELEASE_...]`); docs/cli.md lists them all.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from release import __version__
from release.errors import EXIT_USAGE, ReleaseError

if TYPE_CHECKING:
    from release.config import Config

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)


class Out:
    """Where a command's output goes, decided once from --json."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def info(self, line: str = "") -> None:
        """Human output: stdout normally, stderr under --json."""
        click.echo(line, err=self.as_json)

    def status(self, line: str) -> None:
        """Verdicts and progress: always stderr."""
        click.echo(line, err=True)

    def data(self, doc: Any) -> None:
        """The command's JSON document (only under --json). Printed before a failing
        outcome is raised, it is the one document on stdout: `main` then prints no error
        document."""
        if self.as_json:
            click.echo(json.dumps(doc, indent=2, sort_keys=True))
            _state()["json_printed"] = True


def _state() -> dict[str, Any]:
    """The root context's `obj`: what `main` handed in and what it reads back afterwards."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, dict) else {}


def common(f: F) -> F:
    """--config and --json on every command."""

    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="RELEASE_CONFIG",
        default=None,
        help="Platform config file [env: RELEASE_CONFIG; default: ./release.toml].",
    )
    @click.option(
        "--json",
        "as_json",
        is_flag=True,
        envvar="RELEASE_JSON",
        help="Print one JSON document on stdout; human output goes to stderr [env: RELEASE_JSON].",
    )
    @functools.wraps(f)
    def wrapper(*args: Any, config_path: Path | None, as_json: bool, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        ctx.meta["release.json"] = as_json
        return f(*args, config_path=config_path, out=Out(as_json), **kwargs)

    return wrapper  # type: ignore[return-value]


def evidence_provider() -> tuple[Any, bool]:
    """(the evidence provider, whether it is the product's own `release.claims.collect`)."""
    from release.promote import default_provider

    given = _state().get("evidence_provider")
    return (given, False) if given is not None else (default_provider(), True)


def load_config(path: Path | None) -> Config:
    from release import config

    cfg = config.load(path)
    log.debug("config %s (paths relative to %s)", cfg.path, cfg.root)
    return cfg


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="release")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show debug lines, and the traceback of an error (give it before the command).",
)
def cli(verbose: bool) -> None:
    """Hash-pin a model, build ONE Lambda image for many handlers, attest, canary, gate and
    promote it by digest.

    \b
    Exit codes: 0 done/allowed, 1 a check said no, 2 bad usage/config/input,
    3 an outside system failed (registry, AWS, hub, docker).
    """
    if verbose:
        _state()["verbose"] = True
        logging.getLogger("release").setLevel(logging.DEBUG)


# --- logging --------------------------------------------------------------------------
class _StderrHandler(logging.Handler):
    """One plain line per record on the current sys.stderr (`warning: ` etc. before
    anything that is not INFO)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            if record.levelno != logging.INFO:
                msg = f"{record.levelname.lower()}: {msg}"
            click.echo(msg, err=True)
        except Exception:  # logging must never break the command
            self.handleError(record)


@contextlib.contextmanager
def _logging() -> Iterator[None]:
    """The `release` logger writes to stderr while a command runs (INFO; `-v`: DEBUG);
    afterwards it is as it was (tests run `main` many times in one process)."""
    log = logging.getLogger("release")
    saved = (log.level, log.propagate)
    handler = _StderrHandler()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


# --- command modules: each area registers its commands on `cli` -----------------------
def _register() -> None:
    for name in COMMAND_MODULES:
        __import__(f"release.cli.{name}")


#: command modules under release/cli/ (each defines click commands on `cli`)
COMMAND_MODULES: list[str] = [
    "model",
    "deploy",
    "canary",
    "evidence",
    "verify",
    "image",
    "pipeline",
    "readiness",
    "iam",
    "policy",
    "init",
    "guard",
]


# --- entry point ----------------------------------------------------------------------
def main(
    argv: list[str] | None = None, *, evidence_provider: Callable[..., Any] | None = None
) -> None:
    """The one boundary that turns `ReleaseError` into a message and an exit code.

    `evidence_provider` (a Python argument, for tests only; nothing in the environment can
    set it) replaces `release.claims.collect` for gate, promote, rollback and pipeline. A
    promotion made on such evidence is not signed: the promotion statement says the
    evidence was re-verified, which a canned provider cannot say."""
    # a command runs once and its objects mostly live until it ends (the imported modules,
    # pydantic's schemas, a layer's tar entries): the young generation is collected every
    # 10,000 allocations, not every 700, which spares ~100 passes over them per verify
    gc.set_threshold(10_000, 10, 10)
    _register()
    args = list(sys.argv[1:] if argv is None else argv)
    state: dict[str, Any] = {"evidence_provider": evidence_provider}
    try:
        with _logging():
            cli.main(args=args, prog_name="release", standalone_mode=False, obj=state)
    except ReleaseError as exc:
        if state.get("verbose"):
            click.echo(traceback.format_exc().rstrip(), err=True)
        _report(
            exc.message,
            exc.details,
            exc.exit_code,
            _json_requested(args) and not state.get("json_printed"),
        )
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("release: aborted", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code if exc.exit_code else EXIT_USAGE
        if _json_requested(args):  # the one rule: --json always leaves one document on stdout
            click.echo(
                json.dumps(
                    {"error": exc.format_message(), "details": [], "exit_code": code}, indent=2
                )
            )
        sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)


def _report(message: str, details: list[str], code: int, as_json: bool) -> None:
    """The error as the user sees it: one line (and its detail lines) on stderr; under
    --json also the error document on stdout, unless the command printed its own."""
    click.echo(f"release: error: {message}", err=True)
    for d in details:
        click.echo(f"  {d}", err=True)
    if as_json:
        click.echo(json.dumps({"error": message, "details": details, "exit_code": code}, indent=2))


def _json_requested(args: list[str]) -> bool:
    return "--json" in args or os.environ.get("RELEASE_JSON", "") not in ("", "0", "false")


if __name__ == "__main__":  # pragma: no cover
    main()
