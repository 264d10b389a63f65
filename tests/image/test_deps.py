"""The deps layer installed by uv: the wheels record against pip's own choice of wheels,
offline from a directory of wheels, settings that must not change it, a wheel that does
not match the lock."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Callable
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import parse_wheel_filename

from release.image.inspect import open_image
from release.image.registry import open_registry
from tests.fixtures.tools import REPO, copy_project, run_cli


@pytest.fixture(scope="session")
def image_wheels() -> Path:
    """The wheels of the example's image lock for its platform and Python, chosen and
    hash-checked by `pip download` (downloaded once per machine): pip's choice of wheel is
    the record's oracle, and the directory is an offline source for uv."""
    from tests.workflows.act_run import offline_wheels

    return offline_wheels(REPO / "release.toml")


@pytest.fixture(scope="session")
def built(build_cli: Callable[..., Any], project: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A build of the example project: its --json document and the deps layer's small
    metadata files (dist-info, wheels record, anything at the layer's top)."""
    r, doc = build_cli("--push", "oci:deps-out")
    assert r.code == 0, r.stderr
    img = open_image(open_registry("oci:deps-out", project), doc["digest"])
    files: dict[str, bytes] = {}
    with img._tar(img.layers_with(["deps"])[0]) as tf:
        for m in tf:
            if m.isfile() and (
                ".dist-info/" in m.name
                or m.name == "opt/release/wheels.json"
                or m.name.count("/") == 2
            ):
                f = tf.extractfile(m)
                assert f is not None
                files[m.name] = f.read()
            elif not m.isfile() and not m.isdir():
                files[m.name] = b"(not a regular file)"
    return doc, files


def test_wheels_record_is_the_wheel_pip_would_choose_for_every_package(
    built: tuple[dict[str, Any], dict[str, bytes]], image_wheels: Path, project: Path
) -> None:
    _, files = built
    record = json.loads(files["opt/release/wheels.json"])
    assert record["schema"] == 1
    got = {w["filename"]: w for w in record["wheels"]}
    # pip download's choice for the same platform and Python, each file hashed here
    lock = (project / "handlers" / "requirements.lock").read_text()
    pinned = {
        re.split(r"[=\s]", block, maxsplit=1)[0].lower(): set(re.findall(r"sha256:(\w+)", block))
        for block in re.split(r"\n(?=\S)", lock)
        if "==" in block
    }
    expected = {}
    for whl in image_wheels.glob("*.whl"):
        name = str(parse_wheel_filename(whl.name)[0])
        if name in pinned:
            expected[whl.name] = hashlib.sha256(whl.read_bytes()).hexdigest()
    assert expected and {fn: w["sha256"] for fn, w in got.items()} == expected
    # every installed distribution has its entry: name and version as its METADATA says,
    # a file name whose tags are its WHEEL's tags
    metas = sorted(p for p in files if p.endswith(".dist-info/METADATA"))
    assert len(metas) == len(record["wheels"]) == len(pinned)
    for meta_path in metas:
        meta = BytesHeaderParser().parsebytes(files[meta_path])
        info = meta_path.rsplit("/", 1)[0]
        entry = next(w for w in record["wheels"] if w["name"] == meta["Name"])
        assert entry["version"] == meta["Version"]
        wheel = BytesHeaderParser().parsebytes(files[f"{info}/WHEEL"])
        tags = {str(t) for t in parse_wheel_filename(entry["filename"])[3]}
        assert tags == {t.strip() for t in wheel.get_all("Tag") or []}, entry["filename"]
        assert files[f"{info}/INSTALLER"].strip() == b"uv"
        # RECORD names only what the layer ships: no console scripts, nothing outside
        rows = files[f"{info}/RECORD"].decode().splitlines()
        assert not [r for r in rows if r.startswith(("bin/", "../", "/"))], info
    # nothing of uv's own at the layer's top (its lock file), nothing but regular files
    # and directories
    assert "opt/deps/.lock" not in files
    assert not [p for p, b in files.items() if b == b"(not a regular file)"]


def test_offline_from_a_wheel_directory_and_uv_settings_do_not_change_the_layer(
    built: tuple[dict[str, Any], dict[str, bytes]],
    build_cli: Callable[..., Any],
    project: Path,
    image_wheels: Path,
    tmp_path: Path,
) -> None:
    doc, _ = built
    # a project-level uv.toml and UV_* variables that would link files into uv's cache,
    # add timestamped bytecode and skip the hash check: none of them reaches the build
    other = copy_project(tmp_path / "p")
    (other / "uv.toml").write_text(
        '[pip]\nlink-mode = "symlink"\ncompile-bytecode = true\nno-verify-hashes = true\n'
    )
    r, doc2 = build_cli(
        "--push",
        "oci:deps-offline",
        cwd=other,
        env={
            "RELEASE_CACHE_DIR": str(tmp_path / "cache"),
            "UV_CACHE_DIR": str(tmp_path / "uv-cache"),  # empty: no network, no cache
            "UV_OFFLINE": "1",
            "UV_NO_INDEX": "1",
            "UV_FIND_LINKS": str(image_wheels),
            "UV_LINK_MODE": "symlink",
            "UV_COMPILE_BYTECODE": "1",
            "UV_NO_VERIFY_HASHES": "1",
        },
    )
    assert r.code == 0, r.stderr
    deps = [la for la in doc2["layers"] if la["role"] == "deps"]
    assert not deps[0]["cached"]
    assert deps == [{**la, "cached": False} for la in doc["layers"] if la["role"] == "deps"], (
        "the deps layer differs from the online build's"
    )


def test_a_wheel_that_does_not_match_the_lock_is_exit_1_whatever_uv_is_told(
    build_env: dict[str, str], tmp_path: Path
) -> None:
    p = copy_project(tmp_path / "p")
    lock = p / "handlers" / "requirements.lock"
    text = lock.read_text()
    six = re.search(r"^six==\S+ \\\n(?:\s+--hash=sha256:\w+ ?\\?\n)+", text, re.M)
    assert six is not None
    bad = re.sub(r"sha256:\w+", "sha256:" + "0" * 64, six.group(0))
    lock.write_text(text.replace(six.group(0), bad))
    (p / "uv.toml").write_text("[pip]\nno-verify-hashes = true\n")
    r = run_cli(
        "build",
        cwd=p,
        env={
            **build_env,
            "RELEASE_CACHE_DIR": str(tmp_path / "cache"),
            "UV_NO_VERIFY_HASHES": "1",
        },
    )
    assert r.code == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "six" in r.stderr and "requirements.lock" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (p / ".release" / "registry").exists()  # nothing written


def test_the_cache_key_names_the_uv_that_installs() -> None:
    from release.image.deps import installer, uv_bin

    out = subprocess.run([uv_bin(), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.split()[:2] == installer().split()
