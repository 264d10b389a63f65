"""What each `release` subcommand calls in AWS: one table, bound to the config's resources.

`COMMANDS` maps a subcommand (`promote`, `model fetch`) to the CLI function that implements
it and to `needs(ctx)`: the IAM actions of the AWS calls that command makes with the options
it was given, each on the resource the config names - the ECR repository of
`[image].registry` (or `--push`/`--base`/a `REPO@sha256:` argument), the ledger table of
`[ledger].url`, the KMS key of `[signing]`, the environment's functions and alarms.
`"*"` only for actions IAM cannot scope (the shipped IAM data decides, as for functions).

Lambda: a call that names a qualifier is authorised against `function:NAME:QUALIFIER`, one
without against `function:NAME` (AWS's rule). Promote changes code, publishes versions and
moves the alias through the unqualified function ARN (the alias actions take no
qualifier); it reads back the versions it publishes and status reads the versions the
alias routes to (GetFunction/GetFunctionConfiguration with a version number), granted on
`function:NAME:*` for those two read actions only. No command invokes a function in
Lambda (`release invoke` runs the handler locally from the image).

ECR: the registry client speaks the OCI distribution API with an ECR token; ECR authorises
a manifest or referrers read as `ecr:BatchGetImage`, a blob read as
`ecr:GetDownloadUrlForLayer`/`BatchCheckLayerAvailability`, an upload and a manifest write
as the four push actions.

The table is kept honest by tests/unit/test_iam_jobs.py: every boto3 operation the scanner
(release/iam/scan.py) and a sweep of the same code find in the modules a command's CLI
function reaches must be granted here (or be listed in `Command.not_called` with a reason),
and tests/integration/test_iam_enforced.py runs `release promote` on IAM-enforcing moto as a
user holding only the generated policy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from release.config import Config
from release.iam import awsmodel
from release.iam.function import Where

_ECR = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repo>[^@:]+)"
)

ECR_PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")
ECR_PUSH = (
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)
LEDGER_READ = ("dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Query")
LEDGER_WRITE = ("dynamodb:PutItem", "dynamodb:DeleteItem")
#: unqualified reads of promote/rollback/status (GetFunction of $LATEST, the alias)
LAMBDA_READ = ("lambda:GetFunction", "lambda:GetFunctionConfiguration", "lambda:GetAlias")
#: the version reads (a call naming the version it published or the alias routes to)
LAMBDA_VERSION_READ = ("lambda:GetFunction", "lambda:GetFunctionConfiguration")
LAMBDA_DEPLOY = (
    "lambda:UpdateFunctionCode",
    "lambda:UpdateFunctionConfiguration",
    "lambda:PublishVersion",
    "lambda:UpdateAlias",
    "lambda:CreateAlias",
    "lambda:DeleteAlias",
)


@dataclass(frozen=True)
class Grant:
    """`actions` on `resources` (an ARN list, or ["*"]), optionally on a condition."""

    kind: str  # names the statement: EcrImage, Ledger, Lambda, ...
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: tuple[tuple[str, str, str], ...] = ()  # (operator, key, value)


@dataclass(frozen=True)
class Ctx:
    """One `release` invocation: its options and positionals, bound to a config."""

    cfg: Config
    env: str | None
    where: Where
    opts: dict[str, str]  # long option -> its (last) value; a flag -> ""
    args: tuple[str, ...]  # positionals after the subcommand

    def has(self, opt: str) -> bool:
        return opt in self.opts


class NeedsMore(Exception):
    """A command whose AWS calls depend on something the mapping cannot bind (no env)."""


@dataclass(frozen=True)
class Command:
    #: the CLI function that implements it (module:function), read by the table's test
    entry: str
    needs: Callable[[Ctx], list[Grant]]
    #: takes --env (or RELEASE_ENV) for its environment
    env_var: str | None = None
    #: boto3 operations reachable from `entry` that this command never makes: op -> why
    not_called: dict[str, str] = field(default_factory=dict)


def repo_arn(ref: str) -> str | None:
    m = _ECR.match(ref)
    if not m:
        return None
    return f"arn:aws:ecr:{m['region']}:{m['account']}:repository/{m['repo']}"


def _star(actions: tuple[str, ...]) -> tuple[str, ...]:
    """Only actions that IAM cannot scope (no resource type in the shipped data) may be `*`."""
    scoped = [a for a in actions if awsmodel.resource_types(a)]
    assert not scoped, f"{scoped} have resource types: never '*'"
    return actions


def _ecr(ref: str, *, push: bool) -> list[Grant]:
    repo = repo_arn(ref)
    if repo is None:
        return []  # an OCI registry or layout: no AWS call
    return [
        Grant("EcrAuth", _star(("ecr:GetAuthorizationToken",)), ("*",)),
        Grant("EcrImage", ECR_PULL + (ECR_PUSH if push else ()), (repo,)),
    ]


ecr_grants = _ecr


def _subject(ctx: Ctx) -> str:
    """The repository a DIGEST argument names: REPO@sha256:..., else [image].registry."""
    for a in ctx.args:
        if "@sha256:" in a:
            return a.split("@", 1)[0]
    return ctx.cfg.image.registry


def ledger_arn(ctx: Ctx) -> str | None:
    """The DynamoDB ledger table's ARN (None: a sqlite ledger, no AWS call)."""
    url = ctx.cfg.ledger.url
    if not url.startswith("dynamodb:"):
        return None
    w = ctx.where
    return f"arn:aws:dynamodb:{w.region}:{w.account}:table/{url.split(':', 1)[1]}"


def _ledger(ctx: Ctx, *, write: bool) -> list[Grant]:
    arn = ledger_arn(ctx)
    if arn is None:
        return []
    return [Grant("Ledger", LEDGER_READ + (LEDGER_WRITE if write else ()), (arn,))]


def _kms(ctx: Ctx, *, sign: bool, signer: str | None = None) -> list[Grant]:
    """KMS for `awskms:` signing (Sign + GetPublicKey), or verifying against a KMS key."""
    s = ctx.cfg.signing
    mode = signer if signer is not None else s.mode
    pub = s.public_key or ""
    key = None
    actions: tuple[str, ...] = ()
    if sign and mode.startswith("awskms:"):
        key, actions = mode.split(":", 1)[1], ("kms:GetPublicKey", "kms:Sign")
    elif not sign:
        if pub.startswith("awskms:"):
            key = pub.split(":", 1)[1]
        elif not pub and s.mode.startswith("awskms:"):
            key = s.mode.split(":", 1)[1]
        actions = ("kms:GetPublicKey",)
    if key is None:
        return []
    w = ctx.where
    alias = re.fullmatch(
        r"(arn:[^:]+:kms:(?P<region>[^:]*):(?P<account>[^:]*):)?(?P<alias>alias/.+)", key
    )
    if alias:
        # KMS authorises against the key, never the alias: any key of the account, when
        # the request names it by this alias (release calls KMS with the configured id)
        region, account = alias["region"] or w.region, alias["account"] or w.account
        return [
            Grant(
                "Kms",
                actions,
                (f"arn:aws:kms:{region}:{account}:key/*",),
                (("StringEquals", "kms:RequestAlias", alias["alias"]),),
            )
        ]
    arn = key if key.startswith("arn:") else f"arn:aws:kms:{w.region}:{w.account}:key/{key}"
    return [Grant("Kms", actions, (arn,))]


kms_grants = _kms


def _verify(ctx: Ctx, *, ledger: bool) -> list[Grant]:
    """Re-verify a release's attestations: its referrers, the keys, the ledger's record."""
    out = _ecr(_subject(ctx), push=False) + _kms(ctx, sign=False)
    if ledger:
        out += _ledger(ctx, write=False) + _chain(ctx)
    return out


def _chain(ctx: Ctx) -> list[Grant]:
    """With `[environments.ENV].after`, the environment chain (release.claims.chain) reads
    the alarms of `after` and their history since the promotion there."""
    if ctx.env is None or (after := ctx.cfg.environment(ctx.env).after) is None:
        return []
    alarms = ctx.cfg.environment(after).alarms
    if not alarms:
        return []
    region = ctx.cfg.environment(after).region or ctx.where.region
    arns = tuple(f"arn:aws:cloudwatch:{region}:{ctx.where.account}:alarm:{a}" for a in alarms)
    return [
        Grant("SoakAlarms", ("cloudwatch:DescribeAlarmHistory", "cloudwatch:DescribeAlarms"), arns)
    ]


def _evidence(ctx: Ctx, *, ledger: bool) -> list[Grant]:
    """Collect a release's Evidence (gate, verify, audit): the verification, and the ECR
    scan findings with `[gate].vulnerabilities = "ecr"`."""
    out = _verify(ctx, ledger=ledger)
    repo = repo_arn(_subject(ctx))
    if ctx.cfg.gate.vulnerabilities == "ecr" and repo:
        out.append(Grant("EcrScanFindings", ("ecr:DescribeImageScanFindings",), (repo,)))
    return out


def _env(ctx: Ctx, cmd: str) -> str:
    if ctx.env is None:
        raise NeedsMore(f"release {cmd} without an environment: give --env ENV")
    ctx.cfg.environment(ctx.env)
    return ctx.env


def _functions(ctx: Ctx, env: str) -> list[str]:
    w = ctx.where
    e = ctx.cfg.environment(env)
    if e.target != "lambda":
        return []
    return [
        f"arn:aws:lambda:{w.region}:{w.account}:function:{n}" for n in sorted(e.functions.values())
    ]


def _lambda_read(ctx: Ctx, env: str) -> list[Grant]:
    fns = _functions(ctx, env)
    if not fns:
        return []
    return [
        Grant("LambdaRead", ("lambda:GetAlias",), tuple(fns)),
        Grant("LambdaVersions", LAMBDA_VERSION_READ, tuple(f + ":*" for f in fns)),
    ]


def _gate(ctx: Ctx, cmd: str) -> list[Grant]:
    _env(ctx, cmd)  # the gate's decision is recorded for an environment
    if ctx.cfg.readiness.gate:
        raise NeedsMore(
            "[readiness].gate = true: the gate runs the readiness review, whose reads "
            "(release readiness) the job mapping does not cover"
        )
    return _evidence(ctx, ledger=True) + _ledger(ctx, write=True)


def _deploy(ctx: Ctx, cmd: str) -> list[Grant]:
    """gate + move every function + the live canary + sign and attach the promotion."""
    env = _env(ctx, cmd)
    out = _gate(ctx, cmd)
    fns = _functions(ctx, env)
    e = ctx.cfg.environment(env)
    if fns:
        out.append(Grant("Lambda", LAMBDA_READ + LAMBDA_DEPLOY, tuple(fns)))
        out.append(Grant("LambdaVersions", LAMBDA_VERSION_READ, tuple(f + ":*" for f in fns)))
        # the pre-traffic check invokes the new and the live version of each function
        # [canary.pretraffic.functions] names (Qualifier=<version>: function:NAME:VERSION)
        checked = [
            f"arn:aws:lambda:{ctx.where.region}:{ctx.where.account}:function:{e.functions[f]}:*"
            for f in sorted(ctx.cfg.canary.pretraffic.functions)
            if f in e.functions
        ]
        if checked:
            out.append(Grant("PreTrafficInvoke", ("lambda:InvokeFunction",), tuple(checked)))
        w = ctx.where
        if e.traffic.bake_seconds > 0:  # the live canary: the alarms and the metrics
            if e.alarms:
                out.append(
                    Grant(
                        "Alarms",
                        ("cloudwatch:DescribeAlarms",),
                        tuple(
                            f"arn:aws:cloudwatch:{w.region}:{w.account}:alarm:{a}" for a in e.alarms
                        ),
                    )
                )
            metrics = _star(("cloudwatch:GetMetricData", "cloudwatch:ListMetrics"))
            out.append(Grant("CanaryMetrics", metrics, ("*",)))
    # the promotion statement: signed ([signing].mode) and attached to the image
    out += _ecr(_subject(ctx), push=True) + _kms(ctx, sign=True)
    return out


def _build(ctx: Ctx) -> list[Grant]:
    out = _ecr(ctx.opts.get("--push") or ctx.cfg.image.registry, push=True)
    return out + _ecr(ctx.opts.get("--base") or ctx.cfg.image.base, push=False)


def _attest(ctx: Ctx) -> list[Grant]:
    return _ecr(_subject(ctx), push=True) + _kms(ctx, sign=True, signer=ctx.opts.get("--signer"))


def _canary(ctx: Ctx) -> list[Grant]:
    out = _ecr(_subject(ctx), push=False)
    baseline = ctx.opts.get("--baseline")
    if baseline and "@sha256:" in baseline:
        out += _ecr(baseline.split("@", 1)[0], push=False)
    elif baseline is None and ctx.env is not None:
        # the live digest (ledger) and its signed canary report (verified)
        out += _verify(ctx, ledger=True)
    return out


def _verify_cmd(ctx: Ctx) -> list[Grant]:
    if ctx.has("--offline"):
        return _ledger(ctx, write=False) if ctx.env else []
    return _evidence(ctx, ledger=ctx.env is not None)


def _audit(ctx: Ctx) -> list[Grant]:
    out = _ledger(ctx, write=False)
    if not ctx.has("--verify-chain") and not ctx.has("--no-verify"):
        out += _evidence(ctx, ledger=False)
    return out


def _status(ctx: Ctx) -> list[Grant]:
    env = _env(ctx, "status")
    return _ledger(ctx, write=False) + _lambda_read(ctx, env)


def _invoke(ctx: Ctx) -> list[Grant]:
    """`release invoke` runs the handler locally from the image live in ENV (the ledger says
    which): a pull, no Lambda call (the handler's own calls are its function's policy)."""
    _env(ctx, "invoke")
    return _ledger(ctx, write=False) + _ecr(ctx.cfg.image.registry, push=False)


def _verify_bundle(ctx: Ctx) -> list[Grant]:
    """Offline, but with the config's [signing] policy (no --key, no identity) an `awskms:`
    key's public half is read from KMS."""
    given = ("--key", "--certificate-identity", "--certificate-identity-regexp")
    return [] if any(ctx.has(o) for o in given) else _kms(ctx, sign=False)


def _none(ctx: Ctx) -> list[Grant]:
    return []


def _readiness(ctx: Ctx) -> list[Grant]:
    """`release readiness` (release/readiness/checks.py) reads each function behind its
    alias, its concurrency, its async destinations, its triggers (event source mappings,
    SNS subscriptions, EventBridge rules), the queues those name and their attributes, the
    account's alarms, the image's ECR repository, and the ledger's live digest. The queues
    and alarms it reads are found at run time (a trigger's queue, a destination's DLQ,
    every alarm on the functions' metrics), so they are granted account-wide, read-only."""
    env = _env(ctx, "readiness")
    e = ctx.cfg.environment(env)
    fns = _functions(ctx, env)
    if not fns:
        return []
    w = ctx.where
    region = e.region or w.region
    out = [
        Grant(
            "ReadinessFunctions",
            ("lambda:GetFunction", "lambda:GetFunctionEventInvokeConfig"),
            tuple(f"{f}:{e.alias}" for f in fns),
        ),
        Grant("ReadinessConcurrency", ("lambda:GetFunctionConcurrency",), tuple(fns)),
        Grant(
            "ReadinessTriggers",
            _star(
                (
                    "lambda:ListEventSourceMappings",
                    "sns:ListSubscriptions",
                    "sns:GetSubscriptionAttributes",
                    "events:ListRuleNamesByTarget",
                )
            ),
            ("*",),
        ),
        Grant(
            "ReadinessQueues",
            ("sqs:GetQueueUrl", "sqs:GetQueueAttributes"),
            (f"arn:aws:sqs:{region}:{w.account}:*",),
        ),
        Grant(
            "ReadinessAlarms",
            ("cloudwatch:DescribeAlarms",),
            (f"arn:aws:cloudwatch:{region}:{w.account}:alarm:*",),
        ),
    ]
    repo = repo_arn(ctx.cfg.image.registry)
    if repo:
        out.append(Grant("ReadinessRepository", ("ecr:DescribeRepositories",), (repo,)))
    return out + _ledger(ctx, write=False)


def _pipeline(ctx: Ctx) -> list[Grant]:
    """`release pipeline` runs build, sbom, attest, canary, gate and promote in one job:
    their union (a `local` environment: only what build, attest and canary reach)."""
    env = ctx.env
    if env is None:
        raise NeedsMore("release pipeline without an environment: give --env ENV")
    out = _build(ctx) + _attest(ctx) + _canary(ctx)
    if ctx.cfg.environment(env).target == "lambda" or ledger_arn(ctx):
        out += _deploy(ctx, "pipeline")
    return out


def _guard_check(ctx: Ctx) -> list[Grant]:
    """`release guard check` from a job: the guard's own calls (release/iam/jobs.py
    guard_grants), without the Lambda function's log writes."""
    from release.iam.jobs import guard_grants

    env = _env(ctx, "guard check")
    return guard_grants(ctx.cfg, env, account=ctx.where.account, in_lambda=False)


_NOT_CALLED_READINESS = "only with [readiness].gate = true, which the mapping refuses (NeedsMore)"
_READINESS_OPS = {
    op: _NOT_CALLED_READINESS
    for op in (
        "lambda:GetFunctionConcurrency",
        "lambda:GetFunctionEventInvokeConfig",
        "lambda:ListEventSourceMappings",
        "sqs:GetQueueUrl",
        "sqs:GetQueueAttributes",
        "sns:ListSubscriptions",
        "sns:GetSubscriptionAttributes",
        "ecr:DescribeRepositories",
        "events:ListRuleNamesByTarget",
    )
}
_CREATE_TABLE = {
    "dynamodb:CreateTable": "the ledger table exists before a job runs (docs/aws-setup.md); "
    "without the grant a missing table fails the job loudly"
}

#: subcommand -> what it calls in AWS. A subcommand not here is unknown: exit 1.
COMMANDS: dict[str, Command] = {
    "build": Command("release.cli.image:build_cmd", _build),
    "sbom": Command("release.cli.evidence:sbom_cmd", lambda c: _ecr(_subject(c), push=False)),
    "attest": Command("release.cli.evidence:attest_cmd", _attest),
    "verify-bundle": Command("release.cli.evidence:verify_bundle_cmd", _verify_bundle),
    "canary": Command(
        "release.cli.canary:canary_run",
        _canary,
        env_var="RELEASE_CANARY_ENV",
        not_called=_CREATE_TABLE,
    ),
    "canary compare": Command("release.cli.canary:canary_compare", _none),
    "gate": Command(
        "release.cli.deploy:gate_cmd",
        lambda c: _gate(c, "gate"),
        env_var="RELEASE_ENV",
        not_called=_READINESS_OPS | _CREATE_TABLE,
    ),
    "promote": Command(
        "release.cli.deploy:promote_cmd",
        lambda c: _deploy(c, "promote"),
        env_var="RELEASE_ENV",
        not_called=_READINESS_OPS | _CREATE_TABLE,
    ),
    "rollback": Command(
        "release.cli.deploy:rollback_cmd",
        lambda c: _deploy(c, "rollback"),
        env_var="RELEASE_ENV",
        not_called=_READINESS_OPS | _CREATE_TABLE,
    ),
    "status": Command(
        "release.cli.deploy:status_cmd", _status, env_var="RELEASE_ENV", not_called=_CREATE_TABLE
    ),
    "invoke": Command("release.cli.deploy:invoke_cmd", _invoke, env_var="RELEASE_ENV"),
    "ledger verify": Command(
        "release.cli.deploy:ledger_verify",
        lambda c: _ledger(c, write=False),
        not_called=_CREATE_TABLE,
    ),
    "ledger events": Command(
        "release.cli.deploy:ledger_events",
        lambda c: _ledger(c, write=False),
        not_called=_CREATE_TABLE,
    ),
    "verify": Command(
        "release.cli.verify:verify_cmd",
        _verify_cmd,
        env_var="RELEASE_ENV",
        not_called=_CREATE_TABLE,
    ),
    "audit": Command(
        "release.cli.verify:audit_cmd", _audit, env_var="RELEASE_ENV", not_called=_CREATE_TABLE
    ),
    "model pin": Command("release.cli.model:model_pin", _none),
    "model fetch": Command("release.cli.model:model_fetch", _none),
    "model verify": Command("release.cli.model:model_verify", _none),
    "policy show": Command("release.cli.policy:show_cmd", _none),
    "policy test": Command("release.cli.policy:test_cmd", _none),
    "policy export": Command("release.cli.policy:export_cmd", _none),
    "init": Command("release.cli.init:init_cmd", _none),
    "iam": Command("release.cli.iam:iam_cmd", _none),
    "base": Command("release.cli.image:base_cmd", _none),
    "readiness": Command(
        "release.cli.readiness:readiness_cmd",
        _readiness,
        env_var="RELEASE_ENV",
        not_called=_CREATE_TABLE,
    ),
    "pipeline": Command(
        "release.cli.pipeline:pipeline_cmd",
        _pipeline,
        env_var="RELEASE_ENV",
        not_called=_READINESS_OPS | _CREATE_TABLE,
    ),
    "guard check": Command(
        "release.cli.guard:guard_check",
        _guard_check,
        env_var="RELEASE_ENV",
        not_called=_CREATE_TABLE,
    ),
    "guard rules": Command("release.cli.guard:guard_rules", _none),
}

#: subcommands that are groups: the command is the group and its first argument
GROUPS = {name.split()[0] for name in COMMANDS if " " in name}


def statements(grants: list[Grant]) -> list[dict[str, Any]]:
    """One statement per resource set (and condition): the actions of every grant on it.
    Grants on different resources never share a statement, so none widens another."""
    groups: dict[
        tuple[tuple[str, ...], tuple[tuple[str, str, str], ...]], tuple[str, set[str]]
    ] = {}
    for g in grants:
        key = (tuple(sorted(set(g.resources))), g.condition)
        kind, acts = groups.setdefault(key, (g.kind, set()))
        acts.update(g.actions)
    out = []
    seen: dict[str, int] = {}
    for (res, cond), (kind, acts) in groups.items():
        if res == ("*",):
            kind = "NoResourceLevel"  # actions IAM cannot scope to a resource
        seen[kind] = seen.get(kind, 0) + 1
        st: dict[str, Any] = {
            "Sid": kind if seen[kind] == 1 else f"{kind}{seen[kind]}",
            "Effect": "Allow",
            "Action": sorted(acts),
            "Resource": list(res) if len(res) > 1 else res[0],
        }
        if cond:
            c: dict[str, dict[str, str]] = {}
            for op, k, v in cond:
                c.setdefault(op, {})[k] = v
            st["Condition"] = c
        out.append(st)
    return out
