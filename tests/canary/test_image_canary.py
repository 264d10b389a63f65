"""`release canary DIGEST` on real images built by `release build` and pushed to a real
registry, and `release invoke` of a promoted image from its own layers.

Images (built once per session, one shared layer cache): the example model; the model
regenerated with a bias towards POSITIVE (share shift), with its weights scaled down
(confidence collapse at unchanged share) and with a few lexicon words flipped, each
re-pinned and built like a real release;
and the first image with one byte of its model layer changed after the build (tampered).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.tools import REPO, run_cli

EPOCH = "1700000000"


def _project(dest: Path, registry_repo: str, model: Path | None = None) -> Path:
    dest.mkdir(parents=True)
    for name in ("release.toml", "model", "handlers", "policy"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    toml = (dest / "release.toml").read_text()
    toml = toml.replace('registry = "oci:.release/registry"', f'registry = "{registry_repo}"')
    if model is not None:
        shutil.copytree(model, dest / "model" / "examples" / "alt")
        toml = toml.replace('path = "model/examples/sst2-tiny"', 'path = "model/examples/alt"')
    toml += '\n[environments.staging]\ntarget = "local"\n'
    toml += '\n[environments.legacy]\ntarget = "local"\n'
    (dest / "release.toml").write_text(toml)
    return dest


#: the example generator with a few lexicon words moved from POSITIVE to NEGATIVE
FLIP_WORDS = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("gen", sys.argv[1])
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)
for w in sys.argv[3:]:
    gen.NEGATIVE[w] = gen.POSITIVE.pop(w)
gen.generate(Path(sys.argv[2]))
"""
FLIPPED = ("excellent", "wonderful", "amazing")


@pytest.fixture(scope="session")
def images(
    tmp_path_factory: pytest.TempPathFactory, base_image: str, registry: str
) -> dict[str, Any]:
    """name -> {"digest", "project"} for good, biased, collapsed and tampered images."""
    root = tmp_path_factory.mktemp("canary-images")
    repo = f"{registry}/canary"
    env = {
        "RELEASE_BASE": base_image,
        "RELEASE_CACHE_DIR": str(root / "cache"),
        "SOURCE_DATE_EPOCH": EPOCH,
    }
    out: dict[str, Any] = {}
    gen = [sys.executable, str(REPO / "model" / "examples" / "generate.py")]
    flip = root / "flip.py"
    flip.write_text(FLIP_WORDS)
    for name, args in (
        ("good", None),
        ("biased", ["--bias", "2.0"]),
        ("collapsed", ["--scale", "0.2"]),
        ("flipped", None),
    ):
        model = None
        if name != "good":
            import subprocess

            model = root / f"model-{name}"
            cmd = (
                [*gen, "--out", str(model), *args]
                if args
                else [sys.executable, str(flip), gen[1], str(model), *FLIPPED]
            )
            subprocess.run(cmd, check=True, capture_output=True)
        proj = _project(root / name, repo, model)
        if model is not None:
            r = run_cli("model", "pin", cwd=proj, env=env)
            assert r.code == 0, r.stderr
        r = run_cli("build", "--json", cwd=proj, env=env)
        assert r.code == 0, r.stderr
        out[name] = {"digest": json.loads(r.stdout)["digest"], "project": proj}
    out["tampered"] = {
        "digest": _tamper(out["good"]["project"], repo, out["good"]["digest"]),
        "project": out["good"]["project"],
    }
    out["registry"] = repo
    return out


def _tamper(project: Path, repo: str, digest: str) -> str:
    """The image with one byte of the shipped weights (runtime/model.weights, which the
    image carries in place of onnx/model.onnx) in its model layer changed (the lock baked
    in the image unchanged): the kind of swap a compromised registry would make."""
    from release.image.registry import open_registry

    reg = open_registry(repo, project)
    manifest = json.loads(reg.get_manifest(digest)[0])
    config = json.loads(reg.get_blob(manifest["config"]["digest"]))
    idx = next(
        i
        for i, la in enumerate(manifest["layers"])
        if la.get("annotations", {}).get("dev.release.layer.role") == "model"
    )
    blob = gzip.decompress(reg.get_blob(manifest["layers"][idx]["digest"]))
    raw = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(blob)) as src,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as dst,
    ):
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            if data is not None and m.name.endswith("runtime/model.weights"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    tar = raw.getvalue()
    gz = gzip.compress(tar, mtime=0)
    layer_digest = "sha256:" + hashlib.sha256(gz).hexdigest()
    reg.put_blob(gz, layer_digest)  # type: ignore[arg-type]
    config["rootfs"]["diff_ids"][idx] = "sha256:" + hashlib.sha256(tar).hexdigest()
    cfg_bytes = json.dumps(config, sort_keys=True).encode()
    cfg_digest = "sha256:" + hashlib.sha256(cfg_bytes).hexdigest()
    reg.put_blob(cfg_bytes, cfg_digest)  # type: ignore[arg-type]
    manifest["layers"][idx] = {**manifest["layers"][idx], "digest": layer_digest, "size": len(gz)}
    manifest["config"] = {**manifest["config"], "digest": cfg_digest, "size": len(cfg_bytes)}
    return str(reg.put_manifest(json.dumps(manifest).encode(), manifest["mediaType"]))


def canary(images: dict[str, Any], *args: Any) -> Any:
    return run_cli("canary", *args, cwd=images["good"]["project"])


@pytest.fixture(scope="session")
def good_report(images: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "good.json"
    r = canary(images, images["good"]["digest"], "-o", out)
    assert r.code == 0, r.stderr
    assert "no baseline: first release, absolute checks only" in r.stderr
    return out


pytestmark = [pytest.mark.docker, pytest.mark.registry]


def test_same_image_twice_passes(images: dict[str, Any], good_report: Path) -> None:
    d = images["good"]["digest"]
    r = canary(images, d, "--baseline", good_report, "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["passed"] is True and doc["subject"]["digest"] == d
    assert {c["name"] for c in doc["checks"]} >= {
        "share-shift",
        "flip-rate",
        "confidence-ks",
        "identical-outputs",
        "accuracy",
    }
    assert r.stderr.splitlines()[-1] == "canary passed: 9 checks on 600 items"
    # the report names the model the image carries, from the lock baked in it
    assert doc["baseline"]["paired_items"] == 600
    assert next(c for c in doc["checks"] if c["name"] == "paired-items")["passed"] is True


def _failed(r: Any) -> list[str]:
    lines = r.stderr.splitlines()
    head = next(ln for ln in lines if ln.startswith("release: error: "))
    return [head, *[ln.strip() for ln in lines[lines.index(head) + 1 :]]]


def test_biased_model_fails_share_and_flips(images: dict[str, Any], good_report: Path) -> None:
    r = canary(images, images["biased"]["digest"], "--baseline", good_report)
    assert r.code == 1, r.stderr
    lines = _failed(r)
    assert lines[0] == (
        "release: error: canary failed 6 of 8 checks: accuracy, share-shift, flip-rate, "
        "confident-flips, confidence-ks, accuracy-drop"
    )
    assert any(ln.startswith("share-shift: value +") for ln in lines[1:]), lines


def test_collapsed_confidence_fails_ks_at_unchanged_share(
    images: dict[str, Any], good_report: Path
) -> None:
    r = canary(images, images["collapsed"]["digest"], "--baseline", good_report, "--json")
    assert r.code == 1
    doc = json.loads(r.stdout)
    assert doc["failed_checks"] == ["confidence-ks"]
    assert abs(doc["label_shares"]["POSITIVE"] - 0.52) < 0.01


def test_a_few_flipped_words_fail_flips_and_share(
    images: dict[str, Any], good_report: Path
) -> None:
    r = canary(images, images["flipped"]["digest"], "--baseline", good_report, "--json")
    assert r.code == 1
    doc = json.loads(r.stdout)
    assert doc["failed_checks"] == ["share-shift", "flip-rate", "confident-flips", "accuracy-drop"]
    flips = next(c for c in doc["checks"] if c["name"] == "confident-flips")["items"]
    corpus = {
        json.loads(ln)["id"]: json.loads(ln)["text"].lower()
        for ln in (REPO / "model" / "canary.jsonl").read_text().splitlines()
        if ln
    }
    assert flips and all(any(w in corpus[i] for w in FLIPPED) for i in flips)


def test_baseline_by_digest_runs_both_images(images: dict[str, Any]) -> None:
    r = canary(images, images["collapsed"]["digest"], "--baseline", images["good"]["digest"])
    assert r.code == 1
    assert any("confidence-ks" in ln for ln in _failed(r))


def test_tampered_model_is_refused_before_running(images: dict[str, Any]) -> None:
    d = images["tampered"]["digest"]
    r = canary(images, d)
    assert r.code == 1
    lines = r.stderr.splitlines()
    head = (
        f"release: error: image {d[:19]}: model does not match the lock baked in the image "
        "(1 problem(s)); refusing to run it"
    )
    assert head in lines, r.stderr
    [detail] = lines[lines.index(head) + 1 :]
    assert "runtime/model.weights" in detail and "changed" in detail, detail
    assert "canary:" not in r.stderr  # nothing ran


def test_env_baseline_is_the_signed_report_of_the_live_digest(
    images: dict[str, Any], good_report: Path
) -> None:
    from tests.deploy.conftest import cli_env, good_evidence, put_evidence, run_gated

    proj = images["good"]["project"]
    good, collapsed = images["good"]["digest"], images["collapsed"]["digest"]
    # nothing live in staging yet: a first release, absolute checks only
    r = canary(images, collapsed, "--env", "staging")
    assert r.code == 0, r.stderr
    assert "nothing promoted to staging yet: first release, absolute checks only" in r.stderr
    # the good image's report signed and stored with it (the signing key is made here)
    r = run_cli("attest", good, "--only", "none", "--predicate", "canary", good_report, cwd=proj)
    assert r.code == 0, r.stderr
    # live: an image without a signed canary report: refused, naming it
    biased = images["biased"]["digest"]
    for d in (biased, good):
        put_evidence(proj, good_evidence(d, env="staging", repository=images["registry"]))
    assert run_gated("promote", biased, "--env", "staging", cwd=proj, env=cli_env()).code == 0
    r = canary(images, collapsed, "--env", "staging")
    assert r.code == 1
    assert r.stderr.splitlines()[-1].startswith(
        f"release: error: baseline: {biased[:19]} (live in staging) has no valid signed canary report ("
    )
    # live: the good image: its signed report is the baseline
    assert run_gated("promote", good, "--env", "staging", cwd=proj, env=cli_env()).code == 0
    r = canary(images, collapsed, "--env", "staging", "--json")
    assert r.code == 1
    assert f"baseline: the signed canary report of {good} (live in staging)" in r.stderr
    doc = json.loads(r.stdout)
    assert (doc["baseline"]["source"], doc["baseline"]["digest"]) == ("promoted", good)
    assert doc["failed_checks"] == ["confidence-ks"]
    r = canary(images, good, "--env", "staging")
    assert r.code == 0, r.stderr


def test_a_signed_version_1_report_is_a_baseline_and_verifies(
    images: dict[str, Any], tmp_path: Path
) -> None:
    """A release canaried before version 2: its report signed as `.../canary-report/v1`
    is still the baseline of the next canary and still a valid canary claim."""
    from release.canary import report as rpt
    from release.evidence import CANARY_V1
    from tests.canary.test_output_types import v1_report
    from tests.deploy.conftest import cli_env, good_evidence, put_evidence, run_gated

    proj = images["good"]["project"]
    flipped, good = images["flipped"]["digest"], images["good"]["digest"]
    r = canary(images, flipped, "-o", tmp_path / "f.json")
    assert r.code == 0, r.stderr
    (tmp_path / "v1.json").write_text(json.dumps(v1_report(rpt.read_report(tmp_path / "f.json"))))
    r = run_cli(
        "attest",
        flipped,
        "--only",
        "none",
        "--predicate",
        "canary",
        tmp_path / "v1.json",
        "--json",
        cwd=proj,
    )
    assert r.code == 0, r.stderr
    assert CANARY_V1 in r.stdout
    put_evidence(proj, good_evidence(flipped, env="legacy", repository=images["registry"]))
    assert run_gated("promote", flipped, "--env", "legacy", cwd=proj, env=cli_env()).code == 0
    r = canary(images, good, "--env", "legacy", "--json")
    assert f"baseline: the signed canary report of {flipped} (live in legacy)" in r.stderr
    doc = json.loads(r.stdout)
    assert (doc["baseline"]["source"], doc["baseline"]["digest"]) == ("promoted", flipped)
    assert doc["output"] == {
        "type": "label",
        "labels": ["NEGATIVE", "POSITIVE"],
        "threshold": None,
        "dim": None,
    }
    assert r.code == 1 and "flip-rate" in doc["failed_checks"]
    v = run_cli("verify", flipped, "--env", "legacy", "--json", cwd=proj)
    checks = {c["name"]: c["ok"] for c in json.loads(v.stdout)["checks"]}
    assert checks["attestation canary"] is True and checks["canary"] is True, checks


# --- release invoke -----------------------------------------------------------------------
def _promote_local(
    images: dict[str, Any], name: str, aws: dict[str, str] | None = None
) -> tuple[Path, Callable[..., Any]]:
    """Promote image `name` to the local environment (evidence from a file provider: the
    gate's decision is real Rego over it) and return (project, invoke)."""
    from tests.deploy.conftest import cli_env, good_evidence, put_evidence, run_gated

    proj = images["good"]["project"]
    d = images[name]["digest"]
    put_evidence(proj, good_evidence(d, env="local", repository=images["registry"]))
    r = run_gated("promote", d, "--env", "local", cwd=proj, env=cli_env())
    assert r.code == 0, r.stderr

    def invoke(function: str, event: Any, *extra: str) -> Any:
        p = proj / "event.json"
        p.write_text(json.dumps(event))
        return run_cli("invoke", function, p, "--env", "local", *extra, cwd=proj, env=cli_env(aws))

    return proj, invoke


def test_invoke_runs_the_promoted_image(images: dict[str, Any], aws_env: dict[str, str]) -> None:
    import boto3

    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName="analysis-results",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )
    proj, invoke = _promote_local(images, "good", aws_env)
    r = invoke("analysis", {"id": "x1", "text": "The concert was wonderful."}, "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["statusCode"] == 200 and "POSITIVE" in json.dumps(doc), doc
    item = ddb.get_item(TableName="analysis-results", Key={"id": {"S": "x1"}})["Item"]
    assert item["label"] == {"S": "POSITIVE"}
    d = images["good"]["digest"]
    root = proj / ".release" / "invoke" / d.split(":")[1]
    assert (root / ".complete").read_text().strip() == d
    assert (root / "opt" / "deps").is_dir() and (root / "var" / "task" / "handlers").is_dir()
    assert (
        r.stderr.splitlines()[-1]
        == f"analysis (handlers.analysis.lambda_handler) from {d} in local: returned statusCode 200"
    )
    # the second call reuses the extraction
    mtime = (root / ".complete").stat().st_mtime_ns
    r = invoke("analysis", {"id": "x2", "text": "The service was awful."})
    assert r.code == 0 and "NEGATIVE" in r.stdout
    assert (root / ".complete").stat().st_mtime_ns == mtime


def test_invoke_unknown_function_and_bad_event(images: dict[str, Any]) -> None:
    proj, invoke = _promote_local(images, "good")
    r = invoke("nope", {})
    assert r.code == 2
    assert r.stderr.splitlines()[-1].startswith("release: error: no function 'nope' in [functions]")
    (proj / "bad.json").write_text("{not json")
    r = run_cli("invoke", "analysis", proj / "bad.json", "--env", "local", cwd=proj)
    assert r.code == 2, r.stderr


def test_invoke_refuses_a_tampered_promoted_image(images: dict[str, Any]) -> None:
    _proj, invoke = _promote_local(images, "tampered")
    r = invoke("analysis", {"id": "x3", "text": "fine"})
    assert r.code == 1
    assert "model does not match the lock baked in the image" in r.stderr
