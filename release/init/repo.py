"""The git facts `release init` needs: the work tree it writes into, the GitHub repository
of its `origin` (the keyless signing identity), and the commit of the release Action that
matches this installed tool (what the generated workflow pins)."""

from __future__ import annotations

from pathlib import Path

from release import _build
from release.errors import UsageError
from release.gitremote import git as _git
from release.gitremote import github_repository


def repository_root(directory: Path) -> Path:
    """The git work tree `directory` is in; UsageError (one line) when none or no git."""
    top = _git(directory, "rev-parse", "--show-toplevel")
    if top is None:
        raise UsageError(
            f"release init works in a git repository: {directory} is not in one (git init first)"
        )
    return Path(top).resolve()


def origin_repository(top: Path) -> str | None:
    """OWNER/REPO of the work tree's `origin` when it is on GitHub, else None."""
    return github_repository(_git(top, "remote", "get-url", "origin"))


def default_action_ref() -> str:
    """The Action matching this installed tool: the commit the wheel was built from
    (`release._build.COMMIT`), else HEAD of the checkout the package runs from (only when
    the package directory is that checkout's `release/`: a venv inside some other
    repository must not lend its HEAD). UsageError when neither is known."""
    if _build.COMMIT:
        return f"{_build.REPOSITORY}@{_build.COMMIT}"
    package_dir = Path(_build.__file__).resolve().parent  # the installed release/
    top = _git(package_dir, "rev-parse", "--show-toplevel")
    head = _git(package_dir, "rev-parse", "HEAD")
    if top is not None and head is not None and Path(top).resolve() == package_dir.parent:
        return f"{_build.REPOSITORY}@{head}"
    raise UsageError(
        "this release does not know the commit it was built from: pass "
        "--action-ref OWNER/REPO@SHA (the release tool's repository at the full commit "
        "of the version you install)"
    )
