"""The drift guard: catches a deployment that bypassed the gate.

A Lambda function shipped with the tool (`release.guard.handler.lambda_handler`), run by
EventBridge on CloudTrail's record of `UpdateFunctionCode*`, `UpdateAlias*` and
`PublishVersion*` calls on an environment's functions and on a schedule
(`release guard rules`). Each event is one decision (`check`): what every alias serves,
resolved to image digests, against the ledger's promoted digest, whose signed evidence is
verified offline; a mismatch is published to the SNS topic and, with rollback on, undone
(`guard.rollback` in the ledger). Every decision is a `guard.check` ledger event, which
`release status` shows. `release guard check` makes the same decision from a laptop.

Modules: `check` (the decision), `events` (rules and triggers), `handler` (the Lambda
entry), `iam` (the guard's execution-role policy for `release iam --function release.guard`).
"""

from __future__ import annotations

from release.guard.check import (
    CHECK,
    ROLLBACK,
    Finding,
    Guard,
    GuardReport,
    Rollback,
    check,
    last_check,
)
from release.guard.events import Trigger, rules, trigger

#: the name `release iam --function` knows the guard by (never a [functions] name)
IAM_NAME = "release.guard"

__all__ = [
    "CHECK",
    "IAM_NAME",
    "ROLLBACK",
    "Finding",
    "Guard",
    "GuardReport",
    "Rollback",
    "Trigger",
    "check",
    "last_check",
    "rules",
    "trigger",
]
