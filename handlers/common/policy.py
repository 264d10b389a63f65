"""Rego policies evaluated in-process by regopy (the scorer's policy/scoring/*.rego).

Module sources are read once per container; each evaluation uses a fresh interpreter
with the input set (regopy has no `with input as`, and a fresh interpreter keeps
evaluations independent). Works with the regopy versions the image and dev venv carry.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any


class PolicyError(RuntimeError):
    """The policy could not be loaded or evaluated."""


_LOCK = threading.Lock()
_CACHE: dict[str, tuple[tuple[tuple[str, str], ...], str]] = {}


def load_modules(directory: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """(name, source) of every non-test .rego file, and their sha256 digest."""
    with _LOCK:
        if directory in _CACHE:
            return _CACHE[directory]
        d = Path(directory)
        files = (
            sorted(p for p in d.glob("*.rego") if not p.name.endswith("_test.rego"))
            if d.is_dir()
            else []
        )
        if not files:
            raise PolicyError(f"no .rego policy files in {directory}")
        h = hashlib.sha256()
        mods = []
        for f in files:
            data = f.read_bytes()
            h.update(f.name.encode() + b"\0" + hashlib.sha256(data).digest())
            mods.append((f.name, data.decode("utf-8")))
        out = (tuple(mods), "sha256:" + h.hexdigest())
        _CACHE[directory] = out
        return out


def interpreter(modules: tuple[tuple[str, str], ...]) -> Any:
    import regopy

    rego = regopy.Interpreter()
    for name, src in modules:
        try:
            rego.add_module(name, src)
        except regopy.RegoError as exc:
            raise PolicyError(f"policy {name} does not compile: {str(exc)[:300]}") from None
    return rego


def set_input(rego: Any, doc: Any) -> None:
    if hasattr(rego, "set_input_term"):
        rego.set_input_term(json.dumps(doc))
    else:  # older regopy
        rego.set_input_json(json.dumps(doc))


def query(rego: Any, expr: str) -> Any:
    """The value of `expr` (None when undefined); PolicyError on an evaluation error."""
    out = rego.query(expr)
    text = str(out)
    if not out.ok():
        raise PolicyError(
            f"policy evaluation of {expr} failed: {text.strip().splitlines()[0] if text.strip() else 'error'}"
        )
    if text.strip() == "undefined":
        return None
    exprs = json.loads(text).get("expressions") or [None]
    return exprs[0]


def evaluate(directory: str, expr: str, doc: Any) -> tuple[Any, str]:
    """Evaluate `expr` over `doc` with the policies of `directory`: (value, policy digest)."""
    mods, digest = load_modules(directory)
    rego = interpreter(mods)
    set_input(rego, doc)
    return query(rego, expr), digest
