"""Tripwire for a sigstore-python upgrade: release/attest/_sigstore.py relies on private
names of sigstore 4.5.1 (listed in docs/internals.md, "sigstore private API we depend
on"). An upgrade that moves, renames or re-signs one must fail HERE, naming our code
that uses it, not somewhere deep in a verification."""

from __future__ import annotations

import importlib
import inspect
import re
import tomllib
from importlib import metadata, resources
from pathlib import Path

import pytest

from tests.fixtures.tools import REPO

#: (where the name lives, attribute path, the parameters we call/override it with, our
#: code that relies on it)
PRIVATE_API = [
    (
        "sigstore.verify",
        "Verifier._verify_signed_timestamp",
        ["self", "timestamp_response", "message"],
        "ReleaseVerifier._verify_signed_timestamp (override: TSA validity end inclusive)",
    ),
    (
        "sigstore.verify",
        "Verifier._establish_time",
        ["self", "bundle"],
        "ReleaseVerifier._establish_time (override: intoto/0.0.2 integrated time)",
    ),
    (
        "sigstore.verify",
        "Verifier._verify_timestamp_authority",
        ["self", "bundle"],
        "ReleaseVerifier._establish_time (calls it for intoto entries)",
    ),
    (
        "sigstore.verify",
        "Verifier._verify_common_signing_cert",
        ["self", "bundle", "policy"],
        "ReleaseVerifier.verify_dsse (calls it for intoto entries)",
    ),
    (
        "sigstore._internal.timestamp",
        "TimestampVerificationResult",
        ["source", "time"],
        "ReleaseVerifier._verify_signed_timestamp / _establish_time (their return type)",
    ),
    (
        "sigstore._internal.timestamp",
        "TimestampSource.TIMESTAMP_AUTHORITY",
        None,
        "ReleaseVerifier._verify_signed_timestamp",
    ),
    (
        "sigstore._internal.timestamp",
        "TimestampSource.TRANSPARENCY_SERVICE",
        None,
        "ReleaseVerifier._establish_time",
    ),
    (
        "sigstore._internal.trust",
        "KeyringPurpose.VERIFY",
        None,
        "release.attest._sigstore.rekor_keyring",
    ),
    (
        "sigstore.models",
        "TransparencyLogEntry.__init__",
        ["self", "inner"],
        "release.attest._sigstore.verify_log_entry (builds an entry from bundle JSON)",
    ),
    (
        "sigstore.models",
        "TransparencyLogEntry._verify",
        ["self", "keyring"],
        "release.attest._sigstore.verify_log_entry (key-mode bundles' Rekor entries)",
    ),
]

#: public names we subclass or call, whose signature our overrides depend on
PUBLIC_API = [
    ("sigstore.verify", "Verifier.__init__", ["self", "trusted_root"]),
    ("sigstore.verify", "Verifier.verify_dsse", ["self", "bundle", "policy"]),
    ("sigstore.models", "TrustedRoot.rekor_keyring", ["self", "purpose"]),
    ("sigstore.models", "TrustedRoot.from_file", ["path"]),
    ("sigstore.models", "Bundle.to_json", ["self"]),
]


def _resolve(module: str, path: str) -> object:
    obj: object = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _pinned() -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [m.group(1) for d in deps if (m := re.fullmatch(r"sigstore==([\w.]+)", d.strip()))]
    assert len(pins) == 1, f"pyproject.toml must pin sigstore exactly (sigstore==X), has {deps}"
    return pins[0]


def test_installed_sigstore_is_the_pinned_one() -> None:
    pinned, installed = _pinned(), metadata.version("sigstore")
    assert installed == pinned, (
        f"sigstore {installed} is installed but pyproject.toml pins {pinned}: "
        "release/attest/_sigstore.py overrides private methods of the pinned version; "
        "re-check every name in docs/internals.md ('sigstore private API we depend on') "
        "against the new version before moving the pin"
    )


@pytest.mark.parametrize(
    ("module", "path", "params", "user"), PRIVATE_API, ids=[p[1] for p in PRIVATE_API]
)
def test_private_name_we_rely_on_is_there(
    module: str, path: str, params: list[str] | None, user: str
) -> None:
    try:
        obj = _resolve(module, path)
    except (ImportError, AttributeError) as exc:
        pytest.fail(
            f"sigstore {metadata.version('sigstore')}: {module}.{path} is gone ({exc}); "
            f"used by {user} in release/attest/_sigstore.py",
            pytrace=False,
        )
    if params is not None:
        got = list(inspect.signature(obj).parameters)  # type: ignore[arg-type]
        assert got == params, (
            f"sigstore {metadata.version('sigstore')}: {module}.{path} now takes {got}, "
            f"we call it with {params}; used by {user} in release/attest/_sigstore.py"
        )


def test_no_other_module_reaches_into_sigstore_internals() -> None:
    """The private API stays in one module, so an upgrade has one place to look."""
    found = [
        str(p.relative_to(REPO))
        for p in sorted((REPO / "release").rglob("*.py"))
        if p.name != "_sigstore.py" and re.search(r"\bsigstore\._|\"_store\"", p.read_text())
    ]
    assert found == [], f"sigstore private names outside release/attest/_sigstore.py: {found}"


@pytest.mark.parametrize(("module", "path", "params"), PUBLIC_API, ids=[p[1] for p in PUBLIC_API])
def test_public_signature_our_overrides_assume(module: str, path: str, params: list[str]) -> None:
    got = list(inspect.signature(_resolve(module, path)).parameters)  # type: ignore[arg-type]
    assert got == params, (
        f"sigstore {metadata.version('sigstore')}: {module}.{path} now takes {got}, "
        f"release/attest/_sigstore.py's ReleaseVerifier assumes {params}"
    )


def test_packaged_public_good_root_is_where_we_read_it() -> None:
    from release.attest._sigstore import PACKAGED_ROOT, default_trusted_root

    path = default_trusted_root()
    assert path == Path(str(resources.files("sigstore").joinpath(*PACKAGED_ROOT)))
    assert path.is_file(), (
        f"sigstore {metadata.version('sigstore')} no longer ships {'/'.join(PACKAGED_ROOT)}: "
        "release.attest._sigstore.default_trusted_root (the default keyless trust root) "
        "reads it by path"
    )
    from sigstore.models import TrustedRoot

    assert TrustedRoot.from_file(str(path)).get_fulcio_certs()  # a trust root, not a stub
