"""The `release` command line: parse, call one library function, print the typed result.

No logic lives here. Data (digests, JSON) goes to stdout; progress and verdicts go to
stderr. With `--json` exactly one JSON document is printed on stdout, errors included
(`{"error": ..., "exit_code": ...}`).

Exit codes: 0 done/allowed, 1 a check said no, 2 bad usage/config/input, 3 an outside
system failed. Every option can also be set through a `RELEASE_*` environment variable
(README lists them).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from release import __version__
from release.errors import EXIT_USAGE, ReleaseError

F = TypeVar("F", bound=Callable[..., Any])


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
        if self.as_json:
            click.echo(json.dumps(doc, indent=2, sort_keys=True))


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


def _config(path: Path | None) -> Any:
    from release import config

    return config.load(path)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="release")
def cli() -> None:
    """Hash-pin a model, build ONE Lambda image for many handlers, attest, canary, gate and
    promote it by digest.

    \b
    Exit codes: 0 done/allowed, 1 a check said no, 2 bad usage/config/input,
    3 an outside system failed (registry, AWS, hub, docker).
    """


# --- model ----------------------------------------------------------------------------
@cli.group()
def model() -> None:
    """Pin, fetch and verify the model, every file by SHA-256 at an immutable commit."""


@model.command("pin")
@click.option("--revision", help="Branch, tag or commit to resolve (default: [model].revision).")
@click.option(
    "--include",
    multiple=True,
    help="Glob of files to pin, repeatable (default: [model].include). `*` also matches `/`.",
)
@common
def model_pin(config_path: Path | None, out: Out, revision: str | None, include: tuple[str, ...]) -> None:
    """Resolve the revision to a commit, hash every selected file, cross-check each against
    the hub's own metadata (LFS sha256, git blob sha1) and write model/model.lock.json.

    Any disagreement exits 1 and writes no lock. Honours HF_ENDPOINT and HF_TOKEN.
    """
    from release import modelpin

    cfg = _config(config_path)
    res = modelpin.pin(cfg, revision=revision, include=include or None)
    lock = res.lock
    out.status(
        f"pinned {lock.source}:{lock.repo}@{lock.commit} ({len(lock.files)} files, "
        f"{lock.total_size} bytes) -> {_rel(res.lock_path)}"
        + ("" if res.changed else " (unchanged)")
    )
    out.info(lock.digest)
    out.data({"lock": lock.to_json(), "path": str(res.lock_path), "changed": res.changed})


@model.command("fetch")
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="RELEASE_MODEL_DEST",
    help="Directory to materialise the locked files in (default: .release/model/<digest>) "
    "[env: RELEASE_MODEL_DEST].",
)
@click.option(
    "--offline",
    is_flag=True,
    envvar="RELEASE_OFFLINE",
    help="Never touch the network; fail (exit 3) if a file is not cached [env: RELEASE_OFFLINE].",
)
@common
def model_fetch(config_path: Path | None, out: Out, dest: Path | None, offline: bool) -> None:
    """Materialise exactly the locked files at the locked commit, each verified before it
    becomes visible at DEST (content-addressed cache in $RELEASE_CACHE_DIR).

    A mismatch exits 1 and leaves DEST untouched. A warm cache does no network I/O.
    """
    from release import modelpin

    cfg = _config(config_path)
    res = modelpin.fetch(cfg, dest=dest, offline=offline)
    out.status(
        f"fetched {len(res.lock.files)} files ({res.cached} from cache, "
        f"{res.downloaded} downloaded), all verified"
    )
    out.info(str(res.dest))
    out.data(
        {
            "dest": str(res.dest),
            "digest": res.lock.digest,
            "commit": res.lock.commit,
            "cached": res.cached,
            "downloaded": res.downloaded,
        }
    )


@model.command("verify")
@click.argument("directory", type=click.Path(path_type=Path))
@common
def model_verify(config_path: Path | None, out: Out, directory: Path) -> None:
    """Check DIRECTORY against the lock: exit 1 listing every missing, changed and extra
    file (a planted file next to the weights is caught)."""
    from release import modelpin
    from release.errors import VerificationFailed

    cfg = _config(config_path)
    try:
        res = modelpin.verify(cfg, directory)
    except VerificationFailed as exc:
        if out.as_json:
            lock = modelpin.read_lock(cfg.lock_path)
            r = modelpin.verify_dir(directory, lock, progress=False)
            out.data(_verify_doc(r))
            for line in [exc.message, *exc.details]:
                out.status(line)
            raise SystemExit(exc.exit_code) from None
        raise
    out.status(f"ok: {directory} matches the lock ({len(res.lock.files)} files, {res.lock.digest})")
    out.data(_verify_doc(res))


def _verify_doc(r: Any) -> dict[str, Any]:
    return {
        "ok": r.ok,
        "dir": str(r.dir),
        "digest": r.lock.digest,
        "missing": r.missing,
        "changed": [{"path": p, "why": w} for p, w in r.changed],
        "extra": r.extra,
    }


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


# --- entry point ----------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """The one boundary that turns `ReleaseError` into a message and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="release", standalone_mode=False)
    except ReleaseError as exc:
        _report(exc.message, exc.details, exc.exit_code, _json_requested(args))
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("release: aborted", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)


def _report(message: str, details: list[str], code: int, ctx_json: bool) -> None:
    click.echo(f"release: error: {message}", err=True)
    for d in details:
        click.echo(f"  {d}", err=True)
    if ctx_json:
        click.echo(
            json.dumps({"error": message, "details": details, "exit_code": code}, indent=2)
        )


def _json_requested(args: list[str]) -> bool:
    return "--json" in args or os.environ.get("RELEASE_JSON", "") not in ("", "0", "false")


if __name__ == "__main__":  # pragma: no cover
    main()
