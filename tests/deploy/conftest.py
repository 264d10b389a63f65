"""Fixtures of the deploy tests: a moto server (Lambda, DynamoDB, IAM) on 127.0.0.1,
Lambda image functions, Evidence documents and a project directory with a config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from release.evidence import PREDICATES, Evidence

REGION = "us-east-1"
ACCOUNT = "123456789012"
ECR = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/app"
LOCAL = "oci:.release/registry"  # the registry of a `target = "local"` project
FUNCTIONS = {"scorer": "ma-scorer", "remediator": "ma-remediator", "analysis": "ma-analysis"}
HANDLERS = {
    "scorer": "handlers.scorer.lambda_handler",
    "remediator": "handlers.remediator.lambda_handler",
    "analysis": "handlers.analysis.lambda_handler",
}


def digest_of(ch: str) -> str:
    return "sha256:" + ch * 64


def boto(service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION)


def push_images(chars: str = "abcdef") -> None:
    """Images `ECR@sha256:<ch * 64>` in moto's ECR (its Lambda resolves image functions
    there, as real Lambda does); the manifests are placeholders, the digests are ours."""
    import json

    ecr = boto("ecr")
    ecr.create_repository(repositoryName="app")
    for ch in chars:
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(ch),
                "size": 2,
            },
            "layers": [],
        }
        ecr.put_image(
            repositoryName="app",
            imageManifest=json.dumps(manifest),
            imageDigest=digest_of(ch),
            imageTag=f"t{ch}",
        )


@pytest.fixture
def lambdas(aws_env: dict[str, str]) -> dict[str, str]:
    """Image functions on digest `sha256:aaaa...` with alias `live` -> version 1 (images
    `sha256:aaaa...` to `sha256:ffff...` are in moto's ECR)."""
    push_images()
    iam = boto("iam")
    role = iam.create_role(
        RoleName="fn-role",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}',
    )["Role"]["Arn"]
    lam = boto("lambda")
    old = f"{ECR}@{digest_of('a')}"
    for name, fn in FUNCTIONS.items():
        lam.create_function(
            FunctionName=fn,
            Role=role,
            PackageType="Image",
            Code={"ImageUri": old},
            ImageConfig={"Command": [HANDLERS[name]]},
            Publish=True,
        )
        lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    return FUNCTIONS


def write_config(
    root: Path,
    *,
    target: str = "local",
    ledger: str = "sqlite:.release/ledger.db",
    env_extra: str = "",
) -> Path:
    """A project directory with release.toml (the gate uses the default policy)."""
    fns = ", ".join(f'{k} = "{v}"' for k, v in FUNCTIONS.items())
    handlers = "\n".join(f'{k} = "{v}"' for k, v in HANDLERS.items())
    cfg = root / "release.toml"
    cfg.write_text(
        f"""
[model]
path = "model"

[image]
base = "oci:base@{digest_of("0")}"
registry = "{ECR if target == "lambda" else LOCAL}"

[functions]
{handlers}

[environments.prod]
target = "{target}"
functions = {{ {fns} }}
alias = "live"
{env_extra}

[ledger]
url = "{ledger}"
"""
    )
    return cfg


def sig(name: str, **kw: Any) -> dict[str, Any]:
    return {
        "ok": True,
        "reason": "",
        "present": True,
        "predicate_type": PREDICATES[name],
        "signer": "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main",
        "issuer": "https://token.actions.githubusercontent.com",
        **kw,
    }


def good_evidence(digest: str, env: str = "prod", repository: str = ECR) -> dict[str, Any]:
    """An Evidence document (JSON) for a release that satisfies the policy."""
    return {
        "digest": digest,
        "repository": repository,
        "env": env,
        "signatures": {
            name: sig(name, bundle_digest=digest_of(str(i + 1)))
            for i, name in enumerate(PREDICATES)
        },
        "sbom": {"ok": True, "present": True, "subject_ok": True, "model_files_match_lock": True},
        "provenance": {
            "ok": True,
            "workflow": ".github/workflows/release.yml",
            "expected_workflow": ".github/workflows/release.yml",
            "commit": "c" * 40,
            "expected_commit": "c" * 40,
        },
        "model_layer": {"ok": True, "lock_digest": digest_of("e")},
        "canary": {"ok": True, "passed": True},
        "vulnerabilities": {"ok": True, "configured": False},
    }


def evidence(doc: dict[str, Any]) -> Evidence:
    return Evidence.model_validate(doc)


class FileProvider:
    """Evidence from `<config dir>/evidence/<hex>.json` (the test's stand-in for
    release.claims.collect; the gate's Rego decision over it is the real thing)."""

    def __call__(self, cfg: Any, ref: Any, env: str) -> Evidence:
        p = cfg.root / "evidence" / f"{ref.digest.split(':', 1)[1]}.json"
        return Evidence.model_validate_json(p.read_text())


def put_evidence(root: Path, doc: dict[str, Any]) -> None:
    import json

    d = root / "evidence"
    d.mkdir(exist_ok=True)
    (d / f"{doc['digest'].split(':', 1)[1]}.json").write_text(json.dumps(doc))


#: promotions without the live canary (it has its own tests in test_live_canary.py)
NO_CANARY = "traffic = { bake_seconds = 0 }"


def promotion_project(
    root: Path,
    *digests: str,
    env_extra: str = NO_CANARY,
    ledger: str = "sqlite:.release/ledger.db",
    target: str = "lambda",
    mutate: Any = None,
) -> Any:
    """The loaded config of a project in `root` (write_config) with a passing Evidence
    document for each digest (`mutate(doc)` changes each before it is stored)."""
    from release.config import load

    cfg_path = write_config(root, target=target, ledger=ledger, env_extra=env_extra)
    for d in digests:
        doc = good_evidence(d) if target == "lambda" else good_evidence(d, repository=LOCAL)
        put_evidence(root, mutate(doc) if mutate else doc)
    return load(cfg_path)


def aliases() -> dict[str, tuple[str, dict[str, float]]]:
    """function -> (version of alias `live`, its routing: extra version -> weight)."""
    lam = boto("lambda")
    out = {}
    for fn in FUNCTIONS.values():
        a = lam.get_alias(FunctionName=fn, Name="live")
        out[fn] = (
            a["FunctionVersion"],
            a.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}),
        )
    return out


def set_alarm(state: str, name: str = "ma-errors") -> None:
    """A CloudWatch alarm `name` (on AWS/Lambda Errors) forced into `state`."""
    cw = boto("cloudwatch")
    cw.put_metric_alarm(
        AlarmName=name,
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cw.set_alarm_state(AlarmName=name, StateValue=state, StateReason=f"test says {state}")


#: the evidence provider CLI runs in tests hand to `release.cli.main` (a Python argument)
PROVIDER = "tests.deploy.conftest:file_provider"
file_provider = FileProvider()


def run_gated(*args: Any, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
    """`release ARGS` (gate, promote, rollback) with the file provider's canned evidence."""
    from tests.fixtures.tools import run_cli_with_provider

    return run_cli_with_provider(PROVIDER, *args, cwd=cwd, env=env)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_config(tmp_path)
    return tmp_path


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    from tests.fixtures.tools import REPO

    pp = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    return {"PYTHONPATH": pp, **(extra or {})}
