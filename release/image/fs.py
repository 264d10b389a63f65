"""The merged filesystem of an image: what a container of it would see.

    scan(image, keep=..., hash=..., extract=..., dest=...) -> MergedFS

Every claim about files in an image reads this view, never one layer: the layers are
applied in manifest order, as a container runtime applies them - a later entry replaces
an earlier one at the same path, `.wh.NAME` deletes NAME (and everything under it) from
the layers below, `.wh..wh..opq` empties its directory of everything the layers below put
there, and a path whose parent is a symlink lands where the symlink points (resolved
inside the image root).

Each blob is read ONCE, as a stream, and hashed as it is read: the gzip/tar is parsed
from the same bytes, and the blob's sha256 and size are compared with its descriptor
before `scan` returns. Without extraction the layers are scanned in parallel, each into a
`release.image.layerscan.LayerScan` (every entry, the sha256 of every regular file),
cached by blob digest when a `ScanCache` is given - a cached scan is used only after its
blob was hashed again and matched - and the scans are then applied in order. Nothing read
(the index, kept bytes, extracted files) reaches a caller when a blob does not match:
the caller's `dest` is then half-written, so callers extract into a temporary or staging
directory.

What the scan gives:
- `nodes`: every path of the merged tree (kind, size, mode, the layer that put it there,
  the sha256 of regular files the `hash` predicate selected);
- `data`: the bytes of the files the `keep` predicate selected (small files: metadata,
  the model lock, dpkg's status);
- `touches`: every entry of every layer that adds, replaces or deletes a path under one
  of the `watch` prefixes (or an ancestor of one), so a claim can name the layer that
  touched what it owns (`foreign`);
- files under the `extract` prefixes written to `dest/<path>` (whiteouts applied on disk).

Refused (VerificationFailed, exit 1): absolute paths or `..`, device files and fifos in
an extracted subtree, links leaving `dest`, a hard link to a file outside the extracted
subtree, a layer whose bytes are not its digest or not a tar (gzip or plain).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, Any

from release._io import CHUNK
from release.errors import VerificationFailed
from release.image.layerscan import (
    Entry,
    LayerScan,
    ScanCache,
    clean,
    kind_of,
    read_blob_tar,
    scan_layer,
)

#: a path predicate (paths have no leading slash)
Select = Callable[[str], bool]
#: opens the bytes of the tar member being applied
Opener = Callable[[], IO[bytes]]

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_MAX_LINKS = 40


@dataclass(frozen=True)
class Node:
    """One path of the merged tree."""

    path: str  # no leading slash
    kind: str  # "file" | "dir" | "symlink" | "other"
    size: int
    mode: int
    layer: int  # index into the image's layers of the layer that put it there
    sha256: str | None = None  # regular files selected by `hash`
    link: str = ""  # symlink target, as written


@dataclass(frozen=True)
class Touch:
    """An entry of a layer that changed a watched path: added/replaced it ("add"),
    deleted it ("whiteout") or emptied it of the layers below ("opaque")."""

    layer: int
    path: str
    action: str
    kind: str = ""  # of an added entry: "dir" | "file" | "symlink" | "other"


@dataclass
class MergedFS:
    layers: list[Any]  # the image's LayerInfo, in order
    nodes: dict[str, Node] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    touches: list[Touch] = field(default_factory=list)

    def layer_name(self, i: int) -> str:
        la = self.layers[i]
        return f"layer {i + 1} ({la.role}, {la.digest[:19]})"

    def tree(self, prefix: str) -> dict[str, Node]:
        """Every node strictly under directory `prefix`, by path relative to it."""
        pre = prefix.strip("/") + "/"
        return {p[len(pre) :]: n for p, n in self.nodes.items() if p.startswith(pre)}

    def listdir(self, prefix: str) -> list[str]:
        """Names directly in directory `prefix`, sorted."""
        return sorted({rel.split("/", 1)[0] for rel in self.tree(prefix)})

    def get(self, path: str) -> Node | None:
        return self.nodes.get(path.strip("/"))

    def read(self, path: str) -> bytes | None:
        """The bytes of a kept file (None when absent or not kept)."""
        return self.data.get(path.strip("/"))

    def foreign(self, prefix: str, owner: str) -> list[str]:
        """One line per layer whose role is not `owner` that touched `prefix`, naming the
        layer and the first paths. Touching is: adding, replacing or deleting the path or
        anything under it (a bare directory entry for `prefix` itself below the first
        `owner` layer excepted); in a layer above the first `owner` layer, deleting an
        ancestor, making it opaque or replacing it by a non-directory; and any ancestor
        that is not a directory in the merged view (it would redirect `prefix`)."""
        pre = prefix.strip("/")
        first_owner = min(
            (i for i, la in enumerate(self.layers) if la.role == owner), default=len(self.layers)
        )
        by_layer: dict[int, set[str]] = {}
        for t in self.touches:
            if self.layers[t.layer].role == owner:
                continue
            plain_dir = t.action == "add" and t.kind == "dir"
            if t.path == pre or t.path.startswith(pre + "/"):
                if not (plain_dir and t.path == pre and t.layer < first_owner):
                    by_layer.setdefault(t.layer, set()).add(_describe(t))
            elif (
                (t.path == "" or pre.startswith(t.path + "/"))
                and t.layer > first_owner
                and not plain_dir
            ):
                by_layer.setdefault(t.layer, set()).add(_describe(t))
        parts = PurePosixPath(pre).parts
        for i in range(1, len(parts)):  # strict ancestors: the path itself is a touch above
            n = self.nodes.get("/".join(parts[:i]))
            if n is not None and n.kind != "dir" and self.layers[n.layer].role != owner:
                by_layer.setdefault(n.layer, set()).add(f"makes /{n.path} a {n.kind}")
        out = []
        for i, ps in sorted(by_layer.items()):
            shown = sorted(ps)
            more = f" (+{len(shown) - 3} more)" if len(shown) > 3 else ""
            out.append(f"{self.layer_name(i)} touches /{pre}: {', '.join(shown[:3])}{more}")
        return out


@dataclass(frozen=True)
class TreeCheck:
    """A directory of the merged view against a file list (path -> sha256)."""

    missing: list[str]
    changed: list[str]  # "PATH: why"
    extra: list[str]
    foreign: list[str]  # `MergedFS.foreign` lines

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra or self.foreign)

    def problems(self) -> list[str]:
        return [
            *self.foreign,
            *(f"missing: {p}" for p in self.missing),
            *(f"changed: {p}" for p in self.changed),
            *(f"not in the lock: {p}" for p in self.extra),
        ]


def check_tree(
    fs: MergedFS, directory: str, want: dict[str, str], *, owner: str, also: Iterable[str] = ()
) -> TreeCheck:
    """`directory` must hold exactly the files of `want` (relative path -> sha256), as
    regular files, and nothing else (no other file, link or empty directory); no layer
    but the `owner` layers may touch it (nor the `also` paths, e.g. the model lock)."""
    tree = fs.tree(directory)
    needed_dirs = {
        "/".join(PurePosixPath(p).parts[:i])
        for p in want
        for i in range(1, len(PurePosixPath(p).parts))
    }
    missing, changed, extra = [], [], []
    for rel in sorted(want):
        n = tree.get(rel)
        if n is None:
            missing.append(rel)
        elif n.kind != "file":
            changed.append(f"{rel}: a {n.kind}, not a regular file")
        elif n.sha256 != want[rel]:
            changed.append(f"{rel}: sha256 {n.sha256}, the lock says {want[rel]}")
    for rel, n in sorted(tree.items()):
        if rel in want or (n.kind == "dir" and rel in needed_dirs):
            continue
        extra.append(rel + ("/" if n.kind == "dir" else ""))
    top = fs.get(directory)
    if top is not None and top.kind != "dir":
        changed.append(f"/{directory.strip('/')}: a {top.kind}, not a directory")
    foreign = fs.foreign(directory, owner)
    for p in also:
        foreign += fs.foreign(p, owner)
    return TreeCheck(missing, changed, extra, foreign)


def _describe(t: Touch) -> str:
    verb = {"add": "adds", "whiteout": "deletes", "opaque": "empties"}[t.action]
    return f"{verb} /{t.path}"


def _under(path: str, prefixes: Sequence[str]) -> str | None:
    for p in prefixes:
        if path == p or path.startswith(p + "/"):
            return p
    return None


class _Scanner:
    def __init__(
        self,
        layers: list[Any],
        keep: Select | None,
        hash_: Select | None,
        watch: Sequence[str],
        extract: Sequence[str],
        dest: Path | None,
    ) -> None:
        self.fs = MergedFS(list(layers))
        self.keep = keep or (lambda _p: False)
        self.hash = hash_ or (lambda _p: True)
        self.watch = [w.strip("/") for w in watch]
        self.extract = [e.strip("/") for e in extract]
        self.dest = dest.resolve() if dest is not None else None
        # children of each directory, so a whiteout removes a subtree without a full scan
        self.children: dict[str, set[str]] = {"": set()}
        # layer -> names of files kept here that its LayerScan holds no bytes of
        self.missing: dict[int, set[str]] = {}

    # --- the index ---------------------------------------------------------------------
    def _resolve(self, path: str, where: str) -> str:
        """`path` with every symlink among its parents followed (inside the root); the
        last component is not followed (an entry replaces what is at its name)."""
        parts = path.split("/") if path else []  # clean: no empty, "." or ".." parts
        out: list[str] = []
        hops = 0
        i = 0
        while i < len(parts) - 1:
            cur = "/".join([*out, parts[i]])
            n = self.fs.nodes.get(cur)
            if n is not None and n.kind == "symlink":
                hops += 1
                if hops > _MAX_LINKS:
                    raise VerificationFailed(f"{where}: too many symlinks resolving {path!r}")
                target = n.link
                base = [] if target.startswith("/") else out
                new: list[str] = list(base)
                for p in target.split("/"):
                    if p in ("", "."):
                        continue
                    if p == "..":
                        if new:
                            new.pop()
                    else:
                        new.append(p)
                parts = new + parts[i + 1 :]
                out, i = [], 0
                continue
            out.append(parts[i])
            i += 1
        return "/".join([*out, parts[-1]]) if parts else ""

    def _watched(self, path: str) -> bool:
        return any(
            path == w or path.startswith(w + "/") or w.startswith(path + "/") or path == ""
            for w in self.watch
        )

    def _subtree(self, path: str) -> list[str]:
        out, stack = [], [path]
        while stack:
            p = stack.pop()
            out.append(p)
            stack.extend(self.children.get(p, ()))
        return out

    def _drop(self, path: str, below: int | None = None) -> None:
        """Remove `path` and its subtree (only nodes from layers < `below` when given)."""
        for p in sorted(self._subtree(path), key=len, reverse=True):
            n = self.fs.nodes.get(p)
            if n is None or (below is not None and n.layer >= below):
                continue
            if below is not None and self.children.get(p):
                continue  # a directory that still holds this layer's entries stays
            del self.fs.nodes[p]
            self.fs.data.pop(p, None)
            self.children.pop(p, None)
            parent = p.rpartition("/")[0]
            self.children.get(parent, set()).discard(p)
            self._unlink(p)

    def _put(self, node: Node) -> None:
        path = node.path
        old = self.fs.nodes.get(path)
        if old is not None and not (old.kind == "dir" and node.kind == "dir"):
            self._drop(path)
        # parents the layer did not list exist implicitly as directories
        parts = path.split("/")
        for i in range(1, len(parts)):
            anc = "/".join(parts[:i])
            if anc not in self.fs.nodes:
                self.fs.nodes[anc] = Node(anc, "dir", 0, 0o755, node.layer)
                self.children.setdefault(anc.rpartition("/")[0], set()).add(anc)
        self.fs.nodes[path] = node
        self.children.setdefault(path.rpartition("/")[0], set()).add(path)
        if node.kind == "dir":
            self.children.setdefault(path, set())

    # --- the disk ----------------------------------------------------------------------
    def _target(self, path: str) -> Path | None:
        if self.dest is None or _under(path, self.extract) is None:
            return None
        return self.dest / path

    def _unlink(self, path: str) -> None:
        t = self._target(path)
        if t is None:
            return
        if t.is_symlink() or t.is_file():
            t.unlink()
        elif t.is_dir():
            shutil.rmtree(t)

    # --- one layer ---------------------------------------------------------------------
    def layer(
        self, i: int, items: Iterable[tuple[Entry, Opener | None]], kept: dict[str, bytes]
    ) -> None:
        """Apply layer `i`'s entries. A file comes with an opener of its bytes (a streamed
        read, hashed here) or without one (a `LayerScan`: its sha256 given, its bytes in
        `kept` when they were kept; one this caller keeps but `kept` lacks is noted in
        `missing`)."""
        la = self.fs.layers[i]
        where = f"layer {la.digest}"
        for e, opener in items:
            name = e.name
            head, _, base = name.rpartition("/")
            if base.startswith(WHITEOUT):
                parent = self._resolve(name, where).rpartition("/")[0] if head else ""
                if base == OPAQUE:
                    if self._watched(parent):
                        self.fs.touches.append(Touch(i, parent, "opaque"))
                    for child in sorted(self.children.get(parent, ())):
                        self._drop(child, below=i)
                else:
                    victim = (parent + "/" if parent else "") + base[len(WHITEOUT) :]
                    if self._watched(victim):
                        self.fs.touches.append(Touch(i, victim, "whiteout"))
                    if victim in self.fs.nodes:
                        self._drop(victim, below=i)
                continue
            path = self._resolve(name, where)
            if self._watched(path):
                kind = "file" if e.kind == "hardlink" else e.kind
                self.fs.touches.append(Touch(i, path, "add", kind))
            old = self.fs.nodes.get(path)
            if old is not None and not (old.kind == "dir" and e.kind == "dir"):
                self._drop(path)  # before anything new is written where it was
            target = self._target(path)
            if e.kind == "dir":
                self._put(Node(path, "dir", 0, e.mode, i))
                if target is not None:
                    if target.is_symlink() or (target.exists() and not target.is_dir()):
                        target.unlink()
                    target.mkdir(parents=True, exist_ok=True)
            elif e.kind == "symlink":
                self._put(Node(path, "symlink", 0, 0o777, i, link=e.link))
                if target is not None:
                    self._symlink(target, e.link, where, name)
            elif e.kind == "hardlink":
                src = self._resolve(clean(e.link, where), where)
                sn = self.fs.nodes.get(src)
                if sn is None or sn.kind != "file":
                    raise VerificationFailed(
                        f"{where}: hard link {name!r} to {e.link!r}, which is not a file"
                    )
                self._put(Node(path, "file", sn.size, sn.mode, i, sha256=sn.sha256))
                if src in self.fs.data:
                    self.fs.data[path] = self.fs.data[src]
                if target is not None:
                    st = self._target(src)
                    if st is None or not st.is_file():
                        raise VerificationFailed(
                            f"{where}: hard link {name!r} to {e.link!r} outside the extracted tree"
                        )
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.link(st, target)
            elif e.kind == "file":
                keep = self.keep(path)
                sha = e.sha256
                data = kept.get(name) if keep else None
                if opener is not None:
                    sha, data = self._stream(opener, keep, target, e.mode)
                elif keep and data is None:
                    self.missing.setdefault(i, set()).add(name)
                self._put(
                    Node(path, "file", e.size, e.mode, i, sha256=sha if self.hash(path) else None)
                )
                if data is not None:
                    self.fs.data[path] = data
            else:
                if target is not None:
                    raise VerificationFailed(f"{where} has a device or fifo {name!r}: refusing it")
                self._put(Node(path, "other", 0, e.mode, i))

    def _stream(
        self, opener: Opener, keep: bool, target: Path | None, mode: int
    ) -> tuple[str, bytes | None]:
        f = opener()
        h = hashlib.sha256()
        buf = bytearray() if keep else None
        out = None
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            out = open(target, "wb")  # noqa: SIM115 - closed below
        try:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                if buf is not None:
                    buf += chunk
                if out is not None:
                    out.write(chunk)
        finally:
            if out is not None:
                out.close()
        if target is not None:
            os.chmod(target, 0o755 if mode & 0o111 else 0o644)
        return h.hexdigest(), (bytes(buf) if buf is not None else None)

    def _symlink(self, target: Path, link: str, where: str, name: str) -> None:
        assert self.dest is not None
        resolved = (target.parent / link) if not link.startswith("/") else None
        if resolved is None or not os.path.normpath(resolved).startswith(str(self.dest) + os.sep):
            raise VerificationFailed(
                f"{where}: symlink {name!r} -> {link!r} leaves the extracted tree"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        os.symlink(link, target)


def _streamed(tf: tarfile.TarFile, where: str) -> Iterator[tuple[Entry, Opener | None]]:
    for m in tf:
        name = clean(m.name, where)
        if not name:
            continue
        kind = kind_of(m)
        link = m.linkname if kind in ("symlink", "hardlink") else ""
        e = Entry(name, kind, m.mode & 0o7777, m.size if kind == "file" else 0, link)
        yield e, (partial(_member, tf, m) if kind == "file" else None)


def _member(tf: tarfile.TarFile, m: tarfile.TarInfo) -> IO[bytes]:
    f = tf.extractfile(m)
    assert f is not None
    return f


def scan(
    image: Any,
    *,
    keep: Select | None = None,
    hash: Select | None = None,
    watch: Iterable[str] = (),
    extract: Iterable[str] = (),
    dest: Path | None = None,
    cache: ScanCache | None = None,
) -> MergedFS:
    """The merged filesystem of `image` (an `ImageView`): every layer read once and
    verified against its descriptor. `hash` selects the regular files whose sha256 is
    given (default: all), `keep` those whose bytes are kept, `watch` the prefixes whose
    touches are recorded, `extract` the subtrees written under `dest`.

    Without `extract`, the layers are scanned in parallel (`release.image.layerscan`;
    each from `cache` when it holds the blob's scan, after the blob is hashed) and applied
    in order; with it, they are streamed in order, each file written as it is read."""
    ext = list(extract)
    if ext and dest is None:
        raise ValueError("extract needs dest")
    if dest is not None:
        dest.mkdir(parents=True, exist_ok=True)
        sc = _Scanner(image.layers, keep, hash, list(watch), ext, dest)
        for i, la in enumerate(image.layers):
            _stream_layer(image.registry, sc, i, la)
        return sc.fs
    kp = keep or (lambda _p: False)
    also: dict[int, frozenset[str]] = {}
    scans: list[LayerScan | None] = [None] * len(image.layers)
    for _ in range(3):
        scans = _scan_layers(image, kp, cache, also, scans)
        sc = _Scanner(image.layers, keep, hash, list(watch), [], None)
        for i, ls in enumerate(scans):
            assert ls is not None
            sc.layer(i, ((e, None) for e in ls.entries), ls.data)
        if not sc.missing:
            return sc.fs
        # a kept file under a symlinked parent: its layer is read again keeping it by name
        also = {i: also.get(i, frozenset()) | frozenset(ns) for i, ns in sc.missing.items()}
        scans = [s if i not in also else None for i, s in enumerate(scans)]
    raise AssertionError("kept files still missing after re-reading their layers")


def _scan_layers(
    image: Any,
    keep: Select,
    cache: ScanCache | None,
    also: dict[int, frozenset[str]],
    have: list[LayerScan | None],
) -> list[LayerScan | None]:
    """Every layer's scan, in parallel (inflate and sha256 release the GIL); the first
    layer's failure, in layer order, is raised after every read has ended."""
    from concurrent.futures import ThreadPoolExecutor

    layers = image.layers
    names = [MergedFS(list(layers)).layer_name(i) for i in range(len(layers))]

    def one(i: int) -> LayerScan:
        done = have[i]
        if done is not None:
            return done
        return scan_layer(
            image.registry, layers[i], names[i], keep, cache, also.get(i, frozenset())
        )

    workers = max(1, min(len(layers), os.cpu_count() or 2, 4))
    with ThreadPoolExecutor(workers, thread_name_prefix="layer-scan") as pool:
        futures = [pool.submit(one, i) for i in range(len(layers))]
    return [f.result() for f in futures]  # the first failure in layer order


def _stream_layer(registry: Any, sc: _Scanner, i: int, la: Any) -> None:
    name = sc.fs.layer_name(i)
    got, n, failure = read_blob_tar(
        registry, la, name, lambda tf: sc.layer(i, _streamed(tf, f"layer {la.digest}"), {})
    )
    if got != la.digest or n != la.size:
        raise VerificationFailed(
            f"{name}: blob has sha256 {got} ({n} bytes), its descriptor "
            f"says {la.digest} ({la.size} bytes): the registry's copy is corrupt or lying"
        )
    if failure is not None:
        raise failure


__all__ = ["MergedFS", "Node", "ScanCache", "Touch", "TreeCheck", "check_tree", "scan"]
