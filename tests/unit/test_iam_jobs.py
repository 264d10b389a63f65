"""`release iam --job NAME` / `--jobs`: each job's policy from the `release` commands its
workflow steps run (the project's .github/workflows/release.yml and the workflow
`release init` writes for the second platform), every command's AWS calls from the table in
release/iam/commands.py - which must grant every boto3 operation the scanner and a sweep of
the package find in the code the command reaches; unknown commands exit 1 naming the job and
step; no `*` but for actions IAM cannot scope; no linter error (parliament)."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.adoption.conftest import INIT
from tests.fixtures.tools import REPO, copy_project, run_cli

ACCOUNT, REGION = "123456789012", "eu-west-1"
REPO_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/platform"
WORKFLOW = REPO / ".github" / "workflows" / "release.yml"

#: every option that adds AWS calls is on: ECR registry and base, DynamoDB ledger, KMS
#: signing by alias and verification by key id, ECR scan findings, alarms, a live canary,
#: an environment chain (prod after staging: staging's alarms and their history), a
#: pre-traffic check of analysis (its versions invoked)
CONFIG = f"""
[model]
path = "model/examples/sst2-tiny"
[image]
base = "{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/base@sha256:{"0" * 64}"
registry = "{REPO_URI}"
[functions]
scorer = "handlers.scorer.lambda_handler"
analysis = "handlers.analysis.lambda_handler"
[signing]
mode = "awskms:alias/release"
[gate]
vulnerabilities = "ecr"
[canary.pretraffic.functions.analysis]
event = '{{"text": "{{input}}"}}'
[environments.prod]
target = "lambda"
alias = "live"
functions = {{ scorer = "ma-scorer", analysis = "ma-analysis" }}
alarms = ["ma-errors"]
after = "staging"
soak = "1h"
guard = {{ topic = "arn:aws:sns:{REGION}:{ACCOUNT}:drift", rollback = true }}
[environments.staging]
target = "lambda"
alias = "next"
alarms = ["st-errors"]
functions = {{ scorer = "st-scorer", analysis = "st-analysis" }}
[ledger]
url = "dynamodb:release-ledger"
"""

FN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/release-ledger"
ECR_REPO = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/platform"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = copy_project(tmp_path_factory.mktemp("jobs") / "p")
    (p / "release.toml").write_text(CONFIG)
    (p / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(WORKFLOW, p / ".github" / "workflows")
    return p


def iam(cwd: Path, *args: str) -> Any:
    r = run_cli("iam", *args, cwd=cwd)
    assert r.code == 0, r.stderr
    return json.loads(r.stdout)


def grants(doc: dict[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in doc["Statement"]:
        assert s["Effect"] == "Allow"
        res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        for a in s["Action"]:
            out.setdefault(a, set()).update(res)
    return out


# --- the workflow's commands ------------------------------------------------------------------
def test_the_commands_each_job_runs_are_read_from_its_steps(project: Path) -> None:
    doc = iam(project, "--jobs", "--json")
    assert list(doc) == ["build", "attest", "canary", "promote"]
    ran = {job: [c["command"] for c in d["commands"]] for job, d in doc.items()}
    assert ran["build"] == [
        "release model fetch --dest .release/model/ci",
        "release model verify .release/model/ci",
        "release build",
    ]
    # $RELEASE_ENV from the workflow's env:, $DIGEST (a job output) left as it is
    assert ran["canary"][0] == "release canary $DIGEST --env prod -o canary-report.json"
    assert ran["promote"] == [
        "release gate $DIGEST --env prod",
        "release promote $DIGEST --env prod --json",
        "release attest $DIGEST --signer sigstore --only none --predicate promotion promotion.json",
        "release status --env prod",  # `2>&1 || true` is not an argument
        "release audit --env prod --digest $DIGEST --format md",
        "release audit --env prod --digest $DIGEST --format html -o audit.html",
    ]
    assert [c["subcommand"] for c in doc["build"]["commands"]] == [
        "model fetch",
        "model verify",
        "build",
    ]


def test_shell_forms(tmp_path: Path) -> None:
    from release.iam.workflow import commands

    script = """
    ref=$(release build --push "$REPO")
    echo "release is not run here"; release -v gate "$D" --env prod && release promote "$D" \\
      --env prod > out.json 2>&1 || status=$?
    if [ -s x ]; then release attest "$D" --only none --predicate canary x; fi
    RELEASE_ENV=staging release status
    # release rollback --env prod
    releases=3 ./release-notes release
    """
    assert commands(script) == [
        ("build", "--push", "$REPO"),
        ("-v", "gate", "$D", "--env", "prod"),
        ("promote", "$D", "--env", "prod"),
        ("attest", "$D", "--only", "none", "--predicate", "canary", "x"),
        ("status",),
    ]


# --- scoping ----------------------------------------------------------------------------------
def test_the_promote_role_is_the_environments_functions_alias_and_table(project: Path) -> None:
    doc = iam(project, "--job", "promote")
    g = grants(doc)
    prod = {FN + "ma-scorer", FN + "ma-analysis"}
    for action in (
        "lambda:UpdateFunctionCode",
        "lambda:UpdateFunctionConfiguration",
        "lambda:PublishVersion",
        "lambda:UpdateAlias",
        "lambda:CreateAlias",
        "lambda:DeleteAlias",
        "lambda:GetAlias",
    ):
        assert g[action] == prod, action
    assert g["lambda:GetFunction"] == prod | {f + ":*" for f in prod}
    assert not any(":function:st-" in r for rs in g.values() for r in rs)
    assert g["dynamodb:PutItem"] == g["dynamodb:Query"] == {TABLE}
    assert "dynamodb:CreateTable" not in g
    # the pre-traffic check invokes analysis' new and live versions, nothing else
    assert g["lambda:InvokeFunction"] == {FN + "ma-analysis:*"}
    alarm = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"
    # its own alarms (the live canary), and staging's with their history (prod's chain)
    assert g["cloudwatch:DescribeAlarms"] == {alarm + "ma-errors", alarm + "st-errors"}
    assert g["cloudwatch:DescribeAlarmHistory"] == {alarm + "st-errors"}
    assert g["ecr:PutImage"] == g["ecr:DescribeImageScanFindings"] == {ECR_REPO}
    # the only `*`: actions without a resource type in the shipped IAM data
    starred = {a for a, rs in g.items() if "*" in rs}
    assert starred == {
        "ecr:GetAuthorizationToken",
        "cloudwatch:GetMetricData",
        "cloudwatch:ListMetrics",
    }
    from release.iam import awsmodel

    assert all(awsmodel.resource_types(a) == [] for a in starred)
    # --env moves every command of the job to that environment's functions and alias
    g2 = grants(iam(project, "--job", "promote", "--env", "staging"))
    assert g2["lambda:UpdateAlias"] == {FN + "st-scorer", FN + "st-analysis"}
    # staging's own alarms (its live canary); no history: staging has no `after`
    assert g2["cloudwatch:DescribeAlarms"] == {alarm + "st-errors"}
    assert "cloudwatch:DescribeAlarmHistory" not in g2


def test_jobs_get_only_what_their_commands_call(project: Path) -> None:
    doc = {j: grants(d) for j, d in iam(project, "--jobs").items()}
    base = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/base"
    assert doc["build"]["ecr:PutImage"] == {ECR_REPO}
    assert base in doc["build"]["ecr:BatchGetImage"] and base not in doc["build"]["ecr:PutImage"]
    for job in ("build", "attest", "canary"):
        assert not any(a.startswith("lambda:") for a in doc[job]), job
        assert "dynamodb:PutItem" not in doc[job], job
    # the canary job reads the ledger (the live digest's report is the baseline), never writes
    assert doc["canary"]["dynamodb:Query"] == {TABLE}
    # signing in the attest and canary jobs is keyless (--signer sigstore): verification only
    assert "kms:Sign" not in doc["attest"] and "kms:Sign" not in doc["canary"]
    assert "kms:Sign" in doc["promote"]  # `release promote` signs with [signing].mode


def test_options_that_change_the_calls(project: Path, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yml"
    zeros = "0" * 64
    wf.write_text(
        f"""
on: push
jobs:
  oci:
    runs-on: x
    steps:
      - run: release build --push oci:.release/registry --base oci:base@sha256:{zeros}
  other-ecr:
    runs-on: x
    steps:
      - run: release build --push={ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/other
  ledgerless:
    runs-on: x
    env:
      RELEASE_ENV: staging
    steps:
      - run: release status
      - run: release canary "$D" --baseline report.json
"""
    )
    doc = iam(project, "--jobs", "--workflow", str(wf))
    assert doc["oci"]["Statement"] == []  # no AWS call at all
    other = grants(doc["other-ecr"])
    assert other["ecr:PutImage"] == {f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/other"}
    # release status in staging (RELEASE_ENV from the job): its alias and versions, read only
    st = grants(doc["ledgerless"])
    assert st["lambda:GetAlias"] == {FN + "st-scorer", FN + "st-analysis"}
    assert st["lambda:GetFunction"] == {FN + "st-scorer:*", FN + "st-analysis:*"}
    assert not any(a in st for a in ("lambda:UpdateAlias", "dynamodb:PutItem", "kms:Sign"))


def test_unknown_commands_exit_1_naming_job_and_step(project: Path, tmp_path: Path) -> None:
    wf = tmp_path / "wf.yml"
    wf.write_text(
        """
on: push
jobs:
  deploy:
    runs-on: x
    steps:
      - name: readiness
        run: release readiness --env nowhere
      - run: release frobnicate && release promote "$D" --env prod
      - name: no env
        run: release status --env "${{ inputs.env }}"
"""
    )
    r = run_cli("iam", "--job", "deploy", "--workflow", wf, cwd=project)
    assert r.code == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith(
        "release: error: release iam --job: 3 release command(s) not mapped to AWS calls "
        "(job deploy, step 'readiness': release readiness --env nowhere: "
        "no [environments.nowhere]); give --allow-unresolved"
    )
    assert (
        "job deploy, step 'step 2': release frobnicate: `release frobnicate` is not in"
        in (lines[1])
    )
    assert lines[2].endswith(
        "job deploy, step 'no env': release status --env ${{ inputs.env }}: "
        "release status without an environment: give --env ENV"
    )
    # --allow-unresolved: the policy of what is mapped, each unmapped command on stderr
    r = run_cli("iam", "--job", "deploy", "--workflow", wf, "--allow-unresolved", cwd=project)
    assert r.code == 0
    assert "lambda:UpdateAlias" in grants(json.loads(r.stdout))
    assert r.stderr.count("release: not mapped (allowed): job deploy") == 3
    # [readiness].gate: the gate's readiness reads are not mapped either
    cfg = project / "readiness.toml"
    cfg.write_text(CONFIG + "[readiness]\ngate = true\n")
    r = run_cli("iam", "--config", cfg, "--job", "promote", cwd=project)
    assert r.code == 1 and "[readiness].gate = true" in r.stderr
    r = run_cli("iam", "--job", "promote", "--workflow", tmp_path / "none.yml", cwd=project)
    assert r.code == 2 and "no workflow" in r.stderr


def test_review_jobs_readiness_guard_pipeline_base(project: Path, tmp_path: Path) -> None:
    """`release readiness` reads the functions behind the alias, their triggers, queues,
    alarms, repository and the ledger - nothing that writes; `guard check` in a job is
    the guard's own calls without its Lambda log writes; `guard rules` and `base` call
    nothing; `pipeline` is build + attest + canary + promote."""
    wf = tmp_path / "wf.yml"
    wf.write_text(
        """
on: push
jobs:
  review:
    runs-on: x
    steps:
      - run: release readiness --env prod -o readiness.md
  guard:
    runs-on: x
    steps:
      - run: release guard check --env prod && release guard rules --env prod
  base:
    runs-on: x
    steps:
      - run: release base --rootfs rootfs.tar
  all:
    runs-on: x
    steps:
      - run: release pipeline --env prod
"""
    )

    def job(name: str) -> dict[str, Any]:
        r = run_cli("iam", "--job", name, "--workflow", wf, cwd=project)
        assert r.code == 0, r.stderr
        return dict(json.loads(r.stdout))

    review = job("review")
    by_sid = {s["Sid"]: s for s in review["Statement"]}
    fns = [f"{FN}ma-analysis", f"{FN}ma-scorer"]
    assert by_sid["ReadinessFunctions"]["Resource"] == [f + ":live" for f in fns]
    assert by_sid["ReadinessConcurrency"]["Resource"] == fns
    assert by_sid["ReadinessQueues"]["Resource"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:*"
    assert by_sid["ReadinessAlarms"]["Action"] == ["cloudwatch:DescribeAlarms"]
    assert "ecr:DescribeRepositories" in by_sid["ReadinessRepository"]["Action"]
    assert by_sid["Ledger"]["Resource"] == TABLE
    acts = set(grants(review))
    writes = ("Put", "Update", "Delete", "Publish", "Create", "Invoke", "Send")
    assert not [a for a in acts if a.split(":")[1].startswith(writes)], acts

    guard = set(grants(job("guard")))
    assert {
        "lambda:GetAlias",
        "lambda:ListVersionsByFunction",
        "sns:Publish",
        "lambda:UpdateAlias",
    } <= guard
    assert not any(a.startswith("logs:") for a in guard)  # a job writes no Lambda logs
    assert job("base")["Statement"] == []
    everything = grants(job("all"))
    for command in ("release build", "release attest", "release promote D --env prod"):
        for action, resources in grants(job_policy_of(project, tmp_path, command)).items():
            assert resources <= everything.get(action, set()), (command, action)


def job_policy_of(project: Path, tmp_path: Path, command: str) -> dict[str, Any]:
    wf = tmp_path / f"one-{command.split()[1]}.yml"
    wf.write_text(f"on: push\njobs:\n  one:\n    runs-on: x\n    steps:\n      - run: {command}\n")
    r = run_cli("iam", "--job", "one", "--workflow", wf, cwd=project)
    assert r.code == 0, r.stderr
    return dict(json.loads(r.stdout))


def test_no_linter_error_in_any_job_policy(project: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # parliament imports pkg_resources
        from parliament import analyze_policy_string

    for env in ("prod", "staging"):
        for job, doc in iam(project, "--jobs", "--env", env).items():
            findings = analyze_policy_string(json.dumps(doc)).findings
            assert [(f.issue, f.detail) for f in findings] == [], (env, job)


# --- the second platform, with the workflow `release init` writes -------------------------------
TICKETS_PROD = f"""
[model]
path = "ml/urgency"
lock = "ml/urgency.lock.json"
[image]
base = "{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/lambda-python@sha256:{"1" * 64}"
registry = "{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tickets"
[code]
package = "svc"
[functions]
classify = "svc.classify.handler"
health = "svc.health.handler"
[signing]
mode = "sigstore"
identity = "https://github.com/acme/tickets/.github/workflows/release.yml@refs/heads/main"
issuer = "https://token.actions.githubusercontent.com"
[environments.prod]
target = "lambda"
region = "{REGION}"
alias = "live"
functions = {{ classify = "tickets-classify", health = "tickets-health" }}
[ledger]
url = "dynamodb:tickets-ledger"
"""


def test_the_second_platforms_init_workflow(tmp_path: Path) -> None:
    p = tmp_path / "tickets"
    shutil.copytree(
        REPO / "tests" / "platforms" / "tickets", p, ignore=shutil.ignore_patterns("__pycache__")
    )
    subprocess.run(["git", "init", "-q"], cwd=p, check=True)
    (p / "release.prod.toml").write_text(TICKETS_PROD)
    r = run_cli(
        *INIT, "--action-ref", f"acme/release@{'a' * 40}", "--ci-config", "release.prod.toml", cwd=p
    )
    assert r.code == 0, r.stderr
    assert (p / ".github" / "workflows" / "release.yml").is_file()
    doc = iam(p, "--config", "release.prod.toml", "--jobs", "--json")
    assert list(doc) == ["build", "attest", "canary", "promote"]
    assert all(c["problem"] is None for d in doc.values() for c in d["commands"] if "problem" in c)
    promote = grants(doc["promote"]["policy"])
    fns = {FN + "tickets-classify", FN + "tickets-health"}
    assert promote["lambda:UpdateAlias"] == promote["lambda:UpdateFunctionCode"] == fns
    assert promote["dynamodb:PutItem"] == {
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/tickets-ledger"
    }
    tickets_repo = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/tickets"
    assert grants(doc["build"]["policy"])["ecr:PutImage"] == {tickets_repo}
    # keyless signing: no KMS anywhere; nothing but the unscopable actions on `*`
    for job, d in doc.items():
        g = grants(d["policy"])
        assert not any(a.startswith("kms:") for a in g), job
        assert {a for a, rs in g.items() if "*" in rs} <= {
            "ecr:GetAuthorizationToken",
            "cloudwatch:GetMetricData",
            "cloudwatch:ListMetrics",
        }, job


# --- the table against the code -----------------------------------------------------------------
def _granted_by_every_command(project: Path) -> dict[str, set[str]]:
    """command -> the actions its entry grants with every AWS option on (CONFIG)."""
    from release import config
    from release.iam import commands as cmds
    from release.iam.jobs import where

    cfg = config.load(project / "release.toml")
    out = {}
    for name, c in cmds.COMMANDS.items():
        ctx = cmds.Ctx(cfg, "prod", where(cfg, "prod", None), {"--signer": cfg.signing.mode}, ())
        out[name] = {a for g in c.needs(ctx) for a in g.actions}
    return out


def test_the_table_grants_every_call_the_scanner_finds(project: Path) -> None:
    """From each command's CLI function, the scanner (release/iam/scan.py, following the
    imports its functions make) finds boto3 calls and boto3 objects it cannot follow: the
    command grants each call's action, and some action of each object's service."""
    from release.iam import awsmodel
    from release.iam import commands as cmds
    from release.iam.scan import Scanner

    granted = _granted_by_every_command(project)
    seen_calls = 0
    for name, c in cmds.COMMANDS.items():
        module, func = c.entry.split(":")
        s = Scanner(REPO, "release", local_imports=True)
        s.scan_module(module, func)
        assert (module, func) in s._scanned and s.modules[module] is not None, c.entry
        assert func in s.modules[module].defs, f"{c.entry}: no such function"  # type: ignore[union-attr]
        for call in s.calls:
            for action in awsmodel.iam_actions(call.service, call.op) or ():
                seen_calls += 1
                assert action in granted[name] or action in c.not_called, (
                    f"release {name}: {call.file}:{call.line} calls {action}, not in its table"
                )
        for f in s.findings:
            prefix = awsmodel.iam_prefix(f.service) if f.service else None
            assert prefix, f"release {name}: {f.file}:{f.line}: {f.what}: {f.why}"
            assert any(a.startswith(prefix + ":") for a in granted[name]), (
                f"release {name}: {f.file}:{f.line}: {f.what} but it grants no {prefix}: action"
            )
    assert seen_calls >= 3  # the scanner does reach boto3 in release's own code


def _services_made(tree: ast.Module) -> set[str]:
    """The services a module makes boto3 clients of: `boto3.client("S")`, or a name a
    comprehension takes from a tuple of literals."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "boto3.client" and node.args:
            a = node.args[0]
            if isinstance(a, ast.Constant) and isinstance(a.value, str):
                out.add(a.value)
        if isinstance(node, (ast.GeneratorExp, ast.ListComp)) and "boto3.client(" in ast.unparse(
            node.elt
        ):
            for gen in node.generators:
                if isinstance(gen.iter, (ast.Tuple, ast.List)):
                    out |= {e.value for e in gen.iter.elts if isinstance(e, ast.Constant)}
    return out


def test_every_boto3_operation_in_the_package_is_in_the_table(project: Path) -> None:
    """A sweep the scanner's value analysis cannot miss: in every module of release/ that
    makes a boto3 client, each operation of that service it names - a method call
    `.op(...)`, a multi-word string `"op_name"` (a method picked at run time), a waiter or
    paginator - is an IAM action some command of the table grants or lists as not called.
    A new AWS call anywhere in the tool fails here until the table says who makes it."""
    from botocore import xform_name

    from release import config
    from release.iam import awsmodel
    from release.iam import commands as cmds
    from release.iam.jobs import guard_grants

    granted = set().union(*_granted_by_every_command(project).values())
    # the drift guard (release/guard, a Lambda function of its own) is declared as data
    cfg = config.load(project / "release.toml")
    granted |= {a for g in guard_grants(cfg, "prod") for a in g.actions}
    accounted = granted | {op for c in cmds.COMMANDS.values() for op in c.not_called}
    found: dict[str, str] = {}
    for path in sorted((REPO / "release").rglob("*.py")):
        if path.parent.name == "iam":
            continue  # botocore's models, no calls
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for service in _services_made(tree):
            model = awsmodel.service_model(service)
            assert model is not None, service
            ops = {xform_name(op): op for op in model.operation_names}
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    if node.func.attr in ops:
                        names.append(node.func.attr)
                    if node.func.attr in ("get_waiter", "get_paginator") and node.args:
                        a = node.args[0]
                        if isinstance(a, ast.Constant) and isinstance(a.value, str):
                            op = (
                                awsmodel.waiter_operation(service, a.value)
                                if node.func.attr == "get_waiter"
                                else ops.get(a.value)
                            )
                            if op:
                                names.append(xform_name(op))
                elif (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and "_" in node.value
                    and node.value in ops
                ):
                    names.append(node.value)
                for n in names:
                    for action in awsmodel.iam_actions(service, ops[n]) or ():
                        found[action] = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
    assert len(found) >= 20, found  # it does see the tool's calls
    missing = {a: w for a, w in found.items() if a not in accounted}
    assert missing == {}
