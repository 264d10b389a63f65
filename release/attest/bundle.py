"""Sigstore bundle v0.3 documents with a DSSE envelope: build (key mode), parse, PAE.

A bundle is JSON (`application/vnd.dev.sigstore.bundle.v0.3+json`):

    {"mediaType": ..., "verificationMaterial": {...}, "dsseEnvelope": {"payload": b64,
     "payloadType": "application/vnd.in-toto+json", "signatures": [{"sig": b64}]}}

Key-mode bundles (a key file or AWS KMS) carry `verificationMaterial.publicKey.hint`
(hex SHA-256 of the PEM public key, as OpenSSF model-signing writes and checks it) and no transparency-log entries; keyless
bundles come from sigstore-python with the Fulcio certificate and the Rekor entry.
The DSSE signature covers PAE(payloadType, payload) (DSSE v1.0).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from release.errors import VerificationFailed

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
#: media types a bundle may declare (the conformance corpus has all of them)
KNOWN_BUNDLE_TYPES = (
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    BUNDLE_MEDIA_TYPE,
)
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
#: OCI referrer artifactType and annotation (contract 4)
ARTIFACT_TYPE = BUNDLE_MEDIA_TYPE
PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature covers."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def key_hint(public_der: bytes) -> str:
    """The publicKey hint we write, in OpenSSF model-signing's form (its `verify key`
    rejects any other): hex SHA-256 of the PEM SubjectPublicKeyInfo. The hint is an
    unauthenticated label; only the signature check counts."""
    from cryptography.hazmat.primitives import serialization

    pem = serialization.load_der_public_key(public_der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def key_bundle(payload: bytes, signature: bytes, public_der: bytes) -> bytes:
    """A key-mode bundle (no certificate, no tlog entries) as canonical JSON bytes."""
    doc = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": key_hint(public_der)},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": INTOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ParsedBundle:
    """The parts of a bundle we read before any cryptography."""

    doc: dict[str, Any]
    media_type: str
    #: "dsse" or "message"
    kind: str
    payload_type: str | None
    payload: bytes | None
    signatures: list[bytes]
    #: message signature bundles: the SHA-256 the bundle says was signed
    message_digest: bytes | None
    has_certificate: bool
    key_hint: str | None

    @property
    def signature(self) -> bytes:
        return self.signatures[0]


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationFailed(f"bundle: {what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationFailed(f"bundle: {what} is not valid base64") from None


def parse_bundle(raw: bytes) -> ParsedBundle:
    """Parse bundle JSON; anything malformed is VerificationFailed with the reason."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationFailed(f"bundle is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise VerificationFailed("bundle is not a JSON object")
    mt = doc.get("mediaType")
    if mt not in KNOWN_BUNDLE_TYPES:
        raise VerificationFailed(f"bundle has unsupported mediaType {mt!r}")
    vm = doc.get("verificationMaterial")
    if not isinstance(vm, dict):
        raise VerificationFailed("bundle has no verificationMaterial")
    has_cert = "certificate" in vm or "x509CertificateChain" in vm
    hint = (
        (vm.get("publicKey") or {}).get("hint") if isinstance(vm.get("publicKey"), dict) else None
    )
    env = doc.get("dsseEnvelope")
    if env is not None:
        if not isinstance(env, dict):
            raise VerificationFailed("bundle: dsseEnvelope is not an object")
        sigs = env.get("signatures")
        if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
            n = len(sigs) if isinstance(sigs, list) else 0
            raise VerificationFailed(
                f"bundle: DSSE envelope must carry exactly 1 signature, has {n}"
            )
        payload_type = env.get("payloadType")
        if not isinstance(payload_type, str):
            raise VerificationFailed(
                f"bundle: DSSE payloadType is {type(payload_type).__name__}, not a string"
            )
        return ParsedBundle(
            doc=doc,
            media_type=mt,
            kind="dsse",
            payload_type=payload_type,
            payload=_b64(env.get("payload"), "DSSE payload"),
            signatures=[_b64(sigs[0].get("sig"), "DSSE signature")],
            message_digest=None,
            has_certificate=has_cert,
            key_hint=hint,
        )
    ms = doc.get("messageSignature")
    if isinstance(ms, dict):
        md = ms.get("messageDigest")
        digest = _b64(md.get("digest"), "message digest") if isinstance(md, dict) else None
        return ParsedBundle(
            doc=doc,
            media_type=mt,
            kind="message",
            payload_type=None,
            payload=None,
            signatures=[_b64(ms.get("signature"), "message signature")],
            message_digest=digest,
            has_certificate=has_cert,
            key_hint=hint,
        )
    raise VerificationFailed("bundle has neither a dsseEnvelope nor a messageSignature")


def bundle_digest(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()
