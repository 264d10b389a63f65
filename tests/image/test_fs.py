"""The merged filesystem (`release.image.fs`) of images pushed to an OCI layout and to a
real docker-registry: layers applied in order, whiteouts and opaque directories, a
symlinked parent, a later layer touching the model directory named, a blob that is not
its digest refused, and `release verify`'s model claim on each of them."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from release.errors import VerificationFailed
from release.image import fs
from release.image.inspect import open_image
from release.image.oci import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ROLE_ANNOTATION,
    canonical,
    digest_of,
)
from release.image.registry import open_registry

#: (path, data) regular file; (path, None) directory; (path, "->TARGET") symlink
Item = tuple[str, Any]


def _tar(items: list[Item]) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in items:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            elif isinstance(data, str) and data.startswith("->"):
                ti.type, ti.linkname = tarfile.SYMTYPE, data[2:]
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, mtime=0), "sha256:" + hashlib.sha256(tar).hexdigest()


def push(registry: Any, layers: list[tuple[str, list[Item]]]) -> str:
    descs, diff_ids = [], []
    for role, items in layers:
        blob, diff_id = _tar(items)
        registry.put_blob(blob, digest_of(blob))
        descs.append(
            {
                "mediaType": OCI_LAYER_GZIP,
                "digest": digest_of(blob),
                "size": len(blob),
                "annotations": {ROLE_ANNOTATION: role},
            }
        )
        diff_ids.append(diff_id)
    config = canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    )
    registry.put_blob(config, digest_of(config))
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": descs,
        }
    )
    return str(registry.put_manifest(manifest, OCI_MANIFEST))


MODEL = [
    ("opt/", None),
    ("opt/model/", None),
    ("opt/model/a.bin", b"A"),
    ("opt/model/sub/", None),
    ("opt/model/sub/b.bin", b"B"),
    ("opt/release/", None),
    ("opt/release/model.lock.json", b"{}"),
]
WANT = {"a.bin": hashlib.sha256(b"A").hexdigest(), "sub/b.bin": hashlib.sha256(b"B").hexdigest()}
BASE = [
    ("etc/", None),
    ("etc/os-release", b"ID=debian\n"),
    ("usr/", None),
    ("usr/lib/", None),
    ("lib", "->usr/lib"),
    ("opt/", None),
]


@pytest.fixture(params=["layout", pytest.param("docker-registry", marks=pytest.mark.registry)])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "layout":
        return open_registry("oci:reg", tmp_path)
    host = request.getfixturevalue("registry")
    return open_registry(f"{host}/fs-{tmp_path.name[-20:].lower().replace('_', '-')}", tmp_path)


def merged(reg: Any, layers: list[tuple[str, list[Item]]], **kw: Any) -> fs.MergedFS:
    return fs.scan(
        open_image(reg, push(reg, layers)), watch=["opt/model", "opt/release/model.lock.json"], **kw
    )


def check(m: fs.MergedFS) -> fs.TreeCheck:
    return fs.check_tree(m, "opt/model", WANT, owner="model", also=["opt/release/model.lock.json"])


def test_clean_image(reg: Any, tmp_path: Path) -> None:
    m = merged(
        reg,
        [("base", BASE), ("model", MODEL), ("code", [("var/task/h.py", b"x")])],
        keep=lambda p: p == "etc/os-release",
        extract=["opt/model"],
        dest=tmp_path / "x",
    )
    res = check(m)
    assert res.ok, res.problems()
    assert m.read("etc/os-release") == b"ID=debian\n"
    assert m.listdir("opt/model") == ["a.bin", "sub"]
    assert (tmp_path / "x/opt/model/sub/b.bin").read_bytes() == b"B"
    assert not (tmp_path / "x/var").exists()  # only the subtree asked for


def test_base_plants_a_file_in_the_model_dir(reg: Any) -> None:
    base = [*BASE, ("opt/model/", None), ("opt/model/evil.py", b"import os")]
    m = merged(reg, [("base", base), ("model", MODEL)])
    res = check(m)
    assert res.extra == ["evil.py"]
    [line] = res.foreign
    layer = open_image(reg, push(reg, [("base", base), ("model", MODEL)])).layers[0].digest
    assert line == f"layer 1 (base, {layer[:19]}) touches /opt/model: adds /opt/model/evil.py"


def test_later_layer_whites_out_a_model_file(reg: Any) -> None:
    m = merged(
        reg, [("base", BASE), ("model", MODEL), ("code", [("opt/model/sub/.wh.b.bin", b"")])]
    )
    res = check(m)
    assert res.missing == ["sub/b.bin"]
    assert res.foreign[0].startswith("layer 3 (code, ") and res.foreign[0].endswith(
        "deletes /opt/model/sub/b.bin"
    )


def test_later_layer_replaces_a_model_file(reg: Any) -> None:
    m = merged(reg, [("base", BASE), ("model", MODEL), ("code", [("opt/model/a.bin", b"EVIL")])])
    res = check(m)
    assert [c.split(":")[0] for c in res.changed] == ["a.bin"]
    assert res.foreign[0].endswith("adds /opt/model/a.bin")


def test_later_layer_makes_the_model_dir_opaque(reg: Any) -> None:
    m = merged(
        reg,
        [
            ("base", BASE),
            ("model", MODEL),
            ("code", [("opt/model/.wh..wh..opq", b""), ("opt/model/a.bin", b"A")]),
        ],
    )
    res = check(m)
    assert res.missing == ["sub/b.bin"]  # the layer's own a.bin survives its opaque marker
    assert any(f.endswith("empties /opt/model") for f in res.foreign), res.foreign


def test_later_layer_whites_out_an_ancestor_or_the_lock(reg: Any) -> None:
    m = merged(reg, [("base", BASE), ("model", MODEL), ("code", [(".wh.opt", b"")])])
    res = check(m)
    assert res.missing == ["a.bin", "sub/b.bin"]
    assert any("deletes /opt" in f for f in res.foreign)
    m = merged(
        reg, [("base", BASE), ("model", MODEL), ("code", [("opt/release/model.lock.json", b"[]")])]
    )
    assert (
        check(m)
        .foreign[0]
        .endswith("touches /opt/release/model.lock.json: adds /opt/release/model.lock.json")
    )


def test_base_symlink_redirects_the_model_dir(reg: Any) -> None:
    base = [
        *BASE,
        ("opt", "->/srv"),
        ("srv/", None),
        ("srv/model/", None),
        ("srv/model/evil.py", b"x"),
    ]
    # the model layer without its own `opt/` entry: its files land through the symlink
    model = [(p, d) for p, d in MODEL if p not in ("opt/",)]
    m = merged(reg, [("base", [(p, d) for p, d in base if p != "opt/"]), ("model", model)])
    assert m.get("srv/model/a.bin") is not None and m.get("opt/model/a.bin") is None
    res = check(m)
    assert any("makes /opt a symlink" in f for f in res.foreign), res.foreign


def test_symlinked_parent_and_whiteout_of_a_base_file(reg: Any) -> None:
    m = merged(
        reg,
        [
            ("base", [*BASE, ("usr/lib/x.so", b"1"), ("usr/lib/y.so", b"2")]),
            ("code", [("lib/z.so", b"3"), ("usr/lib/.wh.x.so", b"")]),
        ],
    )
    assert sorted(m.tree("usr/lib")) == ["y.so", "z.so"]
    assert m.get("lib").kind == "symlink"  # type: ignore[union-attr]


def test_a_corrupt_blob_is_refused_before_anything_is_used(tmp_path: Path) -> None:
    reg = open_registry("oci:reg", tmp_path)
    d = push(reg, [("base", BASE), ("model", MODEL)])
    img = open_image(reg, d)
    blob = tmp_path / "reg/blobs/sha256" / img.layers[1].digest.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[-12] ^= 0xFF  # inside the deflate stream's tail: the tar may still parse
    blob.write_bytes(bytes(data))
    with pytest.raises(
        VerificationFailed, match=r"^layer 2 \(model, sha256:[0-9a-f]{12}\): blob has sha256 "
    ):
        fs.scan(img, extract=["opt/model"], dest=tmp_path / "out")


def test_a_layer_that_is_not_gzip(tmp_path: Path) -> None:
    reg = open_registry("oci:reg", tmp_path)
    junk = b"not a gzip stream at all"
    reg.put_blob(junk, digest_of(junk))
    config = canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(junk)]},
        }
    )
    reg.put_blob(config, digest_of(config))
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": digest_of(junk), "size": len(junk)}],
        }
    )
    d = reg.put_manifest(manifest, OCI_MANIFEST)
    with pytest.raises(
        VerificationFailed, match=r"^layer 1 \(base, sha256:[0-9a-f]{12}\) is not a readable tar: "
    ):
        fs.scan(open_image(reg, d))


def test_each_blob_is_read_once(tmp_path: Path) -> None:
    reg = open_registry("oci:reg", tmp_path)
    img = open_image(
        reg, push(reg, [("base", BASE), ("model", MODEL), ("code", [("var/task/h.py", b"x")])])
    )
    opened: list[str] = []
    real = reg.open_blob

    def counting(digest: Any) -> Any:
        opened.append(digest)
        return real(digest)

    reg.open_blob = counting  # type: ignore[method-assign]
    fs.scan(img)
    assert sorted(opened) == sorted(la.digest for la in img.layers)  # in parallel


def test_extraction_applies_later_layers(tmp_path: Path) -> None:
    reg = open_registry("oci:reg", tmp_path)
    img = open_image(
        reg,
        push(
            reg,
            [
                ("base", BASE),
                ("model", MODEL),
                (
                    "code",
                    [
                        ("opt/model/a.bin", b"EVIL"),
                        ("opt/model/.wh.sub", b""),
                        ("opt/model/new.py", b"x"),
                    ],
                ),
            ],
        ),
    )
    out = tmp_path / "out"
    m = fs.scan(img, extract=["opt/model"], dest=out)
    files = sorted(
        p.relative_to(out / "opt/model").as_posix() for p in (out / "opt/model").rglob("*")
    )
    assert files == ["a.bin", "new.py"] == sorted(m.tree("opt/model"))
    assert (out / "opt/model/a.bin").read_bytes() == b"EVIL"
