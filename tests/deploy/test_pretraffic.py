"""The pre-traffic check and the live canary on Lambda executing the image: moto's Lambda API behind the
project's own Runtime API runner (tests/fixtures/lambda_runtime.py: each version's
function configuration - its environment variables, CMD, timeout - runs the image's
code in an execution environment of its own).

The second platform (tests/platforms/tickets: package `svc`, plain boto3, 3 labels) and
the example (handlers/, the analysis function) are promoted from image `sha256:aaaa...`
to `sha256:bbbb...`, which run the same code and model (the offline canary cannot tell
them apart); what differs is the function configuration the new version was published
with.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release.canary import pretraffic as pt
from release.config import load
from release.deploy.lambda_ import LambdaTarget
from release.digest import parse_reference
from release.errors import CanaryFailed
from release.ledger import open_ledger
from release.promote import promote
from tests.deploy.conftest import (
    ECR,
    PROVIDER,
    boto,
    digest_of,
    file_provider,
    good_evidence,
    push_images,
    put_evidence,
)
from tests.fixtures.lambda_runtime import Image, LambdaExecutor
from tests.fixtures.tools import REPO, run_cli_with_provider

TICKETS = REPO / "tests" / "platforms" / "tickets"
OLD, NEW = digest_of("a"), digest_of("b")
TK = {"classify": "tk-classify", "health": "tk-health"}


# --- pure parts ------------------------------------------------------------------------
def test_the_sample_is_seeded_by_the_digest_and_keeps_corpus_order() -> None:
    ids = [f"t{i:04d}" for i in range(500)]
    a = pt.sample(ids, 200, OLD)
    assert len(a) == 200 and a == sorted(a) and len(set(a)) == 200
    assert pt.sample(ids, 200, OLD) == a  # reproducible from the evidence
    assert pt.sample(ids, 200, NEW) != a  # another release, another sample
    assert pt.sample(ids[:50], 200, OLD) == list(range(50))  # a small corpus: all of it


def test_events_and_outputs_from_config() -> None:
    ev = pt.render_event('{"id": "pt-{id}", "text": "{input}", "n": 1}', "x1", "it's down")
    assert ev == {"id": "pt-x1", "text": "it's down", "n": 1}
    # an input object in place, or as JSON text inside a longer string (API Gateway body)
    obj = {"title": "a", "body": "b"}
    assert pt.render_event('{"detail": "{input}"}', "x", obj) == {"detail": obj}
    body = pt.render_event('{"body": "{\\"q\\": {input}}"}', "x", obj)["body"]
    assert json.loads(body) == {"q": obj}
    # a string input in a JSON body: {input_json} quotes and escapes it
    tricky = 'say "hi"\\n'
    body = pt.render_event('{"body": "{\\"text\\": {input_json}}"}', "x", tricky)["body"]
    assert json.loads(body) == {"text": tricky}
    resp = {"statusCode": 200, "body": json.dumps({"results": [{"urgency": "URGENT"}]})}
    assert pt.extract(resp, {"label": "body.results.0.urgency"}) == {"label": "URGENT"}
    assert pt.extract({"label": "A", "confidence": 0.9, "id": "x"}, "") == {
        "label": "A",
        "confidence": 0.9,
    }
    with pytest.raises(LookupError, match="no 'results'"):
        pt.extract({"statusCode": 500}, {"label": "results.0.urgency"})


def test_config_refuses_a_template_without_the_input_and_an_unknown_function(
    tmp_path: Path,
) -> None:
    from release.errors import ConfigError

    for extra, msg in (
        ('[canary.pretraffic.functions.classify]\nevent = \'{"text": "x"}\'', "placeholder"),
        ("[canary.pretraffic.functions.nope]\nevent = '\"{input}\"'", "nope: not in"),
        (
            "[canary.pretraffic.functions.classify]\nevent = '\"{input}\"'\n"
            'output = { urgency = "x" }',
            "names the output fields",
        ),
    ):
        cfg = tmp_path / "release.toml"
        cfg.write_text(_toml(pretraffic=extra))
        with pytest.raises(ConfigError, match=msg):
            load(cfg)


# --- on Lambda (moto + the Runtime API runner) -----------------------------------------------
def _toml(*, pretraffic: str, items: int = 200, traffic: str = "{ bake_seconds = 0 }") -> str:
    fns = ", ".join(f'{k} = "{v}"' for k, v in TK.items())
    return f"""
[model]
path = "ml/urgency"

[image]
base = "oci:base@{digest_of("0")}"
registry = "{ECR}"

[functions]
classify = "svc.classify.handler"
health = "svc.health.handler"

[code]
package = "svc"
predict = "svc.urgency:load"

[canary]
corpus = "data/tickets.jsonl"
output = "label"

[canary.pretraffic]
items = {items}
timeout_seconds = 20

{pretraffic}

[environments.prod]
target = "lambda"
functions = {{ {fns} }}
traffic = {traffic}

[ledger]
url = "sqlite:.release/ledger.db"
"""


CLASSIFY = """[canary.pretraffic.functions.classify]
event = '{"id": "pretraffic-{id}", "text": "{input}"}'
output = { label = "results.0.urgency" }
"""


@pytest.fixture
def tickets(
    aws_env: dict[str, str], moto_url: str, tmp_path: Path, monkeypatch: Any
) -> Iterator[tuple[Path, LambdaExecutor]]:
    """The second platform in moto: its table and queue, its two functions on image
    `aaaa` (alias live -> 1) and the executor as the Lambda endpoint."""
    proj = tmp_path / "tickets"
    shutil.copytree(TICKETS, proj, ignore=shutil.ignore_patterns("__pycache__"))
    # a stale model left in the image next to the live one (what a wrong MODEL_DIR loads)
    stale = proj / "ml" / "urgency-v0"
    shutil.copytree(proj / "ml" / "urgency", stale)
    w = json.loads((stale / "weights.json").read_text())
    w["bias"]["CRITICAL"] = -9.0
    (stale / "weights.json").write_text(json.dumps(w))
    (proj / "release.toml").write_text(_toml(pretraffic=CLASSIFY))
    for d in (OLD, NEW):
        put_evidence(proj, good_evidence(d))
    push_images()
    boto("dynamodb").create_table(
        TableName="tickets",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    queue = boto("sqs").create_queue(QueueName="escalations")["QueueUrl"]
    role = boto("iam").create_role(
        RoleName="tk-role", AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}'
    )["Role"]["Arn"]
    variables = {
        "TICKETS_TABLE": "tickets",
        "ESCALATION_QUEUE_URL": queue,
        "MODEL_DIR": str(proj / "ml" / "urgency"),
    }
    lam = boto("lambda")
    for name, fn in TK.items():
        lam.create_function(
            FunctionName=fn,
            Role=role,
            PackageType="Image",
            Code={"ImageUri": f"{ECR}@{OLD}"},
            ImageConfig={"Command": [f"svc.{name}.handler"]},
            Environment={"Variables": variables},
            Timeout=10,
            MemorySize=512,
            Publish=True,
        )
        lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    image = Image(proj)  # both digests run this code and model
    ex = LambdaExecutor(moto_url, {OLD: image, NEW: image}, aws_env)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", ex.url)
    try:
        yield proj, ex
    finally:
        ex.close()


def _set_env(fn: str, **changes: str | None) -> None:
    """A configuration change on `$LATEST` after the live version was published (what
    the next publish takes along)."""
    lam = boto("lambda")
    cur = lam.get_function_configuration(FunctionName=fn)["Environment"]["Variables"]
    new = {k: v for k, v in {**cur, **changes}.items() if v is not None}
    lam.update_function_configuration(FunctionName=fn, Environment={"Variables": new})
    lam.get_waiter("function_updated_v2").wait(FunctionName=fn)


def _alias_versions() -> dict[str, str]:
    lam = boto("lambda")
    return {
        fn: lam.get_alias(FunctionName=fn, Name="live")["FunctionVersion"] for fn in TK.values()
    }


def test_tickets_same_configuration_passes_and_is_signed_evidence(
    tickets: tuple[Path, LambdaExecutor],
) -> None:
    proj, ex = tickets
    cfg = load(proj / "release.toml")
    res = promote(cfg, parse_reference(f"{ECR}@{NEW}"), "prod", file_provider, actor="t")
    assert _alias_versions() == {"tk-classify": "2", "tk-health": "2"}
    pred = res.predicate()
    got = pred["pretraffic"]
    assert got["passed"] and got["items"] == 200 and got["sample_seed"] == NEW
    one = got["functions"]["classify"]
    assert (one["live"], one["candidate"], one["n"]) == ("1", "2", 200)
    names = {c["name"] for c in one["checks"]}
    assert {"paired-items", "share-shift", "flip-rate"} <= names
    assert "confidence-ks" not in names and "labels only" in one["note"]
    share = next(c for c in one["checks"] if c["name"] == "share-shift")
    assert share["passed"] and "p_value" in share
    # the handler really ran on both versions, 200 times each; health was not invoked
    assert ex.invocations.count(("tk-classify", "2")) == 200
    assert ex.invocations.count(("tk-classify", "1")) == 200
    assert not [i for i in ex.invocations if i[0] == "tk-health"]
    # the predicate is what `attest_promotion` signs: valid against the shipped schema
    from release.attest.statements import load_predicate

    (proj / "promotion.json").write_text(json.dumps(pred))
    assert load_predicate("promotion", proj / "promotion.json")[1]["pretraffic"] == got
    events = open_ledger(cfg).events(env="prod")
    checks = [e for e in events if e.action == "pretraffic.check"]
    assert [e.evidence["passed"] for e in checks] == ["true"]
    assert events[-1].action == "promote" and events[-1].evidence["pretraffic"] == (
        "passed, 200 items"
    )
    # `release verify --env` reads it from the statement naming the promotion
    assert _verify_rows(pred, events) == {
        "pre-traffic": (
            True,
            "1 function(s) invoked on the new version against the live one with 200 corpus "
            "items before any traffic: passed",
        )
    }
    bad = json.loads(json.dumps(pred))
    bad["pretraffic"]["functions"]["classify"]["passed"] = False
    assert _verify_rows(bad, events)["pre-traffic"][0] is False
    assert [e.action for e in events].index("pretraffic.passed") < [e.action for e in events].index(
        "deploy.alias"
    )


def _verify_rows(
    pred: dict[str, Any], events: list[Any], row: str = "pre-traffic"
) -> dict[str, tuple[bool, str]]:
    """The rows `check_promotion` adds about the pre-traffic check (or `row`) for a
    statement that carries `pred` (its signature verified elsewhere:
    tests/e2e/test_evidence.py)."""
    from release.attest.signatures import VerifiedStatement
    from release.claims.checklist import Verification
    from release.claims.promotion import check_promotion
    from release.digest import Reference
    from release.evidence import PROMOTION

    v = Verification(Reference(ECR, NEW), ECR, "prod")
    v.promotions = [VerifiedStatement(PROMOTION, (), pred, "key:test", None, digest_of("9"))]
    check_promotion(v, events)
    assert next(c for c in v.checks if c.name == "promotion statement").ok
    return {c.name: (c.ok, c.detail) for c in v.checks if c.name == row}


def test_tickets_a_configuration_that_changes_the_model_is_caught_before_traffic(
    tickets: tuple[Path, LambdaExecutor],
) -> None:
    """The image is the same (the offline canary of its model and code passes); `$LATEST`
    was re-pointed at the stale model in the image. The candidate version never gets
    traffic: exit 1, promote.failed names the check, every function is put back."""
    proj, ex = tickets
    _set_env("tk-classify", MODEL_DIR=str(proj / "ml" / "urgency-v0"))
    cfg = load(proj / "release.toml")
    assert _offline_canary_passes(proj, cfg)
    r = run_cli_with_provider(PROVIDER, "promote", f"{ECR}@{NEW}", "--env", "prod", cwd=proj)
    assert r.code == 1, r.stderr
    assert "pre-traffic check failed for tk-classify: version 2 against live version 1" in r.stderr
    assert "share-shift" in r.stderr and "CRITICAL" in r.stderr
    assert "every function was put back" in r.stderr
    assert _alias_versions() == {"tk-classify": "1", "tk-health": "1"}
    lam = boto("lambda")
    for fn in TK.values():
        assert lam.get_function(FunctionName=fn)["Code"]["ImageUri"] == f"{ECR}@{OLD}"
        routing = lam.get_alias(FunctionName=fn, Name="live").get("RoutingConfig") or {}
        assert not routing.get("AdditionalVersionWeights")
    events = open_ledger(cfg).events(env="prod")
    failed = [e for e in events if e.action == "promote.failed"]
    assert len(failed) == 1 and "pre-traffic check failed" in failed[0].evidence["error"]
    assert failed[0].evidence["left:classify"] == "tk-classify: version 1 100% " + OLD
    verdict = [e for e in events if e.action == "pretraffic.check"]
    assert (
        verdict[0].evidence["passed"] == "false" and "share-shift" in verdict[0].evidence["failed"]
    )
    assert not any(e.action in ("canary.shift", "deploy.alias", "promote") for e in events)
    assert ex.invocations.count(("tk-classify", "2")) == 200  # ran, but never took traffic


def _offline_canary_passes(proj: Path, cfg: Any) -> bool:
    """The offline canary of the candidate image against the live one: each image's own
    model and code (the same files in both) over the whole corpus, compared with the
    paired checks - it cannot see a function's configuration."""
    from release.canary import checks as ck
    from release.canary import report as rpt
    from release.canary.offline import read_corpus, run_on_model_dir
    from tests.fixtures.tools import run_cli

    r = run_cli("model", "pin", cwd=proj)
    assert r.code == 0, r.stderr
    corpus = read_corpus(proj / "data" / "tickets.jsonl")
    runs = [
        run_on_model_dir(
            proj / "ml" / "urgency",
            cfg.lock_path,
            proj,
            corpus.items,
            predict="svc.urgency:load",
            canary=cfg.canary,
        )
        for _image in (OLD, NEW)
    ]
    live, cand = (rpt.outputs(r.output, r.items) for r in runs)
    got = ck.run_checks(cand, live, rpt.thresholds(cfg.canary))
    assert {"share-shift", "flip-rate", "accuracy-drop"} <= {c.name for c in got}
    return all(c.ok for c in got)


def test_tickets_a_function_error_aborts_and_names_the_item(
    tickets: tuple[Path, LambdaExecutor],
) -> None:
    proj, _ = tickets
    _set_env("tk-classify", TICKETS_TABLE="no-such-table")
    cfg = load(proj / "release.toml")
    with pytest.raises(CanaryFailed) as err:
        promote(cfg, parse_reference(f"{ECR}@{NEW}"), "prod", file_provider, actor="t")
    msg = err.value.message
    assert msg.startswith("pre-traffic check failed for tk-classify: version 2 on item t")
    assert "ResourceNotFoundException" in msg and "every function was put back" in msg
    assert _alias_versions() == {"tk-classify": "1", "tk-health": "1"}


def test_tickets_an_import_failure_and_a_timeout_abort(
    tickets: tuple[Path, LambdaExecutor],
) -> None:
    proj, _ = tickets
    _set_env("tk-classify", TICKETS_TABLE=None)  # the module reads it at import
    cfg = load(proj / "release.toml")
    ref = parse_reference(f"{ECR}@{NEW}")
    with pytest.raises(CanaryFailed, match=r"Runtime\.ImportModuleError|KeyError"):
        promote(cfg, ref, "prod", file_provider, actor="t")
    assert _alias_versions() == {"tk-classify": "1", "tk-health": "1"}
    # a function that cannot answer in time: the version's own timeout (1 s) runs out
    # while it loads a model from a directory that never finishes being read (a FIFO)
    import os

    fifo = proj / "ml" / "slow"
    fifo.mkdir()
    os.mkfifo(fifo / "config.json")
    _set_env("tk-classify", TICKETS_TABLE="tickets", MODEL_DIR=str(fifo))
    boto("lambda").update_function_configuration(FunctionName="tk-classify", Timeout=1)
    with pytest.raises(CanaryFailed, match=r"Sandbox\.Timedout: Task timed out after 1\.00"):
        promote(cfg, ref, "prod", file_provider, actor="t")
    assert _alias_versions() == {"tk-classify": "1", "tk-health": "1"}
    # the function may take 30 s, the check waits [canary.pretraffic].timeout_seconds (2 s)
    boto("lambda").update_function_configuration(FunctionName="tk-classify", Timeout=30)
    (proj / "release.toml").write_text(
        _toml(pretraffic=CLASSIFY).replace("timeout_seconds = 20", "timeout_seconds = 2")
    )
    t0 = time.monotonic()
    with pytest.raises(CanaryFailed, match=r"version \d+ on item t\d+: .*[Tt]imeout") as err:
        promote(load(proj / "release.toml"), ref, "prod", file_provider, actor="t")
    assert time.monotonic() - t0 < 30, err.value.message  # not the function's 30 s
    assert _alias_versions() == {"tk-classify": "1", "tk-health": "1"}


def test_a_first_deployment_invokes_the_new_version_alone(
    tickets: tuple[Path, LambdaExecutor],
) -> None:
    proj, ex = tickets
    lam = boto("lambda")
    for fn in TK.values():
        lam.delete_alias(FunctionName=fn, Name="live")
    r = run_cli_with_provider(
        PROVIDER, "promote", f"{ECR}@{NEW}", "--env", "prod", "--json", cwd=proj
    )
    assert r.code == 0, r.stderr
    assert "pre-traffic: passed (classify; 200 items per version)" in r.stderr
    one = json.loads(r.stdout)["pretraffic"]["functions"]["classify"]
    assert one["live"] is None and one["checks"] == [] and one["n"] == 200
    assert one["note"] == "first deployment: nothing to compare"
    r = run_cli_with_provider(
        PROVIDER, "promote", f"{ECR}@{NEW}", "--env", "prod", "--json", cwd=proj
    )
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["pretraffic"]["functions"]["classify"]["live"] == "2"
    events = open_ledger(load(proj / "release.toml")).events(env="prod")
    first = next(e for e in events if e.action == "pretraffic.check")
    assert (first.evidence["live"], first.evidence["version"]) == ("", "2")
    assert not [i for i in ex.invocations if i[1] == "1"]
    assert _alias_versions() == {"tk-classify": "3", "tk-health": "3"}


def test_a_rollback_invokes_the_earlier_release_alone(
    tickets: tuple[Path, LambdaExecutor],
) -> None:
    """A bad release got in without the check (a config with no [canary.pretraffic]);
    rolling back changes behaviour on purpose: invoked, not compared, so it goes through."""
    from release.promote import rollback

    proj, ex = tickets
    good = load(proj / "release.toml")
    (proj / "off.toml").write_text(_toml(pretraffic=""))
    off = load(proj / "off.toml")
    promote(off, parse_reference(f"{ECR}@{OLD}"), "prod", file_provider, actor="t")
    _set_env("tk-classify", MODEL_DIR=str(proj / "ml" / "urgency-v0"))
    promote(off, parse_reference(f"{ECR}@{NEW}"), "prod", file_provider, actor="t")
    assert ex.invocations == [] and _alias_versions()["tk-classify"] == "3"
    _set_env("tk-classify", MODEL_DIR=str(proj / "ml" / "urgency"))
    res = rollback(good, "prod", file_provider, actor="t")
    assert res.digest == OLD and _alias_versions()["tk-classify"] == "4"
    one = res.predicate()["pretraffic"]["functions"]["classify"]
    assert (one["live"], one["candidate"], one["checks"]) == ("3", "4", [])
    assert one["note"].startswith("rollback:")
    assert {v for _, v in ex.invocations} == {"4"}


def test_target_without_pretraffic_config_invokes_nothing(
    tickets: tuple[Path, LambdaExecutor],
) -> None:
    proj, ex = tickets
    (proj / "release.toml").write_text(_toml(pretraffic=""))
    cfg = load(proj / "release.toml")
    assert LambdaTarget(cfg, "prod").pretraffic is None
    res = promote(cfg, parse_reference(f"{ECR}@{NEW}"), "prod", file_provider, actor="t")
    assert "pretraffic" not in res.predicate() and ex.invocations == []


# --- the example platform ----------------------------------------------------------------------
@pytest.fixture
def example(
    aws_env: dict[str, str], moto_url: str, tmp_path: Path, monkeypatch: Any
) -> Iterator[tuple[Path, LambdaExecutor]]:
    """The example's release.toml (its [canary] and [canary.pretraffic] as shipped) with a
    lambda environment of its analysis function on image `aaaa`, its tables in moto."""
    from tests.handlers.conftest import TABLES, _create_tables

    proj = tmp_path / "example"
    proj.mkdir()
    (proj / "model").symlink_to(REPO / "model")
    text = (
        (REPO / "release.toml")
        .read_text()
        .replace('registry = "oci:.release/registry"', f'registry = "{ECR}"')
    )
    assert "[canary.pretraffic.functions.analysis]" in text
    text += """
[environments.prod]
target = "lambda"
functions = { analysis = "ma-analysis" }
traffic = { bake_seconds = 0 }
"""
    (proj / "release.toml").write_text(text)
    for d in (OLD, NEW):
        put_evidence(proj, good_evidence(d))
    push_images()
    _create_tables(boto("dynamodb"))
    role = boto("iam").create_role(
        RoleName="ex-role", AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}'
    )["Role"]["Arn"]
    lam = boto("lambda")
    lam.create_function(
        FunctionName="ma-analysis",
        Role=role,
        PackageType="Image",
        Code={"ImageUri": f"{ECR}@{OLD}"},
        ImageConfig={"Command": ["handlers.analysis.lambda_handler"]},
        Environment={"Variables": {"ANALYSIS_TABLE": TABLES["ANALYSIS_TABLE"]}},
        Timeout=30,
        MemorySize=2048,
        Publish=True,
    )
    lam.create_alias(FunctionName="ma-analysis", Name="live", FunctionVersion="1")
    # the image: /var/task (handlers/) and its model and lock where the image puts them
    image = Image(
        REPO,
        {
            "MODEL_DIR": str(REPO / "model" / "examples" / "sst2-tiny"),
            "MODEL_LOCK": str(REPO / "model" / "model.lock.json"),
        },
    )
    ex = LambdaExecutor(moto_url, {OLD: image, NEW: image}, aws_env)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", ex.url)
    try:
        yield proj, ex
    finally:
        ex.close()


def test_example_a_token_limit_in_the_configuration_is_caught_before_traffic(
    example: tuple[Path, LambdaExecutor],
) -> None:
    """The same image; `$LATEST` got MAX_TOKENS=8 (the handler truncates what the model
    reads): the candidate's labels move, so it never takes traffic. Without it, the same
    promotion passes with the confidence checks too."""
    proj, ex = example
    _set_env("ma-analysis", MAX_TOKENS="8")
    cfg = load(proj / "release.toml")
    ref = parse_reference(f"{ECR}@{NEW}")
    with pytest.raises(CanaryFailed) as err:
        promote(cfg, ref, "prod", file_provider, actor="t")
    msg = err.value.message
    assert msg.startswith("pre-traffic check failed for ma-analysis: version 2 against live")
    assert "flip-rate" in msg and "every function was put back" in msg
    lam = boto("lambda")
    assert lam.get_alias(FunctionName="ma-analysis", Name="live")["FunctionVersion"] == "1"
    assert ex.invocations.count(("ma-analysis", "2")) == 200
    # the configuration put right: the next promotion passes, on label and confidence
    _set_env("ma-analysis", MAX_TOKENS=None)
    res = promote(cfg, ref, "prod", file_provider, actor="t")
    one = res.predicate()["pretraffic"]["functions"]["analysis"]
    assert one["passed"] and one["live"] == "1" and one["candidate"] == "3"
    assert {"share-shift", "flip-rate", "confidence-ks", "accuracy-drop"} <= {
        c["name"] for c in one["checks"]
    }
    assert "note" not in one
    assert lam.get_alias(FunctionName="ma-analysis", Name="live")["FunctionVersion"] == "3"


def test_the_configurations_docs_promotion_shows_load_and_render() -> None:
    import tomllib

    from release.config import PretrafficConfig

    text = (REPO / "docs" / "promotion.md").read_text()
    block = text.split("## The pre-traffic check", 1)[1].split("```toml\n", 1)[1].split("```")[0]
    conf = PretrafficConfig.model_validate(tomllib.loads(block)["canary"]["pretraffic"])
    assert set(conf.functions) == {"analysis", "classify", "api"}
    api = pt.render_event(conf.functions["api"].event, "x", 'it "broke"')
    assert json.loads(api["body"]) == {"text": 'it "broke"'}
    resp = {"statusCode": 200, "body": json.dumps({"prediction": {"label": "A", "confidence": 1}})}
    assert pt.extract(resp, conf.functions["api"].output) == {"label": "A", "confidence": 1}


# --- the live canary on the same Lambda ---------------------------------------------------
#: the second platform's live canary, in seconds: its handler's own EMF `Urgency` count
#: (label in an `urgency` dimension, one-second resolution), 1-second periods; half the
#: traffic on the new version so a short bake has the samples; L4 made lenient (handler
#: durations of a few ms on a loaded test machine are not what this test is about)
TICKETS_LIVE = (
    "{ canary_weight = 0.5, bake_seconds = 10, looks = 2, alpha = 0.001, min_samples = 60, "
    "deadline_seconds = 40, period_seconds = 1, min_periods = 3, metrics_namespace = "
    '"Tickets", label_metric = "Urgency", label_dimension = "urgency", '
    "max_p99_increase = 20.0 }"
)


class Feeder:
    """Production traffic on the `live` alias: one corpus ticket per invocation, in a
    loop, until stopped (the executor routes each invocation by the alias's weights)."""

    def __init__(self, proj: Path) -> None:
        import threading

        rows = [json.loads(x) for x in (proj / "data" / "tickets.jsonl").read_text().splitlines()]
        self.events = [json.dumps({"id": r["id"], "text": r["text"]}).encode() for r in rows]
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        lam = boto("lambda")
        while not self.stop.is_set():
            ev = self.events[self.sent % len(self.events)]
            lam.invoke(FunctionName="tk-classify", Qualifier="live", Payload=ev)
            self.sent += 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def _live(proj: Path) -> Any:
    (proj / "release.toml").write_text(_toml(pretraffic="", traffic=TICKETS_LIVE))
    return load(proj / "release.toml")


def test_tickets_live_canary_on_its_own_metrics_passes(
    tickets: tuple[Path, LambdaExecutor],
) -> None:
    """The second platform, three labels, its handler's own metrics (plain EMF lines,
    which the executor turns into CloudWatch metrics as Lambda's log pipeline does):
    the same model on both versions -> the live canary passes and promotes."""
    proj, ex = tickets
    cfg = _live(proj)
    feed = Feeder(proj)
    try:
        res = promote(cfg, parse_reference(f"{ECR}@{NEW}"), "prod", file_provider, actor="t")
    finally:
        feed.close()
    assert _alias_versions() == {"tk-classify": "2", "tk-health": "2"}
    # what it saw is signed with the promotion, valid against the shipped schema, and
    # `release verify --env` reads it back
    from release.attest.statements import load_predicate

    pred = res.predicate()
    live = pred["live_canary"]
    assert live["passed"] and live["weight"] == 0.5 and live["bake_seconds"] == 10
    assert live["metrics"] == {
        "namespace": "Tickets",
        "labels": "Urgency (by urgency)",
        "score": None,
        "errors": None,
    }
    assert live["functions"] == {"tk-classify": ["1", "2"], "tk-health": ["1", "2"]}
    assert [lk["decision"] for lk in live["looks"]][-1] == "pass"
    assert {c["name"] for c in live["checks"]} >= {
        "L1 label shares",
        "L3 lambda errors tk-classify",
    }
    (proj / "promotion.json").write_text(json.dumps(pred))
    assert load_predicate("promotion", proj / "promotion.json")[1]["live_canary"] == live
    events = open_ledger(cfg).events(env="prod")
    assert events[-1].evidence["live_canary"] == "passed after 2 look(s) over 10s"
    [(ok, detail)] = _verify_rows(pred, events, "live canary").values()
    assert ok and detail.startswith(
        "2 function(s) at weight 0.5 for 10s, 2 look(s), comparing Urgency (by urgency): passed"
    ), detail
    bad = json.loads(json.dumps(pred))
    bad["live_canary"]["checks"][0]["verdict"] = "inconclusive"
    assert _verify_rows(bad, events, "live canary")["live canary"][0] is False
    looks = [e.evidence for e in open_ledger(cfg).events() if e.action == "canary.look"]
    assert looks[-1]["decision"] == "pass"
    l1 = looks[-1]["L1 label shares"]
    assert l1.startswith("pass: ") and "one prediction per invocation" in l1, l1
    assert any(lbl in l1 for lbl in ("ROUTINE", "URGENT", "CRITICAL")), l1
    # the traffic really was split: the handler ran on both versions through the alias
    assert ex.invocations.count(("tk-classify", "2")) >= 60
    assert ex.invocations.count(("tk-classify", "1")) >= 60


def test_tickets_live_canary_catches_a_model_that_lost_a_label(
    tickets: tuple[Path, LambdaExecutor],
) -> None:
    """The new version was published with MODEL_DIR on a stale model that never says
    CRITICAL (no pre-traffic check configured): live, its CRITICAL share is 0 against
    ~19% -> L1 fails, every function goes back to version 1."""
    proj, _ex = tickets
    cfg = _live(proj)
    _set_env("tk-classify", MODEL_DIR=str(proj / "ml" / "urgency-v0"))
    feed = Feeder(proj)
    try:
        with pytest.raises(CanaryFailed, match=r"^live canary failed L1 label shares: CRITICAL"):
            promote(cfg, parse_reference(f"{ECR}@{NEW}"), "prod", file_provider, actor="t")
    finally:
        feed.close()
    assert _alias_versions() == {"tk-classify": "1", "tk-health": "1"}
    looks = [e.evidence for e in open_ledger(cfg).events() if e.action == "canary.look"]
    assert looks[-1]["decision"] == "fail"
    assert looks[-1]["L1 label shares"].startswith("fail: CRITICAL share 0.000 (new, n=")
