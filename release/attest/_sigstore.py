"""sigstore-python's `Verifier` with two gaps of sigstore 4.5.1 closed (both found by the
Sigstore conformance corpus, `bench/conformance.py`):

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
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rfc3161_client import VerificationError as Rfc3161VerificationError
from rfc3161_client import VerifierBuilder
from sigstore import dsse
from sigstore._internal.timestamp import TimestampSource, TimestampVerificationResult
from sigstore.errors import VerificationError
from sigstore.verify import Verifier


def _is_intoto(bundle: Any) -> bool:
    kv = bundle.log_entry._inner.kind_version
    return bool(kv.kind == "intoto" and kv.version == "0.0.2")


class ReleaseVerifier(Verifier):
    def _verify_signed_timestamp(self, timestamp_response: Any, message: bytes) -> Any:
        for ca in self._trusted_root.get_timestamp_authorities():
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

    def _establish_time(self, bundle: Any) -> list[TimestampVerificationResult]:
        if not _is_intoto(bundle):
            return list(super()._establish_time(bundle))
        out: list[TimestampVerificationResult] = []
        if bundle.verification_material.timestamp_verification_data:
            if not self._trusted_root.get_timestamp_authorities():
                raise VerificationError(
                    "no Timestamp Authorities have been provided to validate this "
                    "bundle but it contains a signed timestamp"
                )
            out.extend(self._verify_timestamp_authority(bundle))
        entry = bundle.log_entry._inner
        if entry.integrated_time and entry.inclusion_promise:
            out.append(
                TimestampVerificationResult(
                    source=TimestampSource.TRANSPARENCY_SERVICE,
                    time=datetime.fromtimestamp(entry.integrated_time, tz=UTC),
                )
            )
        return out

    def verify_dsse(self, bundle: Any, policy: Any) -> tuple[str, bytes]:
        if not _is_intoto(bundle):
            return super().verify_dsse(bundle, policy)
        self._verify_common_signing_cert(bundle, policy)
        envelope = bundle._dsse_envelope
        if envelope is None:
            raise VerificationError("intoto log entry but the bundle has no DSSE envelope")
        dsse._verify(bundle.signing_certificate.public_key(), envelope)
        _check_intoto_body(bundle, envelope)
        return envelope._inner.payload_type, envelope._inner.payload


def _check_intoto_body(bundle: Any, envelope: Any) -> None:
    try:
        body = json.loads(bundle.log_entry._inner.canonicalized_body)
        content = body["spec"]["content"]
        logged = content["envelope"]
        payload_hash = content["payloadHash"]
    except (ValueError, KeyError, TypeError):
        raise VerificationError("invalid intoto log entry body") from None
    payload: bytes = envelope._inner.payload
    if (
        payload_hash.get("algorithm") != "sha256"
        or payload_hash.get("value") != hashlib.sha256(payload).hexdigest()
    ):
        raise VerificationError("log entry payload hash does not match bundle")
    # rekor intoto/0.0.2 stores payload and signatures base64-encoded once more
    if base64.b64decode(logged.get("payload", "")) != base64.b64encode(payload):
        raise VerificationError("log entry payload does not match bundle")
    if logged.get("payloadType") != envelope._inner.payload_type:
        raise VerificationError("log entry payload type does not match bundle")
    cert_der = bundle.signing_certificate.public_bytes(serialization.Encoding.DER)
    want = [base64.b64encode(s.sig) for s in envelope._inner.signatures]
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
