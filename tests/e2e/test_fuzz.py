"""Property-based fuzz over a real pipeline's outputs (issue 14 item 10).

The example project goes through `release pipeline` once (the session fixture
`evidence_release`); hypothesis then mutates one thing at a time in a copy - a JSON
document of the release (image manifest, config, referrers index, referrer manifests,
Sigstore bundles: a field given another JSON type or dropped, the bytes truncated or a
byte flipped), a layer blob, a ledger row, or the layout's index.json - and runs
`release verify DIGEST --env local` (and `release status` for the ledger) through the
CLI's one entry point, `release.cli.main`, in this process. A mutated document is
either left where it is (its digest no longer matches) or stored under its own digest
and every parent re-pointed at it (so the parsers see it).

Properties: never a traceback (an exception escaping `main` fails the test); a failure
is exit 1 or 2 with exactly one `release: error:` line; exit 0 never when a digested
byte no longer matches its digest, a ledger row changed, a new image digest is verified
or a bundle's signed part changed (only index.json, or an unsigned field of a
re-addressed referrers index, referrer manifest or bundle, may leave verify at 0). Deterministic (`derandomize`) and bounded
(`max_examples`) so it runs in well under two minutes.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.slow, pytest.mark.docker]

LEDGER_COLUMNS = (
    "seq",
    "time",
    "actor",
    "env",
    "action",
    "digest",
    "evidence",
    "decision",
    "prev_hash",
    "hash",
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


class Release:
    """A working copy of the pipeline's result, restored after every example."""

    def __init__(self, src: dict[str, Any], dest: Path) -> None:
        from release.image.inspect import open_image
        from release.image.oci import EMPTY_DIGEST, referrers_tag
        from release.image.registry import open_registry

        shutil.copytree(
            src["project"], dest, symlinks=True, ignore=shutil.ignore_patterns(".cache")
        )
        self.root = dest
        self.env = {**src["env"], "RELEASE_CACHE_DIR": str(Path(src["project"]) / ".cache")}
        self.digest: str = src["digest"]
        self.reg = open_registry("oci:.release/registry", dest)
        self.blobs = dest / ".release/registry/blobs/sha256"
        self.index_json = dest / ".release/registry/index.json"
        self.ledger = dest / ".release/ledger.db"
        image = open_image(self.reg, self.digest)
        self.tag = referrers_tag(self.digest)
        refs_index = self.reg.tags()[self.tag]
        #: every digested document `release verify` reads, by kind; parent links for re-pointing
        self.docs: dict[str, str] = {
            self.digest: "manifest",
            image.manifest["config"]["digest"]: "config",
            refs_index: "referrers-index",
        }
        self.bundle_of: dict[str, str] = {}  # bundle blob -> referrer manifest
        for desc in json.loads(self.reg.get_manifest(refs_index)[0])["manifests"]:
            self.docs[desc["digest"]] = "referrer"
            layer = json.loads(self.reg.get_manifest(desc["digest"])[0])["layers"][0]["digest"]
            self.docs[layer] = "bundle"
            self.bundle_of[layer] = desc["digest"]
        assert EMPTY_DIGEST not in self.docs  # never read by verify: not a target
        #: layer blobs small enough to rewrite per example (the model, code and policy layers)
        self.layers = [la.digest for la in image.layers if la.role in ("model", "code", "policy")]
        self.saved = {p: p.read_bytes() for p in (self.index_json, self.ledger)}
        self.saved_blobs = {d: self._path(d).read_bytes() for d in [*self.docs, *self.layers]}

    def _path(self, digest: str) -> Path:
        return self.blobs / digest.split(":", 1)[1]

    def restore(self) -> None:
        for p, data in self.saved.items():
            p.write_bytes(data)
        for d, data in self.saved_blobs.items():
            self._path(d).write_bytes(data)

    # re-pointing a re-addressed document -------------------------------------------------
    def put(self, data: bytes) -> str:
        from release.image.oci import digest_of

        self.reg.put_blob(data, digest_of(data))
        return str(digest_of(data))

    def repoint(self, old: str, new_bytes: bytes) -> str:
        """Store `new_bytes` as the replacement of document `old` and re-point its parents
        up to index.json; the digest to verify back."""
        from release.image.oci import OCI_INDEX, OCI_MANIFEST, canonical

        kind = self.docs[old]
        new = self.put(new_bytes)
        if kind == "manifest":
            self.reg._add_to_index(new, len(new_bytes), OCI_MANIFEST, None)
            return new
        if kind == "config":
            m = json.loads(self.saved_blobs[self.digest])
            m["config"] = {**m["config"], "digest": new, "size": len(new_bytes)}
            data = canonical(m)
            return self.repoint(self.digest, data)
        if kind == "referrers-index":
            self.reg._add_to_index(new, len(new_bytes), OCI_INDEX, self.tag)
            return self.digest
        if kind == "referrer":
            idx = next(d for d, k in self.docs.items() if k == "referrers-index")
            doc = json.loads(self.saved_blobs[idx])
            for m in doc["manifests"]:
                if m["digest"] == old:
                    m["digest"], m["size"] = new, len(new_bytes)
            return self.repoint(idx, canonical(doc))
        # a bundle: its referrer manifest names it
        parent = self.bundle_of[old]
        doc = json.loads(self.saved_blobs[parent])
        doc["layers"][0] = {**doc["layers"][0], "digest": new, "size": len(new_bytes)}
        return self.repoint(parent, canonical(doc))


@pytest.fixture
def release_copy(evidence_release: dict[str, Any], tmp_path: Path) -> Release:
    return Release(evidence_release, tmp_path / "project")


def run(rel: Release, *args: str) -> tuple[int, str, str]:
    """`release ARGS` through release.cli.main in this process; an exception other than
    SystemExit escaping it is a traceback a user would see, and fails the test."""
    from release.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: Any = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([*args, "--config", str(rel.root / "release.toml")])
        except SystemExit as exc:
            code = exc.code
    return int(code or 0), out.getvalue(), err.getvalue()


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (tuple of keys/indexes) to a value inside a JSON document."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*prefix, i))
    return out


def mutate_json(data: bytes, draw: Any) -> bytes:
    """One field given another JSON value, or dropped, or the bytes truncated / a byte
    flipped."""
    how = draw(st.sampled_from(["retype", "drop", "truncate", "flip"]))
    if how in ("truncate", "flip"):
        return mutate_bytes(data, draw, how)
    doc = json.loads(data)
    where = draw(st.sampled_from(paths(doc)))
    parent = doc
    for k in where[:-1]:
        parent = parent[k]
    if how == "drop":
        del parent[where[-1]]
    else:
        new = draw(json_values)
        assume(new != parent[where[-1]] or type(new) is not type(parent[where[-1]]))
        parent[where[-1]] = new
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def mutate_bytes(data: bytes, draw: Any, how: str | None = None) -> bytes:
    how = how or draw(st.sampled_from(["truncate", "flip"]))
    if how == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    i = draw(st.integers(0, len(data) - 1))
    return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]


def _signed_part(bundle: bytes) -> Any:
    """What a bundle's signature covers: the DSSE payload, its type and the signature bytes.

    A signature's `keyid` is not in it: DSSE calls it an unauthenticated hint, which a
    verifier must not trust, so a changed or nulled keyid may verify (the key is the
    certificate's or the pinned one, never the hint)."""
    try:
        env = json.loads(bundle)["dsseEnvelope"]
        sigs = [s["sig"] if isinstance(s, dict) else s for s in env["signatures"]]
        return (env["payload"], env["payloadType"], json.dumps(sigs))
    except (ValueError, KeyError, TypeError):
        return None


def mutate_ledger(rel: Release, draw: Any) -> None:
    with sqlite3.connect(rel.ledger) as con:
        seqs = [r[0] for r in con.execute("SELECT seq FROM events")]
        seq = draw(st.sampled_from(seqs))
        col = draw(st.sampled_from(LEDGER_COLUMNS))
        old = con.execute(f"SELECT {col} FROM events WHERE seq = ?", (seq,)).fetchone()[0]
        new = draw(
            st.one_of(
                st.none(),
                st.integers(-5, 10**6),
                st.text(max_size=16),
                json_values.map(lambda v: json.dumps(v)),
                st.just(str(old)[: max(0, len(str(old)) - 1)]),
            )
        )
        assume(new != old)
        if isinstance(old, str) and isinstance(new, str):
            with contextlib.suppress(ValueError):  # the same JSON value differently spelled
                assume(json.loads(new) != json.loads(old))
        try:
            con.execute(f"UPDATE events SET {col} = ? WHERE seq = ?", (new, seq))
        except sqlite3.IntegrityError:
            assume(False)  # NOT NULL / a taken seq: not a row anyone can store


@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
@given(data=st.data())
def test_no_mutation_verifies_or_prints_a_traceback(release_copy: Release, data: Any) -> None:
    rel = release_copy
    draw = data.draw
    target = draw(
        st.sampled_from(["document", "document-readdressed", "layer", "ledger", "index.json"])
    )
    digest = rel.digest
    signed = True
    commands: list[tuple[str, ...]] = []
    try:
        if target.startswith("document"):
            doc = draw(st.sampled_from(sorted(rel.docs)))
            new = mutate_json(rel.saved_blobs[doc], draw)
            assume(new != rel.saved_blobs[doc])
            if target == "document":
                rel._path(doc).write_bytes(new)  # its digest no longer matches
            else:
                digest = rel.repoint(doc, new)
                # every digest re-pointed consistently, as a registry writer can: what must
                # still fail is a new image digest (nobody signed it) or a changed signature
                # or signed payload; an unsigned field of an index or referrer may verify
                kind = rel.docs[doc]
                signed = kind in ("manifest", "config") or (
                    kind == "bundle" and _signed_part(new) != _signed_part(rel.saved_blobs[doc])
                )
        elif target == "layer":
            layer = draw(st.sampled_from(rel.layers))
            rel._path(layer).write_bytes(mutate_bytes(rel.saved_blobs[layer], draw))
        elif target == "ledger":
            mutate_ledger(rel, draw)
            commands.append(("status", "--env", "local"))
        else:
            signed = False
            new = mutate_json(rel.saved[rel.index_json], draw)
            rel.index_json.write_bytes(new)
        commands.insert(0, ("verify", digest, "--env", "local"))
        for args in commands:
            code, _out, err = run(rel, *args)
            assert "Traceback" not in err, err
            if code == 0:
                assert not signed, f"{target}: {args} passed on a changed signed/digested byte"
                continue
            assert code in (1, 2), (target, args, code, err)
            errors = [ln for ln in err.splitlines() if ln.startswith("release: error:")]
            assert len(errors) == 1, (target, args, err)
    finally:
        rel.restore()


def test_the_unmutated_copy_verifies(release_copy: Release) -> None:
    """The fuzz's baseline: its own working copy, untouched, verifies (exit 0) - so every
    exit 1 or 2 above is the mutation's doing."""
    code, out, err = run(release_copy, "verify", release_copy.digest, "--env", "local")
    assert code == 0, out + err
    assert run(release_copy, "status", "--env", "local")[0] == 0
