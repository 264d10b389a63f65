"""One layer's tar bytes as `release.image.layerscan` reads them: inflated by ISA-L in a
thread of its own and handed on in blocks (`TarStream`), every regular file hashed as
views of those blocks. Checked against hashlib over the files' own bytes and against the
extracting read (tarfile's own file objects), for gzip and plain tar layers: files that
end exactly on, just past and across block boundaries, empty files, long (PAX) names,
links, GNU sparse files, a gzip of several members; refused, as `gzip` refuses them: a
wrong CRC or length in the gzip trailer (past the tar's end), a truncated member,
bytes after the last gzip member; a transfer cut mid-blob is a remote error (exit 3), and
reading a local layout never imports the HTTP client."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import random
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from release.errors import RemoteError, VerificationFailed
from release.image import fs, layerscan
from release.image.inspect import open_image
from release.image.oci import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    canonical,
    digest_of,
)
from release.image.registry import open_registry
from tests.fixtures.registry import RegistryProxy

B = layerscan.BLOCK


def _bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


#: name -> bytes: sizes around the stream's block size, and many small files between them
FILES: dict[str, bytes] = {
    "opt/empty": b"",
    "opt/one": b"1",
    "opt/block": _bytes(B, 1),
    "opt/block-plus-one": _bytes(B + 1, 2),
    "opt/block-minus-one": _bytes(B - 1, 3),
    "opt/three-and-a-half": _bytes(3 * B + B // 2, 4),
    **{f"opt/small/f{i}.txt": _bytes(i * 37 % 5000, 100 + i) for i in range(300)},
    "opt/" + "long-name-" * 12 + "end.bin": _bytes(700, 5),  # > 100 bytes: a PAX header
}


def _tar(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in ("opt", "opt/small"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(ti)
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tf.addfile(ti, io.BytesIO(data))
        link = tarfile.TarInfo("opt/link")
        link.type, link.linkname = tarfile.SYMTYPE, "block"
        tf.addfile(link)
        hard = tarfile.TarInfo("opt/hard")
        hard.type, hard.linkname = tarfile.LNKTYPE, "opt/one"
        tf.addfile(hard)
    return raw.getvalue()


def _image(
    tmp_path: Path, blob: bytes, media_type: str = OCI_LAYER_GZIP, where: str = "oci:reg"
) -> Any:
    reg = open_registry(where, tmp_path)
    reg.put_blob(blob, digest_of(blob))
    config = canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(blob)]},
        }
    )
    reg.put_blob(config, digest_of(config))
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": media_type, "digest": digest_of(blob), "size": len(blob)}],
        }
    )
    return open_image(reg, reg.put_manifest(manifest, OCI_MANIFEST))


def _files(m: fs.MergedFS) -> dict[str, tuple[int, str | None]]:
    return {p: (n.size, n.sha256) for p, n in m.nodes.items() if n.kind == "file"}


def _check_files(tmp_path: Path, img: Any, files: dict[str, bytes]) -> None:
    want = {p: (len(d), hashlib.sha256(d).hexdigest()) for p, d in files.items()}
    want["opt/hard"] = want["opt/one"]
    kept = {"opt/block-plus-one", "opt/small/f7.txt", "opt/empty"}
    m = fs.scan(img, keep=lambda p: p in kept)
    assert _files(m) == want
    assert m.data == {p: files[p] for p in kept}
    assert m.get("opt/link") is not None and m.get("opt/link").link == "block"  # type: ignore[union-attr]
    # the extracting read (tarfile's own member files over the same stream) agrees
    out = tmp_path / "out"
    ext = fs.scan(img, extract=["opt"], dest=out)
    assert _files(ext) == want
    assert (out / "opt/three-and-a-half").read_bytes() == files["opt/three-and-a-half"]


@pytest.mark.parametrize("media_type", [OCI_LAYER_GZIP, OCI_LAYER_TAR])
def test_every_file_hashed_across_block_boundaries(tmp_path: Path, media_type: str) -> None:
    tar = _tar(FILES)
    blob = gzip.compress(tar, mtime=0) if media_type == OCI_LAYER_GZIP else tar
    _check_files(tmp_path, _image(tmp_path, blob, media_type), FILES)


def test_a_gzip_of_several_members_is_read_whole(tmp_path: Path) -> None:
    tar = _tar(FILES)
    cut = len(tar) // 3 + 123  # inside a member's bytes
    blob = gzip.compress(tar[:cut], mtime=0) + gzip.compress(tar[cut:], mtime=0)
    _check_files(tmp_path, _image(tmp_path, blob), FILES)


def test_gnu_sparse_files_are_hashed_as_their_contents(tmp_path: Path) -> None:
    src = tmp_path / "src/opt"
    src.mkdir(parents=True)
    content = bytearray(5 * B)
    content[B + 10 : B + 20] = b"0123456789"
    content[4 * B :] = _bytes(B, 9)
    with open(src / "holes.bin", "wb") as f:  # holes where content is zero
        f.truncate(len(content))
        f.seek(B + 10)
        f.write(content[B + 10 : B + 20])
        f.seek(4 * B)
        f.write(content[4 * B :])
    for fmt in ("gnu", "pax"):
        tar = subprocess.run(
            ["tar", "--sparse", f"--format={fmt}", "-cf", "-", "-C", str(src.parent), "opt"],
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            assert tf.getmember("opt/holes.bin").issparse()  # the case under test
        img = _image(tmp_path / fmt, gzip.compress(tar, mtime=0))
        node = fs.scan(img).get("opt/holes.bin")
        assert node is not None
        assert (node.size, node.sha256) == (len(content), hashlib.sha256(content).hexdigest())


def _refused(tmp_path: Path, blob: bytes, media_type: str = OCI_LAYER_GZIP) -> None:
    img = _image(tmp_path, blob, media_type)
    with pytest.raises(VerificationFailed, match=r"^layer 1 \(.*\) is not a readable tar: "):
        fs.scan(img)
    with pytest.raises(VerificationFailed, match=r"^layer 1 \(.*\) is not a readable tar: "):
        fs.scan(img, extract=["opt"], dest=tmp_path / "out")


def test_a_wrong_crc_or_length_in_the_gzip_trailer_is_refused(tmp_path: Path) -> None:
    # zeros after the end-of-archive marker (tar readers stop there), more than the blocks
    # in flight: the trailer is checked only if the stream is read to its end
    good = gzip.compress(_tar(FILES) + bytes((layerscan.QUEUED + 4) * B), mtime=0)
    for at in (-8, -1):  # CRC32, then ISIZE
        bad = bytearray(good)
        bad[at] ^= 0x01
        with pytest.raises(gzip.BadGzipFile):
            gzip.decompress(bytes(bad))
        _refused(tmp_path / str(-at), bytes(bad))


def test_a_truncated_member_is_refused(tmp_path: Path) -> None:
    tar = _tar(FILES)
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        m = tf.getmember("opt/three-and-a-half")
    cut = tar[: m.offset_data + m.size // 2]  # the stream ends inside the member's bytes
    _refused(tmp_path / "gz", gzip.compress(cut, mtime=0))
    _refused(tmp_path / "tar", cut, OCI_LAYER_TAR)


def test_bytes_after_the_last_gzip_member_are_refused(tmp_path: Path) -> None:
    blob = gzip.compress(_tar(FILES), mtime=0) + b"junk"
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(blob)
    _refused(tmp_path, blob)


def _headers() -> list[bytes]:
    """512-byte header blocks as tarfile writes them (every format, member type and
    numeric encoding), then mutated: random bytes (under a bad checksum, and under one
    fixed up to hold), a signed checksum, a short or empty block, end-of-archive zeros."""
    rng = random.Random(27)
    blocks: list[bytes] = []
    types = [
        tarfile.REGTYPE,
        tarfile.AREGTYPE,
        tarfile.DIRTYPE,
        tarfile.SYMTYPE,
        tarfile.LNKTYPE,
        tarfile.CHRTYPE,
        tarfile.FIFOTYPE,
        tarfile.CONTTYPE,
        tarfile.GNUTYPE_SPARSE,
    ]
    names = ["a", "dir/", "x/" * 60 + "deep", "é-non-ascii", "p/" * 40 + "q" * 60]
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        for t in types:
            for name in names:
                for size, mtime, uid in ((0, 0, 0), (1, 1_700_000_000, 1000), (8**11, -1, 8**8)):
                    ti = tarfile.TarInfo(name)
                    ti.type, ti.size, ti.mtime, ti.uid = t, size, mtime, uid
                    ti.linkname = "target" if t in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
                    ti.devmajor, ti.devminor = (3, 7) if t == tarfile.CHRTYPE else (0, 0)
                    try:
                        raw = ti.tobuf(fmt, "utf-8", "surrogateescape")
                    except ValueError:  # not expressible in this format
                        continue
                    blocks += [raw[i : i + 512] for i in range(0, len(raw), 512)]
    out = list(blocks)
    for b in blocks:
        for fix in (False, True, True, True):
            m = bytearray(b)
            for _ in range(rng.randint(1, 3)):
                m[rng.randrange(512)] = rng.randrange(256)
            if fix:  # odd fields under a checksum that holds
                m[148:156] = b"%06o\0 " % tarfile.calc_chksums(bytes(m))[0]  # type: ignore[attr-defined]
            out.append(bytes(m))
        high = bytearray(b)
        high[rng.randrange(100)] = 0xE9  # a byte >= 128: signed and unsigned sums differ
        for chk in tarfile.calc_chksums(bytes(high)):  # type: ignore[attr-defined]
            high[148:156] = b"%06o\0 " % chk
            out.append(bytes(high))
    return [*out, bytes(512), b"", blocks[0][:300]]


def test_tar_headers_are_read_as_tarfile_reads_them() -> None:
    def outcome(cls: type[tarfile.TarInfo], buf: bytes) -> Any:
        try:
            t = cls.frombuf(buf, "utf-8", "surrogateescape")
        except Exception as exc:
            return type(exc)
        return t.get_info(), getattr(t, "_sparse_structs", None)

    blocks = _headers()
    unsigned = 0
    for buf in blocks:
        assert outcome(layerscan.TarHeader, buf) == outcome(tarfile.TarInfo, buf), buf
        with contextlib.suppress(Exception):
            sums = tarfile.calc_chksums(buf)  # type: ignore[attr-defined]
            unsigned += tarfile.nti(buf[148:156]) == sums[0]  # type: ignore[attr-defined]
    assert len(blocks) > 4000 and unsigned > 2500  # most take the one-sum path


@pytest.mark.registry
@pytest.mark.parametrize("media_type", [OCI_LAYER_GZIP, OCI_LAYER_TAR])
def test_a_transfer_cut_mid_blob_is_a_remote_error(
    registry_proxy: RegistryProxy, tmp_path: Path, media_type: str
) -> None:
    tar = _tar(FILES)
    blob = gzip.compress(tar, mtime=0) if media_type == OCI_LAYER_GZIP else tar
    repo = f"{registry_proxy.host}/cut{random.Random(str(tmp_path)).randrange(1 << 30):x}"
    img = _image(tmp_path, blob, media_type, repo)
    digest = digest_of(blob)
    registry_proxy.cut("GET", f"/blobs/{digest}", after=len(blob) // 2, times=2)
    want = rf"^reading layer {digest} from {re.escape(repo)} failed: "
    with pytest.raises(RemoteError, match=want):  # raised in the inflating thread, for gzip
        fs.scan(img)
    with pytest.raises(RemoteError, match=want):
        fs.scan(img, extract=["opt"], dest=tmp_path / "out")
    assert len(registry_proxy.requests("GET", f"/blobs/{digest}")) == 2
    _check_files(tmp_path / "again", img, FILES)  # the whole blob, once the cut is over


def test_a_layout_is_read_without_the_http_client(tmp_path: Path) -> None:
    img = _image(tmp_path, gzip.compress(_tar({"opt/one": b"1"}), mtime=0))
    code = (
        "import sys; from pathlib import Path\n"
        "from release.image import fs\n"
        "from release.image.inspect import open_image\n"
        "from release.image.registry import open_registry\n"
        f"reg = open_registry('oci:reg', Path({str(tmp_path)!r}))\n"
        f"m = fs.scan(open_image(reg, {img.digest!r}))\n"
        "assert m.get('opt/hard') is not None\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('urllib3', 'requests')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (out.returncode, out.stdout.strip()) == (0, "[]"), out.stderr


@pytest.mark.parametrize("name", ["/etc/passwd", "opt/../../etc/passwd", "../escape"])
def test_an_unsafe_member_path_is_refused_by_scan_and_extraction(tmp_path: Path, name: str) -> None:
    """A member that names an absolute path or climbs out with `..` is refused (the cached
    scan, the streamed extraction) before anything is written outside `dest`."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        ti = tarfile.TarInfo(name)
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"bad"))
    img = _image(tmp_path, gzip.compress(raw.getvalue(), mtime=0))
    pattern = rf"has an unsafe path {re.escape(repr(name))}: refusing it"
    with pytest.raises(VerificationFailed, match=pattern):
        fs.scan(img)
    out = tmp_path / "out"
    with pytest.raises(VerificationFailed, match=pattern):
        fs.scan(img, extract=["opt", "etc"], dest=out)
    assert not (tmp_path / "etc").exists() and not (tmp_path / "escape").exists()


def test_member_names_are_normalised() -> None:
    assert layerscan.clean("./opt//model/./w.bin", "layer x") == "opt/model/w.bin"
    assert layerscan.clean("opt/", "layer x") == "opt"
