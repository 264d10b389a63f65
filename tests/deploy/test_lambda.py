"""Promotion to Lambda (moto server): every function together, or none.

Gate decisions are real (the Rego policy over Evidence documents); the Lambda API is moto's
over HTTP. Faults are injected by wrapping the boto3 client, never the code under test.
Known moto deviations are avoided: after a failed promotion we check each alias's version
and `$LATEST`'s image (moto reports the newest image for old versions too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError

from release.deploy.lambda_ import LambdaTarget, validate_routing
from release.digest import parse_reference
from release.errors import ConfigError, GateDenied, RemoteError, UsageError
from release.ledger import open_ledger
from release.promote import promote, rollback, status
from tests.deploy.conftest import (
    ECR,
    FUNCTIONS,
    HANDLERS,
    boto,
    cli_env,
    digest_of,
    file_provider,
    promotion_project,
    run_gated,
    set_alarm,
)
from tests.fixtures.tools import run_cli

pytestmark = pytest.mark.aws

OLD, NEW = digest_of("a"), digest_of("b")


class Faulty:
    """A boto3 Lambda client that fails `op` once for `function` (the real call is not made)."""

    def __init__(self, client: Any, op: str, function: str) -> None:
        self._client = client
        self._op = op
        self._function = function
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._op:
            return real

        def call(**kw: Any) -> Any:
            if kw.get("FunctionName") == self._function and not self.fired:
                self.fired = True
                raise ClientError(
                    {"Error": {"Code": "ServiceException", "Message": "injected fault"}}, name
                )
            return real(**kw)

        return call


class Reporting:
    """A boto3 Lambda client on which `function` reports `fields` for a while, as real
    Lambda would: on `$LATEST` (`op` "get_function") from our first `update_function_code`
    until the next one (the rollback's), at most `times` polls; on a published version
    (`op` "get_function_configuration" with a Qualifier) for `times` polls. The waiters are
    built on this wrapper (botocore's own waiter model), so they see what it reports."""

    def __init__(
        self, client: Any, op: str, function: str, fields: dict[str, str], times: int = 10**6
    ) -> None:
        self._client = client
        self._op = op
        self._function = function
        self._fields = fields
        self._times = times
        self._updates = 0
        self.faked = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_function_code(self, **kw: Any) -> Any:
        if kw["FunctionName"] == self._function:
            self._updates += 1
        return self._client.update_function_code(**kw)

    def _fake(self, kw: dict[str, Any]) -> bool:
        if kw["FunctionName"] != self._function or self.faked >= self._times:
            return False
        if self._op == "get_function":
            return self._updates == 1 and "Qualifier" not in kw
        return "Qualifier" in kw

    def get_function(self, **kw: Any) -> Any:
        resp = self._client.get_function(**kw)
        if self._op == "get_function" and self._fake(kw):
            self.faked += 1
            resp["Configuration"].update(self._fields)
        return resp

    def get_function_configuration(self, **kw: Any) -> Any:
        resp = self._client.get_function_configuration(**kw)
        if self._op == "get_function_configuration" and self._fake(kw):
            self.faked += 1
            resp.update(self._fields)
        return resp

    def get_waiter(self, name: str) -> Any:
        import botocore.session
        from botocore.waiter import create_waiter_with_client

        model = botocore.session.get_session().get_waiter_model("lambda")
        [camel] = [w for w in model.waiter_names if xform_name(w) == name]
        return create_waiter_with_client(camel, model, self)


def _state() -> dict[str, tuple[str, str, list[str]]]:
    """function -> (alias version, $LATEST image, $LATEST command)."""
    lam = boto("lambda")
    out = {}
    for fn in FUNCTIONS.values():
        alias = lam.get_alias(FunctionName=fn, Name="live")["FunctionVersion"]
        f = lam.get_function(FunctionName=fn)
        out[fn] = (
            alias,
            f["Code"]["ImageUri"],
            f["Configuration"]["ImageConfigResponse"]["ImageConfig"]["Command"],
        )
    return out


def test_promote_moves_every_function_then_rollback(
    lambdas: dict[str, str], tmp_path: Path
) -> None:
    cfg = promotion_project(tmp_path, NEW, OLD)
    before = _state()
    res = promote(cfg, parse_reference(NEW), "prod", file_provider, actor="ci")
    after = _state()
    for name, fn in FUNCTIONS.items():
        assert after[fn] == ("2", f"{ECR}@{NEW}", [HANDLERS[name]]), fn
        assert before[fn][0] == "1"
        pub = boto("lambda").get_function_configuration(FunctionName=fn, Qualifier="2")
        assert pub["Description"] == f"release {NEW}"
    assert res.reference == f"{ECR}@{NEW}" and res.previous is None
    assert {f.name: f.version for f in res.functions} == {n: "2" for n in FUNCTIONS}
    led = open_ledger(cfg)
    actions = [e.action for e in led.events(env="prod")]
    assert actions == (
        ["gate", "promote.start"]
        + ["deploy.update"] * 3
        + ["deploy.publish"] * 3
        + ["deploy.alias"] * 3
        + ["promote"]
    )
    assert led.current("prod").digest == NEW
    st = status(cfg, "prod")
    assert st.drift == () and {f.version for f in st.functions} == {"2"}

    # a second promotion, then roll back to NEW
    promote(cfg, parse_reference(f"{ECR}@{OLD}"), "prod", file_provider, actor="ci")
    assert {v[0] for v in _state().values()} == {"3"}
    rb = rollback(cfg, "prod", file_provider, actor="ci")
    assert (rb.action, rb.digest, rb.previous) == ("rollback", NEW, OLD)
    assert {v[1] for v in _state().values()} == {f"{ECR}@{NEW}"}
    assert led.current("prod").action == "rollback"
    assert led.verify_chain().ok

    # an alias moved behind the ledger's back is drift
    boto("lambda").update_alias(FunctionName="ma-scorer", Name="live", FunctionVersion="1")
    st = status(cfg, "prod")
    assert st.drift == (
        "ma-scorer: alias points at version 1, the ledger says 4",
        f"ma-scorer: version 1 (100% of requests) runs {OLD}, not the live digest {NEW}",
    )


@pytest.mark.parametrize(
    "op",
    ["update_function_code", "update_function_configuration", "publish_version", "update_alias"],
)
@pytest.mark.parametrize("function", ["ma-analysis", "ma-remediator", "ma-scorer"])
def test_fault_at_any_step_leaves_every_function_on_the_old_digest(
    lambdas: dict[str, str], tmp_path: Path, op: str, function: str
) -> None:
    cfg = promotion_project(tmp_path, NEW)
    before = _state()
    client = Faulty(boto("lambda"), op, function)
    target = LambdaTarget(cfg, "prod", client=client, poll_seconds=0.05)
    with pytest.raises(RemoteError) as info:
        promote(cfg, parse_reference(NEW), "prod", file_provider, target=target, actor="ci")
    assert client.fired
    step = {
        "update_function_code": "update-code",
        "update_function_configuration": "update-config",
        "publish_version": "publish",
        "update_alias": "alias",
    }[op]
    assert info.value.exit_code == 3
    assert info.value.message == (
        f"lambda {step} failed for {function}: ServiceException: injected fault; "
        "every function was put back on its previous version"
    )
    assert _state() == before
    led = open_ledger(cfg)
    events = led.events(env="prod")
    assert events[-1].action == "promote.failed"
    assert events[-1].evidence["error"] == info.value.message
    assert led.current("prod") is None
    assert led.verify_chain().ok


def test_a_failed_update_is_named_and_rolled_back(lambdas: dict[str, str], tmp_path: Path) -> None:
    """Lambda reports the code update Failed (and keeps saying so until the next update,
    which the rollback makes): the step fails with Lambda's reason, everything goes back."""
    cfg = promotion_project(tmp_path, NEW)
    before = _state()
    reason = "The image manifest or layer media type is not supported."
    fields = {"LastUpdateStatus": "Failed", "LastUpdateStatusReason": reason}
    client = Reporting(boto("lambda"), "get_function", "ma-remediator", fields)
    target = LambdaTarget(cfg, "prod", client=client, poll_seconds=0.05)
    with pytest.raises(RemoteError) as info:
        promote(cfg, parse_reference(NEW), "prod", file_provider, target=target, actor="ci")
    assert info.value.message == (
        f"lambda update-code failed for ma-remediator: update failed: {reason}; "
        "every function was put back on its previous version"
    )
    assert client.faked >= 2  # our wait, and the rollback's wait before it overwrites
    assert _state() == before


def test_an_update_still_in_progress_at_the_timeout_fails(
    lambdas: dict[str, str], tmp_path: Path
) -> None:
    """timeout 0.2 s polled every 0.05 s: the waiter polls exactly 4 times, then gives up."""
    cfg = promotion_project(tmp_path, NEW)
    before = _state()
    client = Reporting(
        boto("lambda"), "get_function", "ma-scorer", {"LastUpdateStatus": "InProgress"}, times=4
    )
    target = LambdaTarget(cfg, "prod", client=client, poll_seconds=0.05, timeout_seconds=0.2)
    with pytest.raises(RemoteError) as info:
        promote(cfg, parse_reference(NEW), "prod", file_provider, target=target, actor="ci")
    assert info.value.message == (
        "lambda update-code failed for ma-scorer: still InProgress/Active after 0.2s; "
        "every function was put back on its previous version"
    )
    assert client.faked == 4
    assert _state() == before


def test_a_pending_published_version_is_waited_for(lambdas: dict[str, str], tmp_path: Path) -> None:
    cfg = promotion_project(tmp_path, NEW)
    client = Reporting(
        boto("lambda"), "get_function_configuration", "ma-analysis", {"State": "Pending"}, times=3
    )
    target = LambdaTarget(cfg, "prod", client=client, poll_seconds=0.05)
    promote(cfg, parse_reference(NEW), "prod", file_provider, target=target, actor="ci")
    assert client.faked == 3  # three Pending answers, then Active: promoted
    assert open_ledger(cfg).current("prod") is not None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (
            lambda d: {
                **d,
                "signatures": {k: v for k, v in d["signatures"].items() if k != "provenance"},
            },
            "provenance attestation: missing",
        ),
        (
            lambda d: {
                **d,
                "signatures": {
                    **d["signatures"],
                    "provenance": {
                        **d["signatures"]["provenance"],
                        "ok": False,
                        "reason": "signed by mallory@example.com",
                    },
                },
            },
            "provenance attestation: signed by mallory@example.com",
        ),
        (
            lambda d: {
                **d,
                "canary": {
                    **d["canary"],
                    "ok": False,
                    "passed": False,
                    "reason": "flip rate 0.2 > 0.05",
                },
            },
            "canary: failed (flip rate 0.2 > 0.05)",
        ),
        (
            lambda d: {
                **d,
                "model_layer": {
                    **d["model_layer"],
                    "ok": False,
                    "reason": "changed: onnx/model.onnx",
                },
            },
            "model layer: does not match the lock (changed: onnx/model.onnx)",
        ),
        (lambda d: {**d, "sbom": {**d["sbom"], "ok": False, "present": False}}, "sbom: missing"),
    ],
    ids=["unsigned", "wrong-identity", "canary-failed", "model-mismatch", "sbom-missing"],
)
def test_denied_promotion_touches_nothing(
    lambdas: dict[str, str], tmp_path: Path, mutate: Any, reason: str
) -> None:
    cfg = promotion_project(tmp_path, NEW, mutate=mutate)
    before = _state()
    with pytest.raises(GateDenied) as info:
        promote(cfg, parse_reference(NEW), "prod", file_provider, actor="ci")
    assert info.value.message == f"gate denied {NEW} for prod: 1 reason"
    assert info.value.details == [reason]
    assert _state() == before
    assert [e.action for e in open_ledger(cfg).events()] == ["gate"]


def test_real_lambda_rules_are_checked_here() -> None:
    from release.deploy.lambda_ import image_uri

    with pytest.raises(ConfigError) as info:
        image_uri("registry.local:5000/app", parse_reference(NEW))
    assert info.value.message.startswith(
        "[image].registry: the lambda target needs an ECR repository"
    )
    with pytest.raises(UsageError, match=r"only numbered versions can take traffic"):
        validate_routing({"$LATEST": 0.1})
    with pytest.raises(UsageError, match=r"outside \[0, 1\]"):
        validate_routing({"2": 1.5})
    assert validate_routing({"2": 0.1}) == {"2": 0.1}


def test_cli_promote_status_rollback(
    lambdas: dict[str, str], tmp_path: Path, aws_env: dict[str, str]
) -> None:
    cfg = promotion_project(tmp_path, NEW, OLD)
    env = cli_env(aws_env)
    r = run_gated(
        "promote",
        NEW,
        "--env",
        "prod",
        "--config",
        tmp_path / "release.toml",
        "--actor",
        "alice",
        env=env,
    )
    assert r.code == 0, r.stderr
    assert r.stdout == NEW + "\n"
    # the promote event's seq is its place in the ledger: the events this test appended
    # (gate, promote.start, one per traffic step, ...) counted up to the promote
    events = open_ledger(cfg).events()
    places = [n for n, e in enumerate(events, start=1) if e.action == "promote"]
    assert len(places) == 1 and events[places[0] - 1].seq == places[0]
    assert f"promoted {NEW} in prod (ledger seq {places[0]})" in r.stderr.splitlines()
    r = run_cli("status", "--env", "prod", "--config", cfg.path, "--json", env=env)
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["digest"], doc["by"], doc["drift"]) == (NEW, "alice", [])
    assert doc["functions"]["scorer"] == {
        "function": "ma-scorer",
        "version": "2",
        "digest": NEW,
        "routing": [
            {"version": "2", "weight": 1.0, "digest": NEW, "command": [HANDLERS["scorer"]]}
        ],
    }
    assert doc["lease"] is None  # released when the promotion ended
    r = run_gated("rollback", "--env", "prod", "--config", cfg.path, env=env)
    assert r.code == 2
    assert (
        r.stderr.splitlines()[0]
        == "release: error: environment 'prod' has no earlier promoted digest to roll back to"
    )
    r = run_gated("promote", "app:v2", "--env", "prod", "--config", cfg.path, env=env)
    assert r.code == 2
    assert r.stderr.splitlines()[0].startswith("release: error: 'app:v2' is not a digest")


# two concurrent promotions meet at an explicit barrier in test_status_lease.py


CANARY_ENV = """alarms = ["ma-errors"]
traffic = { canary_weight = 0.25, bake_seconds = 1 }"""


def test_canary_traffic_then_full_switch(lambdas: dict[str, str], tmp_path: Path) -> None:
    set_alarm("OK")
    cfg = promotion_project(tmp_path, NEW, env_extra=CANARY_ENV)
    seen: list[Any] = []
    from release.deploy.lambda_ import AlarmWatch

    class Recording(AlarmWatch):
        def __call__(self, shifts: list[Any], on_step: Any = None) -> None:
            seen.extend(shifts)
            routing = boto("lambda").get_alias(FunctionName="ma-scorer", Name="live")
            seen.append(
                (routing["FunctionVersion"], routing["RoutingConfig"]["AdditionalVersionWeights"])
            )
            super().__call__(shifts, on_step)

    target = LambdaTarget(cfg, "prod", watch=Recording(["ma-errors"], 1, poll_seconds=0.2))
    promote(cfg, parse_reference(NEW), "prod", file_provider, target=target, actor="ci")
    assert [(s.function, s.old_version, s.new_version, s.weight) for s in seen[:3]] == [
        (fn, "1", "2", 0.25) for fn in sorted(FUNCTIONS.values())
    ]
    assert seen[3] == ("1", {"2": 0.25})
    alias = boto("lambda").get_alias(FunctionName="ma-scorer", Name="live")
    assert alias["FunctionVersion"] == "2"
    assert alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}) == {}
    actions = [e.action for e in open_ledger(cfg).events()]
    assert actions.count("canary.shift") == 3 and "canary.passed" in actions


def test_alarm_during_canary_puts_everything_back(
    lambdas: dict[str, str], tmp_path: Path, aws_env: dict[str, str]
) -> None:
    set_alarm("ALARM")
    cfg = promotion_project(tmp_path, NEW, env_extra=CANARY_ENV)
    before = _state()
    r = run_gated("promote", NEW, "--env", "prod", "--config", cfg.path, env=cli_env(aws_env))
    assert r.code == 1
    assert r.stderr.splitlines()[-1] == (
        "release: error: alarm ma-errors fired during the canary: test says ALARM; "
        "every function was put back on its previous version"
    )
    assert _state() == before
    for fn in FUNCTIONS.values():
        alias = boto("lambda").get_alias(FunctionName=fn, Name="live")
        assert alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}) == {}
    assert open_ledger(cfg).events()[-1].action == "promote.failed"


def test_missing_alarm_is_a_config_error_before_anything_moves(
    lambdas: dict[str, str], tmp_path: Path
) -> None:
    cfg = promotion_project(tmp_path, NEW, env_extra=CANARY_ENV)
    before = _state()
    with pytest.raises(ConfigError) as info:
        promote(cfg, parse_reference(NEW), "prod", file_provider, actor="ci")
    assert info.value.message == (
        "CloudWatch alarm(s) ma-errors named in [environments] alarms do not exist: "
        "create them or fix the names"
    )
    assert _state() == before
