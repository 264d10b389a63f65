"""Git facts of a work tree: `git(...)` (one command's output, or None) and a git remote
as the repository's web URL (`repo_url`): what the build writes into the image annotation
`org.opencontainers.image.source`, the provenance names as the source and `release init`
reads the GitHub repository from (`github_repository`).

`repo_url` is a pure function of the remote string (`git remote get-url origin`):

- `https://` and `http://` keep their scheme, host and port; credentials are dropped;
- `ssh://`, `git+ssh://`, `git://` and scp-style `[USER@]HOST:PATH` become
  `https://HOST/PATH` (their port is the ssh or git daemon's, not the web server's, so it
  is dropped); their host must be a DNS name with a dot or an IP address, since a bare
  name there is usually an alias from ~/.ssh/config, which names no web host;
- a trailing `/` and `.git` are dropped, as are a query and a fragment;
- a local path, a `file://` URL, another scheme (`s3://`, `codecommit::...`), a path under
  a user's home (`~user/repo`) or anything unparseable is None: no URL is better than a
  path of the build machine or a guess.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

_KEEP = frozenset({"https", "http"})
_TO_HTTPS = frozenset({"ssh", "git+ssh", "ssh+git", "git"})
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: git's scp-like syntax: no slash before the first colon, and not a `::` remote helper
_SCP = re.compile(r"(?:[^@/:]+@)?([^@/:]+):(?!:)(.+)")
_DNS = re.compile(r"(?=.*\.)[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
_IPV6 = re.compile(r"[0-9a-f:.]+")


def _path(path: str) -> str | None:
    path = path.strip("/")
    path = path.removesuffix(".git").rstrip("/")
    if not path or path.startswith("~") or any(p in ("", ".", "..") for p in path.split("/")):
        return None
    return path


def _dns_or_ip(host: str) -> bool:
    return bool(_DNS.fullmatch(host) or (":" in host and _IPV6.fullmatch(host)))


def repo_url(remote: str | None) -> str | None:
    """The web URL of the repository `remote` names (see the module docstring), or None."""
    if not remote or any(c.isspace() for c in remote.strip()):
        return None
    remote = remote.strip()
    if _URL.match(remote):
        try:
            u = urlsplit(remote)
            port = u.port
        except ValueError:  # a port that is not a number, a bad IPv6 literal
            return None
        host = (u.hostname or "").lower()
        if not host or u.scheme not in _KEEP | _TO_HTTPS:
            return None
        if u.scheme in _TO_HTTPS:
            if not _dns_or_ip(host):
                return None
            scheme, port = "https", None
        else:
            scheme = u.scheme
        path = _path(u.path)
    else:
        m = _SCP.fullmatch(remote)
        if not m:
            return None
        host = m.group(1).lower()
        if not _dns_or_ip(host):
            return None
        scheme, port, path = "https", None, _path(m.group(2))
    if path is None:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{scheme}://{netloc}/{path}"


def github_repository(remote: str | None) -> str | None:
    """OWNER/REPO when `remote` is a repository on github.com, else None."""
    url = repo_url(remote)
    if url is None:
        return None
    u = urlsplit(url)
    parts = u.path.strip("/").split("/")
    return "/".join(parts) if u.hostname == "github.com" and len(parts) == 2 else None


def git(where: Path, *args: str) -> str | None:
    """The stripped output of `git -C where ARGS`, or None when git is missing, fails or
    prints nothing."""
    try:
        p = subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else None


__all__ = ["git", "github_repository", "repo_url"]
