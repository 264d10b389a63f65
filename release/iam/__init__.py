"""Least-privilege IAM policy documents, computed from the config and the code.

`job_policy` (release/iam/jobs.py): what a CI job's role needs for the AWS calls of the
`release` commands the job runs in the workflow (release/iam/workflow.py reads them,
release/iam/commands.py says what each command calls). `function_policy` (release/iam/function.py): a function's execution role, from the
AWS calls its handler's code makes (release/iam/scan.py reads it; release/iam/awsmodel.py
says what each call is, from botocore's and boto3's models and the shipped IAM data).
`repository_policy`: the ECR repository policy that lets Lambda pull the image.

`release iam` prints these; docs/aws-setup.md is generated from the same functions (a test
fails when it is stale), so the documented policies are the ones the code needs.
"""

from __future__ import annotations

from typing import Any

from release.config import Config
from release.iam.function import FunctionPolicy, Unresolved, UnresolvedCalls, analyse
from release.iam.jobs import (
    JobPolicy,
    UnknownCommands,
    analyse_job,
    guard_policy,
    job_policy,
    jobs,
    repository_policy,
    where,
)

__all__ = [
    "FunctionPolicy",
    "JobPolicy",
    "UnknownCommands",
    "Unresolved",
    "UnresolvedCalls",
    "analyse_function",
    "analyse_job",
    "function_policy",
    "guard_policy",
    "job_policy",
    "jobs",
    "repository_policy",
]


def analyse_function(
    cfg: Config, function: str, env: str | None = None, *, account: str | None = None
) -> FunctionPolicy:
    """The execution-role policy of `function` and every call it could not bind."""
    return analyse(cfg, function, env, where(cfg, env, account))


def function_policy(
    cfg: Config,
    function: str,
    env: str | None = None,
    *,
    account: str | None = None,
    allow_unresolved: bool = False,
) -> dict[str, Any]:
    """The execution-role policy of `function`: logs and exactly the AWS actions its
    handler's code calls, on the resources it names; `UnresolvedCalls` (exit 1) when a
    call cannot be bound and no `[iam]` statement covers it (unless `allow_unresolved`)."""
    result = analyse_function(cfg, function, env, account=account)
    if result.uncovered and not allow_unresolved:
        raise UnresolvedCalls.of(function, result.uncovered)
    return result.document
