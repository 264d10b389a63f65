"""What triggers the guard: EventBridge rules on CloudTrail's record of Lambda's
`UpdateFunctionCode*`, `UpdateAlias*` and `PublishVersion*` calls on the environment's
functions, and a schedule. `rules` writes both (`release guard rules`, docs/aws-setup.md);
`trigger` reads one delivered event.

CloudTrail names these calls with their API version (`UpdateFunctionCode20150331v2`,
`UpdateAlias20150331`, `PublishVersion20150331`), hence prefix patterns; a call may name
the function by name or by ARN (partial, full or qualified), hence the name and a
wildcard on the ARN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from release.config import Config
from release.errors import UsageError

#: the Lambda API calls that change what an alias serves
CALLS = ("UpdateFunctionCode", "UpdateAlias", "PublishVersion")
API_CALL = "AWS API Call via CloudTrail"
SCHEDULED = "Scheduled Event"


def rule_name(env: str, kind: str) -> str:
    return f"release-guard-{env}-{kind}"[:64]


def rules(cfg: Config, env: str) -> list[dict[str, Any]]:
    """The environment's two EventBridge rules (PutRule arguments): the API calls on its
    functions, and the schedule (`[environments.ENV.guard].schedule`)."""
    from release.guard.check import guard_config

    settings = guard_config(cfg, env)
    names = sorted(cfg.environment(env).functions.values())
    match: list[Any] = [*names, *({"wildcard": f"arn:*:lambda:*:*:function:{n}*"} for n in names)]
    pattern = {
        "source": ["aws.lambda"],
        "detail-type": [API_CALL],
        "detail": {
            "eventSource": ["lambda.amazonaws.com"],
            "eventName": [{"prefix": c} for c in CALLS],
            "requestParameters": {"functionName": match},
        },
    }
    return [
        {
            "Name": rule_name(env, "calls"),
            "Description": f"release guard of {env}: Lambda calls that change what an alias serves",
            "EventPattern": pattern,
            "State": "ENABLED",
        },
        {
            "Name": rule_name(env, "schedule"),
            "Description": f"release guard of {env}: the periodic check",
            "ScheduleExpression": settings.schedule,
            "State": "ENABLED",
        },
    ]


@dataclass(frozen=True)
class Trigger:
    """What one event asks for: `kind` is `schedule`, `call` (one of CALLS on `function`)
    or `manual`; `ours` says whether it concerns the environment at all."""

    kind: str
    ours: bool
    function: str = ""
    call: str = ""
    actor: str = ""

    def describe(self) -> str:
        if self.kind == "call":
            return f"{self.call} {self.function}" + (f" by {self.actor}" if self.actor else "")
        return self.kind


def _function_name(value: str) -> str:
    """A function name from a name or an ARN (`arn:...:function:NAME[:QUALIFIER]`)."""
    if value.startswith("arn:"):
        parts = value.split(":")
        return parts[6] if len(parts) > 6 else ""
    return value.split(":", 1)[0]


def trigger(event: Any, functions: dict[str, str]) -> Trigger:
    """Read one delivered event; `functions`: the environment's ([functions] name ->
    Lambda function name). An event of another shape is a UsageError."""
    if not isinstance(event, dict):
        raise UsageError(f"release guard: the event is a {type(event).__name__}, not an object")
    kind = event.get("detail-type")
    if kind == SCHEDULED or (event.get("source") == "aws.events" and kind is None):
        return Trigger("schedule", True)
    if event.get("source") == "release.guard":  # `release guard check` and tests
        return Trigger("manual", True)
    if kind != API_CALL:
        raise UsageError(f"release guard: unknown event (detail-type {kind!r})")
    detail = event.get("detail") or {}
    name = str(detail.get("eventName") or "")
    call = next((c for c in CALLS if name.startswith(c)), "")
    params = detail.get("requestParameters") or {}
    fn = _function_name(str(params.get("functionName") or ""))
    who = detail.get("userIdentity") or {}
    actor = str(who.get("arn") or who.get("principalId") or "")
    return Trigger("call", bool(call) and fn in functions.values(), fn, name, actor)
