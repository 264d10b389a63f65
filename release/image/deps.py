"""The deps layer's content: the handlers' requirements lock installed by uv for the image's
platform and Python, with the record of the wheels uv installed.

    install_deps(cfg, target) -> wheels record (WHEELS_PATH)

uv (a locked dependency of this tool, found beside its interpreter) runs twice, at once:

- `uv pip install --target --python-platform --python-version --require-hashes
  --only-binary :all: --link-mode hardlink -r LOCK`: every wheel checked against the
  lock's hashes, nothing built, no bytecode (the build compiles its own, reproducibly);
  files hard-linked from uv's cache (a copy where the cache is on another filesystem),
  so nothing here ever writes into an existing file: RECORD is rewritten as a new file,
  compileall writes each .pyc through a new file;
- `uv pip compile LOCK --format pylock.toml` with the same platform and Python: the
  candidate wheels (file name, sha256) of every pinned package for that platform.

The wheels record names, for every installed package, the one candidate whose file name
carries exactly the tags (and build tag) of the installed `*.dist-info/WHEEL`, and whose
sha256 is one the lock pins for that package: the wheel uv checked and installed. uv runs
with `--no-config` and only the environment variables that say where packages come from
(indexes, find-links, offline, cache, network): no setting can turn off the hash check,
symlink files into uv's cache or add bytecode.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from email.parser import BytesHeaderParser
from pathlib import Path

from release.config import Config
from release.errors import ConfigError, RemoteError, VerificationFailed
from release.image.oci import canonical

DEPS_DIR = "opt/deps"
#: gzip level of the deps layer: zlib's level 4 makes it 2% larger than the default 6 in
#: half the CPU time (bench/build.py; a dependency layer is rebuilt only when its lock
#: changes, but then on the critical path of the build)
DEPS_LEVEL = 4
#: which wheel (file name, sha256) uv installed for every package of the deps layer
WHEELS_PATH = "opt/release/wheels.json"
#: uv's --python-platform per image platform: manylinux_2_28 also accepts every older
#: manylinux wheel (manylinux2014 = manylinux_2_17), as pip's two --platform tags did
UV_PLATFORMS = {
    "linux/amd64": "x86_64-manylinux_2_28",
    "linux/arm64": "aarch64-manylinux_2_28",
}
#: the uv environment variables passed on: where packages come from, never what is
#: installed or how it is checked (any other UV_* is dropped)
UV_ENV = (
    "UV_CACHE_DIR",
    "UV_NO_CACHE",
    "UV_OFFLINE",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_KEYRING_PROVIDER",
    "UV_NATIVE_TLS",
    "UV_INSECURE_HOST",
    "UV_HTTP_TIMEOUT",
    "UV_HTTP_RETRIES",
    "UV_REQUEST_TIMEOUT",
    "UV_CONCURRENT_DOWNLOADS",
)
_UV_ENV_PREFIX = "UV_INDEX"  # UV_INDEX, UV_INDEX_URL, UV_INDEX_STRATEGY, UV_INDEX_<NAME>_*


def uv_bin() -> str:
    """The uv executable of the `uv` package installed beside this interpreter."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        raise ConfigError(
            "uv is not installed beside release (it installs the image's requirements): "
            "install release with its runtime lock (docs/install.md)"
        ) from None


def installer() -> str:
    """What makes the deps layer's bytes, for its cache key: uv and its version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"uv {version('uv')}"
    except PackageNotFoundError:
        return "uv ?"


def uv_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UV_") or k in UV_ENV or k.startswith(_UV_ENV_PREFIX)
    }


def _common(cfg: Config, lock: Path) -> list[str]:
    return [
        "--no-config",
        "--python-platform",
        UV_PLATFORMS[cfg.image.platform],
        "--python-version",
        cfg.image.python,
        "--only-binary",
        ":all:",
        "--no-progress",
        "--quiet",
    ]


def install_command(uv: str, cfg: Config, target: Path, lock: Path) -> list[str]:
    return [
        uv,
        "pip",
        "install",
        "--python",
        sys.executable,
        "--target",
        str(target),
        "--require-hashes",
        "--link-mode",
        "hardlink",  # uv falls back to a copy across filesystems
        "--no-compile-bytecode",
        *_common(cfg, lock),
        "-r",
        str(lock),
    ]


def candidates_command(uv: str, cfg: Config, lock: Path, out: Path) -> list[str]:
    return [
        uv,
        "pip",
        "compile",
        "--format",
        "pylock.toml",
        "--no-header",
        "--no-annotate",
        "-o",
        str(out),
        *_common(cfg, lock),
        str(lock),
    ]


def _uv_message(stderr: str, returncode: int) -> str:
    """uv's error and its causes on one line."""
    keep = [
        ln.strip()
        for ln in stderr.splitlines()
        if ln.strip().startswith(("error:", "cause:", "Caused by:"))
    ]
    if not keep:
        keep = [ln.strip() for ln in stderr.splitlines() if ln.strip()][-1:]
    return "; ".join(keep) or f"uv exited {returncode}"


def install_deps(cfg: Config, target: Path) -> bytes:
    """Install the requirements lock into `target` for the image's platform and Python.
    Returns the wheels record (WHEELS_PATH): for each installed package the wheel file uv
    checked against the lock's hashes and installed, with its sha256."""
    lock = cfg.resolve(cfg.image.requirements)
    if not lock.is_file():
        raise ConfigError(f"[image].requirements: {lock.name} not found in {lock.parent}")
    uv = uv_bin()
    env = uv_env()
    with tempfile.TemporaryDirectory(prefix="release-uv-") as rtmp:
        pylock = Path(rtmp) / "pylock.toml"
        # the two share uv's cache; run together, each is mostly waiting on the other's I/O
        cand = subprocess.Popen(
            candidates_command(uv, cfg, lock, pylock),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        p = subprocess.run(
            install_command(uv, cfg, target, lock), env=env, capture_output=True, text=True
        )
        cand_err = cand.communicate()[1]
        if p.returncode != 0:
            msg = _uv_message(p.stderr, p.returncode)
            if "Hash mismatch" in p.stderr:
                raise VerificationFailed(
                    f"uv: a downloaded wheel does not match {lock.name}: {msg}"
                )
            raise RemoteError(f"uv pip install of {lock.name} failed: {msg}")
        if cand.returncode != 0:
            raise RemoteError(
                f"uv could not list the wheels of {lock.name}: "
                f"{_uv_message(cand_err, cand.returncode)}"
            )
        wheels = wheels_record(target, pylock, lock_hashes(lock.read_text()))
    tidy(target)
    if compiles(cfg):
        # bytecode for cold starts (/opt is read-only on Lambda: nothing is cached there at
        # run time); unchecked-hash pycs hold no mtimes and the image path, not this one
        subprocess.run(
            [
                sys.executable,
                "-m",
                "compileall",
                "-q",
                "-j0",
                "--invalidation-mode",
                "unchecked-hash",
                "-d",
                "/" + DEPS_DIR,
                str(target),
            ],
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # a file that does not compile (py2 test data in some wheels) just gets no pyc
    return wheels


def tidy(target: Path) -> None:
    """Drop what belongs to this machine, not the image: console scripts (they name this
    machine's interpreter), uv's lock file, the `uv_cache.json` uv writes for a wheel from
    a local directory (find-links: it holds that file's time), and the RECORD rows of
    every file not shipped."""
    shutil.rmtree(target / "bin", ignore_errors=True)
    (target / ".lock").unlink(missing_ok=True)
    for extra in target.glob("*.dist-info/uv_cache.json"):
        extra.unlink()
    for record in target.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if _shipped(target, ln)]
        if kept != lines:
            # a new file, never writing through a link into uv's cache
            # with the installer's mode (from the wheel), whether or not a row went
            new = record.with_name("RECORD.new")
            new.write_text("".join(kept))
            os.chmod(new, record.stat().st_mode & 0o7777)
            os.replace(new, record)


def _shipped(target: Path, row: str) -> bool:
    """A RECORD row names a file inside the installed tree."""
    fields = next(csv.reader([row]), [])
    if not fields:
        return False
    rel = os.path.normpath(fields[0])
    if os.path.isabs(rel) or rel == ".." or rel.startswith("../"):
        return False
    return os.path.isfile(target / rel)


_REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_HASH = re.compile(r"--hash[= ]sha256:([0-9a-fA-F]{64})")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_hashes(text: str) -> dict[str, set[str]]:
    """A hash-pinned requirements file -> {normalised name: the sha256s it pins}."""
    out: dict[str, set[str]] = {}
    for line in re.sub(r"\\\r?\n", " ", text).splitlines():
        line = line.split(" #", 1)[0].strip()
        m = _REQ.match(line)
        if m is None:
            continue
        out.setdefault(_norm(m.group(1)), set()).update(h.lower() for h in _HASH.findall(line))
    return out


def _wheel_tags(filename: str) -> tuple[str, str, str, frozenset[str]]:
    """(name, version, build tag, expanded tags) of a wheel file name."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        name, version, build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return "", "", "", frozenset()
    return _norm(name), str(version), "".join(map(str, build)), frozenset(map(str, tags))


def wheels_record(target: Path, pylock: Path, pinned: dict[str, set[str]]) -> bytes:
    """`{"schema": 1, "wheels": [{name, version, filename, sha256}]}` sorted by name
    (canonical JSON: the same lock gives the same bytes) for every `*.dist-info` in
    `target`: name and version from its METADATA, the wheel from the candidates in
    `pylock` with its WHEEL's tags and a sha256 the lock pins (`pinned`)."""
    try:
        doc = tomllib.loads(pylock.read_text())
        cands: dict[str, list[tuple[str, str]]] = {}
        for pkg in doc.get("packages", []):
            for w in pkg.get("wheels", []):
                where = str(w.get("name") or w.get("url") or w.get("path") or "")
                fn = where.rsplit("/", 1)[-1].split("#", 1)[0]
                cands.setdefault(_norm(str(pkg["name"])), []).append(
                    (fn, str(w["hashes"]["sha256"]).lower())
                )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RemoteError(
            f"uv's wheel list is unreadable ({exc!r}): cannot record the wheels"
        ) from None
    wheels = []
    for info in sorted(target.glob("*.dist-info")):
        meta = BytesHeaderParser().parsebytes((info / "METADATA").read_bytes())
        name, version = str(meta.get("Name", "")), str(meta.get("Version", ""))
        wheel = BytesHeaderParser().parsebytes((info / "WHEEL").read_bytes())
        tags = frozenset(str(t).strip() for t in wheel.get_all("Tag") or [])
        build = str(wheel.get("Build", "") or "").strip()
        found = [
            (fn, sha)
            for fn, sha in cands.get(_norm(name), [])
            if _wheel_tags(fn)[2:] == (build, tags) and sha in pinned.get(_norm(name), set())
        ]
        if len({sha for _, sha in found}) != 1:
            raise VerificationFailed(
                f"{name} {version}: cannot tell which wheel uv installed ("
                f"{len(found)} wheels the lock pins carry the tags {' '.join(sorted(tags))})"
            )
        fn, sha = found[0]
        wheels.append({"name": name, "version": version, "filename": fn, "sha256": sha})
    wheels.sort(key=lambda w: (w["name"].lower(), w["version"]))
    return canonical({"schema": 1, "wheels": wheels})


def compiles(cfg: Config) -> bool:
    """Ship .pyc only when this interpreter is the image's Python (same bytecode)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}" == cfg.image.python
