"""Our release outputs, checked by verifiers nobody here wrote, on a real pipeline run
(issue 15): skopeo and umoci select and copy the image from a layout that also holds its
referrers; OpenSSF model-signing's CLI verifies the model signature (key, and keyless
against the private test Sigstore instance); sigstore-js under node verifies every bundle
(key mode with the public key, keyless with the test trust root); sigstore-python's own
CLI verifies the keyless bundles; the provenance validates against the SLSA v1 schema.

Each command run here is listed in docs/verifying.md."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from release import evidence
from tests.fixtures.tools import REPO, require_binary, run_cli
from tests.verifiers.conftest import IDENTITY, ISSUER, Released

pytestmark = [pytest.mark.slow]

OUR_TYPES = {
    evidence.PROVENANCE,
    evidence.SBOM,
    evidence.MODEL_SIGNATURE,
    evidence.CANARY,
    evidence.PROMOTION,
}


def run(
    *cmd: str | Path, cwd: Path | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def _index(layout: Path) -> dict[str, Any]:
    return dict(json.loads((layout / "index.json").read_text()))


def _referrers(r: Released) -> list[dict[str, Any]]:
    """The referrers index of the image, read from the layout's files (fallback tag)."""
    tag = "sha256-" + r.name
    entry = next(
        m
        for m in _index(r.registry)["manifests"]
        if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag
    )
    blob = r.registry / "blobs" / "sha256" / entry["digest"].removeprefix("sha256:")
    return list(json.loads(blob.read_text())["manifests"])


def _bundle_of(layout: Path, referrer: dict[str, Any]) -> bytes:
    manifest = json.loads((layout / "blobs" / "sha256" / referrer["digest"][7:]).read_text())
    return (layout / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]).read_bytes()


@pytest.fixture(scope="module")
def unpacked(released: Released, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's root filesystem as umoci unpacks it, selected by its ref.name."""
    umoci = require_binary("umoci")
    dest = tmp_path_factory.mktemp("umoci") / "bundle"
    p = run(umoci, "unpack", "--rootless", "--image", f"{released.registry}:{released.name}", dest)
    assert p.returncode == 0, p.stderr
    return dest / "rootfs"


@dataclass(frozen=True)
class Keyless:
    registry: Path
    trusted_root: Path
    trust_config: Path
    bundles: dict[str, bytes]


@pytest.fixture(scope="module")
def keyless(released: Released, tmp_path_factory: pytest.TempPathFactory) -> Keyless:
    """The pipeline's image attested keyless (`release attest --signer sigstore`) in a copy
    of the project, against the private test Sigstore instance on 127.0.0.1."""
    from tests.attest.sigstore_testing import TestSigstore

    tmp = tmp_path_factory.mktemp("keyless")
    project = tmp / "project"
    shutil.copytree(
        released.project, project, symlinks=True, ignore=shutil.ignore_patterns(".cache")
    )
    inst = TestSigstore(tmp)
    trust_config, server = inst.serve(tmp)
    try:
        r = run_cli(
            "attest",
            released.digest,
            "--signer",
            "sigstore",
            "--json",
            cwd=project,
            env={
                **released.env,
                "SIGSTORE_ID_TOKEN": inst.token(IDENTITY, ISSUER),
                "RELEASE_SIGSTORE_TRUST_CONFIG": str(trust_config),
            },
        )
    finally:
        server.shutdown()
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["signer"] == f"sigstore:{IDENTITY}"
    registry = project / ".release" / "registry"
    k = dataclasses.replace(released, registry=registry)
    bundles = {}
    for ref in _referrers(k):
        b = _bundle_of(registry, ref)
        if "certificate" in json.loads(b)["verificationMaterial"]:
            bundles[ref["annotations"]["dev.sigstore.bundle.predicateType"]] = b
    assert set(bundles) == {evidence.PROVENANCE, evidence.SBOM, evidence.MODEL_SIGNATURE}
    return Keyless(registry, inst.path, trust_config, bundles)


# --- the OCI layout: skopeo and umoci ---------------------------------------------------
def test_layout_names_the_image_by_its_digest_hex(released: Released) -> None:
    names = {
        (m.get("annotations") or {}).get("org.opencontainers.image.ref.name"): m["digest"]
        for m in _index(released.registry)["manifests"]
    }
    assert names[released.name] == released.digest
    # the layout holds the image's referrers too (what made `skopeo inspect oci:DIR` fail)
    assert names[f"sha256-{released.name}"] != released.digest
    assert len(_referrers(released)) >= 5


def test_skopeo_inspects_and_copies_the_image(released: Released, tmp_path: Path) -> None:
    skopeo = require_binary("skopeo")
    src = f"oci:{released.registry}:{released.name}"
    p = run(skopeo, "inspect", src)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["Digest"] == released.digest
    assert "dev.release.functions" in info["Labels"]
    copy = tmp_path / "copy"
    p = run(skopeo, "copy", "--preserve-digests", src, f"oci:{copy}:release")
    assert p.returncode == 0, p.stderr
    p = run(skopeo, "inspect", "--raw", f"oci:{copy}:release")
    assert p.returncode == 0, p.stderr
    raw = p.stdout.encode()
    import hashlib

    assert "sha256:" + hashlib.sha256(raw).hexdigest() == released.digest


def test_umoci_lists_and_unpacks_the_image(released: Released, unpacked: Path) -> None:
    umoci = require_binary("umoci")
    p = run(umoci, "ls", "--layout", released.registry)
    assert p.returncode == 0, p.stderr
    assert released.name in p.stdout.split()
    import hashlib

    model = unpacked / "opt" / "model"
    got = {
        f.relative_to(model).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in model.rglob("*")
        if f.is_file()
    }
    # what the baked lock says ships: the locked files, the runtime model in place of the
    # source ONNX it replaces (docs/model-format.md, the weights once)
    from release.modelpin import read_lock, shipped

    image_lock = read_lock(unpacked / "opt" / "release" / "model.lock.json")
    assert image_lock.digest == released.lock["digest"]
    assert got == {f.path: f.sha256 for f in shipped(image_lock).files}
    assert "onnx/model.onnx" not in got and "runtime/model.weights" in got


# --- OpenSSF model-signing's own CLI ---------------------------------------------------
def _model_signing() -> str:
    return str(Path(sys.executable).with_name("model_signing"))


def test_model_sig_is_the_stored_referrer(released: Released, unpacked: Path) -> None:
    sig = (released.out_dir / "model.sig").read_bytes()
    stored = [
        _bundle_of(released.registry, m)
        for m in _referrers(released)
        if m["annotations"]["dev.sigstore.bundle.predicateType"] == evidence.MODEL_SIGNATURE
    ]
    assert sig == stored[-1]
    st = json.loads(base64.b64decode(json.loads(sig)["dsseEnvelope"]["payload"]))
    # the subject is the image's model directory as shipped (the runtime model in place of
    # the source ONNX), which `model_signing verify` recomputes over /opt/model (below)
    from release.modelpin import read_lock, shipped

    image_lock = read_lock(unpacked / "opt" / "release" / "model.lock.json")
    assert image_lock.digest == released.lock["digest"]  # the pin itself is unchanged
    want = shipped(image_lock)
    assert st["subject"] == [{"name": "model", "digest": {"sha256": want.digest[7:]}}]
    assert {r["name"] for r in st["predicate"]["resources"]} == {f.path for f in want.files}


def test_model_signing_verify_key(released: Released, unpacked: Path, tmp_path: Path) -> None:
    sig = released.out_dir / "model.sig"
    model = unpacked / "opt" / "model"
    p = run(
        _model_signing(),
        "verify",
        "key",
        "--signature",
        sig,
        "--public_key",
        released.public_key,
        model,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Verification succeeded" in p.stdout + p.stderr
    # a changed model file is refused by model-signing itself
    bad = tmp_path / "model"
    shutil.copytree(model, bad)
    (bad / "config.json").write_text((bad / "config.json").read_text() + " ")
    p = run(
        _model_signing(),
        "verify",
        "key",
        "--signature",
        sig,
        "--public_key",
        released.public_key,
        bad,
    )
    assert p.returncode != 0
    assert "Signature mismatch" in p.stdout + p.stderr


def test_model_signing_verify_sigstore_keyless(
    keyless: Keyless, unpacked: Path, tmp_path: Path
) -> None:
    """model-signing's `verify sigstore` pointed at the private instance with its
    `--trust_config` (a Sigstore ClientTrustConfig; the trusted root inside is what counts)."""
    sig = tmp_path / "model.sig"
    sig.write_bytes(keyless.bundles[evidence.MODEL_SIGNATURE])
    model = unpacked / "opt" / "model"
    base = [
        _model_signing(),
        "verify",
        "sigstore",
        "--trust_config",
        keyless.trust_config,
        "--signature",
        sig,
        "--identity_provider",
        ISSUER,
    ]
    p = run(*base, "--identity", IDENTITY, model)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Verification succeeded" in p.stdout + p.stderr
    p = run(
        *base,
        "--identity",
        "https://github.com/evil/x/.github/workflows/r.yml@refs/heads/main",
        model,
    )
    assert p.returncode != 0


def test_model_signing_verify_certificate_does_not_read_keyless_bundles(
    keyless: Keyless, unpacked: Path, tmp_path: Path
) -> None:
    """model-signing 1.1's `verify certificate` reads only `x509CertificateChain` (what its
    own `sign certificate` writes); a Sigstore v0.3 keyless bundle carries `certificate`.
    docs/verifying.md says so and points to `verify sigstore --trust_config` (above); this
    test holds that statement true, with the CA chain given exactly as that command wants."""
    root = json.loads(keyless.trusted_root.read_text())
    chain = tmp_path / "ca.pem"
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pems = []
    for ca in root["certificateAuthorities"]:
        for c in ca["certChain"]["certificates"]:
            pems.append(
                x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"])).public_bytes(
                    serialization.Encoding.PEM
                )
            )
    chain.write_bytes(b"".join(pems))
    sig = tmp_path / "model.sig"
    sig.write_bytes(keyless.bundles[evidence.MODEL_SIGNATURE])
    assert "certificate" in json.loads(sig.read_bytes())["verificationMaterial"]
    p = run(
        _model_signing(),
        "verify",
        "certificate",
        "--signature",
        sig,
        "--certificate_chain",
        chain,
        unpacked / "opt" / "model",
    )
    assert p.returncode == 1
    assert "'NoneType' object has no attribute 'certificates'" in p.stderr


# --- sigstore-js ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_subject(unpacked: Path) -> str:
    """The subject model-signing itself gives the image's model directory as umoci unpacks
    it (its own file hashing and its own statement): what the model signature must name."""
    from model_signing import hashing
    from model_signing._signing import signing as ms_signing

    manifest = hashing.Config().hash(unpacked / "opt" / "model")
    return "sha256:" + ms_signing.Payload(manifest).statement.pb.subject[0].digest["sha256"]


def _subject_of(released: Released, model_subject: str, ptype: str) -> str:
    return model_subject if ptype == evidence.MODEL_SIGNATURE else released.digest


def test_sigstore_js_key_mode_every_bundle(
    released: Released, model_subject: str, sigstore_js: Path, tmp_path: Path
) -> None:
    """Every bundle the pipeline stored (key mode), verified by sigstore-js with the public
    key (no tlog entry: key bundles carry none); a flipped payload byte is refused."""
    node = require_binary("node")
    root = REPO / "tests" / "verifiers" / "empty_trusted_root.json"  # no CA, no log: only the key
    seen = set()
    for i, ref in enumerate(_referrers(released)):
        ptype = ref["annotations"]["dev.sigstore.bundle.predicateType"]
        f = tmp_path / f"b{i}.json"
        f.write_bytes(_bundle_of(released.registry, ref))
        p = run(node, sigstore_js, f, "--trusted-root", root, "--key", released.public_key)
        assert p.returncode == 0, f"{ptype}: {p.stderr}"
        st = json.loads(p.stdout)["statement"]
        assert st["predicateType"] == ptype
        assert "sha256:" + st["subject"][0]["digest"]["sha256"] == _subject_of(
            released, model_subject, ptype
        )
        seen.add(ptype)
    assert seen == OUR_TYPES
    doc = json.loads(f.read_bytes())
    payload = bytearray(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    payload[-3] ^= 1
    doc["dsseEnvelope"]["payload"] = base64.b64encode(bytes(payload)).decode()
    f.write_text(json.dumps(doc))
    p = run(node, sigstore_js, f, "--trusted-root", root, "--key", released.public_key)
    assert p.returncode == 1
    assert "SIGNATURE_ERROR" in p.stderr


def test_sigstore_js_keyless(
    keyless: Keyless, released: Released, model_subject: str, sigstore_js: Path, tmp_path: Path
) -> None:
    node = require_binary("node")
    for i, (ptype, bundle) in enumerate(sorted(keyless.bundles.items())):
        f = tmp_path / f"k{i}.json"
        f.write_bytes(bundle)
        p = run(
            node,
            sigstore_js,
            f,
            "--trusted-root",
            keyless.trusted_root,
            "--identity",
            IDENTITY,
            "--issuer",
            ISSUER,
        )
        assert p.returncode == 0, f"{ptype}: {p.stderr}"
        out = json.loads(p.stdout)
        assert out["signer"]["subjectAlternativeName"] == IDENTITY
        assert "sha256:" + out["statement"]["subject"][0]["digest"]["sha256"] == _subject_of(
            released, model_subject, ptype
        )
    p = run(
        node,
        sigstore_js,
        f,
        "--trusted-root",
        keyless.trusted_root,
        "--identity",
        "https://github.com/evil/x/.github/workflows/r.yml@refs/heads/main",
        "--issuer",
        ISSUER,
    )
    assert p.returncode == 1
    assert "UNTRUSTED_SIGNER_ERROR" in p.stderr


# --- sigstore-python's own CLI (keyless) ------------------------------------------------
def test_sigstore_python_cli_keyless(
    keyless: Keyless, released: Released, model_subject: str, tmp_path: Path
) -> None:
    for i, (ptype, bundle) in enumerate(sorted(keyless.bundles.items())):
        f = tmp_path / f"k{i}.json"
        f.write_bytes(bundle)
        p = run(
            sys.executable,
            "-m",
            "sigstore",
            "--trust-config",
            keyless.trust_config,
            "verify",
            "identity",
            "--offline",
            "--bundle",
            f,
            "--cert-identity",
            IDENTITY,
            "--cert-oidc-issuer",
            ISSUER,
            _subject_of(released, model_subject, ptype),
        )
        assert p.returncode == 0, f"{ptype}: {p.stdout}{p.stderr}"
        assert "OK:" in p.stdout + p.stderr
    other = "sha256:" + "ab" * 32
    p = run(
        sys.executable,
        "-m",
        "sigstore",
        "--trust-config",
        keyless.trust_config,
        "verify",
        "identity",
        "--offline",
        "--bundle",
        f,
        "--cert-identity",
        IDENTITY,
        "--cert-oidc-issuer",
        ISSUER,
        other,
    )
    assert p.returncode != 0


# --- what the layout says about each bundle (cosign's bundle spec) ----------------------
def test_referrers_carry_cosigns_annotations(released: Released) -> None:
    for ref in _referrers(released):
        ann = ref["annotations"]
        assert ann["dev.sigstore.bundle.content"] == "dsse-envelope"
        assert ann["dev.sigstore.bundle.predicateType"] in OUR_TYPES
        created = dt.datetime.strptime(
            ann["org.opencontainers.image.created"], "%Y-%m-%dT%H:%M:%S.%fZ"
        )
        assert abs(dt.datetime.now() - created) < dt.timedelta(hours=2)
        manifest = json.loads(
            (released.registry / "blobs" / "sha256" / ref["digest"][7:]).read_text()
        )
        assert manifest["annotations"] == ann
        layer = manifest["layers"][0]
        assert (
            layer["annotations"]["org.opencontainers.image.title"]
            == layer["digest"].replace(":", "-") + ".sigstore.json"
        )


# --- SLSA provenance v1 -----------------------------------------------------------------
def test_provenance_validates_against_the_slsa_schema(released: Released) -> None:
    import jsonschema

    from release.attest.statements import LOCAL_BUILD_TYPE, LOCAL_BUILDER_ID

    ref = next(
        m
        for m in _referrers(released)
        if m["annotations"]["dev.sigstore.bundle.predicateType"] == evidence.PROVENANCE
    )
    st = json.loads(
        base64.b64decode(json.loads(_bundle_of(released.registry, ref))["dsseEnvelope"]["payload"])
    )
    pred = st["predicate"]
    schema = json.loads((REPO / "attestations" / "slsa-provenance-v1.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(pred)
    assert pred["runDetails"]["builder"]["id"] == LOCAL_BUILDER_ID
    assert pred["buildDefinition"]["buildType"] == LOCAL_BUILD_TYPE
    deps = {d["name"]: d for d in pred["buildDefinition"]["resolvedDependencies"]}
    # the example checkout has no remote: the source is named by its commit alone
    assert deps["source"] == {
        "name": "source",
        "digest": {"gitCommit": deps["source"]["digest"]["gitCommit"]},
    }
    # a base in a local layout (RELEASE_BASE=oci:DIR@sha256:...): a purl named after DIR
    layout_name = Path(released.env["RELEASE_BASE"].removeprefix("oci:").rpartition("@")[0]).name
    assert (
        deps["base"]["uri"] == f"pkg:oci/{layout_name}@sha256%3A{deps['base']['digest']['sha256']}"
    )
    assert deps["model-lock"]["digest"] == {"sha256": released.lock["digest"][7:]}
    for d in deps.values():  # no path of the build machine anywhere
        assert not str(d.get("uri", "")).startswith(("file:", "/", "git+/")), d
    # release verify reads builder and source commit from it
    r = run_cli(
        "verify",
        released.digest,
        "--env",
        "local",
        "--offline",
        "--json",
        cwd=released.project,
        env=released.env,
    )
    assert r.code == 0, r.stderr + r.stdout
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["provenance"]["ok"]
    assert checks["provenance"]["detail"].startswith(
        f"built by local from {deps['source']['digest']['gitCommit'][:12]}"
    )
    assert checks["attestation model"]["ok"]
