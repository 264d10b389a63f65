"""Least-privilege IAM policy documents, computed from the config and the code.

`job_policy(cfg, job, env)` is what each CI job (build, attest, canary, promote) needs for
the AWS calls `release` makes in it, scoped to the configured ECR repository, Lambda
functions, alarms, ledger table and KMS key. `function_policy(cfg, function, env)` is what
a function's own execution role needs for the AWS calls its handler makes: the handler's
module and the code-package functions it references, transitively, are read (not
imported) and every
`aws.client("svc").op(...)`, `aws.table(cfg.x).op(...)` and DynamoDB idempotency layer is
turned into an action; table and queue names come from the environment's variables
(`[environments.ENV].variables`) or the handlers' defaults in `<package>/common/settings.py`.
`repository_policy(cfg)` is the ECR repository policy that lets Lambda pull the image.

`release iam` prints these; docs/aws-setup.md is generated from the same functions (a test
fails when it is stale), so the documented policies are the ones the code needs.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release.config import Config
from release.errors import ConfigError, UsageError

JOBS = ("build", "attest", "canary", "promote")

_ECR = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repo>.+)$"
)
_QUEUE_URL = re.compile(r"^https?://[^/]+/(?P<account>\d{12})/(?P<name>[A-Za-z0-9_.-]+)$")

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
LOGS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
XRAY = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
#: what powertools' DynamoDBPersistenceLayer calls
IDEMPOTENCY = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]


_SID = {
    "dynamodb": "DynamoDB",
    "sqs": "SQS",
    "s3": "S3",
    "ec2": "EC2",
    "iam": "IAM",
    "guardduty": "GuardDuty",
    "sns": "SNS",
    "cloudwatch": "CloudWatch",
}


def _doc(statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": statements}


def _stmt(sid: str, actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": sorted(set(resources)) if len(set(resources)) > 1 else resources[0],
    }


@dataclass(frozen=True)
class _Where:
    region: str
    account: str


def _where(cfg: Config, env: str | None, account: str | None) -> _Where:
    region = None
    if env is not None:
        region = cfg.environment(env).region
    m = _ECR.match(cfg.image.registry)
    if m:
        region = region or m["region"]
        account = account or m["account"]
    return _Where(region or "*", account or "*")


def _repo_arn(ref: str) -> str | None:
    m = _ECR.match(ref.split("@", 1)[0])
    if not m:
        return None
    return f"arn:aws:ecr:{m['region']}:{m['account']}:repository/{m['repo']}"


def _ledger_arn(cfg: Config, w: _Where) -> str | None:
    url = cfg.ledger.url
    if not url.startswith("dynamodb:"):
        return None
    return f"arn:aws:dynamodb:{w.region}:{w.account}:table/{url.split(':', 1)[1]}"


def _kms(cfg: Config, w: _Where, *, sign: bool) -> dict[str, Any] | None:
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
    arn = (
        key
        if key.startswith("arn:")
        else (
            f"arn:aws:kms:{w.region}:{w.account}:{key if key.startswith('alias/') else 'key/' + key}"
        )
    )
    return _stmt("Kms", ["kms:GetPublicKey", *(["kms:Sign"] if sign else [])], [arn])


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
    w = _where(cfg, env, account)
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
    w = _where(cfg, env, account)
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


# --- what a handler calls -------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    service: str  # boto3 service name
    method: str  # boto3 method (snake case)
    setting: str | None = None  # the Settings attribute naming the table / queue, if known
    module: str = ""
    line: int = 0


@dataclass
class _Scan:
    package: str
    root: Path
    calls: list[Call] = field(default_factory=list)
    seen: set[tuple[str, str | None]] = field(default_factory=set)
    modules: dict[str, _Module | None] = field(default_factory=dict)
    tracer: bool = False


@dataclass
class _Module:
    """One module of the code package: its top-level definitions and what its names
    import from the package (`from pkg.common import triggers` / `... import to_dlq`)."""

    name: str
    top: list[ast.stmt]  # module-level code other than definitions (runs on import)
    defs: dict[str, ast.AST]
    modules: dict[str, str]  # local name -> package module
    names: dict[str, tuple[str, str]]  # local name -> (package module, name in it)


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _setting_of(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.attr
    return None


def _client_service(node: ast.AST) -> str | None:
    """`aws.client("svc")` / `client("svc")` -> "svc"."""
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        fn = node.func
        name = (
            fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
        )
        if name == "client" and isinstance(node.args[0].value, str):
            return node.args[0].value
    return None


def _table_setting(node: ast.AST) -> tuple[bool, str | None]:
    """`aws.table(cfg.x)` -> (True, "x")."""
    if isinstance(node, ast.Call) and node.args:
        fn = node.func
        name = (
            fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
        )
        if name == "table":
            return True, _setting_of(node.args[0])
    return False, None


def _load(scan: _Scan, module: str) -> _Module | None:
    if module in scan.modules:
        return scan.modules[module]
    path = _module_file(scan.root, module)
    mod = None
    if path is not None:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        defs: dict[str, ast.AST] = {}
        top: list[ast.stmt] = []
        modules: dict[str, str] = {}
        names: dict[str, tuple[str, str]] = {}
        for st in tree.body:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defs[st.name] = st
                top.extend(_decorators(st))
                continue
            top.append(st)
            if isinstance(st, ast.ImportFrom):
                base = _imported(st, module)[0]
                for a in st.names:
                    local = a.asname or a.name
                    if base.split(".", 1)[0] != scan.package:
                        continue
                    if _module_file(scan.root, f"{base}.{a.name}") is not None:
                        modules[local] = f"{base}.{a.name}"
                    else:
                        names[local] = (base, a.name)
            elif isinstance(st, ast.Import):
                for a in st.names:
                    if a.name.split(".", 1)[0] == scan.package and a.asname:
                        modules[a.asname] = a.name
        mod = _Module(module, top, defs, modules, names)
    scan.modules[module] = mod
    return mod


def _decorators(node: ast.AST) -> list[ast.stmt]:
    decos = getattr(node, "decorator_list", [])
    return [ast.Expr(value=d) for d in decos]


def _scan_module(
    scan: _Scan, module: str, unit: str | None = None, *, everything: bool = False
) -> None:
    """Follow the code the handler can run: the whole handler module, and in the package
    modules it uses only the functions (and classes) it references, transitively, plus
    their module-level code. Calls found on the way become `Call`s."""
    mod = _load(scan, module)
    if mod is None:
        return
    units: list[str | None] = [None, *mod.defs] if everything else [unit]
    for u in units:
        if (module, u) in scan.seen:
            continue
        scan.seen.add((module, u))
        if u is None:
            nodes: list[ast.AST] = list(mod.top)
        elif u in mod.defs:
            nodes = [mod.defs[u]]
        else:
            continue
        for node in nodes:
            _scan_node(scan, mod, node)


def _scan_node(scan: _Scan, mod: _Module, root: ast.AST) -> None:
    aliases: dict[str, str] = {}  # local name -> service, for `sqs = aws.client("sqs")`
    for node in ast.walk(root):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            svc = _client_service(node.value)
            if svc:
                aliases[node.targets[0].id] = svc
    for node in ast.walk(root):
        # what this code references: follow it
        if isinstance(node, ast.Name):
            if node.id in mod.defs:
                _scan_module(scan, mod.name, node.id)
            elif node.id in mod.names:
                _scan_module(scan, mod.names[node.id][0], None)
                _scan_module(scan, *mod.names[node.id])
            elif node.id in mod.modules:
                _scan_module(scan, mod.modules[node.id], None)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in mod.modules
        ):
            _scan_module(scan, mod.modules[node.value.id], node.attr)
        if not isinstance(node, ast.Call):
            continue
        fn = node.func
        if isinstance(fn, ast.Name) and fn.id == "Tracer":
            scan.tracer = True
        if (isinstance(fn, ast.Name) and fn.id == "DynamoDBPersistenceLayer") or (
            isinstance(fn, ast.Attribute) and fn.attr == "DynamoDBPersistenceLayer"
        ):
            tn = next((k.value for k in node.keywords if k.arg == "table_name"), None)
            for action in IDEMPOTENCY:
                scan.calls.append(
                    Call(
                        "dynamodb",
                        _snake(action.split(":")[1]),
                        _setting_of(tn),
                        mod.name,
                        node.lineno,
                    )
                )
            continue
        if not isinstance(fn, ast.Attribute):
            continue
        target = fn.value
        svc = _client_service(target)
        if svc is None and isinstance(target, ast.Name):
            svc = aliases.get(target.id)
        if svc:
            queue = next((k.value for k in node.keywords if k.arg == "QueueUrl"), None)
            scan.calls.append(Call(svc, fn.attr, _setting_of(queue), mod.name, node.lineno))
            continue
        is_table, setting = _table_setting(target)
        if is_table:
            scan.calls.append(Call("dynamodb", fn.attr, setting, mod.name, node.lineno))


def _imported(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        parts = module.split(".")[: -node.level]
        base = ".".join([*parts, base] if base else parts)
    return [base, *(f"{base}.{a.name}" for a in node.names)]


def _snake(op: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower()


def handler_calls(cfg: Config, function: str) -> tuple[list[Call], bool]:
    """Every AWS call the handler of `function` can make - its module, and the functions
    of the code package it references, transitively - and whether it uses the powertools
    Tracer (X-Ray)."""
    if function not in cfg.functions:
        raise UsageError(
            f"no function {function!r} in [functions] (configured: {', '.join(sorted(cfg.functions))})"
        )
    module = cfg.functions[function].rsplit(".", 1)[0]
    root = cfg.root
    if _module_file(root, module) is None:
        raise ConfigError(
            f"[functions].{function}: module {module} not found under {cfg.code.package}/"
        )
    scan = _Scan(cfg.code.package, root)
    _scan_module(scan, module, everything=True)
    return scan.calls, scan.tracer


#: boto3 service names whose IAM action prefix differs
_IAM_PREFIX = {
    "stepfunctions": "states",
    "elbv2": "elasticloadbalancing",
    "sesv2": "ses",
    "dynamodbstreams": "dynamodb",
    "apigatewaymanagementapi": "execute-api",
}


def _action(service: str, method: str) -> str:
    """boto3 method -> IAM action, through botocore's own service model."""
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    for op in model.operation_names:
        if xform_name(op) == method:
            return f"{_IAM_PREFIX.get(service, service)}:{op}"
    raise ConfigError(f"{service}.{method} is not an operation of the {service} API")


def handler_defaults(cfg: Config) -> dict[str, tuple[str, str]]:
    """Settings attribute -> (environment variable, default) from
    `<package>/common/settings.py` (keywords like `x=_str("VAR", "default")`)."""
    path = cfg.root / cfg.code.package / "common" / "settings.py"
    out: dict[str, tuple[str, str]] = {}
    if not path.is_file():
        return out
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg and isinstance(node.value, ast.Call):
            args = node.value.args
            if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                default = (
                    args[1].value if len(args) > 1 and isinstance(args[1], ast.Constant) else ""
                )
                out[node.arg] = (args[0].value, str(default))
    return out


def function_policy(
    cfg: Config, function: str, env: str | None = None, *, account: str | None = None
) -> dict[str, Any]:
    """The execution-role policy of `function`: logs, X-Ray when traced, and exactly the
    AWS actions its handler calls, on the tables and queues its variables name."""
    w = _where(cfg, env, account)
    calls, traced = handler_calls(cfg, function)
    variables = cfg.environment(env).variables_of(function) if env else {}
    defaults = handler_defaults(cfg)
    fname = cfg.environment(env).functions.get(function, function) if env else function
    st = [
        _stmt(
            "Logs", LOGS, [f"arn:aws:logs:{w.region}:{w.account}:log-group:/aws/lambda/{fname}:*"]
        )
    ]
    if traced:
        st.append(_stmt("XRay", XRAY, ["*"]))
    by_resource: dict[tuple[str, str], list[str]] = {}
    for c in calls:
        action = _action(c.service, c.method)
        value = None
        if c.setting and c.setting in defaults:
            var, default = defaults[c.setting]
            value = variables.get(var, default)
        if c.service == "dynamodb" and value:
            arn = f"arn:aws:dynamodb:{w.region}:{w.account}:table/{value}"
            key = ("DynamoDB", arn)
            by_resource.setdefault(key, []).append(action)
            if c.method == "query":
                by_resource.setdefault(("DynamoDB", arn + "/index/*"), []).append(action)
        elif c.service == "sqs" and value:
            m = _QUEUE_URL.match(value)
            arn = (
                f"arn:aws:sqs:{w.region}:{m['account']}:{m['name']}"
                if m
                else f"arn:aws:sqs:{w.region}:{w.account}:*"
            )
            by_resource.setdefault(("SQS", arn), []).append(action)
        else:
            by_resource.setdefault((_SID.get(c.service, c.service.capitalize()), "*"), []).append(
                action
            )
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (kind, arn), acts in by_resource.items():
        groups.setdefault((kind, tuple(sorted(set(acts)))), []).append(arn)
    count: dict[str, int] = {}
    for (kind, group_actions), arns in sorted(groups.items()):
        count[kind] = count.get(kind, 0) + 1
        st.append(_stmt(f"{kind}{count[kind]}", list(group_actions), sorted(arns)))
    return _doc(st)
