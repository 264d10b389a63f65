"""A function's execution-role policy from its handler's code (release/iam/scan.py).

Each call becomes its IAM action(s) (botocore's operation name; `awsmodel.RENAMED` where
IAM names it otherwise) on the resources the call names: the parameter values the scan
found (literals, environment variables from `[environments.ENV].variables` or
`[iam].variables`) fill the ARN format of each resource type the action supports (shipped
IAM data). `"Resource": "*"` only for actions with no resource type. A call it cannot bind
(no action, or a resource it cannot name) is `Unresolved` with its `file:line` and why;
`release iam` fails on one unless a statement of `[iam]` / `[iam.functions.NAME]` covers it.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from release.config import Config, IamStatement
from release.errors import CheckFailed, ConfigError, UsageError
from release.iam import awsmodel
from release.iam.scan import scan
from release.iam.values import Call, Env, Joined, Lit, Unknown, Value

LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]

_QUEUE_URL = re.compile(r"^https?://[^/]+/(?P<account>\d{12})/(?P<name>[A-Za-z0-9_.-]+)$")


@dataclass(frozen=True)
class Where:
    region: str
    account: str
    partition: str = "aws"


@dataclass(frozen=True)
class Unresolved:
    where: str  # file:line
    what: str
    why: str
    actions: tuple[str, ...] = ()  # known IAM actions (the resource is what is missing)
    service: str | None = None  # the IAM prefix, when only the service is known
    covered: bool = False

    def line(self) -> str:
        return f"{self.where}: {self.what}: {self.why}" + (
            " (covered by [iam])" if self.covered else ""
        )


@dataclass(frozen=True)
class FunctionPolicy:
    document: dict[str, Any]
    unresolved: tuple[Unresolved, ...]

    @property
    def uncovered(self) -> tuple[Unresolved, ...]:
        return tuple(u for u in self.unresolved if not u.covered)


class UnresolvedCalls(CheckFailed):
    """Calls `release iam --function` cannot turn into a grant, not covered by [iam]."""

    @classmethod
    def of(cls, function: str, items: tuple[Unresolved, ...]) -> UnresolvedCalls:
        return cls(
            f"release iam --function {function}: {len(items)} AWS call(s) not bound to an "
            f"action and resource ({items[0].line()}); cover each in "
            f"[iam.functions.{function}].statements or give --allow-unresolved",
            details=[u.line() for u in items[1:]],
        )


def _resolve(
    v: Value, env: dict[str, str], declared: dict[str, str], scope: str
) -> tuple[str | None, str]:
    if isinstance(v, Lit) and isinstance(v.value, (str, int)) and not isinstance(v.value, bool):
        return str(v.value), ""
    if isinstance(v, Env):
        value = env.get(v.var, declared.get(v.var))
        if value is None:
            hint = f" (the code's default: {v.default!r})" if v.default else ""
            return None, f"${v.var} is set in neither {scope} nor [iam].variables{hint}"
        if value == "":
            return None, f"${v.var} is empty"
        return value, ""
    if isinstance(v, Joined):
        out = []
        for part in v.parts:
            s, why = _resolve(part, env, declared, scope)
            if s is None:
                return None, why
            out.append(s)
        return "".join(out), ""
    if isinstance(v, Unknown):
        return None, f"its value is {v.why}"
    return None, "its value is not a string"


def _candidates(placeholder: str) -> list[str]:
    """Call parameters that can fill an ARN placeholder."""
    out = [placeholder]
    if placeholder.endswith("Name"):
        out.append(placeholder[: -len("Name")])
    if placeholder == "ObjectName":
        out.append("Key")
    if placeholder == "QueueName":
        out.append("QueueUrl")
    return out


def _bind(
    call: Call, action: str, w: Where, env: dict[str, str], declared: dict[str, str], scope: str
) -> tuple[list[str], str | None]:
    """(ARNs to grant `action` on for this call, why it cannot be bound or None)."""
    types = awsmodel.resource_types(action)
    if not types:
        return ["*"], None
    params = dict(call.params)
    values: dict[str, tuple[str | None, str]] = {
        k: _resolve(v, env, declared, scope) for k, v in params.items()
    }
    granted: list[str] = []
    missing: list[str] = []
    for t in types:
        fixed = {"Partition": w.partition, "Region": w.region, "Account": w.account}
        whole = [
            val
            for val, _ in values.values()
            if val and val.startswith("arn:") and awsmodel.arn_pattern(t.arn).fullmatch(val)
        ]
        if whole:
            granted.append(whole[0])
            continue
        needed = [p for p in awsmodel.placeholders(t.arn) if p not in fixed]
        problem = None
        absent = False
        for p in needed:
            src = next((c for c in _candidates(p) if c in values), None)
            if src is None:
                problem, absent = f"no parameter names its {p}", True
                break
            val, why = values[src]
            if val is None:
                problem = f"{src}: {why}"
                break
            if src == "QueueUrl":
                m = _QUEUE_URL.match(val)
                if not m:
                    problem = f"QueueUrl {val!r} is not a queue URL"
                    break
                fixed["QueueName"], fixed["Account"] = m["name"], m["account"]
            elif ":" in val and p != "ObjectName":
                problem = f"{src} {val!r} is not a {t.name} name or ARN"
                break
            else:
                fixed[p] = val
        if problem is None:
            granted.append(awsmodel.fill(t.arn, fixed))
        elif t.required or not absent:
            missing.append(f"{t.name}: {problem}")
    if missing:
        return [], missing[0]
    if not granted:
        return [], f"none of its resource types ({', '.join(t.name for t in types)}) is named"
    return granted, None


def _covered(u: Unresolved, extra: list[IamStatement]) -> bool:
    granted = [a.lower() for s in extra for a in s.actions]
    if u.actions:
        return all(any(fnmatch.fnmatchcase(a.lower(), g) for g in granted) for a in u.actions)
    if u.service:
        return any(g.startswith(u.service + ":") for g in granted)
    return False


def _stmt(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    res = sorted(set(resources))
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": res if len(res) > 1 else res[0],
    }


def _fill(arn: str, w: Where) -> str:
    return (
        arn.replace("${Region}", w.region)
        .replace("${Account}", w.account)
        .replace("${Partition}", w.partition)
    )


def analyse(cfg: Config, function: str, env: str | None, w: Where) -> FunctionPolicy:
    """The function's policy and every call it could not bind (covered or not)."""
    if function not in cfg.functions:
        raise UsageError(
            f"no function {function!r} in [functions] (configured: {', '.join(sorted(cfg.functions))})"
        )
    module = cfg.functions[function].rsplit(".", 1)[0]
    base = cfg.root.joinpath(*module.split("."))
    if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
        raise ConfigError(
            f"[functions].{function}: module {module} not found under {cfg.code.package}/"
        )
    calls, findings = scan(cfg.root, cfg.code.package, module)
    variables = cfg.environment(env).variables_of(function) if env else {}
    scope = f"[environments.{env}].variables" if env else "the environment (no --env)"
    declared = cfg.iam.variables
    fname = cfg.environment(env).functions.get(function, function) if env else function
    extra = [*cfg.iam.statements, *(cfg.iam.functions.get(function, None) or _NoExtra()).statements]

    unresolved: list[Unresolved] = []
    for fd in findings:
        prefix = awsmodel.iam_prefix(fd.service) if fd.service else None
        unresolved.append(Unresolved(fd.where, fd.what, fd.why, (), prefix))
    by_resource: dict[tuple[str, str], set[str]] = {}
    for c in calls:
        actions = awsmodel.iam_actions(c.service, c.op)
        if actions is None:
            unresolved.append(
                Unresolved(
                    c.where,
                    f"{c.service}.{c.op}",
                    "no IAM action of that name in the shipped IAM data",
                    (),
                    awsmodel.iam_prefix(c.service),
                )
            )
            continue
        for action in actions:
            arns, why = _bind(c, action, w, variables, declared, scope)
            if why is not None:
                unresolved.append(Unresolved(c.where, action, why, (action,)))
                continue
            for arn in arns:
                by_resource.setdefault((action.split(":")[0], arn), set()).add(action)
    unresolved = [
        Unresolved(u.where, u.what, u.why, u.actions, u.service, _covered(u, extra))
        for u in sorted(set(unresolved), key=_order)
    ]

    st = [
        _stmt(
            "Logs", LOGS, [f"arn:aws:logs:{w.region}:{w.account}:log-group:/aws/lambda/{fname}:*"]
        )
    ]
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (prefix, arn), acts in by_resource.items():
        groups.setdefault((prefix, tuple(sorted(acts))), []).append(arn)
    count: dict[str, int] = {}
    for (prefix, acts_), arns in sorted(groups.items()):
        kind = "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]", prefix))
        count[kind] = count.get(kind, 0) + 1
        st.append(_stmt(f"{kind}{count[kind]}", list(acts_), sorted(arns)))
    for i, s in enumerate(extra, 1):
        st.append(_stmt(s.sid or f"Declared{i}", s.actions, [_fill(r, w) for r in s.resources]))
    return FunctionPolicy({"Version": "2012-10-17", "Statement": st}, tuple(unresolved))


def _order(u: Unresolved) -> tuple[str, int, str, str]:
    file, _, line = u.where.rpartition(":")
    return file, int(line), u.what, u.why


@dataclass(frozen=True)
class _NoExtra:
    statements: tuple[IamStatement, ...] = ()
