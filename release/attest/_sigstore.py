"""The one module that touches sigstore-python's private API: its `Verifier` with two gaps
of sigstore 4.5.1 closed, the packaged public-good trust root, and Rekor entry checks
for key-mode bundles.

The two gaps (both found by the Sigstore conformance corpus, `bench/conformance.py`):

1. Rekor v1 `intoto/0.0.2` log entries (what `cosign attest` has written for years):
   upstream refuses them ("Integrated time only supported for dsse/hashedrekord 0.0.1
   types"). Here their integrated time counts like a dsse/0.0.1 entry's (it is bound by
   the inclusion promise, verified with the entry), the DSSE signature is checked with
   the certificate, and the entry body must match the bundle: payload hash, payload,
   every signature and the signing certificate.
2. A TSA's trust-root validity period is a closed interval (TimeRange in the trusted
   root spec); upstream treats the end as exclusive.

Everything else (chain at time, SCT, policy, inclusion proof, checkpoint, SET, cert
validity at integration time) is upstream code, unchanged.

Reads of the bundle go through its public JSON (`Bundle.to_json()`, the protobuf-specs
format) rather than sigstore's private models. Each private name still used is marked
`PRIVATE:` below with why and what upstream change would remove it; docs/internals.md
lists them and tests/attest/test_sigstore_private_api.py fails on an upgrade that moves
one (sigstore is pinned exactly in pyproject.toml for this reason).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rfc3161_client import TimeStampResponse, VerifierBuilder
from rfc3161_client import VerificationError as Rfc3161VerificationError

# PRIVATE: the result type `_verify_signed_timestamp` / `_establish_time` must return.
# Goes away with those overrides (upstream: accept intoto/0.0.2, inclusive TSA end).
from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult

# PRIVATE: `TrustedRoot.rekor_keyring(purpose)` is public but its argument type is not.
# Upstream: export KeyringPurpose (or a `TrustedRoot.rekor_verify_keyring()`).
from sigstore._internal.trust import KeyringPurpose
from sigstore.errors import VerificationError
from sigstore.models import Bundle, TransparencyLogEntry, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import VerificationPolicy
from sigstore_models.rekor.v1 import TransparencyLogEntry as _EntryModel

from release.attest.bundle import pae

logger = logging.getLogger(__name__)

# PRIVATE: the public-good trusted_root.json sigstore-python ships, by path. The public
# `ClientTrustConfig.production(offline=True)` reads a user-writable TUF cache instead
# (a file there would replace the pinned root). Upstream: a public accessor for the
# embedded root (`sigstore._utils.read_embedded` is private too).
PACKAGED_ROOT = ("_store", "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev", "trusted_root.json")


def default_trusted_root() -> Path:
    """Sigstore public-good production trusted_root.json as shipped (pinned) in
    sigstore-python; used when no `trusted_root` is configured."""
    return Path(str(resources.files("sigstore").joinpath(*PACKAGED_ROOT)))


def rekor_keyring(trusted_root: TrustedRoot) -> Any:
    """The trusted root's Rekor keys, for verifying log entries."""
    return trusted_root.rekor_keyring(KeyringPurpose.VERIFY)


def verify_log_entry(keyring: Any, raw: dict[str, Any]) -> None:
    """One Rekor entry of a bundle (protobuf-specs JSON): inclusion proof, checkpoint and
    SET against `keyring`. Raises sigstore's errors, ValueError or KeyError."""
    # PRIVATE: `TransparencyLogEntry(inner)` is documented "@private" and `._verify` is
    # private; there is no public way to verify a log entry outside a keyless bundle.
    # Upstream: a public `TransparencyLogEntry.from_dict(...).verify(trusted_root)`.
    TransparencyLogEntry(_EntryModel.from_dict(raw))._verify(keyring)


def _material(bundle: Bundle) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the log entry, the DSSE envelope or None) as protobuf-specs JSON, read through
    the public `Bundle.to_json()`."""
    doc = json.loads(bundle.to_json())
    entries = doc.get("verificationMaterial", {}).get("tlogEntries") or [{}]
    return entries[0], doc.get("dsseEnvelope")


def _is_intoto(entry: dict[str, Any]) -> bool:
    kv = entry.get("kindVersion") or {}
    return bool(kv.get("kind") == "intoto" and kv.get("version") == "0.0.2")


class ReleaseVerifier(Verifier):
    """sigstore's `Verifier` (public constructor: `trusted_root=`) with the two gaps
    above closed."""

    def __init__(self, *, trusted_root: TrustedRoot) -> None:
        super().__init__(trusted_root=trusted_root)
        self._root = trusted_root  # our own reference, not upstream's `_trusted_root`

    # PRIVATE override: upstream compares `gen_time < validity_period_end`; the spec's
    # TimeRange is closed. Upstream: `<=` there (the rest of this body is upstream's).
    def _verify_signed_timestamp(
        self, timestamp_response: TimeStampResponse, message: bytes
    ) -> TimestampVerificationResult | None:
        for ca in self._root.get_timestamp_authorities():
            certificates = ca.certificates(allow_expired=True)
            if len(certificates) < 2:
                continue
            builder = (
                VerifierBuilder()
                .tsa_certificate(certificates[0])
                .add_root_certificate(certificates[-1])
            )
            for certificate in certificates[1:-1]:
                builder = builder.add_intermediate_certificate(certificate)
            try:
                builder.build().verify_message(timestamp_response, message)
            except Rfc3161VerificationError:
                continue
            t = timestamp_response.tst_info.gen_time
            if ca.validity_period_start <= t and (
                not ca.validity_period_end or t <= ca.validity_period_end
            ):
                return TimestampVerificationResult(
                    source=TimestampSource.TIMESTAMP_AUTHORITY, time=t
                )
        return None

    # PRIVATE override: upstream raises for an integrated time on any entry but
    # dsse/hashedrekord 0.0.1. Upstream: accept intoto/0.0.2 there.
    def _establish_time(self, bundle: Bundle) -> list[TimestampVerificationResult]:
        entry, _ = _material(bundle)
        if not _is_intoto(entry):
            return list(super()._establish_time(bundle))
        out: list[TimestampVerificationResult] = []
        if bundle.verification_material.timestamp_verification_data:
            if not self._root.get_timestamp_authorities():
                raise VerificationError(
                    "no Timestamp Authorities have been provided to validate this "
                    "bundle but it contains a signed timestamp"
                )
            # PRIVATE call: upstream's TSA check (goes away with this override)
            out.extend(self._verify_timestamp_authority(bundle))
        integrated = int(entry.get("integratedTime") or 0)
        if integrated and entry.get("inclusionPromise"):
            out.append(
                TimestampVerificationResult(
                    source=TimestampSource.TRANSPARENCY_SERVICE,
                    time=datetime.fromtimestamp(integrated, tz=UTC),
                )
            )
        return out

    def verify_dsse(self, bundle: Bundle, policy: VerificationPolicy) -> tuple[str, bytes]:
        entry, envelope = _material(bundle)
        if not _is_intoto(entry):
            return super().verify_dsse(bundle, policy)
        # PRIVATE call: upstream's steps (1)-(6) of verify_dsse (chain at time, SCT,
        # policy, log entry). Upstream: accept intoto/0.0.2 in verify_dsse itself.
        self._verify_common_signing_cert(bundle, policy)
        if envelope is None:
            raise VerificationError("intoto log entry but the bundle has no DSSE envelope")
        payload_type, payload, signatures = _envelope_parts(envelope)
        # what upstream's dsse._verify checks: one ECDSA-SHA256 signature over the PAE
        if len(signatures) != 1:
            raise VerificationError(f"DSSE: exactly 1 signature allowed, got {len(signatures)}")
        key = bundle.signing_certificate.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise VerificationError("DSSE: the signing certificate's key is not ECDSA")
        try:
            key.verify(signatures[0], pae(payload_type, payload), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise VerificationError("DSSE: invalid signature") from None
        _check_intoto_body(bundle, entry, payload_type, payload, signatures)
        logger.debug("verified an intoto/0.0.2 log entry and its DSSE envelope")
        return payload_type, payload


def _envelope_parts(envelope: dict[str, Any]) -> tuple[str, bytes, list[bytes]]:
    try:
        return (
            str(envelope["payloadType"]),
            base64.b64decode(envelope["payload"]),
            [base64.b64decode(s["sig"]) for s in envelope.get("signatures") or []],
        )
    except (KeyError, TypeError, ValueError):
        raise VerificationError("invalid DSSE envelope") from None


def _check_intoto_body(
    bundle: Bundle,
    entry: dict[str, Any],
    payload_type: str,
    payload: bytes,
    signatures: list[bytes],
) -> None:
    try:
        body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
        content = body["spec"]["content"]
        logged = content["envelope"]
        payload_hash = content["payloadHash"]
    except (ValueError, KeyError, TypeError):
        raise VerificationError("invalid intoto log entry body") from None
    if (
        payload_hash.get("algorithm") != "sha256"
        or payload_hash.get("value") != hashlib.sha256(payload).hexdigest()
    ):
        raise VerificationError("log entry payload hash does not match bundle")
    # rekor intoto/0.0.2 stores payload and signatures base64-encoded once more
    if base64.b64decode(logged.get("payload", "")) != base64.b64encode(payload):
        raise VerificationError("log entry payload does not match bundle")
    if logged.get("payloadType") != payload_type:
        raise VerificationError("log entry payload type does not match bundle")
    cert_der = bundle.signing_certificate.public_bytes(serialization.Encoding.DER)
    want = [base64.b64encode(s) for s in signatures]
    got = []
    for s in logged.get("signatures") or []:
        got.append(base64.b64decode(s.get("sig", "")))
        try:
            c = x509.load_pem_x509_certificate(base64.b64decode(s.get("publicKey", "")))
        except ValueError:
            raise VerificationError("log entry signature has no valid certificate") from None
        if c.public_bytes(serialization.Encoding.DER) != cert_der:
            raise VerificationError("log entry certificate does not match bundle")
    if got != want:
        raise VerificationError("log entry signatures do not match bundle")
