"""Read a file the user named (a report, corpus, predicate, bundle, artifact): its bytes,
or one `UsageError` line naming what it is and why it could not be read (exit 2)."""

from __future__ import annotations

from pathlib import Path

from release.errors import UsageError


def read_input(path: Path, what: str, *, hint: str = "") -> bytes:
    """The bytes of `path`; missing -> "`what` PATH not found[ (hint)]", unreadable (a
    directory, no permission) -> "cannot read `what` PATH: <reason>"."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what} {path} not found" + (f" ({hint})" if hint else "")) from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


__all__ = ["read_input"]
