"""The baked-in sentiment model: ONNX Runtime + `tokenizers`, verified before use.

`SentimentModel.load(model_dir, lock_path)` re-hashes every file of `model_dir` against the
model lock baked into the image (sha256 and size of each file, the lock's root digest,
missing / changed / extra files, symlinks refused) and raises `ModelLoadError` on any
mismatch: an unverified model is never served (fail closed). `get_model()` loads once
per container (per model_dir/lock pair) and reuses it on every warm invocation.

When the lock carries a `runtime` section (an image built by `release build`, see
docs/model-format.md), the session is built from the pre-optimized runtime model named
there (`model.onnx` graph + `model.weights`, memory-mapped by ONNX Runtime) instead of the
source ONNX: the graph is read once, hashed and handed to ONNX Runtime as those same
bytes; the weights are hashed on a worker thread (the second core) while the runtime is
imported and the session is built, and the session is discarded unless every digest
matches (fail closed, nothing is returned or served before). In an image the runtime
model sits in the model directory in place of the source ONNX it was made from (the
weights ship once: placement "replaces-source"); the source must then be absent. With a
runtime model next to the lock ("beside-lock") the source ONNX is checked for presence
and size only: it is never read at run time.

`predict(texts, batch_size)` tokenizes with the model's own tokenizer.json, truncates to
the model's token limit (512, or less if the config says so), pads per batch and returns
one `Prediction(label, confidence, logits, truncated)` per text, labels read from
config.json `id2label`. Any runtime failure is an `InferenceError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

MAX_TOKENS = 512
_CHUNK = 1 << 20
_HASH_CHUNK = 8 << 20
#: padded tokens per session run (rows x longest row): bounds activation memory. At the
#: DistilBERT-base shape 8 x 512 tokens peaks ~520 MB above the loaded model, 2048 ~half that
MAX_BATCH_TOKENS = 2048
RUNTIME_FORMAT = "onnx-external-data-v1"
RUNTIME_GRAPH = "model.onnx"
RUNTIME_WEIGHTS = "model.weights"


class ModelLoadError(RuntimeError):
    """The model could not be verified or loaded; nothing may be served with it."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class InferenceError(RuntimeError):
    """The model failed on an input batch."""


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    logits: tuple[float, ...]
    truncated: bool = False


@dataclass(frozen=True)
class RuntimeInfo:
    """The lock's `runtime` section: the pre-optimized model the session is built from."""

    digest: str
    dir: str  # relative to the lock file's directory
    files: dict[str, tuple[int, str]] = field(repr=False)
    source: str  # the locked file it was made from (not read at run time)
    #: placement "replaces-source": `dir` is in the model directory and the source is not
    #: shipped (the weights once); else `dir` is next to the lock, the source shipped too
    replaces: bool = False


@dataclass(frozen=True)
class LockInfo:
    digest: str
    model: str  # "<repo>@<commit>"
    files: dict[str, tuple[int, str]] = field(repr=False)
    runtime: RuntimeInfo | None = None


def _sha256(path: Path) -> str:
    """sha256 of a file, read once: large files through mmap (no copy out of the page
    cache; hashlib releases the GIL), small ones with readinto."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size >= _CHUNK:
            import mmap

            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                return hashlib.sha256(m).hexdigest()
        h = hashlib.sha256()
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
        return h.hexdigest()


def _lock_files(entries: Any) -> dict[str, tuple[int, str]]:
    files = {}
    for f in entries:
        path, size, sha = f["path"], int(f["size"]), str(f["sha256"]).lower()
        if not isinstance(path, str) or len(sha) != 64:
            raise ValueError(f"bad file entry {f!r}")
        files[path] = (size, sha)
    return files


def _root(files: dict[str, tuple[int, str]]) -> str:
    return (
        "sha256:"
        + hashlib.sha256(b"".join(bytes.fromhex(files[p][1]) for p in sorted(files))).hexdigest()
    )


def _read_runtime(doc: Any, files: dict[str, tuple[int, str]]) -> RuntimeInfo | None:
    rt = doc.get("runtime")
    if rt is None:
        return None
    if rt.get("format") != RUNTIME_FORMAT:
        raise ValueError(f"unknown runtime model format {rt.get('format')!r}")
    rfiles = _lock_files(rt["files"])
    if set(rfiles) != {RUNTIME_GRAPH, RUNTIME_WEIGHTS}:
        raise ValueError(f"runtime model files {sorted(rfiles)}")
    rdir, source = str(rt["dir"]), str(rt["source"]["path"])
    if rdir.startswith("/") or ".." in rdir.split("/") or not rdir:
        raise ValueError(f"runtime dir {rdir!r}")
    if _root(rfiles) != str(rt["digest"]):
        raise ValueError("the runtime digest does not match its files")
    if files.get(source, (0, ""))[1] != str(rt["source"]["sha256"]).lower():
        raise ValueError(f"runtime source {source} is not a locked file")
    placement = rt.get("placement", "beside-lock")
    if placement not in ("beside-lock", "replaces-source"):
        raise ValueError(f"unknown runtime placement {placement!r}")
    replaces = placement == "replaces-source"
    if replaces and ("/" in rdir or any(p.split("/", 1)[0] == rdir for p in files)):
        raise ValueError(f"runtime dir {rdir!r} is not a directory of its own in the model's")
    return RuntimeInfo(
        digest=str(rt["digest"]), dir=rdir, files=rfiles, source=source, replaces=replaces
    )


def read_lock(lock_path: Path) -> LockInfo:
    try:
        doc = json.loads(lock_path.read_bytes())
        files = _lock_files(doc["files"])
        digest = str(doc["digest"])
        model = f"{doc.get('repo', '?')}@{doc.get('commit', '?')}"
        runtime = _read_runtime(doc, files)
    except FileNotFoundError:
        raise ModelLoadError(
            f"model lock {lock_path} not found; refusing to load an unverified model"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"model lock {lock_path} is unreadable: {exc}") from None
    if not files:
        raise ModelLoadError(f"model lock {lock_path} lists no files")
    if digest != _root(files):
        raise ModelLoadError(
            f"model lock {lock_path} is inconsistent: its digest does not match its files"
        )
    return LockInfo(digest=digest, model=model, files=files, runtime=runtime)


def _hash_mapped(path: Path, size: int) -> str | None:
    """sha256 of a large file through one read-only mapping, chunk by chunk, each chunk
    dropped from this process's resident set once hashed (the page cache keeps it for
    ONNX Runtime's own mapping): the check adds no peak memory. None when the size differs."""
    import mmap

    with open(path, "rb", buffering=0) as f:
        if os.fstat(f.fileno()).st_size != size:
            return None
        h = hashlib.sha256()
        if size == 0:
            return h.hexdigest()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            view = memoryview(m)
            try:
                for start in range(0, size, _HASH_CHUNK):
                    n = min(_HASH_CHUNK, size - start)
                    h.update(view[start : start + n])  # releases the GIL
                    m.madvise(mmap.MADV_DONTNEED, start, n)
            finally:
                view.release()
        return h.hexdigest()


def verify_dir(
    model_dir: Path,
    lock: LockInfo,
    size_only: frozenset[str] = frozenset(),
    skip_dir: str | None = None,
) -> list[str]:
    """Every problem of `model_dir` against the lock (empty = verified). Files named in
    `size_only` are checked for presence, type and size but not read; the top-level
    directory `skip_dir` (the runtime model's, checked on its own) is not walked."""
    problems: list[str] = []
    seen: set[str] = set()
    if not model_dir.is_dir():
        return [f"{model_dir}: not a directory"]
    for root, dirs, names in os.walk(model_dir, followlinks=False):
        if skip_dir is not None and Path(root) == model_dir and skip_dir in dirs:
            dirs.remove(skip_dir)
        for d in list(dirs):
            if os.path.islink(os.path.join(root, d)):
                rel = os.path.relpath(os.path.join(root, d), model_dir).replace(os.sep, "/")
                problems.append(f"symlink: {rel}")
                dirs.remove(d)
        for name in names:
            full = Path(root, name)
            rel = os.path.relpath(full, model_dir).replace(os.sep, "/")
            if full.is_symlink():
                problems.append(f"symlink: {rel}")
                continue
            if rel not in lock.files:
                problems.append(f"extra: {rel}")
                continue
            seen.add(rel)
            size, sha = lock.files[rel]
            actual_size = full.stat().st_size
            if actual_size != size:
                problems.append(f"changed: {rel} (size {actual_size} != {size})")
            elif rel not in size_only and _sha256(full) != sha:
                problems.append(f"changed: {rel} (sha256 differs)")
    problems.extend(f"missing: {p}" for p in sorted(set(lock.files) - seen))
    return sorted(problems)


def _import_runtime() -> tuple[Any, Any]:
    try:
        import onnxruntime as ort
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise ModelLoadError(f"model runtime unavailable: {exc}") from None
    return ort, Tokenizer


def _raise_problems(model_dir: Path, problems: list[str]) -> None:
    if problems:
        raise ModelLoadError(
            f"model in {model_dir} does not match the lock ({len(problems)} problem(s): "
            f"{'; '.join(problems[:3])}{'; ...' if len(problems) > 3 else ''}); refusing to serve it",
            problems,
        )


def _session_options(ort: Any, intra_op_threads: int) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def _runtime_session(
    model_dir: Path, lock_file: Path, lock: LockInfo, intra_op_threads: int
) -> tuple[Any, Any, Any]:
    """Verify and load the lock's runtime model; (session, ort, Tokenizer).

    Order: (1) a worker thread starts hashing model.weights (mmap, the second core);
    (2) this thread verifies model_dir (every small file hashed; the source ONNX by size
    only), reads the graph once and checks its sha256, imports the runtime and builds the
    session from the verified graph bytes (ONNX Runtime maps model.weights itself; the only
    unverified bytes it touches are raw tensor data); (3) the weights digest is awaited and
    the session dropped on any mismatch. Each byte is read once from the file system."""
    rt = lock.runtime
    assert rt is not None
    wsize, wsha = rt.files[RUNTIME_WEIGHTS]
    gsize, gsha = rt.files[RUNTIME_GRAPH]
    if rt.replaces:  # the runtime model in the model directory, in place of its source
        rt_dir = model_dir / rt.dir
        shipped = replace(lock, files={p: f for p, f in lock.files.items() if p != rt.source})
        check = partial(verify_dir, model_dir, shipped, skip_dir=rt.dir)
    else:
        rt_dir = lock_file.parent / rt.dir
        check = partial(verify_dir, model_dir, lock, size_only=frozenset({rt.source}))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_hash_mapped, rt_dir / RUNTIME_WEIGHTS, wsize)
        problems = check()
        problems += _runtime_dir_problems(rt_dir, rt)
        graph = b""
        if not problems:
            try:
                graph = (rt_dir / RUNTIME_GRAPH).read_bytes()
            except OSError as exc:
                problems.append(f"runtime: {RUNTIME_GRAPH} unreadable ({exc.strerror})")
            else:
                if len(graph) != gsize or hashlib.sha256(graph).hexdigest() != gsha:
                    problems.append(f"changed: runtime/{RUNTIME_GRAPH} (sha256 differs)")
        if problems:
            pending.cancel()
            _raise_problems(model_dir, sorted(problems))
        ort, Tokenizer = _import_runtime()
        session: Any = None
        error: Exception | None = None
        try:
            opts = _session_options(ort, intra_op_threads)
            # optimized at build time (docs/model-format.md): not again on every cold start
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            opts.add_session_config_entry(
                "session.model_external_initializers_file_folder_path", str(rt_dir)
            )
            session = ort.InferenceSession(
                graph, opts, providers=["CPUExecutionProvider"], read_config_from_model=0
            )
        except Exception as exc:  # reported after the digest: a changed byte says more
            error = exc
        try:
            weights_sha = pending.result()
        except OSError as exc:
            weights_sha = f"unreadable ({exc.strerror})"
    if weights_sha != wsha:
        session = None
        _raise_problems(
            model_dir,
            [f"changed: runtime/{RUNTIME_WEIGHTS} (sha256 {weights_sha or 'size'} differs)"],
        )
    if error is not None or session is None:
        raise ModelLoadError(f"model failed to load: {type(error).__name__}: {error}") from None
    return session, ort, Tokenizer


def _runtime_dir_problems(rt_dir: Path, rt: RuntimeInfo) -> list[str]:
    """The runtime directory holds exactly the runtime files, regular, of the locked sizes."""
    try:
        names = sorted(os.listdir(rt_dir))
    except OSError:
        return [f"missing: runtime directory {rt.dir}"]
    out = [f"extra: runtime/{n}" for n in names if n not in rt.files]
    for name, (size, _) in rt.files.items():
        full = rt_dir / name
        if full.is_symlink() or not full.is_file():
            out.append(f"missing: runtime/{name}")
        elif full.stat().st_size != size:
            out.append(f"changed: runtime/{name} (size {full.stat().st_size} != {size})")
    return out


def _softmax(logits: Any) -> Any:
    import numpy as np

    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class SentimentModel:
    """A verified, loaded model. Thread-safe for predict (ONNX Runtime sessions are)."""

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        labels: list[str],
        max_tokens: int,
        pad_id: int,
        lock: LockInfo,
        load_ms: float,
    ) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.labels = labels
        self.max_tokens = max_tokens
        self._pad_id = pad_id
        self.lock = lock
        self.load_ms = load_ms
        self._inputs = {i.name for i in session.get_inputs()}
        outs = [o.name for o in session.get_outputs()]
        self._output = "logits" if "logits" in outs else outs[0]

    @property
    def digest(self) -> str:
        return self.lock.digest

    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike[str],
        lock_path: str | os.PathLike[str] | None = None,
        *,
        max_tokens: int = MAX_TOKENS,
        intra_op_threads: int = 0,
    ) -> SentimentModel:
        """Verify `model_dir` against the lock (default: $MODEL_LOCK, else
        /opt/release/model.lock.json), then load it. ModelLoadError on any problem."""
        t0 = time.perf_counter()
        model_dir = Path(model_dir)
        lock_file = Path(
            lock_path
            if lock_path is not None
            else os.environ.get("MODEL_LOCK", "/opt/release/model.lock.json")
        )
        lock = read_lock(lock_file)
        if lock.runtime is not None:
            session, ort, Tokenizer = _runtime_session(model_dir, lock_file, lock, intra_op_threads)
        else:
            session, ort, Tokenizer = None, None, None
            # verify on a worker thread while this one imports the runtime (imports only:
            # no model byte is parsed before the verification has passed)
            with ThreadPoolExecutor(max_workers=1) as pool:
                pending = pool.submit(verify_dir, model_dir, lock)
                ort, Tokenizer = _import_runtime()
                _raise_problems(model_dir, pending.result())
        try:
            cfg = json.loads((model_dir / "config.json").read_bytes())
            id2label = cfg["id2label"]
            labels = [str(id2label[str(i)]) for i in range(len(id2label))]
            limit = min(max_tokens, MAX_TOKENS, int(cfg.get("max_position_embeddings", MAX_TOKENS)))
            tcfg_path = model_dir / "tokenizer_config.json"
            if tcfg_path.is_file():
                tmax = json.loads(tcfg_path.read_bytes()).get("model_max_length")
                if isinstance(tmax, int) and tmax > 0:
                    limit = min(limit, tmax)
            pad_id = int(cfg.get("pad_token_id", 0) or 0)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"model config.json is unusable: {exc}") from None
        try:
            tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            tok.enable_truncation(max_length=limit)
            tok.no_padding()
            if session is None:
                onnx_path = model_dir / "onnx" / "model.onnx"
                if not onnx_path.is_file():
                    onnx_path = model_dir / "model.onnx"
                session = ort.InferenceSession(
                    str(onnx_path),
                    _session_options(ort, intra_op_threads),
                    providers=["CPUExecutionProvider"],
                    read_config_from_model=0,
                )
        except Exception as exc:  # any loader failure means we cannot serve: fail closed
            raise ModelLoadError(f"model failed to load: {type(exc).__name__}: {exc}") from None
        load_ms = (time.perf_counter() - t0) * 1000.0
        return cls(session, tok, labels, limit, pad_id, lock, load_ms)

    def _run(self, encs: Sequence[Any]) -> Any:
        """One session run over encodings, padded to the longest: float64 logits."""
        import numpy as np

        width = max(len(e.ids) for e in encs)
        ids = np.full((len(encs), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        feed = {k: v for k, v in feed.items() if k in self._inputs}
        (logits,) = self._session.run([self._output], feed)
        return np.asarray(logits, dtype=np.float64)

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]:
        """One Prediction per text, in order; InferenceError on any runtime failure.
        A batch runs in consecutive slices of at most MAX_BATCH_TOKENS padded tokens, so
        activation memory stays bounded whatever the texts' lengths (docs/model-format.md)."""
        import numpy as np

        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        out: list[Prediction] = []
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            try:
                encs = self._tokenizer.encode_batch(chunk)
                parts = [self._run(encs[a:b]) for a, b in _token_spans(encs, MAX_BATCH_TOKENS)]
                logits = np.concatenate(parts) if len(parts) > 1 else parts[0]
                if logits.shape != (len(chunk), len(self.labels)) or not np.isfinite(logits).all():
                    raise ValueError(
                        f"model returned logits of shape {logits.shape} (or non-finite)"
                    )
                probs = _softmax(logits)
            except Exception as exc:  # onnxruntime/tokenizers raise assorted types
                raise InferenceError(f"inference failed: {type(exc).__name__}: {exc}") from None
            for i, e in enumerate(encs):
                k = int(probs[i].argmax())
                out.append(
                    Prediction(
                        label=self.labels[k],
                        confidence=float(probs[i, k]),
                        logits=tuple(float(x) for x in logits[i]),
                        truncated=bool(e.overflowing),
                    )
                )
        return out


def _token_spans(encs: Sequence[Any], budget: int) -> list[tuple[int, int]]:
    """Consecutive [a, b) slices with (b - a) x longest <= budget (one row at least)."""
    spans: list[tuple[int, int]] = []
    start, width = 0, 0
    for i, e in enumerate(encs):
        w = max(width, len(e.ids))
        if i > start and (i - start + 1) * w > budget:
            spans.append((start, i))
            start, w = i, len(e.ids)
        width = w
    spans.append((start, len(encs)))
    return spans


_LOCK = threading.Lock()
_CACHE: dict[tuple[str, str, int], SentimentModel] = {}


def get_model(
    model_dir: str, lock_path: str, max_tokens: int = MAX_TOKENS, intra_op_threads: int = 0
) -> tuple[SentimentModel, bool]:
    """The container's model, loaded once: (model, loaded_now). A failed load is not
    cached (the next invocation verifies again and fails again, loudly)."""
    key = (os.path.abspath(model_dir), os.path.abspath(lock_path), max_tokens)
    with _LOCK:
        model = _CACHE.get(key)
        if model is not None:
            return model, False
        model = SentimentModel.load(
            model_dir, lock_path, max_tokens=max_tokens, intra_op_threads=intra_op_threads
        )
        _CACHE[key] = model
        return model, True


def clear_cache() -> None:
    """Forget loaded models (tests simulate a new container with it)."""
    with _LOCK:
        _CACHE.clear()
