"""`release model pin|fetch|verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from release.cli import Out, cli, common, load_config


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
def model_pin(
    config_path: Path | None, out: Out, revision: str | None, include: tuple[str, ...]
) -> None:
    """Resolve the revision to a commit, hash every selected file, cross-check each against
    the hub's own metadata (LFS sha256, git blob sha1) and write model/model.lock.json.

    Any disagreement exits 1 and writes no lock. Honours HF_ENDPOINT and HF_TOKEN.
    """
    from release import modelpin

    cfg = load_config(config_path)
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

    cfg = load_config(config_path)
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

    cfg = load_config(config_path)
    try:
        res = modelpin.verify(cfg, directory)
    except VerificationFailed:
        if out.as_json:  # the failed result is the document; `main` reports the error
            lock = modelpin.read_lock(cfg.lock_path)
            out.data(_verify_doc(modelpin.verify_dir(directory, lock, progress=False)))
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
