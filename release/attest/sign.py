"""Signing in-toto statements into Sigstore bundles, and `attest` (sign + store).

Three `Signer`s, chosen by `[signing].mode` or `--signer`:

- `key:PATH`   an ECDSA P-256 private key (PEM, PKCS#8). If PATH does not exist it is
               generated (mode 0600, written atomically) with PATH.pub next to it;
               RELEASE_SIGNING_KEY_PASSWORD decrypts/encrypts it when set.
- `awskms:KEY` AWS KMS `Sign` (ECC_NIST_P256, ECDSA_SHA_256). KMS signs RAW messages up
               to 4096 bytes; a longer PAE (an SBOM) is sent as its SHA-256 with
               MessageType=DIGEST, which real KMS signs as given.
- `sigstore`   keyless: an ambient OIDC token (GitHub Actions, or SIGSTORE_ID_TOKEN) ->
               Fulcio certificate -> Rekor entry, through sigstore-python
               (`Signer.sign_dsse`). RELEASE_SIGSTORE_TRUST_CONFIG may name a
               ClientTrustConfig JSON (staging, private instance); default production.

Key-mode bundles carry `publicKey.hint` and no tlog entries (see bundle.py).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from release._io import atomic_write_bytes, canonical_json
from release.attest.bundle import INTOTO_PAYLOAD_TYPE, key_bundle, pae
from release.digest import Digest, parse_digest
from release.errors import ConfigError, RemoteError, UsageError, aws_error_message

KMS_RAW_LIMIT = 4096


class Signer(Protocol):
    """Turns statement bytes into Sigstore bundle JSON bytes."""

    @property
    def description(self) -> str: ...

    def sign(self, statement: bytes) -> bytes: ...


def statement(
    subject_name: str, subject_digest: Digest, predicate_type: str, predicate: dict[str, Any]
) -> bytes:
    """An in-toto v1 Statement about one image digest, as the exact bytes to sign
    (canonical JSON). Built and validated with `in_toto_attestation.v1` (subject as a
    ResourceDescriptor); the predicate is then put back verbatim, because the library holds
    it in a protobuf Struct, which turns every number into a double (1 -> 1.0, integers
    above 2^53 rounded) and so would change what we sign (docs/internals.md)."""
    from google.protobuf import json_format
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    hexd = parse_digest(subject_digest).removeprefix("sha256:")
    subject = ResourceDescriptor(name=subject_name, digest={"sha256": hexd})
    st = Statement([subject.pb], predicate_type, predicate)
    try:
        st.validate()
    except ValueError as exc:
        raise UsageError(f"in-toto statement for {subject_name}: {exc}") from None
    doc = json_format.MessageToDict(st.pb)
    doc["predicate"] = predicate
    return canonical_json(doc)


# --- key file ---------------------------------------------------------------------------
class KeySigner:
    """ECDSA P-256 key file."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.path = path
        self.created = False
        password = os.environ.get("RELEASE_SIGNING_KEY_PASSWORD")
        pw = password.encode() if password else None
        if not path.exists():
            if not create:
                raise ConfigError(f"signing key {path} does not exist")
            key = ec.generate_private_key(ec.SECP256R1())
            enc: serialization.KeySerializationEncryption = (
                serialization.BestAvailableEncryption(pw) if pw else serialization.NoEncryption()
            )
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
            )
            atomic_write_bytes(path, pem, mode=0o600)
            atomic_write_bytes(path.with_name(path.name + ".pub"), public_pem(key.public_key()))
            self.created = True
        else:
            try:
                loaded = serialization.load_pem_private_key(path.read_bytes(), password=pw)
            except (ValueError, TypeError) as exc:
                raise ConfigError(
                    f"signing key {path} is not a usable PEM private key: {exc}"
                ) from None
            if (
                not isinstance(loaded, ec.EllipticCurvePrivateKey)
                or loaded.curve.name != "secp256r1"
            ):
                raise ConfigError(f"signing key {path} is not an ECDSA P-256 key")
            key = loaded
        self._key = key
        self.public_der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def description(self) -> str:
        return f"key:{self.path}"

    @property
    def public_key_path(self) -> Path:
        return self.path.with_name(self.path.name + ".pub")

    def sign(self, statement: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        sig = self._key.sign(pae(INTOTO_PAYLOAD_TYPE, statement), ec.ECDSA(hashes.SHA256()))
        return key_bundle(statement, sig, self.public_der)


def public_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    data: bytes = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


# --- AWS KMS ----------------------------------------------------------------------------
class KmsSigner:
    """AWS KMS asymmetric key (ECC_NIST_P256) through boto3 `Sign`."""

    def __init__(self, key_id: str, client: Any = None) -> None:
        import boto3

        self.key_id = key_id
        self._kms = client or boto3.client("kms")
        der = _kms_call(self._kms.get_public_key, f"GetPublicKey {key_id}", KeyId=key_id)
        if der.get("KeySpec") not in (None, "ECC_NIST_P256"):
            raise ConfigError(f"KMS key {key_id} is {der.get('KeySpec')}, need ECC_NIST_P256")
        self.public_der: bytes = der["PublicKey"]

    @property
    def description(self) -> str:
        return f"awskms:{self.key_id}"

    def sign(self, statement: bytes) -> bytes:
        message = pae(INTOTO_PAYLOAD_TYPE, statement)
        if len(message) <= KMS_RAW_LIMIT:
            args = {"Message": message, "MessageType": "RAW"}
        else:
            # real KMS signs a DIGEST message as the SHA-256 it is given
            args = {"Message": hashlib.sha256(message).digest(), "MessageType": "DIGEST"}
        resp = _kms_call(
            self._kms.sign,
            f"Sign with {self.key_id}",
            KeyId=self.key_id,
            SigningAlgorithm="ECDSA_SHA_256",
            **args,
        )
        return key_bundle(statement, resp["Signature"], self.public_der)


def kms_public_pem(key_id: str) -> bytes:
    """The PEM public key of a KMS key (what a verifier pins for awskms mode)."""
    import boto3
    from cryptography.hazmat.primitives import serialization

    kms = boto3.client("kms")
    der = _kms_call(kms.get_public_key, f"GetPublicKey {key_id}", KeyId=key_id)["PublicKey"]
    return public_pem(serialization.load_der_public_key(der))


def _kms_call(fn: Any, what: str, **kw: Any) -> Any:
    import botocore.exceptions

    try:
        return fn(**kw)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise RemoteError(f"AWS KMS {what} failed: {aws_error_message(exc)}") from None


# --- keyless (Sigstore) -----------------------------------------------------------------
class SigstoreSigner:
    """Keyless signing with an ambient OIDC identity (Fulcio + Rekor)."""

    def __init__(self) -> None:
        from sigstore.oidc import IdentityToken, detect_credential

        raw = os.environ.get("SIGSTORE_ID_TOKEN") or detect_credential()
        if not raw:
            raise UsageError(
                "keyless signing needs an ambient OIDC token (GitHub Actions with "
                "`id-token: write`, or SIGSTORE_ID_TOKEN); or use --signer key:PATH"
            )
        self._token = IdentityToken(raw)
        self._ctx: Any = None
        self._signer_cm: Any = None
        self._signer: Any = None

    @property
    def description(self) -> str:
        return f"sigstore:{self._token.identity}"

    def _get(self) -> Any:
        if self._signer is None:
            from sigstore.models import ClientTrustConfig
            from sigstore.sign import SigningContext

            cfg_path = os.environ.get("RELEASE_SIGSTORE_TRUST_CONFIG")
            trust = (
                ClientTrustConfig.from_json(Path(cfg_path).read_text())
                if cfg_path
                else ClientTrustConfig.production()
            )
            self._ctx = SigningContext.from_trust_config(trust)
            self._signer_cm = self._ctx.signer(self._token, cache=True)
            self._signer = self._signer_cm.__enter__()
        return self._signer

    def sign(self, statement: bytes) -> bytes:
        from sigstore import dsse
        from sigstore.errors import Error as SigstoreError

        try:
            bundle = self._get().sign_dsse(dsse.Statement(statement))
        except SigstoreError as exc:
            raise RemoteError(f"keyless signing failed: {exc}") from None
        data: bytes = bundle.to_json().encode()
        return data


def make_signer(mode: str, root: Path) -> Signer:
    """`sigstore` | `key:PATH` (relative to `root`) | `awskms:KEY` -> a Signer."""
    if mode == "sigstore":
        return SigstoreSigner()
    if mode.startswith("key:") and mode[4:]:
        p = Path(mode[4:])
        return KeySigner(p if p.is_absolute() else root / p)
    if mode.startswith("awskms:") and mode[7:]:
        return KmsSigner(mode[7:])
    raise UsageError(f"signer {mode!r}: give sigstore, key:PATH or awskms:KEY-ID")


# --- attest: sign + store ---------------------------------------------------------------
@dataclass(frozen=True)
class Attestation:
    predicate_type: str
    #: digest of the referrer manifest that holds the bundle
    referrer: Digest
    #: sha256 of the bundle bytes
    bundle_sha256: str
    size: int


def attest(
    registry: Any,
    digest: Digest,
    predicates: list[tuple[str, dict[str, Any]]],
    signer: Signer,
    subject_name: str | None = None,
) -> list[Attestation]:
    """Sign one statement per (predicate type, predicate) about `digest` and attach each
    bundle to the image in `registry` as an OCI referrer. The model signature is
    model-signing's own statement (subject: the model's root digest)."""
    from release.attest.statements import model_statement
    from release.attest.store import attach_bundle
    from release.evidence import MODEL_SIGNATURE

    name = subject_name or registry.name
    out = []
    for ptype, pred in predicates:
        # model-signing's statement is about the model (its root digest), not the image;
        # the referrer ties it to the image, verify ties its digest to the image's lock
        st = (
            model_statement(pred)
            if ptype == MODEL_SIGNATURE
            else statement(name, digest, ptype, pred)
        )
        bundle = signer.sign(st)
        ref = attach_bundle(registry, digest, bundle, ptype)
        out.append(
            Attestation(ptype, ref, "sha256:" + hashlib.sha256(bundle).hexdigest(), len(bundle))
        )
    return out
