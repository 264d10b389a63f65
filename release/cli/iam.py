"""`release iam`: the IAM policy JSON a CI job, a function or the ECR repository needs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from release.cli import Out, cli, common, load_config


@cli.command("iam")
@click.option(
    "--job",
    metavar="NAME",
    help="The policy of job NAME of the workflow: the AWS calls of the `release` commands "
    "its steps run.",
)
@click.option(
    "--jobs",
    "all_jobs",
    is_flag=True,
    help="The policy of every job of the workflow (with --json: one document per job, "
    "with the commands each runs).",
)
@click.option(
    "--workflow",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The GitHub Actions workflow whose jobs run release (with --job/--jobs) "
    "[default: .github/workflows/release.yml next to the config].",
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
    help="Environment whose functions, region, alarms and variables to use; with --job, "
    "for the commands whose --env the workflow does not spell out [env: RELEASE_ENV].",
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
    "(each is listed on stderr with its file:line) instead of exiting 1; with --job/--jobs: "
    "even when a release command of a job is not mapped (each listed on stderr).",
)
@common
def iam_cmd(
    config_path: Path | None,
    out: Out,
    job: str | None,
    all_jobs: bool,
    workflow: Path | None,
    function: str | None,
    repository_policy: bool,
    env: str | None,
    account: str | None,
    allow_unresolved: bool,
) -> None:
    """Print the least-privilege IAM policy JSON, computed from the config (and, for
    --function, from the handler's code). Give exactly one of --job, --function,
    --jobs, --repository-policy. The document always goes to stdout (--jobs: one per job,
    a JSON object by job name).

    --job reads the workflow, finds each `release` command the job's steps run (and a
    local action's), and grants what that command calls in AWS with the options it is
    given, on the repository, functions and alias, alarms, ledger table and KMS key of
    the config. A `release` command it does not know is listed with its job and step and
    the command exits 1, unless --allow-unresolved is given.

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

    if sum((job is not None, all_jobs, function is not None, repository_policy)) != 1:
        raise UsageError("give exactly one of --job, --jobs, --function, --repository-policy")
    if workflow is not None and job is None and not all_jobs:
        raise UsageError("--workflow goes with --job or --jobs")
    cfg = load_config(config_path)
    if env is not None:
        cfg.environment(env)
    if job is not None or all_jobs:
        names = [job] if job is not None else list(iam.jobs(cfg, workflow))
        results = [iam.analyse_job(cfg, n, env, account=account, workflow=workflow) for n in names]
        problems = tuple(u for r in results for u in r.problems)
        if problems and not allow_unresolved:
            raise iam.UnknownCommands.of(problems)
        for p in problems:
            click.echo(f"release: not mapped (allowed): {p.line()}", err=True)
        if job is not None and not out.as_json:
            doc = results[0].document
        elif job is not None:
            doc = results[0].to_dict()
        elif out.as_json:
            doc = {r.job: r.to_dict() for r in results}
        else:
            doc = {r.job: r.document for r in results}
        click.echo(json.dumps(doc, indent=2))
        return
    if function == "release.guard":
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
