"""The drift guard's decision per event (issue 28: <= 2 s warm).

Starts moto_server on 127.0.0.1 (Lambda resolving images in its ECR, a DynamoDB ledger,
SNS), promotes a digest to three image functions through the gate, signs its promotion
statement and build attestations with a key (OCI referrers in a layout), then times:

- cold: building the guard (config, clients, key) and its first decision;
- warm, no drift: one CloudTrail-shaped UpdateAlias event -> decision (`handle`), which
  reads every alias and routed version, the ledger (chain verified) and re-verifies the
  signed evidence, and appends a guard.check event;
- warm, drift undone: a console deployment (code, publish, alias to an unsigned image)
  before each event; the decision also finds the promoted version, moves the alias back,
  reads it back, publishes the alarm and appends guard.rollback (the deployment itself
  is not timed);
- for scale, `release.promote.status` (what `release status` reads, no verification).

The ledger grows by one or two events per decision, as in production.

Usage: .venv/bin/python bench/guard.py [--events N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fixtures.tools import free_port, wait_for_http  # noqa: E402

TARGET = 2.0


def _moto(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = tmp / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("moto_server")),
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_LAMBDA_STUB_ECR": "false"},
        )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/moto-api/", proc, log, "moto_server")
    return proc, url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=20, help="events per warm case")
    ap.add_argument(
        "--grown",
        type=int,
        default=2000,
        help="then fill the ledger with this many guard.check events and time again",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-guard-") as d:
        tmp = Path(d)
        proc, url = _moto(tmp)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
            }
        )
        os.environ.pop("AWS_PROFILE", None)
        try:
            run(tmp, args.events, args.grown)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def run(tmp: Path, n: int, grown: int) -> None:
    from release.guard import Guard, check
    from release.guard.handler import handle
    from release.promote import status
    from tests.deploy import test_guard as t
    from tests.deploy.conftest import FUNCTIONS, boto

    _functions()
    r = t._release(tmp, rollback=True)
    scorer = FUNCTIONS["scorer"]
    event = t.cloudtrail("UpdateAlias20150331", scorer)

    t0 = time.perf_counter()
    guard = Guard(r["cfg"], "prod", registry=r["layout"])
    first = check(guard, trigger="bench")
    cold = time.perf_counter() - t0
    assert first.result == "ok", first.to_dict()

    ok: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        doc = handle(event, guard)
        ok.append(time.perf_counter() - t0)
        assert doc["result"] == "ok", doc
    undone: list[float] = []
    for _ in range(n):
        t._console_deploy(scorer, r["unsigned"])
        t0 = time.perf_counter()
        doc = handle(event, guard)
        undone.append(time.perf_counter() - t0)
        assert doc["result"] == "drift-undone", doc
    boto("sqs").purge_queue(QueueUrl=r["queue"])
    st: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        status(r["cfg"], "prod", target=guard.target, ledger=guard.ledger)
        st.append(time.perf_counter() - t0)

    events = len(guard.ledger.events())
    for _ in range(grown):  # a ledger after months of scheduled checks
        guard.ledger.append("prod", "guard.check", r["signed"], actor="bench")
    big: list[float] = []
    for _ in range(max(3, n // 4)):
        t0 = time.perf_counter()
        doc = handle(event, guard)
        big.append(time.perf_counter() - t0)
        assert doc["result"] == "ok", doc
    base = statistics.median(st)
    rows = [
        ("cold (build + first decision)", [cold]),
        ("warm event, no drift", ok),
        ("warm event, drift undone", undone),
        ("release status (no verification)", st),
        (f"warm, no drift, ledger +{grown}", big),
    ]
    print(f"{n} events per case, 3 functions, ledger at {events} events at the end")
    print(f"{'case':<34}{'median s':>10}{'max s':>8}{'x status':>10}  target {TARGET} s")
    for name, xs in rows:
        med = statistics.median(xs)
        print(f"{name:<34}{med:>10.3f}{max(xs):>8.3f}{med / base:>9.1f}x")
    worst = max(max(ok), max(undone))
    print(
        f"worst warm decision: {worst:.3f} s ({'within' if worst <= TARGET else 'OVER'} the target)"
    )


def _functions() -> None:
    """The deploy tests' three image functions on digest a, alias live -> version 1."""
    from tests.deploy.conftest import ECR, FUNCTIONS, HANDLERS, boto, digest_of, push_images

    push_images()
    role = boto("iam").create_role(RoleName="fn-role", AssumeRolePolicyDocument="{}")["Role"]
    lam = boto("lambda")
    for name, fn in FUNCTIONS.items():
        lam.create_function(
            FunctionName=fn,
            Role=role["Arn"],
            PackageType="Image",
            Code={"ImageUri": f"{ECR}@{digest_of('a')}"},
            ImageConfig={"Command": [HANDLERS[name]]},
            Publish=True,
        )
        lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")


if __name__ == "__main__":
    main()
