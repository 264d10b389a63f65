"""A private Sigstore instance for tests, made with `cryptography`: a Fulcio-like CA,
a CT log key (embedded SCT in the leaf) and a Rekor-like log key (dsse/0.0.1 entry,
inclusion proof in a 1-leaf tree, signed checkpoint, SET). `trusted_root.json` for it
is written so sigstore-python's `Verifier` accepts the bundles it makes, offline."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from release.attest.bundle import BUNDLE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE, pae

ISSUER_OID_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_OID_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
ORIGIN = "rekor.test - 1"


def _der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


class TestSigstore:
    __test__ = False

    def __init__(self, root: Path) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ct_key = ec.generate_private_key(ec.SECP256R1())
        self.log_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test"),
                x509.NameAttribute(NameOID.COMMON_NAME, "test-fulcio"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key())
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(1)
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.path = root / "trusted_root.json"
        start = (self.now - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def log(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, object]:
            der = _der(key.public_key())
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": _b64(der),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start},
                },
                "logId": {"keyId": _b64(hashlib.sha256(der).digest())},
            }

        self.path.write_text(
            json.dumps(
                {
                    "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                    "tlogs": [log(self.log_key, "http://127.0.0.1:9/rekor")],
                    "certificateAuthorities": [
                        {
                            "subject": {"organization": "test", "commonName": "test-fulcio"},
                            "uri": "http://127.0.0.1:9/fulcio",
                            "certChain": {
                                "certificates": [
                                    {
                                        "rawBytes": _b64(
                                            self.ca.public_bytes(serialization.Encoding.DER)
                                        )
                                    }
                                ]
                            },
                            "validFor": {"start": start},
                        }
                    ],
                    "ctlogs": [log(self.ct_key, "http://127.0.0.1:9/ct")],
                    "timestampAuthorities": [],
                }
            )
        )

    # --- Fulcio + CT -------------------------------------------------------------------
    def _leaf(self, key: ec.EllipticCurvePublicKey, identity: str, issuer: str) -> x509.Certificate:
        issuer_v2 = issuer.encode()
        exts: list[tuple[x509.ExtensionType, bool]] = [
            (x509.KeyUsage(True, False, False, False, False, False, False, False, False), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False),
            (x509.SubjectKeyIdentifier.from_public_key(key), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), False),
            (x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), True),
            (x509.UnrecognizedExtension(ISSUER_OID_V1, issuer.encode()), False),
            (
                x509.UnrecognizedExtension(
                    ISSUER_OID_V2, b"\x0c" + _der_len(len(issuer_v2)) + issuer_v2
                ),
                False,
            ),
        ]

        def build(extra: list[tuple[x509.ExtensionType, bool]]) -> x509.Certificate:
            b = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(self.ca.subject)
                .public_key(key)
                .serial_number(4242)
                .not_valid_before(self.now - dt.timedelta(minutes=5))
                .not_valid_after(self.now + dt.timedelta(minutes=10))
            )
            for e, crit in exts + extra:
                b = b.add_extension(e, critical=crit)
            return b.sign(self.ca_key, hashes.SHA256())

        pre = build([])
        tbs = pre.tbs_certificate_bytes
        ts = int(self.now.timestamp() * 1000)
        issuer_hash = hashlib.sha256(_der(self.ca_key.public_key())).digest()
        entry = issuer_hash + struct.pack(">I", len(tbs))[1:] + tbs
        signed = struct.pack(">BBQH", 0, 0, ts, 1) + entry + struct.pack(">H", 0)
        sig = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        log_id = hashlib.sha256(_der(self.ct_key.public_key())).digest()
        sct = (
            bytes([0])
            + log_id
            + struct.pack(">QH", ts, 0)
            + bytes([4, 3])
            + struct.pack(">H", len(sig))
            + sig
        )
        lst = struct.pack(">H", len(sct)) + sct
        tls = struct.pack(">H", len(lst)) + lst
        value = b"\x04" + _der_len(len(tls)) + tls
        cert = build([(x509.UnrecognizedExtension(SCT_OID, value), False)])
        assert cert.tbs_precertificate_bytes == tbs
        return cert

    # --- Rekor --------------------------------------------------------------------------
    def sign(self, statement: bytes, identity: str, issuer: str, kind: str = "dsse") -> bytes:
        """A bundle with a Rekor v1 `dsse/0.0.1` entry, or with `kind="intoto"` the
        `intoto/0.0.2` entry `cosign attest` writes (payload and signatures base64-encoded
        once more inside the entry)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._leaf(key.public_key(), identity, issuer)
        sig = key.sign(pae(INTOTO_PAYLOAD_TYPE, statement), ec.ECDSA(hashes.SHA256()))
        pem_b64 = _b64(cert.public_bytes(serialization.Encoding.PEM))
        envelope = {
            "payload": _b64(statement),
            "payloadType": INTOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": _b64(sig)}],
        }
        if kind == "intoto":
            spec = {
                "content": {
                    "envelope": {
                        "payload": _b64(_b64(statement).encode()),
                        "payloadType": INTOTO_PAYLOAD_TYPE,
                        "signatures": [{"sig": _b64(_b64(sig).encode()), "publicKey": pem_b64}],
                    },
                    "hash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
                    },
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(statement).hexdigest(),
                    },
                }
            }
            version = "0.0.2"
        else:
            spec = {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
                },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(statement).hexdigest(),
                },
                "signatures": [{"signature": _b64(sig), "verifier": pem_b64}],
            }
            version = "0.0.1"
        body = json.dumps(
            {
                "apiVersion": version,
                "kind": kind,
                "spec": spec,
            },
            separators=(",", ":"),
        ).encode()
        log_id, root, checkpoint, integrated, set_sig = self.log_entry(body)
        doc = {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {
                "certificate": {"rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [
                    {
                        "logIndex": "0",
                        "logId": {"keyId": _b64(log_id)},
                        "kindVersion": {"kind": kind, "version": version},
                        "integratedTime": str(integrated),
                        "inclusionPromise": {"signedEntryTimestamp": _b64(set_sig)},
                        "inclusionProof": {
                            "logIndex": "0",
                            "rootHash": _b64(root),
                            "treeSize": "1",
                            "hashes": [],
                            "checkpoint": {"envelope": checkpoint},
                        },
                        "canonicalizedBody": _b64(body),
                    }
                ],
            },
            "dsseEnvelope": envelope,
        }
        return json.dumps(doc).encode()

    def log_entry(self, body: bytes) -> tuple[bytes, bytes, str, int, bytes]:
        """Integrate `body` as the only leaf of a fresh log: (log id, root hash, signed
        checkpoint, integrated time, SET)."""
        log_der = _der(self.log_key.public_key())
        log_id = hashlib.sha256(log_der).digest()
        root = hashlib.sha256(b"\x00" + body).digest()
        note = f"{ORIGIN}\n1\n{_b64(root)}\n"
        nsig = self.log_key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        checkpoint = note + "\n" + f"\u2014 rekor.test {_b64(log_id[:4] + nsig)}\n"
        integrated = int(self.now.timestamp())
        set_payload = rfc8785.dumps(
            {"body": _b64(body), "integratedTime": integrated, "logID": log_id.hex(), "logIndex": 0}
        )
        set_sig = self.log_key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
        return log_id, root, checkpoint, integrated, set_sig

    # --- Fulcio + Rekor over HTTP (for sigstore-python's Signer) ------------------------
    def serve(self, dest: Path) -> tuple[Path, Any]:
        """Start Fulcio (`/api/v2/signingCert`) and Rekor v1 (`/api/v1/log/entries`)
        endpoints on 127.0.0.1; returns (ClientTrustConfig JSON path, server)."""
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        inst = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _reply(self, code: int, doc: Any, ctype: str = "application/json") -> None:
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/api/v2/signingCert":
                    import jwt

                    token = self.headers["Authorization"].removeprefix("Bearer ")
                    claims = jwt.decode(
                        token, options={"verify_signature": False}, audience="sigstore"
                    )
                    csr = x509.load_pem_x509_csr(base64.b64decode(req["certificateSigningRequest"]))
                    pub = csr.public_key()
                    assert isinstance(pub, ec.EllipticCurvePublicKey)
                    # as Fulcio does for GitHub Actions tokens: the SAN is the workflow
                    # that runs (job_workflow_ref), not the `sub` claim
                    identity = claims["sub"]
                    if (
                        claims["iss"] == "https://token.actions.githubusercontent.com"
                        and "job_workflow_ref" in claims
                    ):
                        identity = "https://github.com/" + claims["job_workflow_ref"]
                    cert = inst._leaf(pub, identity, claims["iss"])
                    chain = [
                        c.public_bytes(serialization.Encoding.PEM).decode() for c in (cert, inst.ca)
                    ]
                    self._reply(
                        201, {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}
                    )
                elif self.path == "/api/v1/log/entries":
                    pc = req["spec"]["proposedContent"]
                    env = json.loads(pc["envelope"])
                    payload = base64.b64decode(env["payload"])
                    body = json.dumps(
                        {
                            "apiVersion": "0.0.1",
                            "kind": "dsse",
                            "spec": {
                                "envelopeHash": {
                                    "algorithm": "sha256",
                                    "value": hashlib.sha256(pc["envelope"].encode()).hexdigest(),
                                },
                                "payloadHash": {
                                    "algorithm": "sha256",
                                    "value": hashlib.sha256(payload).hexdigest(),
                                },
                                "signatures": [
                                    {"signature": s["sig"], "verifier": pc["verifiers"][0]}
                                    for s in env["signatures"]
                                ],
                            },
                        },
                        separators=(",", ":"),
                    ).encode()
                    log_id, root, checkpoint, integrated, set_sig = inst.log_entry(body)
                    self._reply(
                        201,
                        {
                            "00" * 32: {
                                "body": _b64(body),
                                "integratedTime": integrated,
                                "logID": log_id.hex(),
                                "logIndex": 0,
                                "verification": {
                                    "signedEntryTimestamp": _b64(set_sig),
                                    "inclusionProof": {
                                        "logIndex": 0,
                                        "rootHash": root.hex(),
                                        "treeSize": 1,
                                        "hashes": [],
                                        "checkpoint": checkpoint,
                                    },
                                },
                            }
                        },
                    )
                else:
                    self._reply(404, {"message": "not found"})

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        start = (self.now - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

        def svc(u: str) -> dict[str, Any]:
            return {
                "url": u,
                "majorApiVersion": 1,
                "validFor": {"start": start},
                "operator": "test",
            }

        cfg = {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": json.loads(self.path.read_text()),
            "signingConfig": {
                "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
                "caUrls": [svc(url)],
                "oidcUrls": [svc(url + "/oidc")],
                "rekorTlogUrls": [svc(url)],
                "tsaUrls": [],
                "rekorTlogConfig": {"selector": "ANY"},
                "tsaConfig": {"selector": "ANY"},
            },
        }
        out = dest / "trust_config.json"
        out.write_text(json.dumps(cfg))
        return out, server

    def token(self, identity: str, issuer: str) -> str:
        """An OIDC identity token as sigstore-python parses it (unsigned claims)."""
        import jwt

        now = int(self.now.timestamp())
        return str(
            jwt.encode(
                {
                    "aud": "sigstore",
                    "sub": identity,
                    "iss": issuer,
                    "iat": now,
                    "nbf": now - 5,
                    "exp": now + 600,
                },
                "test-secret-of-a-test-identity-provider-0123456789",
                algorithm="HS256",
            )
        )
