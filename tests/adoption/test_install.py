"""An adopter's whole path with the tool installed from its wheel: `release init` in the
second platform's repository, then `release pipeline` to `local`, `release verify`,
`release audit`, `release invoke`, with nothing copied from this repository and no file of
this checkout opened (tests/adoption/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.adoption.conftest import INIT, Installed, copy_platform

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def released(
    installed: Installed, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    project = copy_platform(tmp_path_factory.mktemp("adopter") / "tickets")
    env = {"RELEASE_CACHE_DIR": str(project.parent / "cache")}
    init = installed.run(*INIT, "--base", base_image, "--json", cwd=project, env=env)
    assert init.code == 0, init.stderr
    assert json.loads(init.stdout)["functions"] == {
        "classify": "svc.classify.handler",
        "health": "svc.health.handler",
    }
    pin = installed.run("model", "pin", cwd=project, env=env)
    assert pin.code == 0, pin.stderr
    r = installed.run("pipeline", "--json", cwd=project, env=env)
    assert r.code == 0, r.stderr[-4000:]
    return {"project": project, "env": env, "doc": json.loads(r.stdout)}


def test_the_pipeline_promotes_the_adopters_platform(released: dict[str, Any]) -> None:
    doc = released["doc"]
    assert doc["decision"]["allow"] is True
    assert doc["decision"]["policy_name"] == "default"
    # the manifest as stored in the OCI layout (read as files, not through the tool)
    blobs = released["project"] / ".release" / "registry" / "blobs" / "sha256"
    manifest = json.loads((blobs / doc["digest"].split(":")[1]).read_bytes())
    roles = [la.get("annotations", {}).get("dev.release.layer.role") for la in manifest["layers"]]
    assert roles[-3:] == ["deps", "model", "code"] and "policy" not in roles  # no data dir
    # the canary ran the platform's 3-class model over its own labels (its config.json)
    [stage] = [s for s in doc["stages"] if s["name"] == "canary"]
    report = json.loads((released["project"] / stage["canary_report"]).read_text())
    assert report["output"] == {
        "type": "label",
        "labels": ["ROUTINE", "URGENT", "CRITICAL"],
        "threshold": None,
        "dim": None,
    }
    assert report["accuracy"]["accuracy"] == 235 / 240  # 5 breaches read as URGENT
    assert report["label_shares"] == {
        "ROUTINE": 0.5,
        "URGENT": 80 / 240,
        "CRITICAL": 40 / 240,
    }


def test_verify_audit_and_invoke_from_the_wheel(
    installed: Installed, released: dict[str, Any], tmp_path: Path
) -> None:
    p, env, digest = released["project"], released["env"], released["doc"]["digest"]
    v = installed.run("verify", digest, "--env", "local", "--json", cwd=p, env=env)
    assert v.code == 0, v.stderr + v.stdout
    checks = {c["name"]: c["ok"] for c in json.loads(v.stdout)["checks"]}
    assert checks and all(checks.values()), checks
    a = installed.run("audit", "--env", "local", "--format", "json", cwd=p, env=env)
    assert a.code == 0, a.stderr
    [rel] = json.loads(a.stdout)["releases"]
    assert rel["digest"] == digest and rel["decision_allow"] is True
    assert rel["decision_policy"] == "default"
    assert sorted(f[0] for f in rel["model_files"]) == ["README.md", "config.json", "weights.json"]
    canary = rel["canary"]
    assert canary["labels"] == ["ROUTINE", "URGENT", "CRITICAL"] and canary["output"] == "label"
    # shares are a JSON object (signed with sorted keys); `labels` keeps the model's order
    assert canary["candidate_shares"] == {"ROUTINE": 0.5, "URGENT": 80 / 240, "CRITICAL": 40 / 240}
    # the promoted release's signed report is the next canary's baseline: paired over 3 labels
    c = installed.run("canary", digest, "--env", "local", "--json", cwd=p, env=env)
    assert c.code == 0, c.stderr
    share = next(x for x in json.loads(c.stdout)["checks"] if x["name"] == "share-shift")
    assert share["passed"] and share["p_value"] == 1.0 and "Stuart-Maxwell" in share["statistic"]
    html = installed.run("audit", "--env", "local", "--format", "html", cwd=p, env=env)
    assert html.code == 0 and all(f">{x}</text>" in html.stdout for x in canary["labels"])
    event = tmp_path / "event.json"
    event.write_text("{}")
    i = installed.run("invoke", "health", "--env", "local", event, "--json", cwd=p, env=env)
    assert i.code == 0, i.stderr
    out = json.loads(i.stdout)  # the handler's result is the document
    assert out["ok"] is True and out["files"] == 3


def test_the_audit_hook_sees_a_read_of_the_checkout(
    installed: Installed, released: dict[str, Any]
) -> None:
    """The guard above can fail: a command told to read a file of this checkout is caught."""
    from tests.fixtures.tools import REPO

    with pytest.raises(AssertionError, match="read this checkout"):
        installed.run(
            "model",
            "verify",
            REPO / "tests" / "platforms" / "tickets" / "ml" / "urgency",
            cwd=released["project"],
            env=released["env"],
        )


def test_a_missing_invoke_runner_names_its_key(
    installed: Installed, released: dict[str, Any], tmp_path: Path
) -> None:
    p, env = released["project"], released["env"]
    cfg = p / "release-invoke.toml"
    cfg.write_text(
        (p / "release.toml")
        .read_text()
        .replace(
            'predict = "svc.urgency:load"', 'predict = "svc.urgency:load"\ninvoke = "svc.runner"'
        )
    )
    event = tmp_path / "event.json"
    event.write_text("{}")
    r = installed.run("invoke", "health", "--env", "local", event, "--config", cfg, cwd=p, env=env)
    assert r.code == 2, r.stderr
    assert r.stderr.splitlines()[-1] == (
        "release: error: [code].invoke: svc.runner is not in the image's code layer "
        f"({installed.python}: No module named svc.runner); unset it to use the runner "
        "shipped with release"
    )


def test_the_install_command_is_the_same_in_readme_and_docs(installed: Installed) -> None:
    from tests.adoption.conftest import adopter_install_command
    from tests.fixtures.tools import REPO

    docs = (REPO / "docs" / "install.md").read_text().split("<!-- adopter-install -->", 1)[1]
    assert adopter_install_command() in docs.split("```", 2)[1]
    assert installed.lock.name in adopter_install_command()  # the version it names is built


def test_the_migrating_walkthrough_runs_what_this_test_runs() -> None:
    from tests.fixtures.tools import REPO

    doc = (REPO / "docs" / "migrating.md").read_text()
    assert "release " + " ".join(INIT) + " --base " in doc


def test_a_canary_report_attested_from_a_file_is_checked_against_the_shipped_schema(
    installed: Installed, released: dict[str, Any], tmp_path: Path
) -> None:
    """The issue's first crash: `attest --predicate canary FILE` from the wheel opened
    attestations/*.schema.json by a checkout path."""
    p, env, digest = released["project"], released["env"], released["doc"]["digest"]
    report = tmp_path / "report.json"
    c = installed.run("canary", digest, "--env", "local", "-o", report, cwd=p, env=env)
    assert c.code == 0, c.stderr
    a = installed.run(
        "attest",
        digest,
        "--only",
        "none",
        "--predicate",
        "canary",
        report,
        "--json",
        cwd=p,
        env=env,
    )
    assert a.code == 0, a.stderr
    assert [x["predicate_type"] for x in json.loads(a.stdout)["attestations"]] == [
        "https://github.com/release-platform/release/attestations/canary-report/v2"
    ]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(report.read_text()), "n": "many"}))
    b = installed.run(
        "attest", digest, "--only", "none", "--predicate", "canary", bad, cwd=p, env=env
    )
    assert b.code == 2
    assert b.stderr.splitlines()[-1].startswith(
        f"release: error: predicate file {bad} does not match canary-report.schema.json: n: "
    )
