"""What a model returns, per the adopter's contract, and the check that it does.

`[canary].output` declares the type of `[code].predict`'s result per input:

- `label`: one label of the label set (K >= 2) - `label` and a `confidence` (0..1) or
  `probs` (one probability per label, in the label set's order); optionally `logits`
  (one per label);
- `multilabel`: `probs`, one probability per label; a label is on at
  `[canary].multilabel_threshold`;
- `score`: `score`, a finite float (a regressor, a cross-encoder);
- `vector`: `vector`, finite floats of one fixed dimension (an embedding model).

The label set is `[canary].labels`, else the model's own config.json `id2label` (in id
order). `spec(...)` resolves it; `to_items(...)` turns the runtime's outputs into report
items, and refuses the first item that is not of the declared type (one line naming the
item and what was expected, exit 2): a label model declared as something else, labels
that are not the model's, a vector of another dimension. `check_expected` types each
corpus line's `expected` the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from release.canary.report import Item, Output
from release.errors import ConfigError, UsageError


def labels_from_model(model_dir: Path) -> list[str] | None:
    """The model's config.json `id2label`, in id order (None when there is none)."""
    path = model_dir / "config.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_bytes())
    except ValueError:
        raise ConfigError("model config.json is not JSON: cannot read its id2label") from None
    id2label = doc.get("id2label") if isinstance(doc, dict) else None
    if id2label is None:
        return None
    if not isinstance(id2label, dict) or not id2label:
        raise ConfigError("model config.json: id2label must map ids 0..K-1 to label names")
    try:
        keys = sorted(int(k) for k in id2label)
    except ValueError:
        raise ConfigError("model config.json: id2label keys must be integers 0..K-1") from None
    if keys != list(range(len(keys))):
        raise ConfigError("model config.json: id2label keys must be integers 0..K-1")
    return [str(id2label[str(k)]) for k in keys]


def spec(canary_cfg: Any, model_dir: Path | None) -> Output:
    """The Output of `[canary]` (`output`, `labels`, `multilabel_threshold`), the labels
    from the model's config.json when `labels` is not set."""
    kind = canary_cfg.output
    if kind in ("score", "vector"):
        return Output(type=kind)
    labels = list(canary_cfg.labels) if canary_cfg.labels else None
    source = "[canary].labels"
    if labels is None and model_dir is not None:
        labels = labels_from_model(model_dir)
        source = "the model's config.json id2label"
    if not labels:
        raise ConfigError(
            f"[canary].labels: not set and the model has no config.json id2label; "
            f'[canary].output = "{kind}" needs the label set, in the model\'s order'
        )
    if kind == "label" and len(labels) < 2:
        raise ConfigError(f'[canary].labels: output "label" needs at least 2 labels ({source})')
    if len(set(labels)) != len(labels):
        raise ConfigError(f"[canary].labels: labels must be unique ({source})")
    threshold = canary_cfg.multilabel_threshold if kind == "multilabel" else None
    return Output(type=kind, labels=labels, threshold=threshold)


def _describe(out: Output) -> str:
    if out.type == "label":
        return f"a label of {', '.join(out.labels or [])} with a confidence or probs"
    if out.type == "multilabel":
        return f"probs: {len(out.labels or [])} probabilities ({', '.join(out.labels or [])})"
    if out.type == "score":
        return "a score (a finite number)"
    return "a vector of finite numbers" + (f" of dimension {out.dim}" if out.dim else "")


def _floats(v: Any, n: int | None = None) -> list[float] | None:
    if not isinstance(v, list) or (n is not None and len(v) != n) or not v:
        return None
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
        return None
    out = [float(x) for x in v]
    return out if all(math.isfinite(x) for x in out) else None


def _item(out: Output, iid: str, raw: Any, expected: Any) -> tuple[Item | None, str]:
    """(item, "") or (None, what is wrong) for one runtime output."""
    d = raw if isinstance(raw, dict) else {}
    labels = out.labels or []
    k = len(labels)
    if out.type == "label":
        label, conf = d.get("label"), d.get("confidence")
        probs = None if d.get("probs") is None else _floats(d.get("probs"), k)
        logits = None if d.get("logits") is None else _floats(d.get("logits"), k)
        if not isinstance(label, str) or label not in labels:
            return None, f"label {label!r}"
        if d.get("probs") is not None and (probs is None or not all(0 <= p <= 1 for p in probs)):
            return None, f"probs {d.get('probs')!r}"
        if d.get("logits") is not None and logits is None:
            return None, f"logits {d.get('logits')!r} (one per label)"
        if conf is None and probs is not None:
            conf = probs[labels.index(label)]
        if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 1:
            return None, f"confidence {conf!r}"
        return Item(
            id=iid,
            label=label,
            confidence=float(conf),
            probs=probs,
            logits=logits,
            expected=expected,
        ), ""
    if out.type == "multilabel":
        probs = _floats(d.get("probs"), k)
        if probs is None or not all(0 <= p <= 1 for p in probs):
            return None, f"probs {d.get('probs')!r}"
        return Item(id=iid, probs=probs, expected=expected), ""
    if out.type == "score":
        score = d.get("score")
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
        ):
            return None, f"score {score!r}"
        return Item(id=iid, score=float(score), expected=expected), ""
    vec = _floats(d.get("vector"), out.dim)
    if vec is None:
        v = d.get("vector")
        shown = f"a list of {len(v)}" if isinstance(v, list) else repr(v)[:40]
        return None, f"vector {shown}"
    return Item(id=iid, vector=vec), ""


def to_items(
    out: Output, ids: Sequence[str], raw: Sequence[Any], expected: Sequence[Any], where: str
) -> tuple[Output, list[Item]]:
    """Report items from the runtime's outputs, checked against `out` in order: the first
    output not of the declared type is a ConfigError naming its item. A vector output's
    dimension is the first item's."""
    items = []
    for iid, r, exp in zip(ids, raw, expected, strict=True):
        if out.type == "vector" and out.dim is None and isinstance(r, dict):
            v = r.get("vector")
            if isinstance(v, list) and v:
                out = out.model_copy(update={"dim": len(v)})
        item, bad = _item(out, iid, r, exp)
        if item is None:
            got = ", ".join(sorted(r)) if isinstance(r, dict) else type(r).__name__
            raise ConfigError(
                f'{where}: item {iid}: [canary].output = "{out.type}" expects {_describe(out)}; '
                f"the model returned {bad} (fields: {got or 'none'})"
            )
        items.append(item)
    return out, items


def check_expected(out: Output, expected: Any, where: str) -> None:
    """A corpus line's `expected`, typed like the output (UsageError naming the line)."""
    if expected is None:
        return
    labels = out.labels or []
    if out.type == "label":
        if not isinstance(expected, str) or expected not in labels:
            raise UsageError(
                f"{where}: expected must be one of {', '.join(labels)}, got {expected!r}"
            )
    elif out.type == "multilabel":
        if not isinstance(expected, list) or not all(
            isinstance(x, str) and x in labels for x in expected
        ):
            raise UsageError(
                f"{where}: expected must be a list of labels from {', '.join(labels)}, "
                f"got {expected!r}"
            )
    elif out.type == "score":
        if isinstance(expected, bool) or not isinstance(expected, int | float):
            raise UsageError(f"{where}: expected must be a number (a score), got {expected!r}")
    else:
        raise UsageError(f"{where}: expected is not used for vector outputs; remove it")


def check_items(out: Output, items: Sequence[Item], name: str) -> None:
    """A report's items carry their output type's fields (UsageError naming the item)."""
    for it in items:
        raw = it.model_dump(exclude_none=True)
        exp = raw.pop("expected", None)
        raw.pop("id")
        _, bad = _item(out, it.id, raw, None)
        if bad:
            raise UsageError(
                f'{name}: item {it.id}: output "{out.type}" expects {_describe(out)}, has {bad}'
            )
        try:
            check_expected(out, exp, f"{name}: item {it.id}")
        except UsageError as exc:
            raise UsageError(exc.message) from None
