"""Reproducible bytecode for the code layer: a `.pyc` beside every module of `[code].package`.

    image_python(cfg) -> ImagePython | None      an interpreter of the image's Python
    compile_tree(src, dest, py) -> [Entry]        one unchecked-hash .pyc per module

Lambda's /var/task is read-only: without shipped bytecode, every cold start compiles every
handler module again (CPython tries `__pycache__/`, fails, and carries on). The build
compiles them once instead, with `py_compile` in `PycInvalidationMode.UNCHECKED_HASH`:
the .pyc holds the source's hash, no mtime, and the image path as its file name, so the
same sources give the same bytes (reproducible builds hold) and the image never stats
the source to validate it.

Bytecode is tied to the Python version (the magic number changes with every minor
release). The build compiles only with an interpreter of the image's `[image].python`
(major.minor): this one when it matches, else `pythonX.Y` on PATH, each asked for its
version before it is used. When there is none, the code layer ships no .pyc and the
build says why (`BuiltImage.bytecode`): a .pyc of another version would be ignored at
best and is never shipped (docs/internals.md, "Bytecode").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from release.config import Config
from release.errors import ConfigError
from release.image.layers import Entry

_PROBE = (
    "import importlib.util, json, sys; print(json.dumps({'version': '%d.%d' % sys.version_info[:2],"
    " 'magic': importlib.util.MAGIC_NUMBER.hex(), 'cache_tag': sys.implementation.cache_tag,"
    " 'implementation': sys.implementation.name}))"
)

#: compiles argv[2:] (paths relative to argv[1]) to argv[1]/.pyc-out/<rel>.pyc, each with
#: the image path argv[3] + rel as its file name; prints the relative paths that failed
_COMPILE = r"""
import json, py_compile, sys
src, dest, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
failed = []
for rel in sys.argv[4:]:
    try:
        py_compile.compile(src + "/" + rel, cfile=dest + "/" + rel + "c", dfile=prefix + "/" + rel,
                           doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError as exc:
        failed.append([rel, exc.msg.strip().splitlines()[-1] if exc.msg.strip() else "error"])
print(json.dumps(failed))
"""


@dataclass(frozen=True)
class ImagePython:
    """An interpreter whose bytecode the image's Python loads."""

    executable: str
    version: str  # major.minor
    magic: str  # importlib.util.MAGIC_NUMBER, hex
    cache_tag: str  # e.g. cpython-311: the .pyc file name's middle part


def _probe(exe: str) -> ImagePython | None:
    try:
        p = subprocess.run(
            [exe, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
        )
        doc = json.loads(p.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    if p.returncode != 0 or doc.get("implementation") != "cpython":
        return None
    return ImagePython(exe, str(doc["version"]), str(doc["magic"]), str(doc["cache_tag"]))


def image_python(cfg: Config, candidates: list[str] | None = None) -> ImagePython | None:
    """This interpreter when it is the image's Python (major.minor, CPython), else
    `python<[image].python>` on PATH when it says it is; None when neither. Each
    candidate is run and asked its version: a name is not trusted. (`candidates`
    replaces that list in tests.)"""
    want = cfg.image.python
    if candidates is None:
        candidates = [sys.executable]
        other = shutil.which(f"python{want}")
        if other is not None:
            candidates.append(other)
    for exe in candidates:
        py = _probe(exe)
        if py is not None and py.version == want:
            return py
    return None


def no_bytecode_reason(cfg: Config) -> str:
    return (
        f"no .pyc in the code layer: the image's Python is {cfg.image.python} and neither this "
        f"interpreter ({sys.version_info.major}.{sys.version_info.minor}) nor a "
        f"python{cfg.image.python} on PATH can compile for it"
    )


def modules(src: Path, skip_dir: set[str]) -> list[str]:
    """Every .py under `src` (relative POSIX paths, sorted), not under a skipped or
    symlinked directory, symlinks excluded (tree_entries ships those as links)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(
            d for d in dirnames if d not in skip_dir and not Path(dirpath, d).is_symlink()
        )
        for name in filenames:
            full = Path(dirpath, name)
            if name.endswith(".py") and not full.is_symlink() and full.is_file():
                out.append(full.relative_to(src).as_posix())
    return sorted(out)


def pyc_path(rel: str, cache_tag: str) -> str:
    """`a/b.py` -> `a/__pycache__/b.<cache_tag>.pyc` (importlib's layout)."""
    head, _, name = rel.rpartition("/")
    stem = name[: -len(".py")]
    return f"{head + '/' if head else ''}__pycache__/{stem}.{cache_tag}.pyc"


def compile_tree(src: Path, dest: str, py: ImagePython, skip_dir: set[str]) -> list[Entry]:
    """One unchecked-hash .pyc entry per module of `src`, for the image path `/dest`,
    compiled by `py` (PYTHONHASHSEED=0: frozenset constants are marshalled in one
    order). A module that does not compile under the image's Python stops the build
    (ConfigError, exit 2): it would fail at its first import in the image as well."""
    rels = modules(src, skip_dir)
    if not rels:
        return []
    with tempfile.TemporaryDirectory(prefix="release-pyc-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONHASHSEED"] = "0"
        p = subprocess.run(
            [py.executable, "-I", "-c", _COMPILE, str(src), tmp, "/" + dest.strip("/"), *rels],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        try:
            failed = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            last = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
            raise ConfigError(f"compiling {src.name}/ to bytecode failed: {last}") from None
        if failed:
            rel, msg = failed[0]
            raise ConfigError(
                f"{src.name}/{rel} does not compile under the image's Python {py.version}: {msg}"
            )
        entries = []
        for rel in rels:
            data = Path(tmp, rel + "c").read_bytes()
            if data[:4] != bytes.fromhex(py.magic):
                raise ConfigError(f"{src.name}/{rel}: the compiler wrote another magic number")
            entries.append(Entry(f"{dest}/{pyc_path(rel, py.cache_tag)}", "file", 0o644, data=data))
    return entries
