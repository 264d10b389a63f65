#!/usr/bin/env python3
"""1,000 texts through the canary on the example model, end to end; target < 5 s.

End to end = what `release canary` does after the image's layers are extracted: re-hash
the model directory against its lock, start the analysis runtime (a child Python that
imports handlers.common.model from the given code directory only), load the ONNX model
once, score the corpus in batches, build the report with every check against a baseline
(the same run, paired item by item). `--image REF` also measures `offline.run_image` on
a built image (layer extraction included).

One row per batch size, the wall time of each phase and the ratio to batch 64 side by
side, and whether the 5 s target holds.

    .venv/bin/python bench/canary.py [--n 1000] [--batch 1 16 64 256] [--image sha256:...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from release.canary import offline  # noqa: E402
from release.canary import report as rpt  # noqa: E402
from release.config import CanaryConfig, load  # noqa: E402

TARGET_S = 5.0


def corpus_of(n: int, dest: Path) -> offline.Corpus:
    """n texts: model/canary.jsonl repeated with fresh ids (and a suffix so texts vary)."""
    src = [
        json.loads(line)
        for line in (REPO / "model" / "canary.jsonl").read_text().splitlines()
        if line
    ]
    with dest.open("w") as f:
        for i in range(n):
            it = src[i % len(src)]
            text = it["text"] if i < len(src) else f"{it['text']} ({i // len(src)})"
            f.write(
                json.dumps({"id": f"b{i:05d}", "text": text, "expected": it["expected"]}) + "\n"
            )
    return offline.read_corpus(dest)


def run_once(cfg: object, cor: offline.Corpus, batch: int) -> dict[str, float]:
    t = rpt.thresholds(CanaryConfig())
    t0 = time.perf_counter()
    run = offline.run_on_model_dir(
        REPO / "model" / "examples" / "sst2-tiny",
        REPO / "model" / "model.lock.json",
        REPO,
        cor.items,
        batch_size=batch,
        predict="handlers.common.model:SentimentModel.load",
    )
    t1 = time.perf_counter()
    report = offline.report_for_run(run, cor, t)
    paired = rpt.compare(report, report, t)
    t2 = time.perf_counter()
    assert paired.passed, paired.failed_checks
    return {
        "run": t1 - t0,
        "load": run.latency.load_ms / 1000.0,
        "infer": len(cor.items) / run.latency.items_per_second,
        "checks": t2 - t1,
        "total": t2 - t0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--repeat", type=int, default=3, help="runs per row; the best is shown")
    ap.add_argument("--image", help="also time `offline.run_image` on this built image")
    ap.add_argument("--config", default=str(REPO / "release.toml"))
    args = ap.parse_args()
    cfg = load(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        cor = corpus_of(args.n, Path(tmp) / "corpus.jsonl")
        rows = {}
        for b in args.batch:
            runs = [run_once(cfg, cor, b) for _ in range(args.repeat)]
            rows[b] = min(runs, key=lambda r: r["total"])
        ref = rows.get(64) or next(iter(rows.values()))
        print(f"canary end to end, {args.n} texts, example model (best of {args.repeat})")
        print(
            f"{'batch':>6} {'total s':>8} {'x b64':>6} {'child s':>8} {'load s':>7} "
            f"{'infer s':>8} {'x b64':>6} {'checks s':>9} {'texts/s':>8} {'< 5 s':>6}"
        )
        for b, r in rows.items():
            print(
                f"{b:>6} {r['total']:>8.2f} {r['total'] / ref['total']:>6.2f} {r['run']:>8.2f} "
                f"{r['load']:>7.2f} {r['infer']:>8.2f} {r['infer'] / ref['infer']:>6.2f} "
                f"{r['checks']:>9.3f} {args.n / r['total']:>8.0f} "
                f"{'yes' if r['total'] < TARGET_S else 'NO':>6}"
            )
        if args.image:
            t = rpt.thresholds(cfg.canary)
            t0 = time.perf_counter()
            offline.run_image(cfg, args.image, cor, t)
            dt = time.perf_counter() - t0
            print(
                f"image {args.image[:19]}: run_image (extract + verify + run + report) "
                f"{dt:.2f} s, x{dt / ref['total']:.2f} of the directory run, "
                f"{'yes' if dt < TARGET_S else 'NO'} < 5 s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
