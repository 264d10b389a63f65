"""`release attest`, `release sbom`, `release verify-bundle` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from release import evidence
from release.attest import store
from release.image.registry import open_registry
from tests.attest.conftest import build_image, lock_for, model_files
from tests.fixtures.tools import run_cli

TOML = """
[model]
repo = "example/sst2-tiny"
[image]
base = "oci:base@sha256:{zeros}"
registry = "oci:reg"
requirements = "requirements.lock"
[functions]
scorer = "handlers.scorer.lambda_handler"
[signing]
mode = "key:keys/signing.pem"
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("proj")
    (root / "release.toml").write_text(TOML.format(zeros="0" * 64))
    (root / "requirements.lock").write_text("six==1.17.0\n")
    reg = open_registry("oci:reg", root)
    return root, build_image(reg)


@pytest.fixture(scope="module")
def attested(project: tuple[Path, str]) -> tuple[Path, str, Any]:
    root, digest = project
    r = run_cli("attest", digest, "--json", cwd=root)
    assert r.code == 0, r.stderr
    return root, digest, r


def test_attest_generates_key_and_attaches_three(attested: tuple[Path, str, Any]) -> None:
    root, digest, r = attested
    assert "generated signing key" in r.stderr
    assert (root / "keys" / "signing.pem").stat().st_mode & 0o777 == 0o600
    doc = json.loads(r.stdout)
    assert [a["predicate_type"] for a in doc["attestations"]] == [
        evidence.PROVENANCE,
        evidence.SBOM,
        evidence.MODEL_SIGNATURE,
    ]
    reg = open_registry("oci:reg", root)
    assert len(store.fetch_bundles(reg, digest)) == 3


def test_provenance_and_model_statements(attested: tuple[Path, str, Any]) -> None:
    from release.attest.signatures import Policy, Subject, verify_stored

    root, digest, _ = attested
    reg = open_registry("oci:reg", root)
    pol = Policy.from_key_file(root / "keys" / "signing.pem.pub")
    prov = verify_stored(reg, digest, evidence.PROVENANCE, pol).predicate
    assert prov["runDetails"]["builder"]["id"] in ("local",) or prov["runDetails"]["builder"][
        "id"
    ].startswith("https://")
    names = {d.get("name") for d in prov["buildDefinition"]["resolvedDependencies"]}
    assert {"model", "model-lock", "requirements.lock"} <= names
    commits = [
        d["digest"].get("gitCommit") for d in prov["buildDefinition"]["resolvedDependencies"]
    ]
    assert "cd" * 20 in commits
    root_digest = lock_for(model_files())["digest"]
    model_vs = verify_stored(reg, digest, evidence.MODEL_SIGNATURE, pol, subject=root_digest)
    # model-signing's statement: about the model (name + root digest), not the image
    assert model_vs.subjects == (Subject("model", root_digest),)
    model = model_vs.predicate
    assert model["serialization"]["method"] == "files"
    assert any(r["name"] == "onnx/model.onnx" for r in model["resources"])
    bom = verify_stored(reg, digest, evidence.SBOM, pol).predicate
    assert bom["specVersion"] == "1.6"


def test_verify_bundle_cli(attested: tuple[Path, str, Any], tmp_path: Path) -> None:
    root, digest, _ = attested
    reg = open_registry("oci:reg", root)
    b = store.fetch_bundles(reg, digest, evidence.PROVENANCE)[-1].bundle
    f = tmp_path / "b.json"
    f.write_bytes(b)
    pub = root / "keys" / "signing.pem.pub"
    ok = run_cli("verify-bundle", "--bundle", f, "--key", pub, digest)
    assert ok.code == 0, ok.stderr
    other = "sha256:" + "1" * 64
    bad = run_cli("verify-bundle", "--bundle", f, "--key", pub, other)
    assert bad.code == 1
    assert bad.stderr.strip() == f"release: error: statement is about {digest}, not {other}"
    usage = run_cli("verify-bundle", "--bundle", f, digest)
    assert usage.code == 2
    assert "--certificate-identity" in usage.stderr
    ident = run_cli(
        "verify-bundle",
        "--bundle",
        f,
        "--certificate-identity",
        "x@example.com",
        "--certificate-oidc-issuer",
        "https://issuer.example",
        digest,
    )
    assert ident.code == 1
    assert "bundle has no certificate (signed with a key)" in ident.stderr
    # --config: the policy is the config's [signing] (key:keys/signing.pem -> its .pub)
    by_config = run_cli("verify-bundle", "--bundle", f, "--config", root / "release.toml", digest)
    assert by_config.code == 0, by_config.stderr
    wrong = run_cli("verify-bundle", "--bundle", f, "--config", root / "release.toml", other)
    assert wrong.code == 1 and "not " + other in wrong.stderr


def test_sbom_cli(project: tuple[Path, str], tmp_path: Path) -> None:
    root, digest = project
    out = tmp_path / "sbom.json"
    r = run_cli("sbom", digest, "-o", out, "--validate", cwd=root)
    assert r.code == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["metadata"]["component"]["version"] == digest
    r2 = run_cli("sbom", "oci:reg@" + digest, cwd=root)
    assert r2.code == 0 and json.loads(r2.stdout) == doc
    tag = run_cli("sbom", "latest", cwd=root)
    assert tag.code == 2 and "is not a digest" in tag.stderr


def test_attest_extra_predicate_validated(project: tuple[Path, str], tmp_path: Path) -> None:
    root, digest = project
    bad = tmp_path / "promo.json"
    bad.write_text(json.dumps({"env": "prod"}))
    r = run_cli("attest", digest, "--only", "model", "--predicate", "promotion", bad, cwd=root)
    assert r.code == 2
    assert "does not match promotion.schema.json" in r.stderr


def test_attest_only_a_canary_report(project: tuple[Path, str], tmp_path: Path) -> None:
    root, digest = project
    report = {"passed": True}
    f = tmp_path / "r.json"
    f.write_text(json.dumps(report))
    r = run_cli(
        "attest",
        digest,
        "--only",
        "none",
        "--predicate",
        "https://example.com/custom/v1",
        f,
        cwd=root,
    )
    assert r.code == 0, r.stderr
    assert r.stdout.split()[0] == "https://example.com/custom/v1"
    assert len(r.stdout.strip().splitlines()) == 1


def test_attest_with_kms_cli(
    aws_env: dict[str, str], project: tuple[Path, str], tmp_path: Path
) -> None:
    """`--signer awskms:KEY` through the CLI against moto; verified with the KMS key's own
    public key (policy_from_config with awskms). The provenance statement is < 4096
    bytes, so KMS signs it RAW, the same in moto as in real KMS."""
    import boto3

    from release.attest.signatures import Policy, policy_from_config, verify_stored
    from release.config import SigningConfig

    root, digest = project
    key = boto3.client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    key_id = key["KeyMetadata"]["KeyId"]
    r = run_cli(
        "attest",
        digest,
        "--signer",
        f"awskms:{key_id}",
        "--only",
        "provenance",
        cwd=root,
        env=aws_env,
    )
    assert r.code == 0, r.stderr
    pol = policy_from_config(SigningConfig(mode=f"awskms:{key_id}"), root)
    reg = open_registry("oci:reg", root)
    vs = verify_stored(reg, digest, evidence.PROVENANCE, pol)
    assert vs.signer.startswith("key:sha256:")
    from release.attest.sign import KeySigner
    from release.errors import VerificationFailed

    KeySigner(tmp_path / "other.pem")
    with pytest.raises(VerificationFailed, match="another key"):
        verify_stored(
            reg, digest, evidence.PROVENANCE, Policy.from_key_file(tmp_path / "other.pem.pub")
        )


def test_attest_kms_unknown_key_exits_3(aws_env: dict[str, str], project: tuple[Path, str]) -> None:
    root, digest = project
    r = run_cli("attest", digest, "--signer", "awskms:alias/nope", cwd=root, env=aws_env)
    assert r.code == 3
    assert "AWS KMS GetPublicKey alias/nope failed: NotFoundException" in r.stderr


def test_keyless_without_token_exits_2(project: tuple[Path, str]) -> None:
    root, digest = project
    env = {
        k: ""
        for k in (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "SIGSTORE_ID_TOKEN",
            "GITHUB_ACTIONS",
        )
    }
    r = run_cli("attest", digest, "--signer", "sigstore", cwd=root, env=env)
    assert r.code == 2
    assert "keyless signing needs an ambient OIDC token" in r.stderr


def test_attest_keyless_against_test_sigstore(project: tuple[Path, str], tmp_path: Path) -> None:
    """`--signer sigstore` end to end through sigstore-python's Signer: OIDC token ->
    Fulcio CSR -> SCT checked -> DSSE signed -> Rekor entry, against a private Sigstore
    instance on 127.0.0.1 (RELEASE_SIGSTORE_TRUST_CONFIG); then verified offline with its
    pinned trusted root, identity and issuer."""
    from release.attest.signatures import Policy, verify_stored
    from tests.attest.sigstore_testing import TestSigstore

    root, digest = project
    inst = TestSigstore(tmp_path)
    ident = "https://github.com/acme/platform/.github/workflows/release.yml@refs/heads/main"
    issuer = "https://issuer.test"
    cfg, server = inst.serve(tmp_path)
    try:
        r = run_cli(
            "attest",
            digest,
            "--signer",
            "sigstore",
            "--only",
            "model",
            "--json",
            cwd=root,
            env={
                "SIGSTORE_ID_TOKEN": inst.token(ident, issuer),
                "RELEASE_SIGSTORE_TRUST_CONFIG": str(cfg),
            },
        )
    finally:
        server.shutdown()
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["signer"] == f"sigstore:{ident}"
    reg = open_registry("oci:reg", root)
    pol = Policy(identity=ident, issuer=issuer, trusted_root=inst.path)
    vs = verify_stored(
        reg, digest, evidence.MODEL_SIGNATURE, pol, subject=lock_for(model_files())["digest"]
    )
    assert (vs.signer, vs.issuer) == (ident, issuer)
    bundle = json.loads(store.fetch_bundles(reg, digest, evidence.MODEL_SIGNATURE)[-1].bundle)
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"] == "dsse"
