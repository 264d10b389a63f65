"""Each function of the built image, run in a real container (`--network none`).

The handlers need DynamoDB and SQS: a moto server is started INSIDE the container's own
network namespace (`nsenter -n`, host binary), so the container still has no network at
all and every request stays on its 127.0.0.1. Each function's CMD (from the image's
`dev.release.functions` label) runs through the runner `release invoke` ships (release/deploy/runner.py, as
`python3 -c SOURCE`), as a
non-root user, with a sample event; its answer is checked.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.tools import REPO, require_binary

DATA = REPO / "tests" / "handlers" / "data"
#: the runner `release invoke` uses when `[code].invoke` is unset, passed as source
RUNNER = (REPO / "release" / "deploy" / "runner.py").read_text()
MOTO_PORT = 5000
AWS = {
    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
SETUP = """
import json, boto3
from tests.handlers.conftest import QUEUES, TABLES, _create_tables
_create_tables(boto3.client("dynamodb"))
sqs = boto3.client("sqs")
out = dict(TABLES)
for var, name in QUEUES.items():
    out[var] = sqs.create_queue(QueueName=name)["QueueUrl"]
print(json.dumps(out))
"""


def _events() -> dict[str, tuple[Any, Any]]:
    """handler module -> (event, check(result))."""
    weak = json.loads((DATA / "posture-weak.json").read_text())
    expected = json.loads((DATA / "expected-scores.json").read_text())["posture-weak.json"]

    def analysis(r: dict[str, Any]) -> None:
        assert (r["statusCode"], r["id"], r["label"]) == (200, "c1", "POSITIVE"), r
        assert 0.5 < r["confidence"] <= 1.0

    def scorer(r: dict[str, Any]) -> None:
        assert r["statusCode"] == 200, r
        assert (r["score"], r["grade"]) == (expected["score"], expected["grade"])
        assert sorted({f["rule"] for f in r["findings"]}) == expected["rules"]

    def onboarding(r: dict[str, Any]) -> None:
        assert r["statusCode"] == 404, r
        assert json.loads(r["body"]) == {"error": "entity ent-1 not found"}

    def remediator(r: dict[str, Any]) -> None:
        assert r["statusCode"] == 200, r

    from handlers.scorer import finding_id

    finding = {
        "finding_id": finding_id("ent-r", "s3-public-bucket", "legacy-exports"),
        "entity_id": "ent-r",
        "rule": "s3-public-bucket",
        "severity": "HIGH",
        "resource": "legacy-exports",
        "title": "s3-public-bucket",
    }
    get = {
        "httpMethod": "GET",
        "path": "/entities/ent-1",
        "headers": {},
        "requestContext": {},
        "body": None,
        "isBase64Encoded": False,
        "queryStringParameters": None,
        "pathParameters": None,
    }
    return {
        "handlers.analysis": ({"id": "c1", "text": "A wonderful, delightful day!"}, analysis),
        "handlers.scorer": ({"entity_id": "ent-s", "posture": weak}, scorer),
        "handlers.onboarding": (get, onboarding),
        "handlers.remediator": (finding, remediator),
    }


def _in_netns(pid: int, *cmd: str, **kw: Any) -> Any:
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", *cmd], capture_output=True, text=True, **kw
    )


@pytest.mark.aws  # starts moto_server itself, in the container's network namespace
def test_each_function_cmd_runs_in_a_container(
    pushed: dict[str, Any], registry: str, docker_engine: Any
) -> None:
    require_binary("nsenter")
    ref = f"{registry}/platform@{pushed['digest']}"
    docker_engine.images.pull(ref)
    box = docker_engine.containers.run(
        ref,
        entrypoint=["sleep", "600"],
        network_mode="none",
        user="1000:1000",
        detach=True,
    )
    moto = None
    try:
        box.reload()
        assert box.attrs["HostConfig"]["NetworkMode"] == "none"
        pid = int(box.attrs["State"]["Pid"])
        moto_bin = str(Path(sys.executable).parent / "moto_server")
        moto = subprocess.Popen(
            ["nsenter", "-t", str(pid), "-n", moto_bin, "-H", "127.0.0.1", "-p", str(MOTO_PORT)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        env = {**AWS, "PYTHONPATH": str(REPO)}
        for _ in range(200):
            p = _in_netns(
                pid,
                sys.executable,
                "-c",
                f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{MOTO_PORT}/moto-api/')",
                env=env,
            )
            if p.returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail("moto did not start in the container's network namespace")
        p = _in_netns(pid, sys.executable, "-c", SETUP, env=env, cwd=REPO)
        assert p.returncode == 0, p.stderr
        settings = {**AWS, **json.loads(p.stdout), "DRY_RUN": "true"}
        functions = json.loads(box.image.labels["dev.release.functions"])
        assert functions == pushed["functions"]
        events = _events()
        ran = set()
        for name, cmd in functions.items():
            module = cmd.rsplit(".", 1)[0]
            event, check = events[module]
            code, (out, err) = box.exec_run(
                [
                    "sh",
                    "-c",
                    f"printf %s {shlex.quote(json.dumps(event))} | python3 -c {shlex.quote(RUNNER)} {cmd}",
                ],
                environment=settings,
                demux=True,
            )
            assert code == 0, (name, (err or b"").decode()[-3000:])
            check(json.loads(out))
            ran.add(module)
        assert ran == set(events)  # every handler has its sample
    finally:
        if moto is not None:
            moto.terminate()
            moto.wait(timeout=10)
        box.remove(force=True)


def test_docker_backend_builds_the_same_content_and_reports_its_digest(
    build_cli: Any, registry: str, docker_host: str, docker_engine: Any, tmp_path: Path
) -> None:
    from release.image.inspect import open_image
    from release.image.registry import open_registry

    r, doc = build_cli(
        "--backend", "docker", "--push", f"{registry}/dk", env={"DOCKER_HOST": docker_host}
    )
    assert r.code == 0, r.stderr
    assert doc["backend"] == "docker" and doc["ref"] == f"{registry}/dk@{doc['digest']}"
    assert doc["docker_digest"] != doc["digest"]
    img = open_image(open_registry(f"{registry}/dk", tmp_path), doc["digest"])  # re-hashed
    assert [la["role"] for la in doc["layers"]][-4:] == ["deps", "model", "policy", "code"]
    assert [la.digest for la in img.layers] == [la["digest"] for la in doc["layers"]]
    assert img.functions == doc["functions"]
    cfg = img.config["config"]
    assert cfg["WorkingDir"] == "/var/task"
    assert "MODEL_LOCK=/opt/release/model.lock.json" in cfg["Env"]
    code = {p for p, _, _ in img.iter_files("code")}
    assert "/var/task/handlers/common/model.py" in code
    tag = sys.implementation.cache_tag  # the same bytecode as the native build ships
    assert f"/var/task/handlers/common/__pycache__/model.{tag}.pyc" in code
    model = {p: sha for p, _, sha in img.iter_files("model")}
    # the same model directory as the native build: the runtime model in place of the
    # source ONNX (modelpin.shipped), one copy of the weights
    from release.modelpin import parse_lock, shipped

    with img._tar(img.layers_with(["model"])[0]) as tf:
        m = next(m for m in tf if m.name.lstrip("./") == "opt/release/model.lock.json")
        member = tf.extractfile(m)
        assert member is not None
        image_lock = parse_lock(member.read(), "image lock")
    lock = json.loads((REPO / "model" / "model.lock.json").read_text())
    assert image_lock.digest == lock["digest"]
    want = {"/opt/model/" + f.path: f.sha256 for f in shipped(image_lock).files}
    assert {p: sha for p, sha in model.items() if p.startswith("/opt/model/")} == want
    out = docker_engine.containers.run(
        f"{registry}/dk@{doc['digest']}",
        entrypoint=["python3", "-c", "import onnxruntime, tokenizers, regopy; print('ok')"],
        network_mode="none",
        remove=True,
        user="1000:1000",
    )
    assert out.strip() == b"ok"


def test_docker_backend_size_gate_before_push(
    build_cli: Any, registry: str, docker_host: str, tmp_path: Path
) -> None:
    """The engine's uncompressed size is gated like the native build's; nothing pushed."""
    import urllib.request

    from tests.fixtures.tools import copy_project

    p = copy_project(tmp_path / "small")
    toml = (p / "release.toml").read_text()
    (p / "release.toml").write_text(
        toml.replace('requirements = "', 'max_size = 1000000\nrequirements = "', 1)
    )
    r, doc = build_cli(
        "--backend",
        "docker",
        "--push",
        f"{registry}/dk-small",
        cwd=p,
        env={"DOCKER_HOST": docker_host},
    )
    assert r.code == 1, r.stderr
    assert "over [image].max_size (1000000 bytes)" in r.stderr and doc["exit_code"] == 1
    with urllib.request.urlopen(f"http://{registry}/v2/_catalog", timeout=10) as resp:
        assert "dk-small" not in json.loads(resp.read())["repositories"]


def test_docker_backend_engine_down_exits_3(build_cli: Any, registry: str, tmp_path: Path) -> None:
    r, doc = build_cli(
        "--backend",
        "docker",
        "--push",
        f"{registry}/dk",
        env={"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"},
    )
    assert r.code == 3, r.stderr
    assert "Docker engine unreachable" in r.stderr and doc["exit_code"] == 3
