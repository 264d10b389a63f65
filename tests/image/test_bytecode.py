"""The code layer's bytecode (release/image/bytecode.py, issue 27 item 2): an
unchecked-hash .pyc beside every module, compiled by the image's Python, byte-identical
across builds, and loaded by the image's own interpreter from a read-only /var/task."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from release.config import load
from release.image import bytecode
from release.image.inspect import open_image
from release.image.registry import open_registry
from tests.fixtures.tools import REPO, copy_project

#: PEP 552: bit 0 = hash-based, bit 1 = check_source; unchecked-hash is 0b01
UNCHECKED_HASH_FLAGS = (1).to_bytes(4, "little")


def _code_files(img: Any) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with img._tar(img.layers_with(["code"])[0]) as tf:
        for m in tf:
            if m.isfile():
                f = tf.extractfile(m)
                assert f is not None
                out["/" + m.name] = f.read()
    return out


def test_code_layer_has_an_unchecked_hash_pyc_beside_every_module(
    build_cli: Callable[..., Any], project: Path
) -> None:
    r, doc = build_cli()
    assert r.code == 0, r.stderr
    img = open_image(open_registry("oci:.release/registry", project), doc["digest"])
    files = _code_files(img)
    sources = {p: b for p, b in files.items() if p.endswith(".py")}
    pycs = {p: b for p, b in files.items() if p.endswith(".pyc")}
    on_disk = sorted(
        "/var/task/handlers/" + p.relative_to(project / "handlers").as_posix()
        for p in (project / "handlers").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert sorted(sources) == on_disk and len(on_disk) > 5
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    want = {
        f"{p.rsplit('/', 1)[0]}/__pycache__/{p.rsplit('/', 1)[1][:-3]}.{tag}.pyc": p
        for p in sources
    }
    assert sorted(pycs) == sorted(want)  # one per module, nothing else
    for pyc, src in want.items():
        data = pycs[pyc]
        assert data[4:8] == UNCHECKED_HASH_FLAGS, pyc
        assert data[8:16] == importlib.util.source_hash(sources[src]), pyc
    assert doc["bytecode"] == {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "magic": importlib.util.MAGIC_NUMBER.hex(),
        "invalidation": "unchecked-hash",
    }


def test_pyc_is_byte_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    cfg = load(REPO / "release.toml")
    py = bytecode.image_python(cfg)
    assert py is not None
    outs = []
    for seed in ("1", "2"):
        # the parent's hash seed must not reach the compiler (frozenset constants)
        code = (
            "import json,sys;from pathlib import Path;from release.config import load;"
            "from release.image import bytecode as b;c=load(sys.argv[1]);"
            "e=b.compile_tree(Path(sys.argv[2]),'var/task/handlers',b.image_python(c),{'__pycache__'});"
            "print(json.dumps({x.path: x.data.hex() for x in e}))"
        )
        p = subprocess.run(
            [sys.executable, "-c", code, str(REPO / "release.toml"), str(REPO / "handlers")],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=False,
        )
        assert p.returncode == 0, p.stderr
        outs.append(json.loads(p.stdout))
    assert outs[0] == outs[1] and len(outs[0]) > 5


def test_no_interpreter_of_the_images_python_means_no_pyc_and_says_why(tmp_path: Path) -> None:
    proj = copy_project(tmp_path / "p")
    toml = proj / "release.toml"
    toml.write_text(toml.read_text().replace("[image]\n", '[image]\npython = "3.99"\n', 1))
    cfg = load(toml)
    assert bytecode.image_python(cfg) is None
    assert "the image's Python is 3.99" in bytecode.no_bytecode_reason(cfg)
    # a candidate is asked its version, never trusted by name: this interpreter is not 3.99
    assert (
        bytecode.image_python(cfg, candidates=[sys.executable, "/nonexistent/python3.99"]) is None
    )


def test_candidate_interpreters_are_probed_in_order(tmp_path: Path) -> None:
    cfg = load(REPO / "release.toml")
    py = bytecode.image_python(cfg, candidates=[str(tmp_path / "missing"), sys.executable])
    assert py is not None and py.executable == sys.executable
    assert py.magic == importlib.util.MAGIC_NUMBER.hex()


def test_a_module_that_does_not_compile_stops_the_build(
    build_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.fixtures.tools import run_cli

    proj = copy_project(tmp_path / "p")
    (proj / "handlers" / "broken.py").write_text("def f(:\n    pass\n")
    r = run_cli("build", "--push", "oci:out", cwd=proj, env=build_env)
    assert r.code == 2, r.stderr
    assert f"handlers/broken.py does not compile under the image's Python {cfg_py()}" in r.stderr
    assert not (proj / "out").exists()


def cfg_py() -> str:
    return load(REPO / "release.toml").image.python


def test_the_images_python_loads_the_shipped_pyc_from_a_read_only_rootfs(
    pushed: dict[str, Any], registry: str, docker_engine: Any
) -> None:
    """The magic number is the image's interpreter's, and importing a handler in a
    read-only container uses the shipped .pyc (nothing compiled at cold start)."""
    ref = f"{registry}/platform@{pushed['digest']}"
    docker_engine.images.pull(ref)
    script = (
        "import importlib.util, json, sys, handlers.common.model as m;"
        "print(json.dumps({'magic': importlib.util.MAGIC_NUMBER.hex(),"
        " 'pyc': open(m.__cached__, 'rb').read(4).hex(), 'cached': m.__cached__}))"
    )
    out = docker_engine.containers.run(
        ref,
        entrypoint=["python3", "-v", "-c", script],
        network_mode="none",
        read_only=True,
        remove=True,
        user="1000:1000",
        stderr=True,
        stdout=True,
    ).decode()
    doc = json.loads(next(ln for ln in out.splitlines() if ln.startswith("{")))
    assert doc["pyc"] == doc["magic"]
    tag = doc["cached"].rsplit(".", 2)[-2]
    assert doc["cached"] == f"/var/task/handlers/common/__pycache__/model.{tag}.pyc"
    # -v names where each module's code object came from: the shipped .pyc files
    assert f"code object from '/var/task/handlers/common/__pycache__/model.{tag}.pyc'" in out
    assert "code object from /var/task/handlers/common/model.py" not in out  # a compile
    assert "/var/task/handlers/__pycache__" in out
