"""Least-privilege IAM policies of the CI jobs and the ECR repository.

`job_policy(cfg, job, env, workflow=...)` reads the workflow (`.github/workflows/release.yml`
next to the config, or the one given), finds the `release` commands the job runs
(release/iam/workflow.py) and grants what each calls in AWS (release/iam/commands.py),
scoped to the configured ECR repository, Lambda functions and alias, alarms, ledger table
and KMS key. A `release` command the mapping does not know, or one it cannot bind (no
environment), is listed with its job and step and the command exits 1: never a silent
under-grant. `repository_policy(cfg)` is the ECR repository policy that lets Lambda pull
the image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.config import Config
from release.errors import CheckFailed, ConfigError, UsageError
from release.iam import commands as cmds
from release.iam import workflow as wf
from release.iam.function import Where

WORKFLOW = Path(".github") / "workflows" / "release.yml"

_ECR = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repo>.+)$"
)
#: options of `release` subcommands that take no value (the others take the next word)
_FLAGS = {
    "--json",
    "--offline",
    "--verify-chain",
    "--no-verify",
    "--allow-unresolved",
    "--repository-policy",
    "--jobs",
    "--help",
    "-h",
    "--verbose",
    "-v",
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


@dataclass(frozen=True)
class Use:
    """One `release` command of the job: what it is and where."""

    job: str
    step: str
    text: str
    command: str | None  # the subcommand (`promote`, `model fetch`), None: unknown
    env: str | None
    problem: str | None = None

    def line(self) -> str:
        return f"job {self.job}, step {self.step!r}: {self.text}" + (
            f": {self.problem}" if self.problem else ""
        )


@dataclass(frozen=True)
class JobPolicy:
    job: str
    document: dict[str, Any]
    uses: tuple[Use, ...]

    @property
    def problems(self) -> tuple[Use, ...]:
        return tuple(u for u in self.uses if u.problem)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "policy": self.document,
            "commands": [
                {"step": u.step, "command": u.text, "subcommand": u.command, "env": u.env}
                | ({"problem": u.problem} if u.problem else {})
                for u in self.uses
            ],
        }


class UnknownCommands(CheckFailed):
    """`release` commands of a job the mapping cannot turn into a grant."""

    @classmethod
    def of(cls, items: tuple[Use, ...]) -> UnknownCommands:
        return cls(
            f"release iam --job: {len(items)} release command(s) not mapped to AWS calls "
            f"({items[0].line()}); give --allow-unresolved to print the policy without them",
            details=[u.line() for u in items[1:]],
        )


def workflow_path(cfg: Config, path: Path | None) -> Path:
    p = path if path is not None else cfg.root / WORKFLOW
    if not p.is_file():
        raise ConfigError(
            f"no workflow {p}: give --workflow FILE (the workflow whose jobs run release; "
            "`release init` writes one)"
        )
    return p


def jobs(cfg: Config, path: Path | None = None) -> dict[str, wf.Job]:
    return wf.load(workflow_path(cfg, path))


def _parse(argv: tuple[str, ...]) -> tuple[str | None, dict[str, str], tuple[str, ...]]:
    """(subcommand, its options, its positionals) of `release ARGV`."""
    rest = list(argv)
    while rest and rest[0].startswith("-"):  # global options: -v, --verbose
        rest.pop(0)
    if not rest:
        return None, {}, ()
    name, rest = rest[0], rest[1:]
    if name in cmds.GROUPS:
        if name == "canary" and (not rest or rest[0] != "compare"):
            pass  # `release canary DIGEST` runs the hidden `canary run`
        elif rest:
            name, rest = f"{name} {rest[0]}", rest[1:]
    opts: dict[str, str] = {}
    args: list[str] = []
    i = 0
    while i < len(rest):
        t = rest[i]
        if t.startswith("-") and t != "-":
            if "=" in t:
                k, v = t.split("=", 1)
                opts[k] = v
            elif t in _FLAGS:
                opts[t] = ""
            elif t == "--predicate":
                opts[t] = " ".join(rest[i + 1 : i + 3])
                i += 2
            else:
                opts[t] = rest[i + 1] if i + 1 < len(rest) else ""
                i += 1
        else:
            args.append(t)
        i += 1
    return name, opts, tuple(args)


def _unbound(value: str) -> bool:
    return "$" in value


def analyse_job(
    cfg: Config,
    job: str,
    env: str | None = None,
    *,
    account: str | None = None,
    workflow: Path | None = None,
) -> JobPolicy:
    """The job's policy and every `release` command of it, unknown ones marked."""
    all_jobs = jobs(cfg, workflow)
    if job not in all_jobs:
        raise UsageError(
            f"no job {job!r} in the workflow (its jobs: {', '.join(all_jobs) or 'none'})"
        )
    grants: list[cmds.Grant] = []
    uses: list[Use] = []
    for inv in all_jobs[job].invocations:
        name, opts, args = _parse(inv.argv)
        step_env = dict(inv.env)
        command = cmds.COMMANDS.get(name or "")
        takes_env = command is not None and command.env_var is not None
        e = env if takes_env and env is not None else opts.get("--env")
        if e is None and command is not None and command.env_var:
            e = step_env.get(command.env_var)
        if e is not None and _unbound(e):
            e = None
        if command is None:
            why = "no subcommand" if name is None else f"`release {name}` is not in the job mapping"
            uses.append(Use(job, inv.step, inv.text, None, e, why + " (release/iam/commands.py)"))
            continue
        if e is not None and e not in cfg.file.environments:
            uses.append(Use(job, inv.step, inv.text, name, e, f"no [environments.{e}]"))
            continue
        ctx = cmds.Ctx(cfg, e, where(cfg, e, account), opts, args)
        try:
            grants += command.needs(ctx)
        except cmds.NeedsMore as exc:
            uses.append(Use(job, inv.step, inv.text, name, e, str(exc)))
            continue
        uses.append(Use(job, inv.step, inv.text, name, e))
    doc = {"Version": "2012-10-17", "Statement": cmds.statements(grants)}
    return JobPolicy(job, doc, tuple(uses))


def job_policy(
    cfg: Config,
    job: str,
    env: str | None = None,
    *,
    account: str | None = None,
    workflow: Path | None = None,
    allow_unresolved: bool = False,
) -> dict[str, Any]:
    """The IAM policy of CI job `job` of the workflow (see docs/aws-setup.md):
    `UnknownCommands` (exit 1) when one of its `release` commands is not mapped."""
    result = analyse_job(cfg, job, env, account=account, workflow=workflow)
    if result.problems and not allow_unresolved:
        raise UnknownCommands.of(result.problems)
    return result.document


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
    return {"Version": "2012-10-17", "Statement": [stmt]}


LOGS_WRITE = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
GUARD_LAMBDA_READ = ("lambda:GetAlias", "lambda:GetFunction", "lambda:ListVersionsByFunction")


def guard_grants(
    cfg: Config, env: str, *, account: str | None = None, in_lambda: bool = True
) -> list[cmds.Grant]:
    """What release.guard calls, as data: read the environment's functions, aliases and
    versions; move an alias back (rollback on); read the ledger and append its events;
    read the evidence from the registry; publish to the topic; the KMS public key when
    verification needs it; its own logs (`in_lambda`; `release guard check` from a job
    writes no logs and may keep a sqlite ledger)."""
    e = cfg.environment(env)
    w = where(cfg, env, account)
    ctx = cmds.Ctx(cfg, env, w, {}, ())
    ledger = cmds.ledger_arn(ctx)
    if ledger is None and in_lambda:
        raise ConfigError(
            f"the guard runs in Lambda and needs a dynamodb ledger; [ledger].url is {cfg.ledger.url!r}"
        )
    fns = tuple(
        f"arn:aws:lambda:{w.region}:{w.account}:function:{n}" for n in sorted(e.functions.values())
    )
    out = [cmds.Grant("ReadFunctions", GUARD_LAMBDA_READ, fns + tuple(f + ":*" for f in fns))]
    if in_lambda:
        log_groups = f"arn:aws:logs:{w.region}:{w.account}:log-group:/aws/lambda/*"
        out.insert(0, cmds.Grant("Logs", LOGS_WRITE, (log_groups,)))
    if ledger is not None:
        out.append(cmds.Grant("Ledger", (*cmds.LEDGER_READ, "dynamodb:PutItem"), (ledger,)))
    if e.guard.rollback:
        out.append(
            cmds.Grant(
                "RollBackAliases", ("lambda:UpdateAlias",), fns
            )  # alias calls name the function
        )
    if e.guard.topic:
        out.append(cmds.Grant("Alarm", ("sns:Publish",), (e.guard.topic,)))
    return out + cmds.ecr_grants(cfg.image.registry, push=False) + cmds.kms_grants(ctx, sign=False)


def guard_policy(cfg: Config, env: str | None, *, account: str | None = None) -> dict[str, Any]:
    """The drift guard's execution-role policy (`release iam --function release.guard
    --env ENV`), declared as data (guard_grants)."""
    if env is None:
        raise UsageError("release iam --function release.guard needs --env ENV (what it guards)")
    e = cfg.environment(env)
    if e.target != "lambda":
        raise UsageError(f"[environments.{env}] is a {e.target} target; the guard watches Lambda")
    return {
        "Version": "2012-10-17",
        "Statement": cmds.statements(guard_grants(cfg, env, account=account)),
    }
