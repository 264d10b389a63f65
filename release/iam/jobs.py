"""Least-privilege IAM policies of the CI jobs and the ECR repository, from the config.

`job_policy(cfg, job, env)` is what each CI job (build, attest, canary, promote) needs for
the AWS calls `release` makes in it, scoped to the configured ECR repository, Lambda
functions, alarms, ledger table and KMS key. `repository_policy(cfg)` is the ECR
repository policy that lets Lambda pull the image.
"""

from __future__ import annotations

import re
from typing import Any

from release.config import Config
from release.errors import ConfigError, UsageError
from release.iam.function import Where

JOBS = ("build", "attest", "canary", "promote")

_ECR = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repo>.+)$"
)

ECR_PULL = [
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:DescribeImages",
    "ecr:ListImages",
]
ECR_PUSH = [
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
]
LEDGER_READ = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query"]
LEDGER_WRITE = ["dynamodb:PutItem", "dynamodb:DeleteItem"]
LAMBDA_READ = ["lambda:GetFunction", "lambda:GetFunctionConfiguration", "lambda:GetAlias"]
LAMBDA_DEPLOY = [
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
    "lambda:PublishVersion",
    "lambda:UpdateAlias",
    "lambda:CreateAlias",
    "lambda:DeleteAlias",
]


def _doc(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def _stmt(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": sorted(set(resources)) if len(set(resources)) > 1 else resources[0],
    }


def where(cfg: Config, env: str | None, account: str | None) -> Where:
    """Region and account of the ARNs: the environment's region, else the ECR registry's;
    the account given, else the registry's; else `*`."""
    region = None
    if env is not None:
        region = cfg.environment(env).region
    m = _ECR.match(cfg.image.registry)
    if m:
        region = region or m["region"]
        account = account or m["account"]
    return Where(region or "*", account or "*")


def _repo_arn(ref: str) -> str | None:
    m = _ECR.match(ref.split("@", 1)[0])
    if not m:
        return None
    return f"arn:aws:ecr:{m['region']}:{m['account']}:repository/{m['repo']}"


def _ledger_arn(cfg: Config, w: Where) -> str | None:
    url = cfg.ledger.url
    if not url.startswith("dynamodb:"):
        return None
    return f"arn:aws:dynamodb:{w.region}:{w.account}:table/{url.split(':', 1)[1]}"


def _kms(cfg: Config, w: Where, *, sign: bool) -> dict[str, Any] | None:
    """KMS for `awskms:` signing (Sign + GetPublicKey) or verifying without a pinned key."""
    key = None
    if cfg.signing.mode.startswith("awskms:"):
        key = cfg.signing.mode.split(":", 1)[1]
    pub = cfg.signing.public_key or ""
    if not sign and pub and not pub.startswith("awskms:"):
        return None  # verification uses the pinned PEM, no KMS call
    if pub.startswith("awskms:"):
        key = pub.split(":", 1)[1]
    if key is None:
        return None
    actions = ["kms:GetPublicKey", *(["kms:Sign"] if sign else [])]
    alias = re.fullmatch(
        r"(arn:[^:]+:kms:(?P<region>[^:]*):(?P<account>[^:]*):)?(?P<alias>alias/.+)", key
    )
    if alias:
        # KMS authorises against the key, never the alias: any key of the account, when
        # the request names it by this alias (release calls KMS with the configured id)
        stmt = _stmt(
            "Kms",
            actions,
            [f"arn:aws:kms:{alias['region'] or w.region}:{alias['account'] or w.account}:key/*"],
        )
        stmt["Condition"] = {"StringEquals": {"kms:RequestAlias": alias["alias"]}}
        return stmt
    arn = key if key.startswith("arn:") else f"arn:aws:kms:{w.region}:{w.account}:key/{key}"
    return _stmt("Kms", actions, [arn])


def _registry_statements(cfg: Config, *, push: bool, base: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    repo = _repo_arn(cfg.image.registry)
    base_repo = _repo_arn(cfg.image.base) if base else None
    if repo or base_repo:
        out.append(_stmt("EcrAuth", ["ecr:GetAuthorizationToken"], ["*"]))
    if repo:
        out.append(_stmt("EcrImage", ECR_PULL + (ECR_PUSH if push else []), [repo]))
    if base_repo and base_repo != repo:
        out.append(_stmt("EcrBase", ECR_PULL, [base_repo]))
    return out


def job_policy(
    cfg: Config, job: str, env: str | None = None, *, account: str | None = None
) -> dict[str, Any]:
    """The IAM policy a CI job running `release` needs (see docs/aws-setup.md)."""
    if job not in JOBS:
        raise UsageError(f"unknown job {job!r}: one of {', '.join(JOBS)}")
    if job == "promote" and env is None:
        raise UsageError("release iam --job promote needs --env ENV (the functions it moves)")
    w = where(cfg, env, account)
    st: list[dict[str, Any]] = []
    ledger = _ledger_arn(cfg, w)
    if job == "build":
        st += _registry_statements(cfg, push=True, base=True)
    elif job == "attest":
        st += _registry_statements(cfg, push=True, base=False)
        if (k := _kms(cfg, w, sign=True)) is not None:
            st.append(k)
    elif job == "canary":
        # runs the image, reads the baseline's signed report (ledger), attaches its own report
        st += _registry_statements(cfg, push=True, base=False)
        if (k := _kms(cfg, w, sign=True)) is not None:
            st.append(k)
        if ledger:
            st.append(_stmt("Ledger", LEDGER_READ, [ledger]))
    else:  # promote: verify + gate + move the functions + live canary + sign the promotion
        assert env is not None
        e = cfg.environment(env)
        st += _registry_statements(cfg, push=True, base=False)
        if cfg.gate.vulnerabilities == "ecr" and (repo := _repo_arn(cfg.image.registry)):
            st.append(_stmt("EcrScanFindings", ["ecr:DescribeImageScanFindings"], [repo]))
        if (k := _kms(cfg, w, sign=True)) is not None:
            st.append(k)
        if ledger:
            st.append(_stmt("Ledger", LEDGER_READ + LEDGER_WRITE, [ledger]))
        if e.target == "lambda":
            fns = [
                f"arn:aws:lambda:{w.region}:{w.account}:function:{n}"
                for n in sorted(e.functions.values())
            ]
            quals = [f + ":*" for f in fns]
            st.append(_stmt("LambdaDeploy", LAMBDA_READ + LAMBDA_DEPLOY, fns + quals))
            if e.alarms:
                st.append(
                    _stmt(
                        "Alarms",
                        ["cloudwatch:DescribeAlarms"],
                        [f"arn:aws:cloudwatch:{w.region}:{w.account}:alarm:{a}" for a in e.alarms],
                    )
                )
            if e.traffic.bake_seconds > 0:
                # metrics APIs take no resource-level permissions
                st.append(
                    _stmt(
                        "CanaryMetrics",
                        ["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"],
                        ["*"],
                    )
                )
    return _doc(st)


def repository_policy(
    cfg: Config, env: str | None = None, *, account: str | None = None
) -> dict[str, Any]:
    """The ECR repository policy that lets Lambda (in the functions' account) pull the image."""
    if not _ECR.match(cfg.image.registry):
        raise ConfigError(
            f"[image].registry {cfg.image.registry!r} is not an ECR repository; "
            "Lambda pulls images from ECR only"
        )
    w = where(cfg, env, account)
    stmt: dict[str, Any] = {
        "Sid": "LambdaECRImageRetrievalPolicy",
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
    }
    if w.account != "*":
        stmt["Condition"] = {
            "StringLike": {"aws:sourceArn": f"arn:aws:lambda:{w.region}:{w.account}:function:*"}
        }
    return _doc([stmt])


LOGS_WRITE = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
GUARD_LAMBDA_READ = ["lambda:GetAlias", "lambda:GetFunction", "lambda:ListVersionsByFunction"]


def guard_policy(cfg: Config, env: str | None, *, account: str | None = None) -> dict[str, Any]:
    """The drift guard's execution-role policy (`release iam --function release.guard
    --env ENV`), declared here as data for the calls release.guard makes: read the
    environment's functions, aliases and versions; move an alias back (rollback on); read
    the ledger and append its events; read the evidence from the registry; publish to the
    topic; the KMS public key when verification needs it; its own logs."""
    if env is None:
        raise UsageError("release iam --function release.guard needs --env ENV (what it guards)")
    e = cfg.environment(env)
    if e.target != "lambda":
        raise UsageError(f"[environments.{env}] is a {e.target} target; the guard watches Lambda")
    w = where(cfg, env, account)
    ledger = _ledger_arn(cfg, w)
    if ledger is None:
        raise ConfigError(
            f"the guard runs in Lambda and needs a dynamodb ledger; [ledger].url is {cfg.ledger.url!r}"
        )
    settings = e.guard
    fns = [
        f"arn:aws:lambda:{w.region}:{w.account}:function:{n}" for n in sorted(e.functions.values())
    ]
    st = [
        _stmt("Logs", LOGS_WRITE, [f"arn:aws:logs:{w.region}:{w.account}:log-group:/aws/lambda/*"]),
        _stmt("ReadFunctions", GUARD_LAMBDA_READ, fns + [f + ":*" for f in fns]),
        _stmt("Ledger", [*LEDGER_READ, "dynamodb:PutItem"], [ledger]),
    ]
    if settings.rollback:
        st.append(
            _stmt("RollBackAliases", ["lambda:UpdateAlias"], [f + f":{e.alias}" for f in fns])
        )
    if settings.topic:
        st.append(_stmt("Alarm", ["sns:Publish"], [settings.topic]))
    st += _registry_statements(cfg, push=False, base=False)
    if (k := _kms(cfg, w, sign=False)) is not None:
        st.append(k)
    return _doc(st)
