"""[image].model_dir / .workdir and the function's configured environment, through the CLI:
a project that puts the model at /opt/m2 and the code at /srv/app builds, canaries,
verifies and promotes (`release pipeline`, `release verify`), and `release invoke` runs
the function with its `[environments.local]` variables (a table name only they give) and
the caller's AWS_* settings; a handler's 500 exits 1.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures.tools import copy_project, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def _table(name: str) -> None:
    import boto3

    boto3.client("dynamodb").create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    )


@pytest.fixture(scope="module")
def moved(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = tmp_path_factory.mktemp("layout") / "project"
    copy_project(project)
    cfg = project / "release.toml"
    text = cfg.read_text().replace(
        'requirements = "handlers/requirements.lock"',
        'requirements = "handlers/requirements.lock"\nmodel_dir = "/opt/m2"\nworkdir = "/srv/app"',
    )
    text = text.replace(
        "[environments.local]",
        '[environments.local.variables]\nANALYSIS_TABLE = "layout-analysis"\n\n'
        '[environments.local.function_variables.scorer]\nSENTIMENT_WINDOW = "7"\n\n[environments.local]',
    )
    cfg.write_text(text)
    import subprocess

    cmd = [
        "git",
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@example.invalid",
        "-C",
        str(project),
    ]
    subprocess.run([*cmd, "init", "-q"], check=True)
    subprocess.run([*cmd, "add", "-A"], check=True)
    subprocess.run([*cmd, "commit", "-q", "-m", "moved layout"], check=True)
    env = {"RELEASE_BASE": base_image, "RELEASE_CACHE_DIR": str(project / ".cache")}
    r = run_cli("pipeline", "--json", cwd=project, env=env)
    assert r.code == 0, r.stderr
    return {"project": project, "env": env, "digest": json.loads(r.stdout)["digest"]}


def test_build_canary_verify_read_the_configured_paths(moved: dict[str, Any]) -> None:
    p, env, digest = moved["project"], moved["env"], moved["digest"]
    r = run_cli("verify", digest, "--env", "local", "--offline", "--json", cwd=p, env=env)
    assert r.code == 0, r.stderr + r.stdout
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["model layer"]["ok"] and checks["canary"]["ok"], checks
    assert "match the baked lock" in checks["model layer"]["detail"], checks["model layer"]


def test_invoke_passes_the_functions_environment(
    moved: dict[str, Any], aws_env: dict[str, str]
) -> None:
    p, env, digest = moved["project"], moved["env"], moved["digest"]
    _table("layout-analysis")
    event = p / "event.json"
    event.write_text(json.dumps({"id": "m2-1", "text": "A wonderful, lovely day."}))
    r = run_cli(
        "invoke", "analysis", event, "--env", "local", "--json", cwd=p, env={**env, **aws_env}
    )
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["statusCode"] == 200
    import boto3

    item = boto3.client("dynamodb").get_item(
        TableName="layout-analysis", Key={"id": {"S": "m2-1"}}
    )["Item"]
    assert item["label"]["S"] in ("POSITIVE", "NEGATIVE")
    root = p / ".release" / "invoke" / digest.split(":")[1]
    # the runtime model in place of the source ONNX (docs/model-format.md, the weights once)
    assert (root / "opt" / "m2" / "runtime" / "model.weights").is_file()
    assert not (root / "opt" / "m2" / "onnx").exists()
    assert (root / "srv" / "app" / "handlers" / "analysis.py").is_file()
    assert r.stderr.splitlines()[-1] == (
        f"analysis (handlers.analysis.lambda_handler) from {digest} in local: returned statusCode 200"
    )


def test_invoke_exits_1_on_a_handler_500(moved: dict[str, Any], aws_env: dict[str, str]) -> None:
    """No table `layout-analysis` in this moto state: the handler answers 500 -> exit 1."""
    p, env = moved["project"], moved["env"]
    event = p / "event2.json"
    event.write_text(json.dumps({"id": "m2-2", "text": "fine"}))
    r = run_cli("invoke", "analysis", event, "--env", "local", cwd=p, env={**env, **aws_env})
    assert r.code == 1, r.stdout + r.stderr
    assert json.loads(r.stdout)["statusCode"] == 500
    assert r.stderr.splitlines()[-1].endswith("returned statusCode 500")
