"""Sign -> store -> fetch -> verify round trips (key file, AWS KMS on moto) on the OCI
layout and a real local registry, and the tamper matrix: every rejection with its reason."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from release import evidence
from release.attest import sign, store
from release.attest.bundle import BUNDLE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE, pae
from release.attest.signatures import Policy, verify_statement
from release.errors import VerificationFailed
from release.image.registry import open_registry
from tests.attest.conftest import build_image

CANARY_PRED = {"passed": True, "n": 3}


def _policy(key: Path) -> Policy:
    return Policy.from_key_file(key.with_name(key.name + ".pub"))


def _roundtrip(registry: Any, digest: Any, signer: Any, policy: Policy) -> None:
    preds = [(evidence.CANARY, CANARY_PRED), (evidence.PROMOTION, {"env": "prod"})]
    done = sign.attest(registry, digest, preds, signer)
    assert [a.predicate_type for a in done] == [evidence.CANARY, evidence.PROMOTION]
    fetched = store.fetch_bundles(registry, digest, evidence.CANARY)
    assert [b.referrer for b in fetched][-1] == done[0].referrer
    b = fetched[-1]
    assert json.loads(b.bundle)["mediaType"] == BUNDLE_MEDIA_TYPE
    vs = verify_statement(b.bundle, policy, digest, evidence.CANARY)
    assert vs.predicate == CANARY_PRED
    assert [(s.name, s.digest) for s in vs.subjects] == [(registry.name, digest)]
    assert vs.predicate_type == evidence.CANARY
    assert vs.signer.startswith("key:sha256:")
    # the referrer manifest is an OCI 1.1 artifact about the image
    manifest = json.loads(registry.get_manifest(b.referrer)[0])
    assert manifest["artifactType"] == BUNDLE_MEDIA_TYPE
    assert manifest["subject"]["digest"] == digest
    assert manifest["annotations"]["dev.sigstore.bundle.predicateType"] == evidence.CANARY


def test_key_roundtrip_layout(layout_image: Any, signing_key: Path) -> None:
    reg, digest, _ = layout_image
    _roundtrip(reg, digest, sign.KeySigner(signing_key), _policy(signing_key))


def test_key_roundtrip_registry(registry: str, signing_key: Path, tmp_path: Path) -> None:
    reg = open_registry(f"{registry}/evidence/key", tmp_path)
    digest = build_image(reg)
    _roundtrip(reg, digest, sign.KeySigner(signing_key), _policy(signing_key))
    # distribution 2.8 has no Referrers API: the fallback tag holds the index
    idx, _ = reg._get_manifest_ref(digest.replace(":", "-"))  # type: ignore[attr-defined]
    assert idx is not None and len(json.loads(idx)["manifests"]) == 2


def test_generated_key_is_private(tmp_path: Path) -> None:
    k = sign.KeySigner(tmp_path / "k" / "signing.pem")
    assert k.created
    assert (tmp_path / "k" / "signing.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k" / "signing.pem.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY")
    assert not sign.KeySigner(tmp_path / "k" / "signing.pem").created


# --- AWS KMS (moto server) ----------------------------------------------------------------
def _kms_key() -> str:
    import boto3

    kms = boto3.client("kms")
    return str(
        kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    )


def test_kms_roundtrip_registry(aws_env: dict[str, str], registry: str, tmp_path: Path) -> None:
    key_id = _kms_key()
    reg = open_registry(f"{registry}/evidence/kms", tmp_path)
    digest = build_image(reg, seed=b"kms")
    signer = sign.KmsSigner(key_id)
    policy = Policy(public_key=sign.kms_public_pem(key_id))
    # these statements are < 4096 bytes: KMS signs them RAW, which moto does like real KMS
    _roundtrip(reg, digest, signer, policy)
    # a wrong KMS key is rejected
    other = Policy(public_key=sign.kms_public_pem(_kms_key()))
    b = store.fetch_bundles(reg, digest, evidence.CANARY)[-1].bundle
    with pytest.raises(VerificationFailed, match="signature was made by another key"):
        verify_statement(b, other, digest, evidence.CANARY)


def test_kms_large_payload_uses_digest(aws_env: dict[str, str], layout_image: Any) -> None:
    """An SBOM-sized statement (> 4096 bytes) goes to KMS as MessageType=DIGEST with the
    SHA-256 of the PAE, which real KMS signs as given.

    Allowance for moto, kept here: moto's DIGEST mode hashes the given digest once more,
    so its signature is over SHA-256(SHA-256(PAE)) and does NOT verify as real KMS's
    would. We check exactly that, which proves the product sent the right digest."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    reg, digest, _ = layout_image
    key_id = _kms_key()
    signer = sign.KmsSigner(key_id)
    calls: list[dict[str, Any]] = []
    signer._kms.meta.events.register(
        "provide-client-params.kms.Sign", lambda params, **_: calls.append(dict(params))
    )
    big = {"blob": "x" * 6000}
    stmt = sign.statement(reg.name, digest, evidence.SBOM, big)
    bundle = json.loads(signer.sign(stmt))
    assert calls[-1]["MessageType"] == "DIGEST"
    d = hashlib.sha256(pae(INTOTO_PAYLOAD_TYPE, stmt)).digest()
    assert calls[-1]["Message"] == d
    sig = base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"])
    pub = serialization.load_der_public_key(signer.public_der)
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(sig, hashlib.sha256(d).digest(), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    small = sign.statement(reg.name, digest, evidence.CANARY, CANARY_PRED)
    signer.sign(small)
    assert calls[-1]["MessageType"] == "RAW"


# --- tamper matrix ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def signed(layout_image: Any, signing_key: Path) -> tuple[bytes, Any, Any]:
    reg, digest, other = layout_image
    b = sign.KeySigner(signing_key).sign(
        sign.statement(reg.name, digest, evidence.CANARY, CANARY_PRED)
    )
    return b, digest, other


def _mutate(bundle: bytes, fn: Any) -> bytes:
    doc = json.loads(bundle)
    fn(doc)
    return json.dumps(doc).encode()


def _flip_payload(doc: dict[str, Any]) -> None:
    p = bytearray(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    p[len(p) // 2] ^= 0x01
    doc["dsseEnvelope"]["payload"] = base64.b64encode(bytes(p)).decode()


def _flip_sig(doc: dict[str, Any]) -> None:
    s = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    s[-3] ^= 0x01
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(s)).decode()


def test_untampered_verifies(signed: Any, signing_key: Path) -> None:
    b, digest, _ = signed
    assert (
        verify_statement(b, _policy(signing_key), digest, evidence.CANARY).predicate == CANARY_PRED
    )


def test_tamper_payload_byte(signed: Any, signing_key: Path) -> None:
    b, digest, _ = signed
    with pytest.raises(
        VerificationFailed, match=r"^signature does not verify with the expected public key sha256:"
    ):
        verify_statement(_mutate(b, _flip_payload), _policy(signing_key), digest, evidence.CANARY)


def test_tamper_signature_byte(signed: Any, signing_key: Path) -> None:
    b, digest, _ = signed
    with pytest.raises(
        VerificationFailed, match=r"^signature does not verify with the expected public key"
    ):
        verify_statement(_mutate(b, _flip_sig), _policy(signing_key), digest, evidence.CANARY)


def test_tamper_subject_swapped(signed: Any, signing_key: Path) -> None:
    b, digest, other = signed

    def swap(doc: dict[str, Any]) -> None:
        st = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
        st["subject"][0]["digest"]["sha256"] = other.removeprefix("sha256:")
        doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(st).encode()).decode()

    with pytest.raises(VerificationFailed, match=r"^signature does not verify"):
        verify_statement(_mutate(b, swap), _policy(signing_key), digest, evidence.CANARY)


def test_wrong_key(signed: Any, tmp_path: Path) -> None:
    b, digest, _ = signed
    other = tmp_path / "other.pem"
    sign.KeySigner(other)
    with pytest.raises(
        VerificationFailed,
        match=r"^signature was made by another key .hint .*, not the expected sha256:",
    ):
        verify_statement(b, _policy(other), digest, evidence.CANARY)


def test_wrong_predicate_type(signed: Any, signing_key: Path) -> None:
    b, digest, _ = signed
    with pytest.raises(
        VerificationFailed,
        match=f"^predicate type is '{evidence.CANARY}', expected '{evidence.PROVENANCE}'$",
    ):
        verify_statement(b, _policy(signing_key), digest, evidence.PROVENANCE)


def test_bundle_for_another_image(signed: Any, signing_key: Path) -> None:
    b, digest, other = signed
    with pytest.raises(
        VerificationFailed, match=f"^statement is about {digest}, not the image {other}$"
    ):
        verify_statement(b, _policy(signing_key), other, evidence.CANARY)


def test_keyless_policy_on_key_bundle(signed: Any) -> None:
    b, digest, _ = signed
    pol = Policy(
        identity="https://github.com/o/r/.github/workflows/release.yml@refs/heads/main",
        issuer="https://token.actions.githubusercontent.com",
    )
    with pytest.raises(
        VerificationFailed,
        match=r"^bundle has no certificate \(signed with a key\), but the policy expects an identity$",
    ):
        verify_statement(b, pol, digest, evidence.CANARY)


def test_not_json_and_wrong_payload_type(signed: Any, signing_key: Path) -> None:
    b, digest, _ = signed
    with pytest.raises(VerificationFailed, match=r"^bundle is not valid JSON"):
        verify_statement(b[:-5], _policy(signing_key), digest, evidence.CANARY)

    def pt(doc: dict[str, Any]) -> None:
        doc["dsseEnvelope"]["payloadType"] = "text/plain"

    # the payload type is covered by the PAE, so changing it breaks the signature
    with pytest.raises(VerificationFailed, match=r"^signature does not verify"):
        verify_statement(_mutate(b, pt), _policy(signing_key), digest, evidence.CANARY)


def test_missing_bundle(layout_image: Any) -> None:
    reg, _, other = layout_image
    assert store.fetch_bundles(reg, other, evidence.PROVENANCE) == []


def test_verify_stored_missing_and_invalid(
    layout_image: Any, signing_key: Path, tmp_path: Path
) -> None:
    from release.attest.signatures import verify_stored

    reg, _digest, other = layout_image
    with pytest.raises(
        VerificationFailed, match=f"^no {evidence.PROVENANCE} attestation is stored for {other}$"
    ):
        verify_stored(reg, other, evidence.PROVENANCE, _policy(signing_key))
    sign.attest(reg, other, [(evidence.PROVENANCE, {"b": 1})], sign.KeySigner(signing_key))
    vs = verify_stored(reg, other, evidence.PROVENANCE, _policy(signing_key))
    assert vs.predicate == {"b": 1}
    assert vs.bundle_digest == store.fetch_bundles(reg, other, evidence.PROVENANCE)[-1].referrer
    wrong = tmp_path / "wrong.pem"
    sign.KeySigner(wrong)
    with pytest.raises(
        VerificationFailed,
        match=r"^https://slsa.dev/provenance/v1 bundle sha256:[0-9a-f]{64}: signature was made by another key",
    ):
        verify_stored(reg, other, evidence.PROVENANCE, _policy(wrong))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda st: st["subject"].append({"name": "no-digest"}), id="digestless-subject"
        ),
        pytest.param(lambda st: st.update(extra=1), id="unknown-field"),
        pytest.param(lambda st: st.update(predicate={}), id="empty-predicate"),
        pytest.param(lambda st: st["subject"][0].update(digest=[]), id="digest-not-a-map"),
    ],
)
def test_signed_but_malformed_statement_is_refused(
    layout_image: Any, signing_key: Path, change: Any
) -> None:
    """A validly signed payload that breaks the in-toto v1 Statement rules (as the
    in-toto-attestation library reads them, not our own parser) does not verify."""
    reg, digest, _ = layout_image
    st = json.loads(sign.statement(reg.name, digest, evidence.CANARY, CANARY_PRED))
    change(st)
    b = sign.KeySigner(signing_key).sign(json.dumps(st).encode())
    with pytest.raises(VerificationFailed, match="not a valid in-toto v1 Statement"):
        verify_statement(b, _policy(signing_key), digest, evidence.CANARY)


@pytest.mark.parametrize("value", [True, 7, None, ["application/vnd.in-toto+json"]])
def test_payload_type_of_another_json_type_is_refused(
    signed: Any, signing_key: Path, value: Any
) -> None:
    """Found by tests/e2e/test_fuzz.py: a payloadType that is not a string is one
    VerificationFailed line, not an AttributeError deep in the PAE."""
    b, digest, _ = signed
    bad = _mutate(b, lambda d: d["dsseEnvelope"].update(payloadType=value))
    with pytest.raises(VerificationFailed, match="payloadType"):
        verify_statement(bad, _policy(signing_key), digest, evidence.CANARY)
