"""Run a candidate image's OWN model and analysis code over the canary corpus.

`run(cfg, ref, baseline=...)` extracts the model directory (`[image].model_dir`), the
baked lock (/opt/release/model.lock.json) and the code (`[image].workdir`) from the
image's MERGED filesystem (`release.image.fs`: every layer, whiteouts applied) into a
temporary directory, refuses (VerificationFailed, before anything runs) when the model
directory is not exactly the lock's files or a layer other than the model layer touched
it, re-hashes the model files against the lock on disk, then runs the image's canary entry point (`[code].predict`, the platform's `MODULE:CALLABLE`) over the corpus in a child Python process whose import path starts at the extracted code, so
the repository's own handlers/ can never stand in for the image's. The model is loaded
once and the corpus is scored in batches; per-batch latency is measured in the child.

`run_on_model_dir` is the core, usable on any directory triple (model, lock, code).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from release.canary import report as rpt
from release.errors import CanaryFailed, ConfigError, UsageError, VerificationFailed
from release.inputs import read_input

DEFAULT_BATCH = 64
#: where things live inside the image by default (ARCHITECTURE contract 1); the model
#: directory and the code's working directory come from [image].model_dir / .workdir
IMAGE_MODEL_DIR = "opt/model"
IMAGE_LOCK = "opt/release/model.lock.json"
IMAGE_CODE_DIR = "var/task"
IMAGE_DEPS_DIR = "opt/deps"


# --- the corpus -----------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusItem:
    """One corpus line: the model's input (a text, or an object of several input fields)
    and the optional expected output (typed like the output: `outputs.check_expected`)."""

    id: str
    text: str | dict[str, Any]
    expected: Any = None
    line: int = 0
    source: str = ""  # the corpus file's name, for messages


@dataclass(frozen=True)
class Corpus:
    items: list[CorpusItem]
    meta: rpt.Corpus


def read_corpus(path: Path, name: str | None = None) -> Corpus:
    """JSONL, one `{"id", "text"[, "expected"]}` per line, `text` a string or a JSON
    object (several input fields); ids unique. Any bad line -> UsageError naming the line.
    `expected` is typed against the output later (`check_corpus`), when the label set is
    known."""
    raw = read_input(path, "canary corpus", hint="set [canary].corpus")
    items: list[CorpusItem] = []
    seen: set[str] = set()
    try:
        text_all = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        line_no = raw[: exc.start].count(b"\n") + 1
        raise UsageError(
            f"canary corpus {path.name}:{line_no}: not UTF-8 text (byte offset {exc.start}); "
            "the corpus is JSONL"
        ) from None
    for no, line in enumerate(text_all.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{no}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not JSON: {exc.msg}") from None
        if not isinstance(obj, dict) or set(obj) - {"id", "text", "expected"}:
            raise UsageError(f'{where}: expected {{"id", "text"[, "expected"]}}')
        iid, text, exp = obj.get("id"), obj.get("text"), obj.get("expected")
        if not isinstance(iid, str) or not iid or not isinstance(text, str | dict):
            raise UsageError(
                f"{where}: id must be a non-empty string, text a string or a JSON object"
            )
        if iid in seen:
            raise UsageError(f"{where}: duplicate id {iid!r}")
        seen.add(iid)
        items.append(CorpusItem(iid, text, exp, no, path.name))
    if not items:
        raise UsageError(f"canary corpus {path} has no items")
    meta = rpt.Corpus(
        path=name or path.name, sha256=hashlib.sha256(raw).hexdigest(), items=len(items)
    )
    return Corpus(items, meta)


def check_corpus(corpus: Sequence[CorpusItem], out: rpt.Output, name: str) -> None:
    """Every line's `expected` typed like the output (UsageError naming the line)."""
    from release.canary.outputs import check_expected

    for c in corpus:
        check_expected(
            out, c.expected, f"{c.source or name}:{c.line}" if c.line else f"item {c.id}"
        )


# --- running a model directory ----------------------------------------------------------
@dataclass(frozen=True)
class ModelRun:
    output: rpt.Output
    items: list[rpt.Item]
    latency: rpt.Latency
    model: str  # "<repo>@<commit>" from the lock
    model_digest: str  # the lock's root digest


# The child process: import path = the extracted code (and deps) first, nothing from the
# caller's working directory (-I), one load, batched predict, JSON out.
_RUNNER = r"""
import importlib, json, sys, time
FIELDS = ("label", "confidence", "probs", "logits", "score", "vector")
def value(v):
    v = v.tolist() if hasattr(v, "tolist") else v
    if isinstance(v, (list, tuple)):
        return [value(x) for x in v]
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    return repr(v)
def plain(p):
    # an object with the contract's attributes, a dict, a bare number (score) or list (vector)
    if isinstance(p, dict):
        return {k: value(p[k]) for k in FIELDS if p.get(k) is not None}
    if isinstance(p, (int, float)) and not isinstance(p, bool):
        return {"score": float(p)}
    if isinstance(p, (list, tuple)) or hasattr(p, "tolist"):
        return {"vector": value(p)}
    return {k: value(getattr(p, k)) for k in FIELDS if getattr(p, k, None) is not None}
code_dir, model_dir, lock_path, batch, entry = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
sys.path[:0] = [code_dir, *sys.argv[6:]]
t0 = time.perf_counter()
mod_name, qual = entry.split(":", 1)
mm = importlib.import_module(mod_name)
load_fn = mm
for part in qual.split("."):
    load_fn = getattr(load_fn, part)
texts = json.loads(sys.stdin.buffer.read())
model = load_fn(model_dir, lock_path=lock_path)
load = time.perf_counter() - t0
out, lat = [], []
for i in range(0, len(texts), batch):
    s = time.perf_counter()
    preds = list(model.predict(texts[i:i + batch], batch_size=batch))
    lat.append(time.perf_counter() - s)
    for p in preds:
        out.append(plain(p))
sys.stdout.write(json.dumps({"module": mm.__file__, "load_s": load, "batches": lat, "outputs": out}))
"""


def verify_model_dir(model_dir: Path, lock_path: Path, where: str) -> Any:
    """Re-hash every model file against the lock; VerificationFailed listing every
    missing/changed/extra file. Returns the lock."""
    from release import modelpin

    if not lock_path.is_file():
        raise VerificationFailed(
            f"{where}: no model lock at {lock_path.name}; cannot verify the model"
        )
    try:
        lock = modelpin.read_lock(lock_path)
    except UsageError as exc:
        raise VerificationFailed(f"{where}: model lock unreadable: {exc.message}") from None
    if not model_dir.is_dir():
        raise VerificationFailed(f"{where}: no model directory")
    from release.modelformat import verify_runtime

    # what the image's model directory holds: the runtime model in place of its source
    res = modelpin.verify_dir(model_dir, modelpin.shipped(lock), progress=False)
    problems = res.problems() + verify_runtime(lock_path.parent, lock)  # the file the handler runs
    if problems:
        raise VerificationFailed(
            f"{where}: model does not match the lock baked in the image "
            f"({len(problems)} problem(s)); refusing to run it",
            details=problems,
        )
    return lock


def run_on_model_dir(
    model_dir: Path,
    lock_path: Path,
    code_dir: Path,
    corpus: Sequence[CorpusItem],
    *,
    deps_dirs: Sequence[Path] = (),
    batch_size: int = DEFAULT_BATCH,
    where: str = "model",
    python: str | None = None,
    predict: str,
    canary: Any = None,
) -> ModelRun:
    """Verify `model_dir` against `lock_path`, then score `corpus` with the entry point
    `predict` (`MODULE:CALLABLE`, [code].predict) found in `code_dir` (nowhere else).
    `canary`: the `[canary]` section (output type, labels; default: its defaults), the
    labels read from `model_dir`'s config.json when it names none; every output is
    checked against that type (ConfigError naming the first item that is not)."""
    from release.canary import outputs as out_types
    from release.config import CanaryConfig

    lock = verify_model_dir(model_dir, lock_path, where)
    spec = out_types.spec(canary if canary is not None else CanaryConfig(), model_dir)
    check_corpus(corpus, spec, "canary corpus")
    mod_path = predict.split(":", 1)[0].replace(".", "/")
    if not any((code_dir / p).is_file() for p in (f"{mod_path}.py", f"{mod_path}/__init__.py")):
        raise VerificationFailed(
            f"{where}: no {mod_path}.py in the image's code ([code].predict = {predict!r}); "
            "cannot run its model"
        )
    texts = [c.text for c in corpus]
    with tempfile.TemporaryDirectory(prefix="release-canary-") as cwd:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
        proc = subprocess.run(
            [
                python or sys.executable,
                "-I",
                "-c",
                _RUNNER,
                str(code_dir.resolve()),
                str(model_dir.resolve()),
                str(lock_path.resolve()),
                str(batch_size),
                predict,
                *(str(d.resolve()) for d in deps_dirs),
            ],
            input=json.dumps(texts).encode(),
            capture_output=True,
            cwd=cwd,
            env=env,
            check=False,
        )
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        if "ModelLoadError" in last:
            raise VerificationFailed(f"{where}: the image's runtime refused the model: {last}")
        raise CanaryFailed(
            f"{where}: the image's analysis runtime failed: {last}", details=lines[-15:]
        )
    doc = json.loads(proc.stdout)
    module = Path(doc["module"]).resolve()
    if not module.is_relative_to(code_dir.resolve()):
        raise VerificationFailed(
            f"{where}: analysis code was imported from {module}, not the image"
        )
    outs = doc["outputs"]
    if len(outs) != len(corpus):
        raise CanaryFailed(
            f"{where}: the runtime returned {len(outs)} outputs for {len(corpus)} texts"
        )
    spec, items = out_types.to_items(
        spec, [c.id for c in corpus], outs, [c.expected for c in corpus], where
    )
    lat_ms = np.asarray(doc["batches"], dtype=np.float64) * 1000.0
    total_s = float(lat_ms.sum()) / 1000.0
    latency = rpt.Latency(
        batch_size=batch_size,
        batches=len(lat_ms),
        load_ms=float(doc["load_s"]) * 1000.0,
        p50_ms=float(np.percentile(lat_ms, 50)) if len(lat_ms) else 0.0,
        p90_ms=float(np.percentile(lat_ms, 90)) if len(lat_ms) else 0.0,
        p99_ms=float(np.percentile(lat_ms, 99)) if len(lat_ms) else 0.0,
        items_per_second=len(corpus) / total_s if total_s > 0 else 0.0,
    )
    return ModelRun(spec, items, latency, f"{lock.repo}@{lock.commit}", lock.digest)


def report_for_run(
    run: ModelRun,
    corpus: Corpus,
    t: Any,
    *,
    digest: str | None = None,
    baseline: rpt.CanaryReport | None = None,
    baseline_source: Literal["report", "digest", "promoted"] = "report",
) -> rpt.CanaryReport:
    return rpt.build(
        subject=rpt.Subject(digest=digest, model=run.model, model_digest=run.model_digest),
        corpus=corpus.meta,
        items=run.items,
        t=t,
        output=run.output,
        latency=run.latency,
        baseline=baseline,
        baseline_source=baseline_source,
    )


# --- running an image -------------------------------------------------------------------
def run_image(
    cfg: Any,
    ref: str,
    corpus: Corpus,
    t: Any,
    *,
    baseline: rpt.CanaryReport | None = None,
    baseline_source: Literal["report", "digest", "promoted"] = "report",
    batch_size: int = DEFAULT_BATCH,
) -> rpt.CanaryReport:
    """The canary report of image `ref` (`sha256:...` in the configured registry, or
    `REPO@sha256:...`): its own model (verified against its own lock) and code."""
    from release.digest import parse_reference
    from release.image.inspect import open_image
    from release.image.registry import open_registry

    if not cfg.code.predict:
        raise ConfigError(
            "[code].predict is not set: the canary calls MODULE:CALLABLE of your code to "
            "score the corpus (docs/migrating.md, the canary entry point)"
        )
    r = parse_reference(ref)
    registry = open_registry(r.repository or cfg.image.registry, cfg.root)
    image = open_image(registry, r.digest)
    short = r.digest[:19]
    with tempfile.TemporaryDirectory(prefix="release-canary-image-") as tmp:
        root = Path(tmp)
        tree = extract_merged(cfg, image, root, where=f"image {short}")
        run = run_on_model_dir(
            tree.model_dir,
            tree.lock,
            tree.workdir,
            corpus.items,
            batch_size=batch_size,
            where=f"image {short}",
            predict=cfg.code.predict,
            canary=cfg.canary,
        )
    return report_for_run(
        run,
        corpus,
        t,
        digest=r.digest,
        baseline=baseline,
        baseline_source=baseline_source,
    )


@dataclass(frozen=True)
class ImageTree:
    """Where `extract_merged` put the parts of an image."""

    root: Path
    model_dir: Path
    lock: Path
    workdir: Path
    deps: Path


def extract_merged(
    cfg: Any, image: Any, dest: Path, *, where: str, extra: Sequence[str] = ()
) -> ImageTree:
    """The model directory, the baked lock, `[image].workdir` (and `extra` subtrees) of
    the image's merged filesystem, written under `dest` (one read of every layer, each
    blob verified). VerificationFailed when the model directory is not exactly the
    lock's files or a layer other than the model layer touched it or the lock."""
    from release import modelpin
    from release.image import fs
    from release.image.modeltree import BESIDE_LOCK_RUNTIME, check_model

    model_dir = cfg.image.model_dir.strip("/")
    workdir = cfg.image.workdir.strip("/")
    roles = {layer.role for layer in image.layers}
    if "model" not in roles:
        raise VerificationFailed(
            f"{where}: no model layer (dev.release.layer.role); not an image built by `release build`"
        )
    runtime = BESIDE_LOCK_RUNTIME  # a runtime model of an image built before it replaced its source
    merged = fs.scan(
        image,
        hash=lambda p: p.startswith((model_dir + "/", runtime + "/")),
        watch=[model_dir, IMAGE_LOCK, runtime],
        extract=[model_dir, IMAGE_LOCK, runtime, workdir, *extra],
        dest=dest,
    )
    raw = (dest / IMAGE_LOCK).read_bytes() if (dest / IMAGE_LOCK).is_file() else None
    if raw is None:
        raise VerificationFailed(
            f"{where}: no model lock at /{IMAGE_LOCK}; cannot verify the model"
        )
    try:
        lock = modelpin.parse_lock(raw, f"/{IMAGE_LOCK}")
    except UsageError as exc:
        raise VerificationFailed(f"{where}: model lock unreadable: {exc.message}") from None
    problems = check_model(merged, model_dir, lock)[1]
    if problems:
        raise VerificationFailed(
            f"{where}: model does not match the lock baked in the image "
            f"({len(problems)} problem(s)); refusing to run it",
            details=problems,
        )
    return ImageTree(
        dest, dest / model_dir, dest / IMAGE_LOCK, dest / workdir, dest / IMAGE_DEPS_DIR
    )


# --- the baseline of an environment -------------------------------------------------------
def promoted_baseline(cfg: Any, env: str) -> tuple[rpt.CanaryReport, str] | None:
    """The signed canary report of the digest live in `env` (ledger + registry), verified
    against `[signing]`; None when nothing is promoted there yet (a first release: the
    caller runs the absolute checks only). A promoted digest without a valid signed
    report is a VerificationFailed naming it (pass --baseline FILE to override)."""
    from release.attest.signatures import policy_from_config, verify_all_stored
    from release.digest import parse_reference
    from release.evidence import CANARY, CANARY_TYPES, newest_canary
    from release.image.registry import open_registry
    from release.ledger import open_ledger

    cfg.environment(env)
    cur = open_ledger(cfg).current(env)
    if cur is None:
        return None
    ref = parse_reference(cur.evidence.get("reference") or cur.digest)
    if ref.digest != cur.digest:
        raise VerificationFailed(
            f"ledger event {cur.seq}: reference {ref} does not match {cur.digest}"
        )
    registry = open_registry(ref.repository or cfg.image.registry, cfg.root)
    found = newest_canary(
        [
            vs
            for t in CANARY_TYPES
            for vs in verify_all_stored(
                registry, ref.digest, t, policy_from_config(cfg.signing, cfg.root)
            )
        ]
    )
    if found is None:
        raise VerificationFailed(
            f"baseline: {ref.digest[:19]} (live in {env}) has no valid signed canary report "
            f"(no {CANARY} attestation verifies); give --baseline REPORT",
        )
    vs = found
    report = rpt.parse_report(
        json.dumps(vs.predicate).encode(), f"canary report of {ref.digest[:19]}"
    )
    if report.subject.digest not in (None, ref.digest):
        raise VerificationFailed(
            f"baseline: the signed canary report of {ref.digest[:19]} is about {report.subject.digest}"
        )
    return report, ref.digest
