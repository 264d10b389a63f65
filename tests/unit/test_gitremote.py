"""`repo_url`: a git remote as the repository's web URL (the image's
`org.opencontainers.image.source`, the provenance's source), never a path, never a secret."""

from __future__ import annotations

import pytest

from release.gitremote import repo_url


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        # scp-style and ssh: https, no user, no ssh port, no .git
        ("git@github.com:acme/platform.git", "https://github.com/acme/platform"),
        ("github.com:acme/platform", "https://github.com/acme/platform"),
        (
            "git@gitlab.example.com:/srv/acme/platform.git",
            "https://gitlab.example.com/srv/acme/platform",
        ),
        ("ssh://git@git.example.com:22/acme/platform.git", "https://git.example.com/acme/platform"),
        ("git+ssh://git@GitHub.com/acme/platform.git/", "https://github.com/acme/platform"),
        ("git://git.example.com/acme/platform", "https://git.example.com/acme/platform"),
        ("git://git.example.com:9418/acme/platform.git", "https://git.example.com/acme/platform"),
        ("ssh://git@10.1.2.3/acme/platform.git", "https://10.1.2.3/acme/platform"),
        # http(s): the scheme and the port stay; credentials, query and fragment go
        ("https://github.com/acme/platform", "https://github.com/acme/platform"),
        ("https://github.com/acme/platform.git", "https://github.com/acme/platform"),
        (
            "https://x-access-token:ghs_secret@github.com/acme/platform.git",
            "https://github.com/acme/platform",
        ),
        ("https://tok@github.com/acme/platform.git", "https://github.com/acme/platform"),
        ("https://git.example.com:8443/a/b/c.git?x=1#frag", "https://git.example.com:8443/a/b/c"),
        ("http://gitserver/acme/platform.git", "http://gitserver/acme/platform"),
        ("https://[2001:db8::1]:8443/acme/platform", "https://[2001:db8::1]:8443/acme/platform"),
        ("  https://github.com/acme/platform\n", "https://github.com/acme/platform"),
        # a local path, a file URL, another scheme or nothing parseable: no URL
        (None, None),
        ("", None),
        ("/srv/git/platform", None),
        ("/srv/git/platform.git", None),
        ("../platform", None),
        ("./platform:x", None),
        ("platform", None),
        ("file:///srv/git/platform.git", None),
        ("file://localhost/srv/git/platform", None),
        ("C:\\src\\platform", None),
        ("C:/src/platform", None),
        ("s3://bucket/platform", None),
        ("codecommit::us-east-1://platform", None),
        ("ftp://ftp.example.com/platform.git", None),
        ("https://github.com", None),
        ("https://github.com/", None),
        ("https://github.com:notaport/acme/platform", None),
        ("https://github.com/acme/../platform", None),
        ("https://github.com/acme platform", None),
        # an ssh host without a dot is an ~/.ssh/config alias, not a web host
        ("github-work:acme/platform.git", None),
        ("ssh://git@github-work/acme/platform.git", None),
        # a path under a user's home on the ssh server
        ("git@git.example.com:~alice/platform.git", None),
        ("ssh://git.example.com/~alice/platform.git", None),
    ],
)
def test_repo_url(remote: str | None, url: str | None) -> None:
    assert repo_url(remote) == url


def test_normalised_url_is_a_fixed_point() -> None:
    # the provenance normalises the annotation the build already normalised
    for remote in ("git@github.com:acme/platform.git", "http://gitserver/a/b.git"):
        url = repo_url(remote)
        assert url is not None and repo_url(url) == url
