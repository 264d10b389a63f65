"""Digests parsed once.

`Digest` is `sha256:` + 64 lowercase hex. Parse user input with `parse_digest` (or
`parse_reference` for `REPO@sha256:...`) so that a tag can never reach code that expects
a digest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NewType

from release.errors import NotADigest

Digest = NewType("Digest", str)

#: matched with fullmatch: `$` alone would accept a trailing newline
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def is_digest(value: str) -> bool:
    return isinstance(value, str) and bool(_DIGEST_RE.fullmatch(value))


def parse_digest(value: str) -> Digest:
    """`sha256:<64 hex>` -> Digest; anything else (a tag, a short hash) -> NotADigest."""
    if not is_digest(value):
        raise NotADigest.from_ref(value)
    return Digest(value)


def sha256_digest(hexdigest: str) -> Digest:
    return parse_digest("sha256:" + hexdigest)


@dataclass(frozen=True)
class Reference:
    """`REPO@sha256:...`; `repository` is empty when only a digest was given."""

    repository: str
    digest: Digest

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}" if self.repository else self.digest


def parse_reference(value: str) -> Reference:
    """Accept `sha256:<hex>` or `REPO@sha256:<hex>`; refuse tags (`repo:tag`)."""
    if "@" in value:
        repo, _, dig = value.rpartition("@")
        if not repo:
            raise NotADigest.from_ref(value)
        return Reference(repo, parse_digest(dig))
    return Reference("", parse_digest(value))
