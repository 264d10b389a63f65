"""Verify a Sigstore bundle's signature, signer identity, subject and predicate type: a
bundle -> a typed `VerifiedStatement` about one digest, or a `VerificationFailed` whose
one-line message says exactly what did not hold.

Used by `release verify`, the gate and the audit (through `release.claims.collect`),
and by `release verify-bundle` (the Sigstore conformance interface).

Order of checks (each failure is final):
1. the bundle parses (Sigstore bundle v0.1-v0.3 JSON);
2. the signature is valid for the signer policy:
   - keyless: sigstore-python's `Verifier` built from a pinned `trusted_root.json`
     (no network), which checks the Fulcio chain, SCT, Rekor inclusion proof/SET and
     the DSSE signature; then identity (exact or regex) and OIDC issuer;
   - public key: the DSSE PAE signature (or message signature) with that key
     (ECDSA P-256/P-384, Ed25519, RSA);
3. the payload is an in-toto v1 Statement (parsed here: sigstore-python's model rejects
   statements without subject names);
4. one subject's sha256 equals the image digest (for the model signature: the model's
   root digest, model-signing's subject: the image's model directory as its baked lock
   says it ships, `modelpin.shipped(lock).digest`);
5. predicateType is the one expected.

Predicate fields are claims of the signer; the certificate (or key) is what is trusted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.attest.bundle import (
    INTOTO_PAYLOAD_TYPE,
    STATEMENT_TYPE,
    ParsedBundle,
    key_hint,
    pae,
    parse_bundle,
)
from release.digest import Digest, parse_digest
from release.errors import ConfigError, UsageError, VerificationFailed


@dataclass(frozen=True)
class Policy:
    """Who may have signed: a public key (key/KMS mode) or an identity + issuer (keyless)."""

    public_key: bytes | None = None
    identity: str | None = None
    identity_regex: str | None = None
    issuer: str | None = None
    trusted_root: Path | None = None

    def __post_init__(self) -> None:
        if self.public_key is None:
            if not (self.identity or self.identity_regex) or not self.issuer:
                raise UsageError(
                    "verification policy needs a public key, or an identity "
                    "(exact or regex) and an OIDC issuer"
                )
            if self.identity and self.identity_regex:
                raise UsageError("give identity or identity_regex, not both")
        if self.identity_regex:
            try:
                re.compile(self.identity_regex)
            except re.error as exc:
                raise UsageError(
                    f"identity_regex {self.identity_regex!r} is invalid: {exc}"
                ) from None

    @classmethod
    def from_key_file(cls, path: Path, trusted_root: Path | None = None) -> Policy:
        try:
            return cls(public_key=path.read_bytes(), trusted_root=trusted_root)
        except OSError as exc:
            raise ConfigError(f"public key {path}: {exc.strerror}") from None

    def describe(self) -> str:
        if self.public_key is not None:
            return "public key " + _key_fingerprint(self.public_key)
        who = self.identity or f"/{self.identity_regex}/"
        return f"identity {who} issued by {self.issuer}"


def policy_from_config(signing: Any, root: Path) -> Policy:
    """The verify policy from `[signing]`: key mode -> its public key (`public_key`, or
    PATH.pub of `key:PATH`, or the KMS key's public key); keyless -> identity + issuer."""
    tr = signing.trusted_root
    trusted_root = _resolve(root, tr) if tr else None
    if signing.public_key:
        pk = signing.public_key
        if pk.startswith("awskms:"):
            from release.attest.sign import kms_public_pem

            return Policy(public_key=kms_public_pem(pk[7:]), trusted_root=trusted_root)
        return Policy.from_key_file(_resolve(root, pk), trusted_root)
    mode = signing.mode
    if mode.startswith("key:"):
        p = _resolve(root, mode[4:])
        return Policy.from_key_file(p.with_name(p.name + ".pub"), trusted_root)
    if mode.startswith("awskms:"):
        from release.attest.sign import kms_public_pem

        return Policy(public_key=kms_public_pem(mode[7:]), trusted_root=trusted_root)
    if not (signing.identity or signing.identity_regex) or not signing.issuer:
        raise ConfigError(
            '[signing] mode = "sigstore" needs identity (or identity_regex) and issuer '
            "to verify against"
        )
    return Policy(
        identity=signing.identity,
        identity_regex=signing.identity_regex,
        issuer=signing.issuer,
        trusted_root=trusted_root,
    )


def _resolve(root: Path, p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else root / path


@dataclass(frozen=True)
class Subject:
    """One subject of an in-toto statement: its name and sha256 digest."""

    name: str
    digest: Digest


@dataclass(frozen=True)
class VerifiedStatement:
    """An in-toto statement whose signature, signer and subject held."""

    predicate_type: str
    #: every subject with a sha256 digest, in the statement's order
    subjects: tuple[Subject, ...]
    #: the statement's predicate, parsed from the signed payload (a JSON object)
    predicate: dict[str, Any]
    #: certificate identity (keyless) or `key:<sha256 fingerprint>`
    signer: str
    issuer: str | None
    #: sha256 of the bundle bytes, or the referrer digest when the caller supplies it
    bundle_digest: str

    @property
    def subject_digests(self) -> tuple[Digest, ...]:
        return tuple(s.digest for s in self.subjects)


def _key_fingerprint(pem_or_der: bytes) -> str:
    key = _load_public_key(pem_or_der)
    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _load_public_key(data: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    try:
        if data.lstrip().startswith(b"-----"):
            return serialization.load_pem_public_key(data)
        return serialization.load_der_public_key(data)
    except (ValueError, TypeError) as exc:
        # nothing can verify against an unusable key: a failed verification (exit 1)
        raise VerificationFailed(
            f"the public key is not a valid PEM/DER public key: {_one_line(exc)}"
        ) from None


def _verify_with_key(
    key: Any, signature: bytes, message: bytes, prehashed: bytes | None = None
) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            h = hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()
            if prehashed is not None:
                key.verify(signature, prehashed, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            else:
                key.verify(signature, message, ec.ECDSA(h))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, rsa.RSAPublicKey):
            if prehashed is not None:
                key.verify(
                    signature, prehashed, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
                )
            else:
                key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise UsageError(f"unsupported public key type {type(key).__name__}")
    except InvalidSignature:
        return False
    return True


# --- signature verification ---------------------------------------------------------------
def _verify_key_bundle(pb: ParsedBundle, policy: Policy, artifact_digest: bytes | None) -> str:
    """Signature check for key mode; returns the signer string."""
    assert policy.public_key is not None
    if pb.has_certificate:
        raise VerificationFailed(
            "bundle is signed with a certificate (keyless), but the policy expects a public key"
        )
    key = _load_public_key(policy.public_key)
    fp = _key_fingerprint(policy.public_key)
    if pb.kind == "dsse":
        assert pb.payload is not None
        ok = _verify_with_key(key, pb.signature, pae(pb.payload_type or "", pb.payload))
    else:
        if artifact_digest is None:
            raise VerificationFailed("bundle signs a message, not a DSSE statement")
        if pb.message_digest is not None and pb.message_digest != artifact_digest:
            raise VerificationFailed("bundle's message digest does not match the artifact")
        ok = _verify_with_key(key, pb.signature, b"", prehashed=artifact_digest)
    if not ok:
        from cryptography.hazmat.primitives import serialization

        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if pb.key_hint and pb.key_hint != key_hint(der):
            raise VerificationFailed(
                f"signature was made by another key (hint {pb.key_hint}), not the expected {fp}"
            )
        raise VerificationFailed(f"signature does not verify with the expected public key {fp}")
    _verify_key_tlog(pb, policy)
    return f"key:{fp}"


def _verify_key_tlog(pb: ParsedBundle, policy: Policy) -> None:
    """Key-mode bundles may carry Rekor entries (cosign, the conformance corpus); when
    they do, each must verify against the trusted root's Rekor keys."""
    entries = pb.doc["verificationMaterial"].get("tlogEntries") or []
    if not entries:
        return
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import TrustedRoot

    from release.attest._sigstore import default_trusted_root, rekor_keyring, verify_log_entry

    try:
        root = TrustedRoot.from_file(str(policy.trusted_root or default_trusted_root()))
        keyring = rekor_keyring(root)
        for raw in entries:
            verify_log_entry(keyring, raw)
            body = json.loads(base64.b64decode(raw.get("canonicalizedBody", "")))
            _check_entry_signature(body, pb)
    except VerificationFailed:
        raise
    except (SigstoreError, ValueError, KeyError) as exc:
        raise VerificationFailed(f"transparency log entry: {exc}") from None


def _check_entry_signature(body: dict[str, Any], pb: ParsedBundle) -> None:
    spec = body.get("spec") or {}
    sig = (spec.get("signature") or {}).get("content")
    if sig is None and isinstance(spec.get("signatures"), list) and spec["signatures"]:
        sig = spec["signatures"][0].get("signature")
    if sig is not None and base64.b64decode(sig) != pb.signature:
        raise VerificationFailed("transparency log entry records another signature than the bundle")


def _keyless(
    pb_raw: bytes,
    pb: ParsedBundle,
    policy: Policy,
    artifact: bytes | None,
    artifact_digest: bytes | None,
) -> tuple[str, str | None, bytes | None]:
    """sigstore-python verification; returns (identity, issuer, payload or None)."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify.policy import Identity
    from sigstore_models.common.v1 import HashAlgorithm

    from release.attest._sigstore import ReleaseVerifier, default_trusted_root

    if not pb.has_certificate:
        raise VerificationFailed(
            "bundle has no certificate (signed with a key), but the policy expects an identity"
        )
    try:
        bundle = Bundle.from_json(pb_raw)
    except SigstoreError as exc:
        raise VerificationFailed(f"invalid bundle: {_one_line(exc)}") from None
    root_path = policy.trusted_root or default_trusted_root()
    try:
        trusted = TrustedRoot.from_file(str(root_path))
        verifier = ReleaseVerifier(trusted_root=trusted)
    except OSError as exc:
        raise UsageError(f"trusted root {root_path}: {exc.strerror}") from None
    except (SigstoreError, ValueError) as exc:
        # a root that does not load cannot vouch for anything: a failed verification
        raise VerificationFailed(f"trusted root {root_path} is invalid: {_one_line(exc)}") from None

    cert = bundle.signing_certificate
    identity = _cert_identity(cert)
    issuer = _cert_issuer(cert)
    if policy.identity_regex:
        sig_policy: Any = _RegexIdentity(policy.identity_regex, policy.issuer or "")
    else:
        sig_policy = Identity(identity=policy.identity or "", issuer=policy.issuer)
    # identity/issuer first so their failures read plainly
    if policy.issuer and issuer != policy.issuer:
        raise VerificationFailed(f"certificate issuer is {issuer!r}, expected {policy.issuer!r}")
    try:
        sig_policy.verify(cert)
    except SigstoreError:
        want = policy.identity or f"/{policy.identity_regex}/"
        raise VerificationFailed(f"certificate identity is {identity!r}, expected {want}") from None
    try:
        if pb.kind == "dsse":
            _, payload = verifier.verify_dsse(bundle, sig_policy)
            return identity, issuer, payload
        inp: Any = (
            artifact
            if artifact is not None
            else Hashed(algorithm=HashAlgorithm.SHA2_256, digest=artifact_digest or b"")
        )
        verifier.verify_artifact(inp, bundle, sig_policy)
        return identity, issuer, None
    except SigstoreError as exc:
        raise VerificationFailed(f"signature: {_one_line(exc)}") from None


class _RegexIdentity:
    def __init__(self, pattern: str, issuer: str) -> None:
        self._re = re.compile(pattern)
        self._issuer = issuer

    def verify(self, cert: Any) -> None:
        from sigstore.errors import VerificationError
        from sigstore.verify.policy import OIDCIssuer

        OIDCIssuer(self._issuer).verify(cert)
        ident = _cert_identity(cert)
        if not self._re.fullmatch(ident):
            raise VerificationError(f"identity {ident!r} does not match /{self._re.pattern}/")


def _cert_identity(cert: Any) -> str:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    for v in san.get_values_for_type(x509.UniformResourceIdentifier):
        return str(v)
    for v in san.get_values_for_type(x509.RFC822Name):
        return str(v)
    for on in san.get_values_for_type(x509.OtherName):
        return on.value.decode(errors="replace") if isinstance(on.value, bytes) else str(on.value)
    return ""


def _cert_issuer(cert: Any) -> str | None:
    from cryptography import x509

    for oid in ("1.3.6.1.4.1.57264.1.8", "1.3.6.1.4.1.57264.1.1"):
        try:
            ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
        except x509.ExtensionNotFound:
            continue
        raw = ext.value
        if oid.endswith(".8"):
            # DER UTF8String: tag 0x0c, length, value
            value = _der_utf8(bytes(raw))
            if value is None:
                continue
            return value
        return bytes(raw).decode(errors="replace")
    return None


def _der_utf8(raw: bytes) -> str | None:
    if len(raw) < 2 or raw[0] != 0x0C:
        return None
    n = raw[1]
    start = 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(raw[2 : 2 + k], "big")
        start = 2 + k
    return raw[start : start + n].decode(errors="replace")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# --- statements ---------------------------------------------------------------------------
def _parse_statement(payload_type: str | None, payload: bytes) -> dict[str, Any]:
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise VerificationFailed(
            f"DSSE payloadType is {payload_type!r}, expected {INTOTO_PAYLOAD_TYPE}"
        )
    try:
        st = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise VerificationFailed("the signed payload is not JSON") from None
    if not isinstance(st, dict) or st.get("_type") != STATEMENT_TYPE:
        got = st.get("_type") if isinstance(st, dict) else type(st).__name__
        raise VerificationFailed(
            f"the signed payload is not an in-toto v1 Statement (_type {got!r})"
        )
    if not isinstance(st.get("subject"), list) or not st["subject"]:
        raise VerificationFailed("the statement has no subject")
    _validate_statement(st)
    return st


def _validate_statement(st: dict[str, Any]) -> None:
    """The in-toto v1 Statement rules, as `in_toto_attestation.v1` (the library that built
    it in `sign.statement`) checks them: known fields only, every subject with a digest, a
    predicate type and a predicate. The library's copy of the predicate (a protobuf Struct,
    numbers as doubles) is only validated, never used."""
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    try:
        pb = json_format.ParseDict(st, statement_pb2.Statement())
        Statement.copy_from_pb(pb).validate()
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise VerificationFailed(
            f"the signed payload is not a valid in-toto v1 Statement: {_one_line(exc)}"
        ) from None


def _subjects(st: dict[str, Any]) -> tuple[Subject, ...]:
    out = []
    for s in st["subject"]:
        d = (s.get("digest") or {}).get("sha256") if isinstance(s, dict) else None
        if isinstance(d, str) and re.fullmatch(r"[0-9a-fA-F]{64}", d):
            out.append(Subject(str(s.get("name") or ""), Digest("sha256:" + d.lower())))
    return tuple(out)


def _verified(
    st: dict[str, Any], signer: str, issuer: str | None, bundle: bytes
) -> VerifiedStatement:
    pred = st.get("predicate")
    return VerifiedStatement(
        predicate_type=str(st.get("predicateType")),
        subjects=_subjects(st),
        predicate=pred if isinstance(pred, dict) else {},
        signer=signer,
        issuer=issuer,
        bundle_digest="sha256:" + hashlib.sha256(bundle).hexdigest(),
    )


def verify_statement(
    bundle: bytes,
    policy: Policy,
    subject_digest: str,
    predicate_type: str | None,
    trusted_root: Path | None = None,
    *,
    about: str = "the image",
) -> VerifiedStatement:
    """Verify one bundle about `subject_digest` (`about` names it in the failure); see the
    module docstring for the order. `trusted_root` overrides the policy's."""
    digest = parse_digest(subject_digest)
    if trusted_root is not None:
        policy = Policy(
            public_key=policy.public_key,
            identity=policy.identity,
            identity_regex=policy.identity_regex,
            issuer=policy.issuer,
            trusted_root=trusted_root,
        )
    pb = parse_bundle(bundle)
    if pb.kind != "dsse":
        raise VerificationFailed("bundle signs a message, not a DSSE in-toto statement")
    assert pb.payload is not None
    if policy.public_key is not None:
        signer = _verify_key_bundle(pb, policy, None)
        issuer = None
        payload = pb.payload
    else:
        signer, issuer, verified = _keyless(bundle, pb, policy, None, None)
        payload = verified if verified is not None else pb.payload
    vs = _verified(_parse_statement(pb.payload_type, payload), signer, issuer, bundle)
    if digest not in vs.subject_digests:
        got = ", ".join(vs.subject_digests) or "no sha256 subject"
        raise VerificationFailed(f"statement is about {got}, not {about} {digest}")
    if predicate_type is not None and vs.predicate_type != predicate_type:
        raise VerificationFailed(
            f"predicate type is {vs.predicate_type!r}, expected {predicate_type!r}"
        )
    return vs


def verify_bundle(
    bundle: bytes,
    policy: Policy,
    artifact: bytes | None = None,
    artifact_digest: Digest | None = None,
) -> VerifiedStatement | None:
    """The conformance check: a bundle over an artifact (file bytes or its sha256).
    Message-signature bundles verify the artifact; DSSE bundles must have it as a
    subject. Returns the statement for DSSE bundles, None for message signatures."""
    if artifact is not None:
        raw_digest = hashlib.sha256(artifact).digest()
    elif artifact_digest is not None:
        raw_digest = bytes.fromhex(parse_digest(artifact_digest).removeprefix("sha256:"))
    else:
        raise UsageError("give the artifact file or its sha256:<hex> digest")
    digest = Digest("sha256:" + raw_digest.hex())
    pb = parse_bundle(bundle)
    if pb.kind == "dsse":
        assert pb.payload is not None
        issuer: str | None = None
        if policy.public_key is not None:
            signer = _verify_key_bundle(pb, policy, None)
            payload = pb.payload
        else:
            signer, issuer, verified = _keyless(bundle, pb, policy, None, None)
            payload = verified if verified is not None else pb.payload
        vs = _verified(_parse_statement(pb.payload_type, payload), signer, issuer, bundle)
        if digest not in vs.subject_digests:
            raise VerificationFailed(
                f"statement is about {', '.join(vs.subject_digests)}, not {digest}"
            )
        return vs
    if policy.public_key is not None:
        _verify_key_bundle(pb, policy, raw_digest)
    else:
        _keyless(bundle, pb, policy, artifact, raw_digest)
    return None


class NoAttestation(VerificationFailed):
    """No bundle of the predicate type is stored with the digest (absent, not invalid)."""


def verify_stored(
    registry: Any,
    digest: str,
    predicate_type: str,
    policy: Policy,
    *,
    subject: str | None = None,
    about: str = "the image",
) -> VerifiedStatement:
    """Fetch the bundles of `predicate_type` stored with `digest` and return the newest
    one that verifies (its `bundle_digest` is the referrer manifest digest). None stored
    -> VerificationFailed "no ... attestation"; none valid -> the newest one's reason.
    The statement must be about `subject` (default: `digest`); the model signature is
    about the model's root digest (model-signing's subject), which the caller takes from
    the image's baked lock."""
    from dataclasses import replace

    from release.attest.store import fetch_bundles

    d = parse_digest(digest)
    stored = fetch_bundles(registry, d, predicate_type)
    if not stored:
        raise NoAttestation(f"no {predicate_type} attestation is stored for {d}")
    first_error: VerificationFailed | None = None
    for sb in reversed(stored):
        try:
            vs = verify_statement(sb.bundle, policy, subject or d, predicate_type, about=about)
        except VerificationFailed as exc:
            first_error = first_error or exc
            continue
        return replace(vs, bundle_digest=sb.referrer)
    assert first_error is not None
    raise VerificationFailed(
        f"{predicate_type} bundle {stored[-1].referrer}: {first_error.message}"
    )


def verify_all_stored(
    registry: Any,
    digest: str,
    predicate_type: str,
    policy: Policy,
) -> list[VerifiedStatement]:
    """Every stored bundle of `predicate_type` about `digest` that verifies, in the
    referrers index order (which nobody signs: callers order by what the statements say).
    Bundles that do not verify are left out; none stored or none valid -> []."""
    from dataclasses import replace

    from release.attest.store import fetch_bundles

    d = parse_digest(digest)
    out = []
    for sb in fetch_bundles(registry, d, predicate_type):
        try:
            vs = verify_statement(sb.bundle, policy, d, predicate_type)
        except VerificationFailed:
            continue
        out.append(replace(vs, bundle_digest=sb.referrer))
    return out
