"""The pre-traffic check's wall time: N corpus items against two versions of a function
on moto, executed by the Runtime API runner of tests/fixtures/lambda_runtime.py.

    .venv/bin/python bench/pretraffic.py [--items 200] [--runs 3]

For each platform (the second one's `classify`, the example's `analysis`) two versions
of the function are published (live 1, candidate 2, the same image and configuration)
and `PreTraffic.check` runs as `release promote` runs it: the digest-seeded sample,
`items` invocations of each version (`[canary.pretraffic].concurrency` 4), the outputs
read from the responses and the paired checks. The first run starts both execution
environments (cold: the handler's import and model load); the next `--runs` are warm.
Prints seconds per run next to the 60 s target (ratio) and the invocations per second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.lambda_runtime import Image, LambdaExecutor
from tests.fixtures.tools import REPO, free_port, wait_for_http

TARGET = 60.0
ACCOUNT, REGION = "123456789012", "us-east-1"
ECR = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/app"
DIGEST = "sha256:" + "a" * 64


def _config(root: Path, platform: str, items: int) -> Any:
    from release.config import load

    if platform == "tickets":
        shutil.copytree(REPO / "tests" / "platforms" / "tickets", root, dirs_exist_ok=True)
        text = f"""
[model]
path = "ml/urgency"
[image]
base = "oci:base@{DIGEST}"
registry = "{ECR}"
[functions]
classify = "svc.classify.handler"
[code]
package = "svc"
[canary]
corpus = "data/tickets.jsonl"
[canary.pretraffic]
items = {items}
[canary.pretraffic.functions.classify]
event = '{{"id": "pretraffic-{{id}}", "text": "{{input}}"}}'
output = {{ label = "results.0.urgency" }}
"""
    else:
        (root / "model").symlink_to(REPO / "model")
        text = (
            (REPO / "release.toml")
            .read_text()
            .replace('registry = "oci:.release/registry"', f'registry = "{ECR}"')
        )
        text = text.replace(
            "[canary.pretraffic.functions",
            f"[canary.pretraffic]\nitems = {items}\n\n[canary.pretraffic.functions",
            1,
        )
    fn = "classify" if platform == "tickets" else "analysis"
    text += f"""
[environments.prod]
target = "lambda"
functions = {{ {fn} = "{platform}-{fn}" }}
"""
    (root / "release.toml").write_text(text)
    return load(root / "release.toml")


def _platform(root: Path, platform: str) -> tuple[str, str, Image, dict[str, str]]:
    """Creates what the function needs in moto; (name, lambda name, image, variables)."""
    import boto3

    if platform == "tickets":
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(
            TableName="tickets",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        q = boto3.client("sqs", region_name=REGION).create_queue(QueueName="esc")["QueueUrl"]
        variables = {
            "TICKETS_TABLE": "tickets",
            "ESCALATION_QUEUE_URL": q,
            "MODEL_DIR": str(root / "ml" / "urgency"),
        }
        return "classify", "tickets-classify", Image(root), variables
    from tests.handlers.conftest import TABLES, _create_tables

    _create_tables(boto3.client("dynamodb", region_name=REGION))
    image = Image(
        REPO,
        {
            "MODEL_DIR": str(REPO / "model" / "examples" / "sst2-tiny"),
            "MODEL_LOCK": str(REPO / "model" / "model.lock.json"),
        },
    )
    return "analysis", "example-analysis", image, {"ANALYSIS_TABLE": TABLES["ANALYSIS_TABLE"]}


def run(platform: str, items: int, runs: int, moto: str, aws: dict[str, str]) -> list[float]:
    import boto3

    from release.canary.pretraffic import PreTraffic, Subject

    with tempfile.TemporaryDirectory(prefix=f"bench-pt-{platform}-") as tmp:
        root = Path(tmp)
        cfg = _config(root, platform, items)
        name, fn, image, variables = _platform(root, platform)
        ex = LambdaExecutor(moto, {DIGEST: image}, aws)
        try:
            lam = boto3.client("lambda", region_name=REGION)
            role = boto3.client("iam", region_name=REGION).create_role(
                RoleName=f"bench-{platform}",
                AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}',
            )["Role"]["Arn"]
            lam.create_function(
                FunctionName=fn,
                Role=role,
                PackageType="Image",
                Code={"ImageUri": f"{ECR}@{DIGEST}"},
                ImageConfig={"Command": [cfg.functions[name]]},
                Environment={"Variables": variables},
                Timeout=30,
                MemorySize=2048,
                Publish=True,
            )
            lam.update_function_configuration(
                FunctionName=fn, Environment={"Variables": {**variables, "BENCH": "2"}}
            )
            lam.get_waiter("function_updated_v2").wait(FunctionName=fn)
            lam.publish_version(FunctionName=fn)
            invoker = boto3.client("lambda", region_name=REGION, endpoint_url=ex.url)
            check = PreTraffic(cfg, "prod", client=invoker)
            times = []
            for _ in range(runs + 1):
                t0 = time.monotonic()
                res = check.check([Subject(name, fn, "1", "2")], DIGEST, lambda s, d: None)
                times.append(time.monotonic() - t0)
                assert res.passed and res.functions[0].n == min(items, res.items)
            return times
        finally:
            ex.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-pt-moto-") as tmp:
        log = Path(tmp) / "moto.log"
        moto = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("moto_server")),
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            stdout=open(log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_LAMBDA_STUB_ECR": "false"},
        )
        url = f"http://127.0.0.1:{port}"
        aws = {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
        os.environ.update(aws)
        try:
            wait_for_http(url + "/moto-api/", moto, log, "moto_server")
            import boto3

            ecr = boto3.client("ecr", region_name=REGION)
            ecr.create_repository(repositoryName="app")
            ecr.put_image(
                repositoryName="app",
                imageManifest='{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "'
                + DIGEST
                + '", "size": 2}, "layers": []}',
                imageDigest=DIGEST,
                imageTag="bench",
            )
            print(
                f"{'platform':<18}{'items':>6}{'cold s':>9}{'warm s':>9}"
                f"{'cold/60s':>10}{'warm/60s':>10}{'inv/s warm':>12}"
            )
            for platform in ("tickets", "example"):
                times = run(platform, args.items, args.runs, url, aws)
                cold, warm = times[0], statistics.median(times[1:])
                print(
                    f"{platform:<18}{args.items:>6}{cold:>9.2f}{warm:>9.2f}"
                    f"{cold / TARGET:>9.2f}x{warm / TARGET:>9.2f}x{2 * args.items / warm:>12.0f}"
                )
            print(f"load average {os.getloadavg()[0]:.1f} (2 cores, shared)")
        finally:
            moto.terminate()
            moto.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
