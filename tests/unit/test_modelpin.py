"""Lock digests agree with OpenSSF model-signing and git; the example is deterministic."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from release import modelpin
from tests.fixtures.tools import REPO, run_cli


def _example(tmp_path: Path) -> Path:
    out = tmp_path / "sst2-tiny"
    subprocess.run(
        [sys.executable, str(REPO / "model/examples/generate.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return out


def test_generator_is_deterministic_and_matches_committed_lock(tmp_path: Path) -> None:
    a, b = _example(tmp_path / "a"), _example(tmp_path / "b")
    files_a = {p.relative_to(a): p.read_bytes() for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b): p.read_bytes() for p in b.rglob("*") if p.is_file()}
    assert files_a == files_b
    lock = modelpin.read_lock(REPO / "model" / "model.lock.json")
    assert modelpin.verify_dir(a, lock, progress=False).ok


def test_root_digest_is_model_signings(tmp_path: Path) -> None:
    from model_signing import hashing
    from model_signing._signing import signing

    model = _example(tmp_path)
    lock = modelpin.read_lock(REPO / "model" / "model.lock.json")
    manifest = hashing.Config().hash(model)
    payload = signing.Payload(manifest)
    assert "sha256:" + payload.statement.pb.subject[0].digest["sha256"] == lock.digest
    theirs = {r["name"]: r["digest"] for r in payload.statement.pb.predicate["resources"]}
    assert theirs == {f.path: f.sha256 for f in lock.files}


def test_local_commit_is_the_git_tree_id(tmp_path: Path) -> None:
    model = _example(tmp_path)
    lock = modelpin.read_lock(REPO / "model" / "model.lock.json")
    g = tmp_path / "git"
    shutil.copytree(model, g)
    subprocess.run(["git", "init", "-q"], cwd=g, check=True)
    subprocess.run(["git", "add", "-A"], cwd=g, check=True)
    tree = subprocess.run(
        ["git", "write-tree"], cwd=g, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert lock.commit == tree


def test_path_order_is_model_signings_not_string_order() -> None:
    files = [
        modelpin.LockedFile(path=p, size=0, sha256=f"{i:064x}")
        for i, p in enumerate(["a-c", "a/b"])
    ]
    # PurePosixPath parts order: ("a", "b") < ("a-c",), unlike plain string order
    assert [f.path for f in sorted(files, key=lambda f: modelpin.path_key(f.path))] == [
        "a/b",
        "a-c",
    ]


def test_edited_lock_is_refused(tmp_path: Path) -> None:
    shutil.copy(REPO / "release.toml", tmp_path / "release.toml")
    (tmp_path / "model").mkdir()
    lock = json.loads((REPO / "model/model.lock.json").read_text())
    lock["files"][0]["sha256"] = "0" * 64
    (tmp_path / "model/model.lock.json").write_text(json.dumps(lock))
    r = run_cli("model", "verify", tmp_path, cwd=tmp_path)
    assert r.code == 1
    assert "root digest" in r.stderr and "the lock was edited" in r.stderr


def test_example_pin_fetch_verify_through_cli(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "model/examples").mkdir(parents=True)
    shutil.copy(REPO / "release.toml", proj / "release.toml")
    _example(proj / "model/examples")
    env = {"RELEASE_CACHE_DIR": str(tmp_path / "cache")}
    r = run_cli("model", "pin", cwd=proj, env=env)
    assert r.code == 0, r.stderr
    assert (proj / "model/model.lock.json").read_bytes() == (
        REPO / "model/model.lock.json"
    ).read_bytes()
    r = run_cli("model", "fetch", "--offline", "--dest", tmp_path / "out", cwd=proj, env=env)
    assert r.code == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "out")
    assert run_cli("model", "verify", tmp_path / "out", cwd=proj).code == 0


def test_hub_failures_are_caught_by_what_they_are(tmp_path: Path) -> None:
    """A hub that does not answer is a RemoteError (exit 3) naming the step; a bug in our
    own code is not dressed up as one (no `except Exception` in model pinning)."""
    import socket

    import pytest

    from release.errors import RemoteError
    from release.modelpin.sources import HubSource, hub_errors

    with socket.socket() as s:  # a port on 127.0.0.1 nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = HubSource("org/model", endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(RemoteError) as info:
        src.resolve("main")
    assert info.value.exit_code == 3
    assert info.value.message.startswith("hub: resolving 'main' failed: ")
    assert not any(
        issubclass(TypeError, e) or issubclass(KeyError, e) or issubclass(AttributeError, e)
        for e in hub_errors()
    )
