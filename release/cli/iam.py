"""`release iam`: the IAM policy JSON a CI job, a function or the ECR repository needs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from release.cli import Out, cli, common, load_config
from release.iam import JOBS


@cli.command("iam")
@click.option(
    "--job", type=click.Choice(JOBS), help="The CI job's policy (build, attest, canary, promote)."
)
@click.option(
    "--function",
    "function",
    metavar="NAME",
    help="The execution-role policy of function NAME, from the AWS calls its handler makes; "
    "NAME release.guard: the drift guard's (with --env).",
)
@click.option(
    "--repository-policy",
    is_flag=True,
    help="The ECR repository policy that lets Lambda pull the image.",
)
@click.option(
    "--env",
    "env",
    envvar="RELEASE_ENV",
    help="Environment whose functions, region, alarms and variables to use "
    "(required with --job promote) [env: RELEASE_ENV].",
)
@click.option(
    "--account",
    metavar="ID",
    help="AWS account id for ARNs [default: from the ECR registry, else *].",
)
@click.option(
    "--allow-unresolved",
    is_flag=True,
    help="With --function: print the policy even when some AWS calls could not be bound "
    "(each is listed on stderr with its file:line) instead of exiting 1.",
)
@common
def iam_cmd(
    config_path: Path | None,
    out: Out,
    job: str | None,
    function: str | None,
    repository_policy: bool,
    env: str | None,
    account: str | None,
    allow_unresolved: bool,
) -> None:
    """Print the least-privilege IAM policy JSON, computed from the config (and, for
    --function, from the handler's code). Give exactly one of --job, --function,
    --repository-policy. The document always goes to stdout.

    --function reads the handler's module and every module of the code package it uses
    (never imports them) and grants each boto3 call's action on the resource the call
    names. A call it cannot bind (its action, or its resource) is listed with its
    file:line and the command exits 1, unless a statement in [iam] or
    [iam.functions.NAME] covers it, or --allow-unresolved is given.

    --function release.guard --env ENV is the drift guard's role (release guard): the
    calls the tool's own guard makes, declared with it, scoped to ENV's functions, alias,
    ledger table, registry, topic and key.
    """
    from release import iam
    from release.errors import UsageError

    if sum((job is not None, function is not None, repository_policy)) != 1:
        raise UsageError("give exactly one of --job, --function, --repository-policy")
    cfg = load_config(config_path)
    if env is not None:
        cfg.environment(env)
    if job:
        doc = iam.job_policy(cfg, job, env, account=account)
    elif function == "release.guard":
        doc = iam.guard_policy(cfg, env, account=account)
    elif function:
        result = iam.analyse_function(cfg, function, env, account=account)
        if result.uncovered and not allow_unresolved:
            raise iam.UnresolvedCalls.of(function, result.uncovered)
        for u in result.uncovered:
            click.echo(f"release: unresolved (allowed): {u.line()}", err=True)
        doc = result.document
    else:
        doc = iam.repository_policy(cfg, env, account=account)
    click.echo(json.dumps(doc, indent=2))
