"""One layer blob, read once: its tar entries and the sha256 of every regular file,
cached by the blob's digest (the per-layer half of `release.image.fs.scan`).

    scan_layer(registry, layer, keep, cache) -> LayerScan

A `LayerScan` is what a layer says, in tar order, before it is applied to the layers
below it: each entry's cleaned path (whiteouts `.wh.NAME` and `.wh..wh..opq` included, as
they are written), its kind, mode and size, a symlink's or hard link's target, the sha256
of each regular file, and the bytes of the files `keep` selected (by the path as the
layer writes it). `release.image.fs` applies the scans in manifest order.

Cold, the blob is streamed once: hashed as it is read and inflated by ISA-L (python-isal,
about three times zlib's speed; the gzip CRC and length are checked as gzip's are) in one
thread, the tar parsed from the same bytes and its files hashed in another. The scan is written to the cache (atomically) only when
the blob's sha256 and size are its descriptor's.

Warm, the cache is trusted only for a blob that was just hashed: the blob is read (sha256,
one read at disk speed) and compared with its descriptor BEFORE the cached scan is read,
so a swapped blob is refused exactly as on a cold read. A cache file that does not parse,
is of another version, or names another digest is ignored and the blob scanned again;
one that lacks the bytes of a file the caller keeps is refreshed the same way. The cache
lives in the user's cache directory ($RELEASE_CACHE_DIR, default
$XDG_CACHE_HOME/release, under `scans/sha256/<hex>.json`), trusted as the user's own
files are (the virtualenv holding this code sits beside it).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, cast

from isal import igzip, isal_zlib

from release._io import CHUNK, HashingReader, atomic_write_bytes
from release.errors import RemoteError, UsageError, VerificationFailed
from release.image.registry import transport_errors

#: the cache file's version: a file of any other is ignored
SCHEMA = "release/layer-scan/v1"
KINDS = ("dir", "symlink", "hardlink", "file", "other")
_HEX = re.compile(r"[0-9a-f]{64}")
#: a tar stream's unreadability, from the tar reader or either inflater
TAR_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.TarError,
    EOFError,
    zlib.error,
    cast("type[BaseException]", isal_zlib.error),  # typed as an instance in isal's stubs
    igzip.BadGzipFile,
)


@dataclass(frozen=True)
class Entry:
    """One tar entry, as the layer writes it."""

    name: str  # cleaned: no leading slash, no `.` parts; never `..`
    kind: str  # one of KINDS
    mode: int
    size: int
    link: str = ""  # a symlink's target, or a hard link's (as written)
    sha256: str | None = None  # of a regular file


@dataclass
class LayerScan:
    digest: str
    entries: list[Entry]
    data: dict[str, bytes]  # entry name -> bytes, for the kept files


def clean(name: str, where: str) -> str:
    """A tar member name without `./` and empty parts; an absolute or `..` path refused."""
    n = name
    while n.startswith("./"):
        n = n[2:]
    parts = [p for p in n.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise VerificationFailed(f"{where} has an unsafe path {name!r}: refusing it")
    return "/".join(parts)


def kind_of(m: tarfile.TarInfo) -> str:
    if m.isdir():
        return "dir"
    if m.issym():
        return "symlink"
    if m.islnk():
        return "hardlink"
    if m.isfile():
        return "file"
    return "other"


def tar_mode(media_type: str) -> str:
    """ "gz" or "" (plain tar) for a layer media type; UsageError for any other."""
    from release.image.oci import GZIP_LAYERS, OCI_LAYER_TAR

    if media_type in GZIP_LAYERS:
        return "gz"
    if media_type == OCI_LAYER_TAR or media_type.endswith(".tar"):
        return ""
    raise UsageError(
        f"layer media type {media_type}: only gzip or uncompressed tar layers can be read"
    )


#: the inflated stream's blocks: big enough that a block costs the Python loops little,
#: small enough that the inflater's output is hashed while it is still in the CPU's cache
BLOCK = 1 << 20
#: inflated blocks in flight between the inflating thread and the tar's reader
QUEUED = 4


class TarStream:
    """A layer's tar bytes as a forward-only file for tarfile (`read`, `tell`, `seek`
    forward by reading on; a backward seek is an unreadable tar), in blocks from `next_block`
    (an empty one at the end). `digest_into` hands a member's bytes to a hash (and a buffer)
    as views of the blocks, so a regular file's bytes are never copied before they are
    hashed."""

    def __init__(self, next_block: Callable[[], bytes]) -> None:
        self._next = next_block
        self._buf = memoryview(b"")
        self._at = 0
        self._end = False
        self.pos = 0

    def _fill(self) -> bool:
        """A block with unread bytes is current; False at the end of the stream."""
        while self._at >= len(self._buf):
            if self._end:
                return False
            b = self._next()
            if not b:
                self._end = True
                return False
            self._buf, self._at = memoryview(b), 0
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 62
        out = bytearray()
        while n > 0 and self._fill():
            take = min(n, len(self._buf) - self._at)
            if not out and take == n:  # within one block (a tar header): one copy
                b = bytes(self._buf[self._at : self._at + take])
                self._at += take
                self.pos += take
                return b
            out += self._buf[self._at : self._at + take]
            self._at += take
            self.pos += take
            n -= take
        return bytes(out)

    def digest_into(self, n: int, h: Any, buf: bytearray | None) -> None:
        """Feed the next `n` bytes to `h.update` (and append them to `buf`): a tar member's
        data. Fewer than `n` bytes left is an unreadable tar."""
        while n > 0:
            if not self._fill():
                raise tarfile.ReadError("unexpected end of data")
            take = min(n, len(self._buf) - self._at)
            view = self._buf[self._at : self._at + take]
            h.update(view)
            if buf is not None:
                buf += view
            self._at += take
            self.pos += take
            n -= take

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self.pos
        elif whence != 0:
            raise tarfile.ReadError("a layer stream cannot seek from its end")
        if pos < self.pos:
            raise tarfile.ReadError("a layer stream cannot seek backwards")
        while self.pos < pos and self._fill():
            take = min(pos - self.pos, len(self._buf) - self._at)
            self._at += take
            self.pos += take
        return self.pos

    def drain(self) -> None:
        """Read to the end of the stream (for gzip: its trailer checked)."""
        while self._fill():
            self.pos += len(self._buf) - self._at
            self._at = len(self._buf)


class _Inflater:
    """Gzip inflated by ISA-L (its C reader: the gzip CRC and length checked, members
    concatenated, as gzip's reader) in a thread of its own, which also reads `raw` (and so
    hashes it, for a HashingReader); `next_block` hands its blocks on, in order (at most
    QUEUED wait), and raises what the thread raised."""

    def __init__(self, raw: BinaryIO) -> None:
        import queue
        import threading

        self._raw = raw
        self._q: queue.Queue[bytes | BaseException] = queue.Queue(QUEUED)
        self._stop = False
        self._done = False
        self._thread = threading.Thread(target=self._run, name="inflate", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            gz = igzip._IGzipReader(self._raw, BLOCK)  # the C reader igzip.IGzipFile wraps
            while not self._stop:
                b = gz.read(BLOCK)
                self._q.put(b)
                if not b:
                    return
        except BaseException as exc:  # handed to the reader, raised there
            self._q.put(exc)

    def next_block(self) -> bytes:
        if self._done:
            return b""
        b = self._q.get()
        if isinstance(b, BaseException):
            self._done = True
            raise b
        self._done = not b
        return b

    def close(self) -> None:
        """Stop the thread and wait for it (the caller may then read `raw` on)."""
        import queue

        self._stop = True
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._q.get(timeout=0.05)  # a thread blocked on a full queue moves on
        self._thread.join()


class TarHeader(tarfile.TarInfo):
    """A tar header as tarfile's `TarInfo.frombuf` reads it (the same steps, unchanged in
    Python 3.11 to 3.13), its checksum summed once: tarfile sums every header twice
    (unsigned and signed, both accepted) through a 504-item tuple, half of its time per
    member. A header whose unsigned sum does not match (a signed one, a bad one, the
    end-of-archive zeros), or that holds an old GNU sparse map, is read by tarfile's own
    `frombuf`, which accepts or refuses it."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> TarHeader:
        nti, nts = tarfile.nti, tarfile.nts  # type: ignore[attr-defined]
        try:
            chksum = nti(buf[148:156]) if len(buf) == tarfile.BLOCKSIZE else -1
        except tarfile.HeaderError:
            chksum = -1
        # the unsigned sum: every byte, the checksum field counted as 8 spaces
        if chksum != sum(buf) - sum(buf[148:156]) + 256 or buf[156:157] == tarfile.GNUTYPE_SPARSE:
            return super().frombuf(buf, encoding, errors)
        obj = cls()
        obj.name = nts(buf[0:100], encoding, errors)
        obj.mode = nti(buf[100:108])
        obj.uid = nti(buf[108:116])
        obj.gid = nti(buf[116:124])
        obj.size = nti(buf[124:136])
        obj.mtime = nti(buf[136:148])
        obj.chksum = chksum
        obj.type = bytes(buf[156:157])
        obj.linkname = nts(buf[157:257], encoding, errors)
        obj.uname = nts(buf[265:297], encoding, errors)
        obj.gname = nts(buf[297:329], encoding, errors)
        obj.devmajor = nti(buf[329:337])
        obj.devminor = nti(buf[337:345])
        prefix = nts(buf[345:500], encoding, errors)
        # old V7 tar: a directory is a regular file with a trailing slash
        if obj.type == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE
        if obj.isdir():
            obj.name = obj.name.rstrip("/")
        # a ustar long name
        if prefix and obj.type not in tarfile.GNU_TYPES:
            obj.name = prefix + "/" + obj.name
        return obj


@contextmanager
def open_tar(raw: BinaryIO, comp: str) -> Iterator[tarfile.TarFile]:
    """A forward-only tar reader over `raw` (its `fileobj` a `TarStream`). Gzip is
    inflated by ISA-L in a thread of its own (`_Inflater`), which also reads `raw` (and so
    hashes it, for a HashingReader) while the caller parses the tar and hashes its files.
    On a clean exit the inflated stream is read to its end, so the gzip trailer (CRC,
    length) is checked even past the tar's end-of-archive marker; on any exit the
    inflating thread has ended, so the caller may read `raw` on."""
    inflater = _Inflater(raw) if comp == "gz" else None
    stream = TarStream(inflater.next_block if inflater is not None else partial(raw.read, BLOCK))
    try:
        with tarfile.open(fileobj=stream, mode="r:", tarinfo=TarHeader) as tf:  # type: ignore[call-overload]
            yield tf
        if inflater is not None:
            stream.drain()
    finally:
        if inflater is not None:
            inflater.close()


class ScanCache:
    """Layer scans by blob digest: `scans/sha256/<hex>.json` under `root` (default: the
    user's cache directory, as the model cache). `scanned` and `reused` list the digests
    this instance read cold and took from the cache."""

    def __init__(self, root: Path | None = None) -> None:
        if root is None:
            from release.modelpin.cache import Cache

            root = Cache().root
        self.dir = root / "scans" / "sha256"
        self.scanned: list[str] = []
        self.reused: list[str] = []

    def path(self, digest: str) -> Path:
        return self.dir / (digest.removeprefix("sha256:") + ".json")

    def load(self, digest: str) -> LayerScan | None:
        """The cached scan of `digest`, or None when absent or not a valid scan of it."""
        try:
            doc = json.loads(self.path(digest).read_bytes())
            return _from_json(doc, digest)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def store(self, scan: LayerScan) -> None:
        with contextlib.suppress(OSError):  # a cache not written is only a slower next run
            atomic_write_bytes(self.path(scan.digest), json.dumps(_to_json(scan)).encode())


def _to_json(s: LayerScan) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "digest": s.digest,
        "entries": [[e.name, e.kind, e.mode, e.size, e.link, e.sha256] for e in s.entries],
        "data": {k: base64.b64encode(v).decode() for k, v in sorted(s.data.items())},
    }


def _clean_name(name: str) -> bool:
    try:
        return clean(name, "cache") == name != ""
    except VerificationFailed:
        return False


def _from_json(doc: Any, digest: str) -> LayerScan | None:
    if doc.get("schema") != SCHEMA or doc.get("digest") != digest:
        return None
    entries = []
    for name, kind, mode, size, link, sha in doc["entries"]:
        ok = (
            isinstance(name, str)
            and kind in KINDS
            and type(mode) is int
            and type(size) is int
            and size >= 0
            and isinstance(link, str)
            and (
                (kind == "file" and isinstance(sha, str) and _HEX.fullmatch(sha) is not None)
                or (kind != "file" and sha is None)
            )
        )
        if not ok or not _clean_name(name):
            return None
        entries.append(Entry(name, kind, mode, size, link, sha))
    names = {e.name for e in entries if e.kind == "file"}
    data = {}
    for k, v in doc["data"].items():
        if k not in names:
            return None
        data[k] = base64.b64decode(v, validate=True)
    return LayerScan(digest, entries, data)


@dataclass
class _Read:
    """A cold read of one blob: the scan (or why the tar could not be read) and the
    blob's real sha256 and size."""

    scan: LayerScan | None
    sha256: str
    size: int
    failure: BaseException | None = None


def read_blob_tar(
    registry: Any, la: Any, where: str, each: Callable[[tarfile.TarFile], None]
) -> tuple[str, int, BaseException | None]:
    """One pass over a layer blob: `each(tf)` reads its tar (forward only) while the
    compressed bytes are hashed, and the rest of the blob is read (and hashed) after it,
    gzip trailer included. Returns the blob's real sha256, its size and why its tar could
    not be read (a VerificationFailed naming `where`, or None): returned, not raised, so
    the caller compares the digest with the descriptor first - a corrupt blob is named as
    such, not as a bad tar. A transport failure raises RemoteError."""
    failure: BaseException | None = None
    try:
        with registry.open_blob(la.digest) as raw:
            hr = HashingReader(raw)
            try:
                with open_tar(hr, tar_mode(la.media_type)) as tf:  # type: ignore[arg-type]
                    each(tf)
            except TAR_ERRORS as exc:
                failure = VerificationFailed(
                    f"{where} is not a readable tar: {exc or type(exc).__name__}"
                )
            except VerificationFailed as exc:
                failure = exc
            hr.drain()  # the digest covers every byte, the gzip trailer too
    except transport_errors() as exc:
        raise RemoteError(f"reading layer {la.digest} from {registry.name} failed: {exc}") from None
    return "sha256:" + hr.h.hexdigest(), hr.n, failure


def _read(registry: Any, la: Any, keep: Callable[[str], bool], where: str) -> _Read:
    entries: list[Entry] = []
    data: dict[str, bytes] = {}

    def each(tf: tarfile.TarFile) -> None:
        stream = cast("TarStream", tf.fileobj)
        for m in tf:
            name = clean(m.name, f"layer {la.digest}")
            if not name:
                continue
            kind = kind_of(m)
            if kind != "file":
                link = m.linkname if kind in ("symlink", "hardlink") else ""
                entries.append(Entry(name, kind, m.mode & 0o7777, 0, link))
                continue
            h = hashlib.sha256()
            buf = bytearray() if keep(name) else None
            if m.issparse():  # its data is not its bytes in the tar
                f = tf.extractfile(m)
                assert f is not None
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    if buf is not None:
                        buf += chunk
            else:  # the member's bytes follow its header
                stream.seek(m.offset_data)
                stream.digest_into(m.size, h, buf)
            if buf is not None:
                data[name] = bytes(buf)
            entries.append(Entry(name, "file", m.mode & 0o7777, m.size, "", h.hexdigest()))

    sha, size, failure = read_blob_tar(registry, la, where, each)
    scan = None if failure is not None else LayerScan(la.digest, entries, data)
    return _Read(scan, sha, size, failure)


def _hash_blob(registry: Any, la: Any) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    try:
        with registry.open_blob(la.digest) as raw:
            while chunk := raw.read(CHUNK):
                h.update(chunk)
                n += len(chunk)
    except transport_errors() as exc:
        raise RemoteError(f"reading layer {la.digest} from {registry.name} failed: {exc}") from None
    return "sha256:" + h.hexdigest(), n


def _check(where: str, la: Any, sha256: str, size: int) -> None:
    if sha256 != la.digest or size != la.size:
        raise VerificationFailed(
            f"{where}: blob has sha256 {sha256} ({size} bytes), its descriptor "
            f"says {la.digest} ({la.size} bytes): the registry's copy is corrupt or lying"
        )


def scan_layer(
    registry: Any,
    la: Any,
    where: str,
    keep: Callable[[str], bool],
    cache: ScanCache | None,
    also_keep: frozenset[str] = frozenset(),
) -> LayerScan:
    """The scan of layer `la` (a LayerInfo): from `cache` when it holds one, after the
    blob is hashed and found to be `la.digest`; else read cold (and cached). `keep`
    selects, by entry name, the files whose bytes are kept; `also_keep` names more
    (a cached scan without them is read again). VerificationFailed when the blob is not
    its descriptor (checked first) or not a readable tar."""
    tar_mode(la.media_type)  # a layer we cannot read is bad input before any read
    if cache is not None and cache.path(la.digest).is_file():
        sha, size = _hash_blob(registry, la)
        _check(where, la, sha, size)
        hit = cache.load(la.digest)
        if hit is not None:
            files = {e.name for e in hit.entries if e.kind == "file"}
            needed = {n for n in files if keep(n)} | (also_keep & files)
            if needed <= hit.data.keys():
                cache.reused.append(la.digest)
                return hit
        if hit is not None:  # keep what it kept: the next caller may want it again
            also_keep = also_keep | frozenset(hit.data)
    names = also_keep
    r = _read(registry, la, lambda p: p in names or keep(p), where)
    _check(where, la, r.sha256, r.size)
    if r.failure is not None:
        raise r.failure
    assert r.scan is not None
    if cache is not None:
        cache.scanned.append(la.digest)
        cache.store(r.scan)
    return r.scan


__all__ = ["Entry", "LayerScan", "ScanCache", "clean", "open_tar", "scan_layer", "tar_mode"]
