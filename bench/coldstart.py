#!/usr/bin/env python3
"""Cold start and warm latency: our analysis model path vs a transformers pipeline.

Both sides serve the SAME model: a small DistilBERT (random weights, seeded) built here
with `transformers` + torch 2.13.0 CPU, saved with save_pretrained (their side) and
exported to ONNX with torch.onnx.export (our side, with a model lock like the image's).

- ours:   `import handlers.analysis` (powertools, boto3: the handler's init), then
          handlers.common.model.get_model(MODEL_DIR, MODEL_LOCK) + predict - exactly what
          lambda_handler calls (the lock verification, i.e. re-hashing every model byte, is
          INCLUDED in our cold start; the DynamoDB put is not, on either side). The lock is
          laid out as in the image: the project's lock plus the `runtime` section and the
          runtime/ files `release build` makes (release/modelformat.py, docs/model-format.md).
- before: the same, with the project's lock only (no runtime model: the session is built
          from the source ONNX, the way every image loaded before the runtime format).
- theirs: transformers.pipeline("sentiment-analysis", model=DIR, device=-1).

Cold start = a fresh Python process: interpreter start + imports + model load + first
inference, measured from just before the parent spawns the child to the first result
(page cache warm for both, as on a Lambda worker that already pulled the image).
Warm = per-text latency (one text per call) over --warm texts after the first, p50/p95;
each cold run times every --runs-th of them, so load drift hits every side alike.
Peak RSS = the child's ru_maxrss (everything: interpreter, imports, model, inference).
ModelLoadTimeMs = the handler's metric (SentimentModel.load_ms: lock read + verification +
runtime import + session), p50 over the cold runs.
Both sides get the same thread count (--threads, default 1: a small Lambda's vCPU).

Torch lives in a separate venv (default bench/.work/venv) so the project's lock never
pulls it; --setup creates it (`pip install torch==2.13.0 transformers onnx`: onnx for
torch.onnx.export).

--image: also the same cold start inside the built image: the model pinned in a copy of
this project, `release build` (native, base from the cached test rootfs), then per run
`docker run --rm --network none --read-only IMAGE` with its CMD's handler (analysis)
invoked once on one direct-invoke item (a private dockerd is started and stopped; the
DynamoDB put fails at once: no network, one attempt).

--bytecode (alone: no torch needed): the handlers' init with and without the code layer's
.pyc (issue 27.2). A copy of [code].package laid out as /var/task/handlers, (a) source
only, (b) plus the unchecked-hash .pyc `release build` ships (release/image/bytecode.py);
each run a fresh `python -I` with PYTHONDONTWRITEBYTECODE=1 (Lambda's /var/task is
read-only: nothing compiled is kept) imports every [functions] module; the deps are the
venv's, compiled at install time on both sides. Timed: spawn to imports done (process
wall) and the imports alone, median of --runs.

Usage: .venv/bin/python bench/coldstart.py [--runs 5] [--warm 200] [--threads 1]
       [--dim 384] [--layers 4] [--vocab 30522] [--setup] [--image] [--json FILE]
       .venv/bin/python bench/coldstart.py --bytecode [--runs 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / ".work"

BUILD = r"""
import json, os, shutil, sys
from pathlib import Path
import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizerFast
out, dim, layers, vocab_size, example_vocab = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.manual_seed(0)
words = [w for w in Path(example_vocab).read_text().splitlines() if w]
words += [f"[unused{i}]" for i in range(vocab_size - len(words))]
hf = out / "hf"; onnx_dir = out / "onnx-model"
for d in (hf, onnx_dir):
    shutil.rmtree(d, ignore_errors=True); d.mkdir(parents=True)
(out / "vocab.txt").write_text("\n".join(words) + "\n")
tok = DistilBertTokenizerFast(vocab_file=str(out / "vocab.txt"), do_lower_case=True, model_max_length=512)
cfg = DistilBertConfig(vocab_size=len(words), dim=dim, n_layers=layers, n_heads=max(1, dim // 64),
                       hidden_dim=4 * dim, max_position_embeddings=512, pad_token_id=0,
                       id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
model = DistilBertForSequenceClassification(cfg).eval()
model.save_pretrained(hf); tok.save_pretrained(hf)
ids = tok(["a short example sentence", "another one"], padding=True, return_tensors="pt")
(onnx_dir / "onnx").mkdir()
torch.onnx.export(model, (ids["input_ids"], ids["attention_mask"]), str(onnx_dir / "onnx" / "model.onnx"),
                  input_names=["input_ids", "attention_mask"], output_names=["logits"],
                  dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                                "logits": {0: "batch"}}, opset_version=17, dynamo=False)
for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
    if (hf / name).exists():
        shutil.copy(hf / name, onnx_dir / name)
params = sum(p.numel() for p in model.parameters())
print(json.dumps({"params": params}))
"""

OURS = r"""
import json, resource, sys, time
spawn, repo, model_dir, lock, threads = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
texts = json.loads(sys.stdin.read())
sys.path.insert(0, repo)
t_imp = time.time()
import handlers.analysis  # the handler module as Lambda's init imports it (powertools, boto3)
from handlers.common.model import get_model
t_load = time.time()
model, _ = get_model(model_dir, lock, 512, threads)
t_first = time.time()
first = model.predict([texts[0]])[0]
t_done = time.time()
lat, out = [], []
for t in texts[1:]:
    s = time.perf_counter(); p = model.predict([t])[0]; lat.append((time.perf_counter() - s) * 1000)
    out.append([p.label, list(p.logits)])
print(json.dumps({"cold_ms": (t_done - spawn) * 1000, "start_ms": (t_imp - spawn) * 1000,
                  "import_ms": (t_load - t_imp) * 1000, "load_ms": (t_first - t_load) * 1000,
                  "first_ms": (t_done - t_first) * 1000, "warm_ms": lat, "outputs": out,
                  "model_load_ms": model.load_ms, "runtime": model.lock.runtime is not None,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

THEIRS = r"""
import json, resource, sys, time
spawn, hf_dir, threads = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
texts = json.loads(sys.stdin.read())
t_imp = time.time()
import torch
torch.set_num_threads(threads)
from transformers import pipeline
t_load = time.time()
clf = pipeline("sentiment-analysis", model=hf_dir, device=-1)
t_first = time.time()
clf(texts[0], truncation=True)
t_done = time.time()
lat, out = [], []
for t in texts[1:]:
    s = time.perf_counter(); r = clf(t, truncation=True, top_k=None); lat.append((time.perf_counter() - s) * 1000)
    best = max(r, key=lambda x: x["score"])
    out.append([best["label"], None])
print(json.dumps({"cold_ms": (t_done - spawn) * 1000, "start_ms": (t_imp - spawn) * 1000,
                  "import_ms": (t_load - t_imp) * 1000, "load_ms": (t_first - t_load) * 1000,
                  "first_ms": (t_done - t_first) * 1000, "warm_ms": lat, "outputs": out,
                  "model_load_ms": (t_first - t_load) * 1000,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def texts(n: int) -> list[str]:
    """Deterministic English-ish texts of 8..80 words from the example lexicon."""
    sys.path.insert(0, str(REPO / "model" / "examples"))
    from lexicon import NEGATIVE, NEUTRAL, POSITIVE

    pool = sorted(POSITIVE) + sorted(NEGATIVE) + sorted(NEUTRAL) * 3
    out = []
    for i in range(n):
        h = hashlib.sha256(str(i).encode()).digest()
        k = 8 + h[0] % 73
        out.append(" ".join(pool[(h[j % 32] * 7 + j * 13 + i) % len(pool)] for j in range(k)) + ".")
    return out


def write_lock(model_dir: Path, lock_path: Path) -> None:
    files = []
    for p in sorted(q for q in model_dir.rglob("*") if q.is_file()):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        files.append(
            {
                "path": p.relative_to(model_dir).as_posix(),
                "size": p.stat().st_size,
                "sha256": h.hexdigest(),
            }
        )
    files.sort(key=lambda f: f["path"])
    root = hashlib.sha256(b"".join(bytes.fromhex(f["sha256"]) for f in files)).hexdigest()
    lock_path.write_text(
        json.dumps(
            {
                "schema": 1,
                "source": "local",
                "repo": "bench/distilbert-random",
                "revision": "main",
                "commit": "0" * 40,
                "files": files,
                "digest": "sha256:" + root,
            },
            indent=2,
        )
    )


def write_image_lock(model_dir: Path, lock_path: Path, out: Path) -> None:
    """What `release build` bakes: the project's lock + the runtime section, and the
    runtime files next to it (the build's own converter: release.modelformat)."""
    sys.path.insert(0, str(REPO))
    from release import modelformat, modelpin

    modelformat.bake(modelpin.read_lock(lock_path), model_dir, out)


def child_env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TRANSFORMERS_VERBOSITY="error",
    )
    return env


def run_child(cmd: list[str], data: list[str], env: dict[str, str]) -> dict:
    spawn = time.time()
    p = subprocess.run(
        [cmd[0], "-I", "-c", cmd[1], f"{spawn:.6f}", *cmd[2:]],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if p.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


IMPORTS = r"""
import importlib, json, sys, time
t0 = time.perf_counter()
for m in sys.argv[2:]:
    importlib.import_module(m)
t1 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "spawn": float(sys.argv[1]), "done": time.time()}))
"""


def bytecode_bench(runs: int) -> dict:
    """Handler init with and without the code layer's .pyc (see the module docstring)."""
    import shutil
    import tempfile

    sys.path.insert(0, str(REPO))
    from release.config import load
    from release.image.bytecode import compile_tree, image_python

    cfg = load(REPO / "release.toml")
    py = image_python(cfg)
    if py is None:
        raise SystemExit(f"no interpreter of the image's Python {cfg.image.python} here")
    modules = sorted({h.rsplit(".", 1)[0] for h in cfg.functions.values()})
    out: dict = {"modules": modules, "python": py.version}
    with tempfile.TemporaryDirectory(prefix="bench-pyc-") as tmp:
        roots = {}
        for side in ("source only", "with .pyc"):
            root = Path(tmp) / side.replace(" ", "-").replace(".", "") / "var" / "task"
            pkg = root / cfg.code.package
            shutil.copytree(
                REPO / cfg.code.package, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
            if side == "with .pyc":
                for e in compile_tree(pkg, f"var/task/{cfg.code.package}", py, {"__pycache__"}):
                    dest = root.parents[1] / e.path
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    assert e.data is not None
                    dest.write_bytes(e.data)
            roots[side] = root
        n_py = sum(1 for _ in (roots["source only"] / cfg.code.package).rglob("*.py"))
        out["handler_modules"] = n_py
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # a read-only /var/task keeps nothing
        # the venv's site-packages (the deps) on the path, like /opt/deps in the image
        site = subprocess.run(
            [sys.executable, "-c", "import site; print(site.getsitepackages()[0])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        import resource

        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in roots}
        cpu: dict[str, list[float]] = {k: [] for k in roots}
        for _ in range(runs):
            for side, root in roots.items():  # interleaved: load drift hits both alike
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                spawn = time.time()
                p = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        f"import sys; sys.path[:0] = [{str(root)!r}, {site!r}]\n" + IMPORTS,
                        f"{spawn:.6f}",
                        *modules,
                    ],
                    capture_output=True,
                    text=True,
                    env={
                        **env,
                        "POWERTOOLS_SERVICE_NAME": "bench",
                        "AWS_DEFAULT_REGION": "us-east-1",
                    },
                    cwd=root,
                    check=False,
                )
                if p.returncode != 0:
                    raise SystemExit(f"import failed ({side}): {p.stderr[-2000:]}")
                d = json.loads(p.stdout.strip().splitlines()[-1])
                samples[side].append((d["done"] - d["spawn"], d["imports_s"]))
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[side].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        # the compile itself, in one process (CPU time: steadier than wall on a busy machine)
        srcs = [
            (f, f.read_text())
            for f in sorted((roots["source only"] / cfg.code.package).rglob("*.py"))
        ]
        compile_cpu = []
        for _ in range(runs):
            c0 = time.process_time()
            for f, text in srcs:
                compile(text, str(f), "exec", dont_inherit=True)
            compile_cpu.append(time.process_time() - c0)
    base_wall = statistics.median(w for w, _ in samples["source only"])
    base_imp = statistics.median(i for _, i in samples["source only"])
    print(
        f"\nhandler init with and without the code layer's .pyc  (Python {py.version}, "
        f"{n_py} handler modules, imports {', '.join(modules)}; median of {runs} runs, "
        f"{os.cpu_count()} cores)\n"
    )
    base_cpu = statistics.median(cpu["source only"])
    print(
        f"{'side':<14} {'process ms':>11} {'x source':>9} {'imports ms':>11} {'x source':>9}"
        f" {'CPU ms':>8} {'x source':>9}"
    )
    for side, xs in samples.items():
        wall = statistics.median(w for w, _ in xs)
        imp = statistics.median(i for _, i in xs)
        c = statistics.median(cpu[side])
        out[side] = {"process_ms": wall * 1000, "imports_ms": imp * 1000, "cpu_ms": c * 1000}
        print(
            f"{side:<14} {wall * 1000:>11.1f} {wall / base_wall:>9.2f} "
            f"{imp * 1000:>11.1f} {imp / base_imp:>9.2f} {c * 1000:>8.1f} {c / base_cpu:>9.2f}"
        )
    saved = base_imp - statistics.median(i for _, i in samples["with .pyc"])
    out["compile_cpu_ms"] = statistics.median(compile_cpu) * 1000
    print(
        f"\nimport time saved per cold start: {saved * 1000:.1f} ms (wall); CPU time of "
        f"compiling the {n_py} handler modules, measured alone: {out['compile_cpu_ms']:.1f} ms"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per side (cold starts)")
    ap.add_argument("--warm", type=int, default=200, help="texts timed one by one after the first")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=30522)
    ap.add_argument(
        "--venv", type=Path, default=WORK / "venv", help="venv with torch==2.13.0 + transformers"
    )
    ap.add_argument("--setup", action="store_true", help="create --venv if missing")
    ap.add_argument(
        "--image", action="store_true", help="also cold-start the built image in docker"
    )
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument(
        "--bytecode",
        action="store_true",
        help="only: handler init with and without the code layer's .pyc (no torch)",
    )
    a = ap.parse_args()
    if a.bytecode:
        res = bytecode_bench(a.runs)
        if a.json:
            a.json.write_text(json.dumps(res, indent=2))
        return

    tpy = a.venv / "bin" / "python"
    if not tpy.exists():
        if not a.setup:
            raise SystemExit(
                f"no torch venv at {a.venv}; run with --setup (pip install torch==2.13.0 transformers)"
            )
        subprocess.run([sys.executable, "-m", "venv", str(a.venv)], check=True)
        subprocess.run(
            [str(tpy), "-m", "pip", "install", "-q", "torch==2.13.0", "transformers", "onnx"],
            check=True,
        )

    mdir = WORK / f"distilbert-d{a.dim}-l{a.layers}-v{a.vocab}"
    lock = mdir / "model.lock.json"
    if not lock.exists():
        print(f"building the model in {mdir} ...", file=sys.stderr)
        p = subprocess.run(
            [
                str(tpy),
                "-I",
                "-c",
                BUILD,
                str(mdir),
                str(a.dim),
                str(a.layers),
                str(a.vocab),
                str(REPO / "model" / "examples" / "sst2-tiny" / "vocab.txt"),
            ],
            capture_output=True,
            text=True,
            env=child_env(a.threads),
            timeout=1800,
        )
        if p.returncode != 0:
            raise SystemExit(f"model build failed:\n{p.stderr[-3000:]}")
        (mdir / "params.json").write_text(p.stdout.strip().splitlines()[-1])
        write_lock(mdir / "onnx-model", lock)
    image_lock = mdir / "image" / "model.lock.json"
    if not image_lock.exists():
        print("converting to the runtime format (release.modelformat) ...", file=sys.stderr)
        write_image_lock(mdir / "onnx-model", lock, mdir / "image")
    params = json.loads((mdir / "params.json").read_text())["params"]
    data = texts(a.warm + 1)
    env = child_env(a.threads)
    sides = {
        "ours": [
            sys.executable,
            OURS,
            str(REPO),
            str(mdir / "onnx-model"),
            str(image_lock),
            str(a.threads),
        ],
        "before": [
            sys.executable,
            OURS,
            str(REPO),
            str(mdir / "onnx-model"),
            str(lock),
            str(a.threads),
        ],
        "theirs": [str(tpy), THEIRS, str(mdir / "hf"), str(a.threads)],
    }
    # one untimed run each warms the page cache, then alternate so drift hits every side
    for cmd in sides.values():
        run_child(cmd, data[:2], env)
    res: dict[str, list[dict]] = {k: [] for k in sides}
    for i in range(a.runs):
        print(f"run {i + 1}/{a.runs}", file=sys.stderr)
        # each run times its share of the warm texts, so load drift hits every side alike
        share = [data[0], *data[1 + i :: a.runs]]
        for k, cmd in sides.items():
            res[k].append(run_child(cmd, share, env))
    assert all(r["runtime"] for r in res["ours"]) and not any(r["runtime"] for r in res["before"])
    image = image_cold_starts(a, mdir) if a.image else None

    outs = {k: [o for r in v for o in r["outputs"]] for k, v in res.items()}
    warm = {k: [x for r in v for x in r["warm_ms"]] for k, v in res.items()}
    agree = sum(o[0] == t[0] for o, t in zip(outs["ours"], outs["theirs"], strict=True))
    same = max(
        abs(x - y)
        for o, b in zip(outs["ours"], outs["before"], strict=True)
        for x, y in zip(o[1], b[1], strict=True)
    )
    med = statistics.median

    def m(key: str) -> tuple[float, float, float]:
        return tuple(med(r[key] for r in res[k]) for k in ("ours", "before", "theirs"))  # type: ignore[return-value]

    def w(q: float) -> tuple[float, float, float]:
        return tuple(pct(warm[k], q) for k in ("ours", "before", "theirs"))  # type: ignore[return-value]

    rows = [
        ("cold start (ms, median)", *m("cold_ms")),
        ("  interpreter start", *m("start_ms")),
        ("  imports", *m("import_ms")),
        ("  model load (ours: +ort import, verify)", *m("load_ms")),
        ("  first inference", *m("first_ms")),
        ("ModelLoadTimeMs p50 (handler metric)", *m("model_load_ms")),
        ("peak RSS (MB, median)", *m("rss_mb")),
        ("warm p50 per text (ms)", *w(0.5)),
        ("warm p95 per text (ms)", *w(0.95)),
    ]
    print(
        f"model: DistilBERT dim={a.dim} layers={a.layers} vocab={a.vocab} ({params / 1e6:.1f}M params, "
        f"random weights), threads={a.threads}, cold runs={a.runs}, warm texts={a.warm}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"label agreement ours vs transformers on the warm texts: {agree}/{len(outs['ours'])}; "
        f"max |logit| difference runtime format vs source ONNX: {same:.2e}"
    )
    print(
        f"{'metric':40} {'ours (runtime fmt)':>18} {'before (src ONNX)':>18} {'transformers':>13} "
        f"{'theirs/ours':>12} {'theirs/before':>14}"
    )
    for name, o, b, t in rows:
        print(
            f"{name:40} {o:18.1f} {b:18.1f} {t:13.1f} {t / o if o else float('nan'):11.2f}x "
            f"{t / b if b else float('nan'):13.2f}x"
        )
    cold = rows[0]
    print(
        f"targets: cold start theirs/ours {cold[3] / cold[1]:.2f}x; peak RSS ours/theirs "
        f"{rows[6][1] / rows[6][3]:.0%} (<= 60%); warm p95 ours {rows[8][1]:.1f} ms vs before {rows[8][2]:.1f} ms"
    )
    if image:
        print(
            f"in the image (docker run --network none --read-only, CMD's handler once; {len(image)} runs):"
        )
        for key, label in (
            ("wall_ms", "  docker run -> handler result (ms, median)"),
            ("in_ms", "  python start -> handler result, in the container"),
            ("model_load_ms", "  ModelLoadTimeMs p50 (in the container)"),
            ("rss_mb", "  peak RSS (MB, in the container)"),
        ):
            print(f"{label:48} {med(r[key] for r in image):10.1f}")
        print(f"  process cold start for comparison (ms, median) {cold[1]:10.1f}")
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "rows": [
                        {"metric": n, "ours": o, "before": b, "transformers": t}
                        for n, o, b, t in rows
                    ],
                    "image": image,
                    "params": params,
                    "agree": agree,
                    "runs": a.runs,
                    "warm": a.warm,
                    "threads": a.threads,
                },
                indent=2,
            )
        )


IN_IMAGE = r"""
import importlib, json, resource, sys, time
spawn = float(sys.argv[1]); t_py = time.time()
mod, _, fn = sys.argv[2].rpartition(".")
handler = getattr(importlib.import_module(mod), fn)
class Ctx:
    function_name = "analysis"; function_version = "$LATEST"; memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:analysis"
    aws_request_id = "cold-1"; log_group_name = "/aws/lambda/analysis"; log_stream_name = "bench"
    def get_remaining_time_in_millis(self): return 60_000
out = handler({"id": "cold-1", "text": sys.argv[3]}, Ctx())
t_done = time.time()
from handlers.common import model as mm
(m,) = mm._CACHE.values()
print(json.dumps({"in_ms": (t_done - spawn) * 1000, "py_ms": (t_done - t_py) * 1000, "model_load_ms": m.load_ms,
                  "runtime": m.lock.runtime is not None, "status": out.get("statusCode"),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def image_cold_starts(a: argparse.Namespace, mdir: Path) -> list[dict]:
    """The same cold start inside the built image (see the module doc)."""
    import re
    import shutil
    import tempfile

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    from build import start_dockerd, start_registry  # bench/build.py

    from tests.fixtures.docker import make_rootfs
    from tests.fixtures.tools import copy_project

    work = Path(tempfile.mkdtemp(prefix="coldstart-image-"))
    dockerd = reg = None
    try:
        p = copy_project(work / "p", git=True)
        shutil.copytree(mdir / "onnx-model", p / "model" / "bench-model")
        toml = (p / "release.toml").read_text()
        toml = re.sub(r'path = "model/examples/sst2-tiny"', 'path = "model/bench-model"', toml)
        toml = re.sub(
            r"include = \[.*?\]",
            'include = ["config.json", "tokenizer.json", '
            '"tokenizer_config.json", "onnx/model.onnx"]',
            toml,
            count=1,
        )
        # the analysis handler first: the image's CMD is the first function
        head, sep, rest = toml.partition("[functions]")
        block, blank, tail = rest.partition("\n\n")
        first, *fns = block.split("\n")
        fns.sort(key=lambda ln: not ln.startswith("analysis ="))
        (p / "release.toml").write_text(head + sep + "\n".join([first, *fns]) + blank + tail)
        env = {
            **os.environ,
            "RELEASE_CACHE_DIR": str(work / "cache"),
            "SOURCE_DATE_EPOCH": "1700000000",
        }

        def release(*args: str) -> str:
            r = subprocess.run(
                [sys.executable, "-m", "release", *args],
                cwd=p,
                env=env,
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                raise SystemExit(f"release {' '.join(args)} failed: {r.stderr[-2000:]}")
            return r.stdout.strip().splitlines()[-1]

        print("image: pin, base, build ...", file=sys.stderr)
        release("model", "pin")
        env["RELEASE_BASE"] = release(
            "base", "--rootfs", str(make_rootfs()), "--out", f"oci:{work / 'base'}"
        )
        reg, host = start_registry(work)
        ref = release("build", "--push", f"{host}/coldstart")
        dockerd, docker_host, _ = start_dockerd()
        denv = {**os.environ, "DOCKER_HOST": docker_host}
        subprocess.run(["docker", "pull", "-q", ref], env=denv, check=True, capture_output=True)
        cfg = json.loads(
            subprocess.run(
                ["docker", "image", "inspect", ref],
                env=denv,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )[0]["Config"]
        cmd = cfg["Cmd"][0]
        assert cmd == "handlers.analysis.lambda_handler", cmd
        text = texts(1)[0]
        out = []
        for i in range(a.runs + 1):  # the first run warms the page cache, as on the process side
            spawn = time.time()
            r = subprocess.run(
                [
                    "docker",
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "--read-only",
                    "--user",
                    "1000:1000",
                    "-e",
                    f"ORT_INTRA_OP_THREADS={a.threads}",
                    "-e",
                    f"OMP_NUM_THREADS={a.threads}",
                    "-e",
                    "AWS_DEFAULT_REGION=us-east-1",
                    "-e",
                    "AWS_ACCESS_KEY_ID=bench",
                    "-e",
                    "AWS_SECRET_ACCESS_KEY=bench",
                    "-e",
                    "AWS_MAX_ATTEMPTS=1",
                    "-e",
                    "AWS_RETRY_MODE=standard",
                    "-e",
                    "AWS_ENDPOINT_URL=http://127.0.0.1:9",
                    "--entrypoint",
                    "python3",
                    ref,
                    "-c",
                    IN_IMAGE,
                    f"{spawn:.6f}",
                    cmd,
                    text,
                ],
                env=denv,
                capture_output=True,
                text=True,
                timeout=300,
            )
            wall = (time.time() - spawn) * 1000
            if r.returncode != 0:
                raise SystemExit(f"in-image run failed: {r.stderr[-2000:]}")
            doc = json.loads(r.stdout.strip().splitlines()[-1])
            assert doc["runtime"], "the image's handler did not load the runtime model"
            doc["wall_ms"] = wall
            if i:
                out.append(doc)
        return out
    finally:
        for proc in (dockerd, reg):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
