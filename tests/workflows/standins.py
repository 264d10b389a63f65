"""Local stand-ins for GitHub and AWS that the release workflow reaches under act.

Everything listens on 127.0.0.1 only:

- `TestCA`: a test CA and a server certificate for the ECR registry host name.
- `tls_registry`: Debian's `docker-registry` serving TLS with that certificate.
- `EcrConnectProxy`: an HTTP CONNECT proxy (the jobs get `HTTPS_PROXY` pointing at it)
  that tunnels `ACCOUNT.dkr.ecr.REGION.amazonaws.com:443`, and nothing else, to the local
  registry. The client still does TLS end to end with the registry and checks its
  certificate against the ECR host name (the test CA is the jobs' `REQUESTS_CA_BUNDLE`),
  so the project code runs its real ECR path (host name -> `ecr.get_authorization_token`
  -> https) with no /etc/hosts entry and no seam in the code.
- `OidcIssuer`: GitHub's OIDC token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL` /
  `ACTIONS_ID_TOKEN_REQUEST_TOKEN`): tokens with GitHub's claims (`sub` per job: the
  `production` environment's jobs get `repo:O/R:environment:production`, others
  `repo:O/R:ref:REF`; `job_workflow_ref`), for any audience. Which job asks is read the way
  only the runner host can: the client socket's process and its `GITHUB_JOB`.
- `StsGate`: a proxy in front of moto's STS that evaluates each role's trust policy (the
  `Federated` principal, `StringEquals`/`StringLike` on the token's `aud` and `sub`)
  before forwarding `AssumeRoleWithWebIdentity`, as AWS does; moto itself does not.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import select
import socket
import socketserver
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


# --- TLS ----------------------------------------------------------------------------------
class TestCA:
    __test__ = False

    def __init__(self, root: Path, host: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "release test CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        root.mkdir(parents=True, exist_ok=True)
        self.ca_pem = root / "ca.pem"
        self.cert_pem = root / "server.pem"
        self.key_pem = root / "server.key"
        self.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


# --- the CONNECT proxy ------------------------------------------------------------------
class EcrConnectProxy:
    """Tunnels CONNECT `host:443` to 127.0.0.1:`port` for the one host; refuses others."""

    def __init__(self, host: str, target_port: int) -> None:
        self.host = host
        self.target_port = target_port
        self.tunnels: list[str] = []
        self.refused: list[str] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(65537).decode("latin-1").strip()
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                method, _, rest = line.partition(" ")
                target = rest.partition(" ")[0]
                if method != "CONNECT" or target != f"{proxy.host}:443":
                    proxy.refused.append(line)
                    self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                    return
                proxy.tunnels.append(target)
                upstream = socket.create_connection(("127.0.0.1", proxy.target_port))
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
                client = self.connection
                try:
                    socks = [client, upstream]
                    while True:
                        ready, _, _ = select.select(socks, [], [], 60)
                        if not ready:
                            return
                        for s in ready:
                            data = s.recv(65536)
                            if not data:
                                return
                            (upstream if s is client else client).sendall(data)
                finally:
                    upstream.close()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- which runner job opened a local TCP connection --------------------------------------
def _socket_inode(peer_port: int, local_port: int) -> str | None:
    """The inode of the client end (local port `peer_port`) connected to `local_port`."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            lport = int(f[1].rsplit(":", 1)[1], 16)
            rport = int(f[2].rsplit(":", 1)[1], 16)
            if lport == peer_port and rport == local_port:
                return f[9]
    return None


def job_of_peer(peer_port: int, local_port: int) -> str | None:
    """`GITHUB_JOB` of the process that holds the client socket (what a runner host knows
    about its own job; here read from /proc)."""
    inode = _socket_inode(peer_port, local_port)
    if inode is None:
        return None
    want = f"socket:[{inode}]"
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != want:
                    continue
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for kv in env:
                if kv.startswith(b"GITHUB_JOB="):
                    return kv.split(b"=", 1)[1].decode()
            return None
    return None


# --- GitHub's OIDC token endpoint --------------------------------------------------------
@dataclass
class OidcIssuer:
    """ACTIONS_ID_TOKEN_REQUEST_URL stand-in for one repository's workflow run."""

    repository: str
    workflow: str  # ".github/workflows/release.yml"
    ref: str
    environments: dict[str, str]  # job id -> environment name (from the workflow file)
    request_token: str = field(default_factory=lambda: os.urandom(16).hex())
    issued: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def claims(self, job: str | None, audience: str) -> dict[str, Any]:
        now = int(dt.datetime.now(dt.UTC).timestamp())
        env = self.environments.get(job or "")
        sub = (
            f"repo:{self.repository}:environment:{env}"
            if env
            else f"repo:{self.repository}:ref:{self.ref}"
        )
        c: dict[str, Any] = {
            "iss": GITHUB_ISSUER,
            "aud": audience,
            "sub": sub,
            "repository": self.repository,
            "ref": self.ref,
            "job_workflow_ref": f"{self.repository}/{self.workflow}@{self.ref}",
            "workflow_ref": f"{self.repository}/{self.workflow}@{self.ref}",
            "iat": now,
            "nbf": now - 5,
            "exp": now + 900,
            "runner_environment": "self-hosted",
        }
        if env:
            c["environment"] = env
        if job:
            c["job"] = job  # not a GitHub claim: lets the test see who asked
        return c

    def start(self) -> OidcIssuer:
        import jwt

        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                auth = self.headers.get("Authorization", "")
                if auth.lower() != f"bearer {issuer.request_token}":
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                job = job_of_peer(self.client_address[1], self.server.server_address[1])
                claims = issuer.claims(
                    job,
                    (
                        q.get("audience")
                        or ["https://github.com/" + issuer.repository.split("/")[0]]
                    )[0],
                )
                issuer.issued.append(claims)
                token = jwt.encode(
                    claims, "github-oidc-stand-in-" + issuer.request_token, algorithm="HS256"
                )
                body = json.dumps({"value": token, "count": 1}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token?api-version=2.0"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- STS trust-policy evaluation in front of moto ----------------------------------------
def trust_allows(policy: dict[str, Any], provider_arn: str, claims: dict[str, Any]) -> bool:
    """IAM's answer for `sts:AssumeRoleWithWebIdentity` with these token claims: some Allow
    statement whose Federated principal is the provider and whose conditions all hold
    (StringEquals / StringLike on `token.actions.githubusercontent.com:aud|sub`); no Deny."""
    prefix = GITHUB_ISSUER.removeprefix("https://") + ":"
    allowed = False
    for st in policy.get("Statement", []):
        fed = st.get("Principal", {}).get("Federated")
        feds = [fed] if isinstance(fed, str) else list(fed or [])
        actions = st.get("Action")
        actions = [actions] if isinstance(actions, str) else list(actions or [])
        if provider_arn not in feds or "sts:AssumeRoleWithWebIdentity" not in actions:
            continue
        ok = True
        for op, conds in st.get("Condition", {}).items():
            for key, want in conds.items():
                got = (
                    str(claims.get(key.removeprefix(prefix), "")) if key.startswith(prefix) else ""
                )
                wants = [want] if isinstance(want, str) else list(want)
                if op == "StringEquals":
                    ok &= got in wants
                elif op == "StringLike":
                    ok &= any(fnmatch.fnmatchcase(got, w) for w in wants)
                else:
                    ok = False  # an operator this stand-in does not know never grants
        if ok and st.get("Effect") == "Deny":
            return False
        allowed |= ok and st.get("Effect") == "Allow"
    return allowed


class StsGate:
    """AssumeRoleWithWebIdentity: the role's trust policy (read from moto IAM) must allow
    the token, else AccessDenied as AWS answers; allowed calls go on to moto."""

    def __init__(self, moto_url: str, provider_arn: str) -> None:
        import boto3
        import jwt

        iam = boto3.client(
            "iam",
            endpoint_url=moto_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.calls: list[tuple[str, str, bool]] = []  # (role arn, sub, allowed)
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _forward(self, body: bytes) -> None:
                req = urllib.request.Request(
                    moto_url + self.path,
                    data=body,
                    method=self.command,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )
                try:
                    resp = urllib.request.urlopen(req, timeout=30)
                    code, data, headers = resp.status, resp.read(), resp.headers
                except urllib.error.HTTPError as e:
                    code, data, headers = e.code, e.read(), e.headers
                self._send(code, data, headers.get("Content-Type", "text/xml"))

            def _send(self, code: int, data: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
                if form.get("Action") == "AssumeRoleWithWebIdentity":
                    role = form.get("RoleArn", "")
                    claims = jwt.decode(
                        form.get("WebIdentityToken", ""), options={"verify_signature": False}
                    )
                    try:
                        doc = iam.get_role(RoleName=role.rsplit("/", 1)[-1])["Role"][
                            "AssumeRolePolicyDocument"
                        ]
                        pol = json.loads(urllib.parse.unquote(doc)) if isinstance(doc, str) else doc
                        ok = trust_allows(pol, provider_arn, claims)
                    except iam.exceptions.NoSuchEntityException:
                        ok = False
                    gate.calls.append((role, str(claims.get("sub")), ok))
                    if not ok:
                        err = (
                            b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                            b"<Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message>"
                            b"</Error><RequestId>0</RequestId></ErrorResponse>"
                        )
                        return self._send(403, err, "text/xml")
                self._forward(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
