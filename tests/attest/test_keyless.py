"""Keyless bundles (certificate + Rekor entry) from a private test Sigstore instance,
verified by sigstore-python against its pinned trusted_root.json, offline: identity
(exact, regex), issuer, tampering, subject, predicate type."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from release import evidence
from release.attest.sign import statement
from release.attest.signatures import Policy, verify_statement
from release.errors import VerificationFailed
from tests.attest.sigstore_testing import TestSigstore

IDENTITY = "https://github.com/acme/platform/.github/workflows/release.yml@refs/heads/main"
ISSUER = "https://token.actions.githubusercontent.com"
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> TestSigstore:
    return TestSigstore(tmp_path_factory.mktemp("sigstore"))


@pytest.fixture(scope="module")
def bundle(instance: TestSigstore) -> bytes:
    st = statement("registry/repo", DIGEST, evidence.PROVENANCE, {"builder": "x"})  # type: ignore[arg-type]
    return instance.sign(st, IDENTITY, ISSUER)


def _pol(instance: TestSigstore, **kw: Any) -> Policy:
    args = {"identity": IDENTITY, "issuer": ISSUER, "trusted_root": instance.path, **kw}
    return Policy(**args)


def test_keyless_verifies(instance: TestSigstore, bundle: bytes) -> None:
    vs = verify_statement(bundle, _pol(instance), DIGEST, evidence.PROVENANCE)
    assert vs.signer == IDENTITY
    assert vs.issuer == ISSUER
    assert vs.predicate == {"builder": "x"}


def test_identity_regex(instance: TestSigstore, bundle: bytes) -> None:
    pol = _pol(
        instance,
        identity=None,
        identity_regex=r"https://github\.com/acme/platform/\.github/workflows/release\.yml@refs/.*",
    )
    assert verify_statement(bundle, pol, DIGEST, evidence.PROVENANCE).signer == IDENTITY
    bad = _pol(instance, identity=None, identity_regex=r"https://github\.com/evil/.*")
    with pytest.raises(
        VerificationFailed,
        match=r"^certificate identity is '.*release\.yml@refs/heads/main', expected /https",
    ):
        verify_statement(bundle, bad, DIGEST, evidence.PROVENANCE)


def test_wrong_identity(instance: TestSigstore, bundle: bytes) -> None:
    other = IDENTITY.replace("refs/heads/main", "refs/heads/dev")
    with pytest.raises(
        VerificationFailed, match=rf"^certificate identity is '{IDENTITY}', expected {other}$"
    ):
        verify_statement(bundle, _pol(instance, identity=other), DIGEST, evidence.PROVENANCE)


def test_wrong_issuer(instance: TestSigstore, bundle: bytes) -> None:
    with pytest.raises(
        VerificationFailed,
        match=rf"^certificate issuer is '{ISSUER}', expected 'https://accounts.google.com'$",
    ):
        verify_statement(
            bundle,
            _pol(instance, issuer="https://accounts.google.com"),
            DIGEST,
            evidence.PROVENANCE,
        )


def test_tampered_payload(instance: TestSigstore, bundle: bytes) -> None:
    doc = json.loads(bundle)
    p = bytearray(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    p[10] ^= 1
    doc["dsseEnvelope"]["payload"] = base64.b64encode(bytes(p)).decode()
    with pytest.raises(VerificationFailed, match=r"^signature: DSSE: invalid signature$"):
        verify_statement(json.dumps(doc).encode(), _pol(instance), DIGEST, evidence.PROVENANCE)


def test_tampered_signature(instance: TestSigstore, bundle: bytes) -> None:
    doc = json.loads(bundle)
    s = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    s[-2] ^= 1
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(s)).decode()
    with pytest.raises(VerificationFailed, match=r"^signature: DSSE: invalid signature$"):
        verify_statement(json.dumps(doc).encode(), _pol(instance), DIGEST, evidence.PROVENANCE)


def test_other_trust_root(tmp_path: Path, bundle: bytes) -> None:
    stranger = TestSigstore(tmp_path)
    with pytest.raises(
        VerificationFailed, match=r"^signature: failed to build timestamp certificate chain"
    ):
        verify_statement(bundle, _pol(stranger), DIGEST, evidence.PROVENANCE)


def test_subject_and_predicate(instance: TestSigstore, bundle: bytes) -> None:
    with pytest.raises(
        VerificationFailed, match=f"^statement is about {DIGEST}, not the image {OTHER}$"
    ):
        verify_statement(bundle, _pol(instance), OTHER, evidence.PROVENANCE)
    with pytest.raises(VerificationFailed, match=r"^predicate type is"):
        verify_statement(bundle, _pol(instance), DIGEST, evidence.SBOM)


def test_key_policy_on_keyless_bundle(
    instance: TestSigstore, bundle: bytes, tmp_path: Path
) -> None:
    from release.attest.sign import KeySigner

    KeySigner(tmp_path / "k.pem")
    pol = Policy.from_key_file(tmp_path / "k.pem.pub")
    with pytest.raises(
        VerificationFailed,
        match=r"^bundle is signed with a certificate \(keyless\), but the policy expects a public key$",
    ):
        verify_statement(bundle, pol, DIGEST, evidence.PROVENANCE)


def test_verify_bundle_cli_keyless(instance: TestSigstore, bundle: bytes, tmp_path: Path) -> None:
    from tests.fixtures.tools import run_cli

    f = tmp_path / "b.json"
    f.write_bytes(bundle)
    base = [
        "verify-bundle",
        "--bundle",
        f,
        "--trusted-root",
        instance.path,
        "--certificate-oidc-issuer",
        ISSUER,
    ]
    ok = run_cli(*base, "--certificate-identity", IDENTITY, DIGEST)
    assert ok.code == 0, ok.stderr
    bad = run_cli(*base, "--certificate-identity", "https://github.com/evil/x", DIGEST)
    assert bad.code == 1
    assert bad.stderr.strip() == (
        f"release: error: certificate identity is '{IDENTITY}', expected https://github.com/evil/x"
    )


def test_intoto_entry_as_cosign_writes(instance: TestSigstore) -> None:
    """Rekor v1 intoto/0.0.2 entries (cosign attest): sigstore-python 4.5 refuses them;
    release.attest._sigstore verifies them, entry body included."""
    st = statement("registry/repo", DIGEST, evidence.SBOM, {"bomFormat": "CycloneDX"})  # type: ignore[arg-type]
    b = instance.sign(st, IDENTITY, ISSUER, kind="intoto")
    vs = verify_statement(b, _pol(instance), DIGEST, evidence.SBOM)
    assert vs.signer == IDENTITY
    # the envelope of another signing under this entry and certificate is rejected
    doc = json.loads(b)
    other = json.loads(instance.sign(st, IDENTITY, ISSUER, kind="intoto"))
    doc["dsseEnvelope"] = other["dsseEnvelope"]
    with pytest.raises(VerificationFailed, match=r"^signature: "):
        verify_statement(json.dumps(doc).encode(), _pol(instance), DIGEST, evidence.SBOM)
