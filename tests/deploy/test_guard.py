"""The drift guard on moto (Lambda, DynamoDB ledger, SNS -> SQS, EventBridge) with real
signed evidence: a digest promoted through the gate, its promotion statement and build
attestations signed with the project's key and stored as OCI referrers.

A console-style deployment (update-function-code to an unsigned image, publish-version,
update-alias) is caught from the one CloudTrail event EventBridge delivers for it, the
alarm read back from an SQS queue subscribed to the topic, and undone when rollback is on.

moto's ECR serves Lambda's image lookups but not the OCI referrers API, so the signed
bundles live in an OCI layout holding the same manifest; the guard is handed that
registry as a Python argument (its default opens the promoted reference's repository).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from release.attest import sign
from release.config import load
from release.digest import parse_reference
from release.evidence import CANARY, PREDICATES
from release.guard import Guard, check, last_check, rules
from release.guard.handler import handle
from release.image.layout import LayoutRegistry
from release.image.oci import OCI_CONFIG, OCI_MANIFEST, digest_of
from release.ledger import open_ledger
from release.promote import attest_promotion, promote
from tests.deploy.conftest import (
    ACCOUNT,
    ECR,
    FUNCTIONS,
    NO_CANARY,
    REGION,
    aliases,
    boto,
    file_provider,
    good_evidence,
    put_evidence,
    write_config,
)

pytestmark = pytest.mark.aws

TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:release-guard"
SCORER = FUNCTIONS["scorer"]
ANALYSIS = FUNCTIONS["analysis"]


def _image(layout: LayoutRegistry, tag: str) -> str:
    """An image manifest in the layout and in moto's ECR (same bytes, same digest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    layout.put_blob(config, digest_of(config))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [],
        }
    ).encode()
    d = layout.put_manifest(manifest, OCI_MANIFEST)
    boto("ecr").put_image(
        repositoryName="app", imageManifest=manifest.decode(), imageDigest=d, imageTag=tag
    )
    return str(d)


def _queue() -> str:
    """An SQS queue subscribed to the guard's topic; its URL."""
    sns, sqs = boto("sns"), boto("sqs")
    assert sns.create_topic(Name="release-guard")["TopicArn"] == TOPIC
    url = sqs.create_queue(QueueName="guard-alarms")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=TOPIC, Protocol="sqs", Endpoint=arn)
    return str(url)


def _alarms(url: str) -> list[dict[str, Any]]:
    msgs = boto("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(json.loads(m["Body"])["Message"]) for m in msgs.get("Messages", [])]


@pytest.fixture
def released(tmp_path: Path, lambdas: dict[str, str]) -> dict[str, Any]:
    """A lambda project whose digest S is promoted to prod through the gate, with a signed
    promotion statement and signed provenance, SBOM and canary attestations."""
    return _release(tmp_path, rollback=True)


def _guard_toml(rollback: bool) -> str:
    return (
        f'{NO_CANARY}\n[environments.prod.guard]\ntopic = "{TOPIC}"\n'
        f"rollback = {'true' if rollback else 'false'}\n\n"
        '[signing]\nmode = "key:keys/signing.pem"\n'
    )


def _release(
    root: Path,
    *,
    rollback: bool,
    promotion_key: str | None = "keys/signing.pem",
    cfg_path: Path | None = None,
) -> dict[str, Any]:
    if cfg_path is None:
        extra = _guard_toml(rollback)
        cfg_path = write_config(root, target="lambda", ledger="dynamodb:ledger", env_extra=extra)
    layout = LayoutRegistry(root / "registry", name="oci:registry")
    signed = _image(layout, "signed")
    unsigned = _image(layout, "unsigned")
    put_evidence(root, good_evidence(signed))
    cfg = load(cfg_path)
    signer = sign.make_signer("key:keys/signing.pem", root)
    res = promote(cfg, parse_reference(f"{ECR}@{signed}"), "prod", file_provider)
    if promotion_key is not None:
        by = sign.make_signer(f"key:{promotion_key}", root)
        attest_promotion(cfg, res, signer=by, registry=layout)
    sign.attest(
        layout,
        res.digest,  # type: ignore[arg-type]
        [
            (PREDICATES["provenance"], {"buildDefinition": {}, "runDetails": {}}),
            (PREDICATES["sbom"], {"bomFormat": "CycloneDX"}),
            (CANARY, {"passed": True}),
        ],
        signer,
    )
    queue = _queue()
    return {
        "cfg": cfg,
        "layout": layout,
        "signed": signed,
        "unsigned": unsigned,
        "queue": queue,
        "versions": {f.target_name: f.version for f in res.functions},
    }


def _guard(r: dict[str, Any]) -> Guard:
    return Guard(r["cfg"], "prod", registry=r["layout"])


def _console_deploy(function: str, digest: str, *, weight: float | None = None) -> str:
    """What someone with the console does: new code, publish, move the alias (all of its
    traffic, or `weight` of it beside the promoted version)."""
    lam = boto("lambda")
    lam.update_function_code(FunctionName=function, ImageUri=f"{ECR}@{digest}")
    lam.get_waiter("function_updated_v2").wait(FunctionName=function)
    version = str(lam.publish_version(FunctionName=function)["Version"])
    if weight is None:
        lam.update_alias(FunctionName=function, Name="live", FunctionVersion=version)
    else:
        current = lam.get_alias(FunctionName=function, Name="live")["FunctionVersion"]
        lam.update_alias(
            FunctionName=function,
            Name="live",
            FunctionVersion=current,
            RoutingConfig={"AdditionalVersionWeights": {version: weight}},
        )
    return version


def cloudtrail(call: str, function: str) -> dict[str, Any]:
    """The event EventBridge delivers for a Lambda API call recorded by CloudTrail."""
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.lambda",
        "account": ACCOUNT,
        "time": "2026-12-07T06:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/console-user",
            },
            "eventSource": "lambda.amazonaws.com",
            "eventName": call,
            "awsRegion": REGION,
            "requestParameters": {"functionName": function, "name": "live"},
            "responseElements": None,
        },
    }


def _ledger_actions(r: dict[str, Any]) -> list[str]:
    return [e.action for e in open_ledger(r["cfg"]).events(env="prod")]


# --- the promoted, signed digest --------------------------------------------------------
def test_promoted_signed_digest_is_ok(released: dict[str, Any]) -> None:
    report = check(_guard(released), trigger="schedule")
    assert report.result == "ok" and report.evidence_ok, report.to_dict()
    assert report.promoted == released["signed"]
    assert set(report.served) == set(FUNCTIONS.values())
    for routes in report.served.values():
        assert [(r["weight"], r["digest"]) for r in routes] == [(1.0, released["signed"])]
    assert _alarms(released["queue"]) == []
    led = open_ledger(released["cfg"])
    last = last_check(led, "prod")
    assert last is not None and last["result"] == "ok" and last["promoted"] == released["signed"]
    [recorded] = [e for e in led.events(env="prod") if e.action == "guard.check"]
    assert last["event"] == recorded.seq and recorded.evidence["result"] == "ok"
    # a steady ok is not news: the note moves on, the chain does not grow
    later = Guard(released["cfg"], "prod", registry=released["layout"], clock=lambda: 2e9)
    assert check(later, trigger="schedule").result == "ok"
    assert [e.action for e in led.events()][-1] == "guard.check"
    assert len(led.events()) == recorded.seq
    again = last_check(led, "prod")
    assert again is not None and again["checked_at"] == "2033-05-18T03:33:20.000000Z"
    assert again["event"] == recorded.seq


# --- a console deployment of an unsigned image -------------------------------------------
def test_console_deploy_is_caught_from_one_event_alarmed_and_undone(
    released: dict[str, Any],
) -> None:
    unsigned = released["unsigned"]
    promoted_version = released["versions"][SCORER]
    rogue = _console_deploy(SCORER, unsigned)
    assert aliases()[SCORER] == (rogue, {})
    before = len(_ledger_actions(released))

    doc = handle(cloudtrail("UpdateAlias20150331", SCORER), _guard(released))

    assert doc["result"] == "drift-undone", doc
    assert doc["trigger"].startswith(f"UpdateAlias20150331 {SCORER} by arn:aws:sts::")
    [finding] = doc["findings"]
    assert finding["function"] == SCORER and finding["kind"] == "digest"
    assert f"version {rogue} (100% of requests) runs {unsigned}" in finding["detail"]
    assert doc["rollbacks"] == [
        {
            "function": SCORER,
            "from": rogue,
            "to": promoted_version,
            "ok": True,
            "detail": f"alias live -> version {promoted_version}",
        }
    ]
    assert aliases()[SCORER] == (promoted_version, {})
    [alarm] = _alarms(released["queue"])
    assert alarm["env"] == "prod" and alarm["result"] == "drift-undone"
    assert alarm["findings"] == doc["findings"]
    assert alarm["served"][SCORER][0]["digest"] == unsigned
    events = open_ledger(released["cfg"]).events(env="prod")[before:]
    assert [e.action for e in events] == ["guard.rollback", "guard.check"]
    rb = events[0]
    assert rb.digest == released["signed"] and rb.evidence["function"] == SCORER
    assert rb.evidence["to"] == promoted_version and unsigned in rb.evidence["from"]
    # the next event finds everything back where the ledger says
    assert check(_guard(released), trigger="schedule").result == "ok"


def test_weighted_alias_to_an_unsigned_version_is_caught(released: dict[str, Any]) -> None:
    """A weighted alias serves two versions: the 10% one runs the unsigned image."""
    rogue = _console_deploy(ANALYSIS, released["unsigned"], weight=0.1)
    promoted_version = released["versions"][ANALYSIS]
    assert aliases()[ANALYSIS] == (promoted_version, {rogue: 0.1})
    doc = handle(cloudtrail("UpdateAlias20150331", ANALYSIS), _guard(released))
    assert [f["detail"] for f in doc["findings"]] == [
        f"version {rogue} (10% of requests) runs {released['unsigned']}, "
        f"the ledger promoted {released['signed']}"
    ]
    assert doc["rollbacks"][0]["ok"] and aliases()[ANALYSIS] == (promoted_version, {})


def test_rollback_off_alarms_only(tmp_path: Path, lambdas: dict[str, str]) -> None:
    r = _release(tmp_path, rollback=False)
    rogue = _console_deploy(SCORER, r["unsigned"])
    doc = handle(cloudtrail("PublishVersion20150331", SCORER), _guard(r))
    assert doc["result"] == "drift" and doc["rollbacks"] == [] and not doc["rollback"]
    assert aliases()[SCORER] == (rogue, {})  # left where the console put it
    [alarm] = _alarms(r["queue"])
    assert alarm["findings"][0]["function"] == SCORER
    assert "guard.rollback" not in _ledger_actions(r)
    assert _ledger_actions(r)[-1] == "guard.check"


def test_promoted_digest_without_a_signed_promotion_statement_is_an_alarm(
    tmp_path: Path, lambdas: dict[str, str]
) -> None:
    """Nothing to roll back to: the promoted digest's own evidence does not verify."""
    r = _release(tmp_path, rollback=True, promotion_key=None)
    doc = handle({"source": "aws.events", "detail-type": "Scheduled Event"}, _guard(r))
    assert doc["result"] == "drift" and not doc["evidence_ok"] and doc["rollbacks"] == []
    [finding] = doc["findings"]
    assert finding["kind"] == "evidence"
    assert finding["detail"].startswith("no signed promotion statement names ledger event")
    assert _alarms(r["queue"])[0]["findings"] == doc["findings"]


def test_a_statement_signed_by_another_key_does_not_count(
    tmp_path: Path, lambdas: dict[str, str]
) -> None:
    """The promotion statement names the right ledger event but is signed by a key the
    config does not trust."""
    r = _release(tmp_path, rollback=True, promotion_key="other/signing.pem")
    doc = handle({"source": "release.guard"}, _guard(r))
    [finding] = doc["findings"]
    assert finding["kind"] == "evidence" and not doc["evidence_ok"]
    assert finding["detail"].endswith("; 0 valid promotion statement(s) stored)")


# --- what the guard ignores or defers -------------------------------------------------
def test_event_for_another_function_is_ignored(released: dict[str, Any]) -> None:
    before = _ledger_actions(released)
    doc = handle(cloudtrail("UpdateFunctionCode20150331v2", "someone-else"), _guard(released))
    assert doc == {"ignored": "UpdateFunctionCode20150331v2 someone-else by " + _arn()}
    assert _ledger_actions(released) == before


def _arn() -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/console-user"


def test_a_promotion_in_progress_is_deferred(released: dict[str, Any]) -> None:
    led = open_ledger(released["cfg"])
    _console_deploy(SCORER, released["unsigned"], weight=0.1)  # as a canary shift looks
    with led.lock("prod"):
        doc = handle(cloudtrail("UpdateAlias20150331", SCORER), _guard(released))
    assert doc["result"] == "deferred" and doc["deferred"].startswith("a promotion holds the lease")
    assert doc["findings"] == [] and _alarms(released["queue"]) == []


def test_an_unknown_event_is_one_error_and_alarmed(released: dict[str, Any]) -> None:
    doc = handle({"detail-type": "Object Created"}, _guard(released))
    assert doc == {
        "env": "prod",
        "ok": False,
        "error": "release guard: unknown event (detail-type 'Object Created')",
    }
    [alarm] = _alarms(released["queue"])
    assert alarm["error"] == doc["error"]


# --- the rules ------------------------------------------------------------------------
def test_rules_deliver_the_calls_on_the_environments_functions(
    released: dict[str, Any],
) -> None:
    """The calls rule, put on moto's EventBridge with an SQS target: the CloudTrail events
    of the three calls on the environment's functions arrive, others do not; what arrives
    is what the guard acts on."""
    [calls, schedule] = rules(released["cfg"], "prod")
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"
    events, sqs = boto("events"), boto("sqs")
    url = sqs.create_queue(QueueName="guard-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name=calls["Name"], EventPattern=json.dumps(calls["EventPattern"]), State="ENABLED"
    )
    events.put_targets(Rule=calls["Name"], Targets=[{"Id": "guard", "Arn": arn}])
    events.put_rule(Name=schedule["Name"], ScheduleExpression=schedule["ScheduleExpression"])
    sent = [
        cloudtrail("UpdateFunctionCode20150331v2", SCORER),
        cloudtrail("UpdateAlias20150331", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{ANALYSIS}"),
        cloudtrail("PublishVersion20150331", FUNCTIONS["remediator"]),
        cloudtrail("UpdateAlias20150331", "someone-else"),
        cloudtrail("GetFunction20150331v2", SCORER),
    ]
    events.put_events(
        Entries=[
            {
                "Source": e["source"],
                "DetailType": e["detail-type"],
                "Detail": json.dumps(e["detail"]),
            }
            for e in sent
        ]
    )
    got = []
    for _ in range(5):
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        got += [json.loads(m["Body"]) for m in msgs.get("Messages", [])]
    names = sorted(
        (g["detail"]["eventName"], g["detail"]["requestParameters"]["functionName"]) for g in got
    )
    assert names == sorted(
        (e["detail"]["eventName"], e["detail"]["requestParameters"]["functionName"])
        for e in sent[:3]
    )
    g = _guard(released)
    assert [handle(ev, g)["result"] for ev in got] == ["ok", "ok", "ok"]


def test_guard_policy_covers_its_calls(released: dict[str, Any]) -> None:
    from release.iam import guard_policy

    doc = guard_policy(released["cfg"], "prod")
    by_sid = {s["Sid"]: s for s in doc["Statement"]}
    assert by_sid["RollBackAliases"]["Action"] == ["lambda:UpdateAlias"]
    # the alias calls are authorised against the function (the shipped IAM data's
    # resource type for lambda:UpdateAlias), and only the environment's functions
    fn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
    assert fn + SCORER in by_sid["RollBackAliases"]["Resource"]
    assert all(
        r.startswith(fn) and r.count(":") == 6 for r in by_sid["RollBackAliases"]["Resource"]
    )
    assert by_sid["Alarm"] == {
        "Sid": "Alarm",
        "Effect": "Allow",
        "Action": ["sns:Publish"],
        "Resource": TOPIC,
    }
    assert by_sid["Ledger"]["Resource"] == f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ledger"


# --- the second platform ------------------------------------------------------------------
def test_the_second_platforms_functions_are_guarded(tmp_path: Path, aws_env: Any) -> None:
    """A platform shaped like tests/platforms/tickets (package svc, functions classify and
    health): its console deployment is caught and undone the same way."""
    from tests.deploy.conftest import push_images

    push_images("a")
    role = boto("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = boto("lambda")
    handlers = {"classify": "svc.classify.handler", "health": "svc.health.handler"}
    for name, handler in handlers.items():
        lam.create_function(
            FunctionName=f"tickets-{name}",
            Role=role,
            PackageType="Image",
            Code={"ImageUri": f"{ECR}@{'sha256:' + 'a' * 64}"},
            ImageConfig={"Command": [handler]},
            Publish=True,
        )
        lam.create_alias(FunctionName=f"tickets-{name}", Name="live", FunctionVersion="1")
    cfg_path = tmp_path / "release.toml"
    cfg_path.write_text(
        f"""
[model]
path = "ml/urgency"
[image]
base = "oci:base@sha256:{"0" * 64}"
registry = "{ECR}"
[code]
package = "svc"
[functions]
classify = "svc.classify.handler"
health = "svc.health.handler"
[environments.prod]
target = "lambda"
functions = {{ classify = "tickets-classify", health = "tickets-health" }}
alias = "live"
{_guard_toml(True)}
[ledger]
url = "dynamodb:tickets-ledger"
"""
    )
    r = _release(tmp_path, rollback=True, cfg_path=cfg_path)
    rogue = _console_deploy("tickets-classify", r["unsigned"])
    doc = handle(cloudtrail("UpdateAlias20150331", "tickets-classify"), _guard(r))
    assert doc["result"] == "drift-undone", doc
    assert [f["function"] for f in doc["findings"]] == ["tickets-classify"]
    assert doc["rollbacks"][0]["from"] == rogue
    assert (
        lam.get_alias(FunctionName="tickets-classify", Name="live")["FunctionVersion"]
        == (r["versions"]["tickets-classify"])
    )
    assert _alarms(r["queue"])[0]["result"] == "drift-undone"


# --- the CLI ------------------------------------------------------------------------------
def test_cli_rules_iam_and_status(released: dict[str, Any]) -> None:
    from tests.fixtures.tools import run_cli

    root = released["cfg"].root
    res = run_cli("guard", "rules", "--env", "prod", cwd=root)
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout) == rules(released["cfg"], "prod")
    res = run_cli("iam", "--function", "release.guard", "--env", "prod", cwd=root)
    assert res.code == 0, res.stderr
    from release.iam import guard_policy

    assert json.loads(res.stdout) == guard_policy(released["cfg"], "prod")
    check(_guard(released), trigger="schedule")
    res = run_cli("status", "--env", "prod", "--json", cwd=root)
    assert res.code == 0, res.stderr
    g = json.loads(res.stdout)["guard"]
    assert (g["result"], g["trigger"], g["findings"]) == ("ok", "schedule", [])
    assert "  guard: ok at " in res.stderr


def test_cli_check_refuses_a_local_environment(tmp_path: Path) -> None:
    from tests.fixtures.tools import run_cli

    write_config(tmp_path)
    res = run_cli("guard", "check", "--env", "prod", cwd=tmp_path)
    assert res.code == 2
    assert res.stderr.strip() == (
        "release: error: release guard: [environments.prod] is a local target; "
        "the guard watches Lambda aliases"
    )


# --- the Lambda entry ---------------------------------------------------------------------
def test_lambda_handler_is_wired_by_its_environment(
    released: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """RELEASE_GUARD_ENV only says which environment to guard (the config is the
    release.toml in the working directory); a call on another function is ignored
    without a ledger event."""
    from release.guard import handler

    monkeypatch.setattr(handler, "_GUARDS", {})
    monkeypatch.delenv("RELEASE_GUARD_ENV", raising=False)
    assert handler.lambda_handler({"source": "aws.events"}, None) == {
        "ok": False,
        "error": "release guard: RELEASE_GUARD_ENV names no environment",
    }
    monkeypatch.chdir(released["cfg"].path.parent)
    monkeypatch.setenv("RELEASE_GUARD_ENV", "prod")
    before = _ledger_actions(released)
    event = cloudtrail("UpdateAlias20150331", "someone-else")
    assert handler.lambda_handler(event, None) == {
        "ignored": "UpdateAlias20150331 someone-else by " + _arn()
    }
    [guard] = handler._GUARDS.values()
    assert handler.lambda_handler(event, None)["ignored"]
    assert list(handler._GUARDS.values()) == [guard]  # kept while warm
    assert _ledger_actions(released) == before
