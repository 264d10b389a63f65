"""`.github/workflows/release.yml` as committed, run by nektos/act in host mode, each job in
its own fresh workspace, against local stand-ins for GitHub and AWS (tests/workflows/
act_run.py says what is real and what stands in, and why).

1. A release: build -> attest -> canary -> promote (with the live alias canary) all
   succeed; each job assumed its own role through its own OIDC `sub`; the digest reached
   promote through job outputs only; from a fresh clone `release verify DIGEST --env prod`
   exits 0, `release status --env prod` shows every function on the digest and the audit
   names the workflow as signer.
2. The same run with the provenance attestation replaced in the registry after the attest
   job (a validly signed one, from another branch's run of the workflow): the gate in the
   promote job says no, the job fails, and no function moved.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.tools import run_cli
from tests.workflows.act_run import (
    ECR_HOST,
    ECR_REPO,
    FUNCTIONS,
    IDENTITY,
    OLD_DIGEST,
    PROMOTE_ROLE,
    PROVIDER_ARN,
    PUSH_ROLE,
    WorkflowRun,
    boto,
    trust_policies,
)
from tests.workflows.standins import trust_allows

# a whole workflow run takes minutes, more on a loaded machine
pytestmark = [pytest.mark.slow, pytest.mark.aws, pytest.mark.registry, pytest.mark.timeout(2400)]

JOBS = ("build", "attest", "canary", "promote")


@pytest.fixture(scope="module")
def release_run(
    moto_url: str, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WorkflowRun, Any]]:
    w = WorkflowRun(tmp_path_factory.mktemp("act-release"), moto_url, base_image)
    w.hooks["build"] = lambda w: w.mirror_to_ecr_api()
    try:
        w.start()
        res = w.run()
        print(f"\nworkflow under act: {res.seconds:.1f} s, jobs {res.jobs}")
        yield w, res
    finally:
        w.close()


def cli(w: WorkflowRun, clone: Path, *args: str) -> Any:
    return run_cli(*args, cwd=clone, env=w.cli_env())


def fresh_clone(w: WorkflowRun, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(w.origin), str(dest)], check=True)
    subprocess.run(
        [sys.executable, "model/examples/generate.py"], cwd=dest, check=True, capture_output=True
    )
    return dest


def test_every_job_succeeds(release_run: tuple[WorkflowRun, Any]) -> None:
    _w, res = release_run
    assert res.code == 0, res.log[-6000:]
    assert res.jobs == dict.fromkeys(JOBS, "succeeded")
    # the real pinned actions ran (not act stand-ins) where they can work here
    for job in JOBS:
        assert f"[{job}]   | Successfully set up CPython" in res.log
        assert f"[{job}]   | Assuming role with OIDC" in res.log


def test_each_job_assumed_its_role_with_its_own_sub(release_run: tuple[WorkflowRun, Any]) -> None:
    w, _ = release_run
    want = {
        "build": (PUSH_ROLE, "repo:acme/ml-platform:ref:refs/heads/main"),
        "attest": (PUSH_ROLE, "repo:acme/ml-platform:ref:refs/heads/main"),
        "canary": (PUSH_ROLE, "repo:acme/ml-platform:ref:refs/heads/main"),
        "promote": (PROMOTE_ROLE, "repo:acme/ml-platform:environment:production"),
    }
    assert sorted(w.sts.calls) == sorted((role, sub, True) for role, sub in want.values())
    sts_tokens = [c for c in w.oidc.issued if c["aud"] == "sts.amazonaws.com"]
    assert {c["job"]: c["sub"] for c in sts_tokens} == {j: s for j, (_, s) in want.items()}
    # keyless signing: attest, canary and promote asked for a `sigstore` token
    assert {c["job"] for c in w.oidc.issued if c["aud"] == "sigstore"} == {
        "attest",
        "canary",
        "promote",
    }
    # the documented trust policies keep the promote role to the production environment
    pol = trust_policies()
    build_claims = next(c for c in sts_tokens if c["job"] == "build")
    promote_claims = next(c for c in sts_tokens if c["job"] == "promote")
    assert not trust_allows(pol["release-promote"], PROVIDER_ARN, build_claims)
    assert not trust_allows(pol["release-push"], PROVIDER_ARN, promote_claims)
    other_branch = {**build_claims, "sub": "repo:acme/ml-platform:ref:refs/heads/dev"}
    assert not trust_allows(pol["release-push"], PROVIDER_ARN, other_branch)


def test_registry_reached_only_under_the_ecr_name(release_run: tuple[WorkflowRun, Any]) -> None:
    w, _ = release_run
    assert w.proxy.tunnels and set(w.proxy.tunnels) == {f"{ECR_HOST}:443"}
    assert w.proxy.refused == []


def test_digest_flows_through_job_outputs_and_is_released(
    release_run: tuple[WorkflowRun, Any], tmp_path: Path
) -> None:
    w, res = release_run
    digest = w.digest  # the one image manifest the build pushed
    assert f"[build]   ⚙  ::set-output:: digest={digest}" in res.log
    promotion = json.loads((res.artifacts / "1" / "audit" / "promotion.json").read_text())
    assert digest in json.dumps(promotion)
    clone = fresh_clone(w, tmp_path / "clone")
    v = cli(w, clone, "verify", digest, "--env", "prod", "--json")
    assert v.code == 0, v.stderr + v.stdout
    checks = {c["name"]: c["ok"] for c in json.loads(v.stdout)["checks"]}
    for name in (
        "attestation provenance",
        "attestation sbom",
        "attestation model",
        "attestation canary",
        "attestation promotion",
        "provenance",
        "canary",
        "ledger chain",
        "promotion",
        "live canary",  # what the live canary saw, signed with the promotion
    ):
        assert checks.get(name) is True, (name, checks)
    st = cli(w, clone, "status", "--env", "prod", "--json")
    assert st.code == 0, st.stderr  # exit 1 on drift: an alias not on what the ledger says
    doc = json.loads(st.stdout)
    assert doc["digest"] == digest and doc["drift"] == []
    assert {f: s["function"] for f, s in doc["functions"].items()} == FUNCTIONS
    lam = boto(w.moto_url, "lambda")
    for fn in FUNCTIONS.values():
        alias = lam.get_alias(FunctionName=fn, Name="live")
        assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
        code = lam.get_function(FunctionName=fn, Qualifier=alias["FunctionVersion"])["Code"]
        assert code["ImageUri"] == f"{ECR_HOST}/{ECR_REPO}@{digest}", fn
        assert (
            doc["functions"][next(k for k, v in FUNCTIONS.items() if v == fn)]["version"]
            == alias["FunctionVersion"]
        )
    audit = cli(w, clone, "audit", "--env", "prod", "--format", "json")
    assert audit.code == 0, audit.stderr
    [rel] = json.loads(audit.stdout)["releases"]
    assert (rel["digest"], rel["signer"], rel["decision_allow"]) == (digest, IDENTITY, True)


def test_live_canary_ran_on_the_aliases_and_summary_written(
    release_run: tuple[WorkflowRun, Any],
) -> None:
    w, res = release_run
    assert w.feeder.ticks > 0  # the aliases routed canary traffic
    assert re.search(r"\| \d+ \| \S+ \| canary\.passed \| prod \|", res.log)
    assert "[promote]   ⚙  Summary - ## release `" in res.log


# --- tampering between jobs ---------------------------------------------------------------
def replace_provenance(w: WorkflowRun) -> None:
    """After the attest job: the provenance referrer is swapped for a bundle signed by the
    same Sigstore instance for the same workflow on another branch (a real signature, the
    wrong identity), and the original is dropped from the referrers index."""
    import base64

    from release.attest.bundle import ARTIFACT_TYPE, PREDICATE_ANNOTATION
    from release.attest.store import attach_bundle, fetch_bundles
    from release.digest import parse_digest
    from release.image.oci import OCI_INDEX, referrers_tag
    from release.image.registry import open_registry

    reg = open_registry(f"{ECR_HOST}/{ECR_REPO}", w.root)
    digest = parse_digest(w.digest)
    [prov] = fetch_bundles(reg, digest, "https://slsa.dev/provenance/v1")
    statement = base64.b64decode(json.loads(prov.bundle)["dsseEnvelope"]["payload"])
    forged = w.sigstore.sign(
        statement,
        IDENTITY.replace("refs/heads/main", "refs/heads/evil"),
        "https://token.actions.githubusercontent.com",
    )
    new = attach_bundle(reg, digest, forged, "https://slsa.dev/provenance/v1")
    index, _ = reg._get_manifest_ref(referrers_tag(digest))
    doc = json.loads(index)
    doc["manifests"] = [m for m in doc["manifests"] if m["digest"] != prov.referrer]
    reg.put_manifest(json.dumps(doc).encode(), OCI_INDEX, tag=referrers_tag(digest))
    kept = [
        m
        for m in reg.referrers(digest, ARTIFACT_TYPE)
        if m["annotations"][PREDICATE_ANNOTATION] == "https://slsa.dev/provenance/v1"
    ]
    assert [m["digest"] for m in kept] == [new]
    w.tampered = new


def test_replaced_attestation_stops_at_the_gate(
    moto_url: str,
    base_image: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = WorkflowRun(tmp_path_factory.mktemp("act-tamper"), moto_url, base_image)
    w.hooks["build"] = lambda w: w.mirror_to_ecr_api()
    w.hooks["attest"] = replace_provenance
    try:
        w.start()
        # the tampering hook talks to the registry as the jobs do (proxy, test CA, moto)
        for k, v in w.cli_env().items():
            monkeypatch.setenv(k, v)
        res = w.run()
    finally:
        w.close()
    assert w.tampered, res.log[-4000:]
    assert res.jobs == {
        "build": "succeeded",
        "attest": "succeeded",
        "canary": "succeeded",
        "promote": "failed",
    }
    assert res.code != 0
    gate = re.search(
        r"\[promote\]   \| release: error: gate denied (sha256:\w+) for prod: .*\n((?:\[promote\]   \|   .*\n)+)",
        res.log,
    )
    assert gate, res.log[-6000:]
    assert gate.group(1) == w.digest
    assert "refs/heads/evil" in gate.group(2) and "provenance" in gate.group(2)
    assert "promoted sha256:" not in res.log
    lam = boto(moto_url, "lambda")
    for fn in FUNCTIONS.values():
        alias = lam.get_alias(FunctionName=fn, Name="live")
        assert alias["FunctionVersion"] == "1" and not (alias.get("RoutingConfig") or {}).get(
            "AdditionalVersionWeights"
        )
        assert lam.get_function(FunctionName=fn, Qualifier="live")["Code"]["ImageUri"].endswith(
            OLD_DIGEST
        )
