"""SLSA provenance v1 as the GitHub Actions `workflow/v1` build type defines it (and the
local build type), validated against attestations/slsa-provenance-v1.schema.json; our own
predicate types live under the project's repository, and verify accepts only those."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from release import evidence
from release.attest import sign, statements, store
from release.attest.bundle import ARTIFACT_TYPE, BUNDLE_MEDIA_TYPE, PREDICATE_ANNOTATION
from release.attest.signatures import Policy, verify_stored
from release.config import parse
from release.errors import VerificationFailed
from tests.fixtures.tools import REPO

SCHEMA = json.loads((REPO / "attestations" / "slsa-provenance-v1.schema.json").read_text())
GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/platform",
    "GITHUB_WORKFLOW_REF": "acme/platform/.github/workflows/release.yml@refs/heads/main",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_EVENT_NAME": "push",
    "GITHUB_REPOSITORY_ID": "1296269",
    "GITHUB_REPOSITORY_OWNER_ID": "583231",
    "RUNNER_ENVIRONMENT": "github-hosted",
    "GITHUB_RUN_ID": "1536140711",
    "GITHUB_RUN_ATTEMPT": "2",
}


def _cfg(root: Path, base: str) -> Any:
    (root / "requirements.lock").write_text("six==1.17.0\n")
    return parse(
        {
            "model": {"repo": "example/sst2-tiny"},
            "image": {"base": base, "registry": "oci:reg", "requirements": "requirements.lock"},
            "functions": {"scorer": "handlers.scorer.lambda_handler"},
            "signing": {"mode": "key:k.pem"},
        },
        root / "release.toml",
    )


def _provenance(layout_image: Any, tmp_path: Path, base: str) -> dict[str, Any]:
    reg, digest, _ = layout_image
    [(ptype, pred)] = statements.build(_cfg(tmp_path, base), reg, digest, only={"provenance"})
    assert ptype == evidence.PROVENANCE
    return pred


def test_github_actions_build_type(
    layout_image: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in GITHUB.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("RELEASE_BASE", raising=False)
    base = "public.ecr.aws/lambda/python:3.12@sha256:" + "0" * 64
    pred = _provenance(layout_image, tmp_path, base)
    jsonschema.Draft202012Validator(SCHEMA).validate(pred)
    bd, rd = pred["buildDefinition"], pred["runDetails"]
    assert bd["buildType"] == "https://actions.github.io/buildtypes/workflow/v1"
    # externalParameters exactly as the build type lists them, nothing else
    assert bd["externalParameters"] == {
        "workflow": {
            "ref": "refs/heads/main",
            "repository": "https://github.com/acme/platform",
            "path": ".github/workflows/release.yml",
        },
        "runner_environment": "github-hosted",
    }
    assert bd["internalParameters"]["github"] == {
        "event_name": "push",
        "repository_id": "1296269",
        "repository_owner_id": "583231",
    }
    assert (
        rd["builder"]["id"]
        == "https://github.com/acme/platform/.github/workflows/release.yml@refs/heads/main"
    )
    assert (
        rd["metadata"]["invocationId"]
        == "https://github.com/acme/platform/actions/runs/1536140711/attempts/2"
    )
    deps = {d["name"]: d for d in bd["resolvedDependencies"]}
    # the image's revision label (tests/attest/conftest.py build_image)
    assert deps["source"] == {
        "name": "source",
        "uri": "git+https://github.com/acme/platform@refs/heads/main",
        "digest": {"gitCommit": "cd" * 20},
    }
    # the label says the base is sha256:efef..., the config names it by repository
    assert deps["base"]["uri"] == "oci://public.ecr.aws/lambda/python@sha256:" + "ef" * 32
    assert deps["model"]["uri"] == "pkg:huggingface/example/sst2-tiny@" + "ab" * 20
    assert (
        deps["requirements.lock"]["uri"]
        == f"git+https://github.com/acme/platform@{'cd' * 20}#requirements.lock"
    )


def test_local_build_type(
    layout_image: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in GITHUB:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("RELEASE_BASE", raising=False)
    pred = _provenance(layout_image, tmp_path, "oci:.release/base@sha256:" + "0" * 64)
    jsonschema.Draft202012Validator(SCHEMA).validate(pred)
    assert (
        pred["runDetails"]["builder"]["id"]
        == "https://github.com/release-platform/release/builders/local/v1"
    )
    assert pred["buildDefinition"]["buildType"] == (
        "https://github.com/release-platform/release/attestations/buildtypes/local/v1"
    )
    deps = {d["name"]: d for d in pred["buildDefinition"]["resolvedDependencies"]}
    assert deps["base"]["uri"] == "pkg:oci/base@sha256%3A" + "ef" * 32
    assert "uri" not in deps["source"] and "uri" not in deps["requirements.lock"]


def test_schema_rejects_what_the_issue_found(layout_image: Any, tmp_path: Path) -> None:
    """The old shapes: builder id `local`, a dependency named by a local path."""
    v = jsonschema.Draft202012Validator(SCHEMA)
    good = {
        "buildDefinition": {"buildType": "https://x.example/t", "externalParameters": {}},
        "runDetails": {"builder": {"id": "https://x.example/b"}},
    }
    assert not list(v.iter_errors(good))
    bad_builder = json.loads(json.dumps(good))
    bad_builder["runDetails"]["builder"]["id"] = "local"
    assert list(v.iter_errors(bad_builder))
    bad_dep = json.loads(json.dumps(good))
    bad_dep["buildDefinition"]["resolvedDependencies"] = [{"uri": "git+/path/to/clone"}]
    assert list(v.iter_errors(bad_dep))
    no_id = json.loads(json.dumps(good))
    no_id["buildDefinition"]["resolvedDependencies"] = [{"name": "x"}]
    assert list(v.iter_errors(no_id))


# --- our predicate types -----------------------------------------------------------------
def test_our_types_are_versioned_under_the_repository() -> None:
    for t, v in ((evidence.CANARY, "v2"), (evidence.CANARY_V1, "v1"), (evidence.PROMOTION, "v1")):
        assert t.startswith(evidence.PROJECT_URL + "/attestations/") and t.rsplit("/", 1)[1] == v
    for name, t in (
        ("canary-report", evidence.CANARY),
        ("canary-report-v1", evidence.CANARY_V1),
        ("promotion", evidence.PROMOTION),
    ):
        assert json.loads((REPO / "attestations" / f"{name}.schema.json").read_text())["$id"] == t
    assert "release.dev" not in (REPO / "attestations" / "promotion.schema.json").read_text()


def test_verify_refuses_the_old_predicate_type(tmp_path: Path, signing_key: Path) -> None:
    """A canary report signed under the old `https://release.dev/...` type is not a canary
    attestation, whatever its referrer annotation says."""
    from release.image.registry import open_registry
    from tests.attest.conftest import build_image

    reg = open_registry("oci:reg", tmp_path)
    digest = build_image(reg, seed=b"old-type")
    old = "https://release.dev/canary-report/v1"
    signer = sign.KeySigner(signing_key)
    pol = Policy.from_key_file(signing_key.with_name(signing_key.name + ".pub"))
    bundle = signer.sign(sign.statement(reg.name, digest, old, {"passed": True}))
    reg.attach(digest, ARTIFACT_TYPE, bundle, BUNDLE_MEDIA_TYPE, {PREDICATE_ANNOTATION: old})
    with pytest.raises(
        VerificationFailed, match=rf"^no {evidence.CANARY} attestation is stored for {digest}$"
    ):
        verify_stored(reg, digest, evidence.CANARY, pol)
    # the same bundle annotated as the new type: the signed type decides
    store.attach_bundle(reg, digest, bundle, evidence.CANARY)
    with pytest.raises(
        VerificationFailed, match=rf"predicate type is '{old}', expected '{evidence.CANARY}'$"
    ):
        verify_stored(reg, digest, evidence.CANARY, pol)


def test_verify_reads_the_local_builder_as_local() -> None:
    from release.attest.statements import LOCAL_BUILDER_ID
    from release.claims.provenance import workflow_of

    assert workflow_of(LOCAL_BUILDER_ID) == "local"
    assert workflow_of(
        "https://github.com/acme/platform/.github/workflows/release.yml@refs/heads/main"
    ) == (".github/workflows/release.yml")
