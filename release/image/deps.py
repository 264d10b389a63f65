"""The deps layer's content: the handlers' requirements lock pip-installed for the image's
platform and Python, with the record of the wheels pip used."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from release.config import Config
from release.errors import ConfigError, RemoteError, VerificationFailed
from release.image.oci import canonical

DEPS_DIR = "opt/deps"
#: which wheel (file name, sha256) pip installed for every package of the deps layer
WHEELS_PATH = "opt/release/wheels.json"
PIP_PLATFORMS = {
    "linux/amd64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
    "linux/arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
}


def pip_command(cfg: Config, target: Path, lock: Path, report: Path) -> list[str]:
    plats = PIP_PLATFORMS[cfg.image.platform]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--target",
        str(target),
        "--report",
        str(report),
    ]
    for p in plats:
        cmd += ["--platform", p]
    cmd += [
        "--python-version",
        cfg.image.python,
        "--implementation",
        "cp",
        "--only-binary",
        ":all:",
        "--require-hashes",
        "--no-compile",
        "--no-warn-script-location",
        "-r",
        str(lock),
    ]
    return cmd


def install_deps(cfg: Config, target: Path) -> bytes:
    """pip install the requirements lock into `target` for the image's platform. Returns
    the wheels record (WHEELS_PATH): for each installed package the wheel file pip
    downloaded, checked against the lock's hashes and installed, with its sha256, from
    pip's installation report (`--report`)."""
    lock = cfg.resolve(cfg.image.requirements)
    if not lock.is_file():
        raise ConfigError(f"[image].requirements: {lock.name} not found in {lock.parent}")
    with tempfile.TemporaryDirectory(prefix="release-pip-report-") as rtmp:
        report = Path(rtmp) / "report.json"
        p = subprocess.run(pip_command(cfg, target, lock, report), capture_output=True, text=True)
        wheels = wheels_record(report) if p.returncode == 0 else b""
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        msg = lines[-1] if lines else f"pip exited {p.returncode}"
        if "THESE PACKAGES DO NOT MATCH THE HASHES" in p.stderr:
            raise VerificationFailed(f"pip: a downloaded wheel does not match {lock.name}: {msg}")
        raise RemoteError(f"pip install of {lock.name} failed: {msg}")
    # console scripts carry this machine's interpreter path: not part of the image
    shutil.rmtree(target / "bin", ignore_errors=True)
    for record in target.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if not ln.startswith("../")]
        if kept != lines:
            record.write_text("".join(kept))
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


def wheels_record(report: Path) -> bytes:
    """pip's installation report -> `{"schema": 1, "wheels": [{name, version, filename,
    sha256}]}` sorted by name (canonical JSON: the same lock gives the same bytes)."""
    try:
        doc = json.loads(report.read_bytes())
        wheels = []
        for item in doc["install"]:
            meta, info = item["metadata"], item["download_info"]
            sha = info["archive_info"]["hashes"]["sha256"]
            wheels.append(
                {
                    "name": str(meta["name"]),
                    "version": str(meta["version"]),
                    "filename": str(info["url"]).rsplit("/", 1)[-1],
                    "sha256": str(sha),
                }
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RemoteError(
            f"pip's installation report is unreadable ({exc!r}): cannot record the wheels"
        ) from None
    wheels.sort(key=lambda w: (w["name"].lower(), w["version"]))
    return canonical({"schema": 1, "wheels": wheels})


def compiles(cfg: Config) -> bool:
    """Ship .pyc only when this interpreter is the image's Python (same bytecode)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}" == cfg.image.python
