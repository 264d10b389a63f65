"""Evidence that cannot be dropped, rolled back or truncated, and bad input that never
ends in a traceback - tried as an attacker would, on a real `release pipeline` result
(OCI layout registry, key signing, SQLite ledger, `local` environment), through the CLI.

Issue 14 items 2-6 and 9; the property-based fuzz over the same result (item 10) is in
test_fuzz.py.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from release.evidence import CANARY, PROMOTION, SBOM
from tests.fixtures.tools import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.docker]

#: a digest nothing was built for: what another release made live
OTHER = "sha256:" + "ab" * 32


def cli(project: Path, env: dict[str, str], *args: Any) -> Any:
    return run_cli(*args, cwd=project, env=env)


@pytest.fixture
def released(evidence_release: dict[str, Any]) -> dict[str, Any]:
    return evidence_release


def _copy(released: dict[str, Any], tmp_path: Path) -> tuple[Path, dict[str, str], str]:
    dst = tmp_path / "project"
    shutil.copytree(
        released["project"], dst, symlinks=True, ignore=shutil.ignore_patterns(".cache")
    )
    env = {**released["env"], "RELEASE_CACHE_DIR": str(released["project"] / ".cache")}
    return dst, env, released["digest"]


def _registry(project: Path) -> Any:
    from release.image.registry import open_registry

    return open_registry("oci:.release/registry", project)


def _events(project: Path, env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    r = cli(project, env, "ledger", "events", "--json", *args)
    assert r.code == 0, r.stderr
    return list(json.loads(r.stdout))


def _sql(project: Path, stmt: str) -> None:
    with sqlite3.connect(project / ".release" / "ledger.db") as con:
        con.execute(stmt)


def _checks(
    project: Path, env: dict[str, str], digest: str, where: str
) -> tuple[int, dict[str, Any]]:
    r = cli(project, env, "verify", digest, "--env", where, "--json")
    assert r.code in (0, 1), r.stderr
    return r.code, {c["name"]: c for c in json.loads(r.stdout)["checks"]}


def _one_error_line(r: Any, code: int) -> str:
    """The run failed with `code`, printed nothing on stdout and exactly one stderr line."""
    assert r.code == code, (r.code, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stdout == "", r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("release: error: "), r.stderr
    return str(lines[0][len("release: error: ") :])


def _fails(r: Any, code: int, want: str) -> None:
    """`release verify` failed with `code`: its checklist on stdout (complete, not partial),
    exactly one error line on stderr, no traceback, and `want` said somewhere."""
    assert r.code == code, (r.code, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("release: error: "), r.stderr
    assert want in r.stdout + r.stderr, (want, r.stdout, r.stderr)


def _drop_referrers(project: Path, digest: str, keep: Any) -> None:
    """Rewrite the referrers index of `digest` keeping only the entries `keep(desc)` says."""
    from release.image.oci import OCI_INDEX, canonical, digest_of, referrers_tag

    reg = _registry(project)
    tag = referrers_tag(digest)
    index = json.loads(reg.get_manifest(reg.tags()[tag])[0])
    index["manifests"] = [m for m in index["manifests"] if keep(m)]
    data = canonical(index)
    reg.put_blob(data, digest_of(data))
    reg._add_to_index(digest_of(data), len(data), OCI_INDEX, tag)


def _ptype(desc: dict[str, Any]) -> str:
    from release.attest.bundle import PREDICATE_ANNOTATION

    return str((desc.get("annotations") or {}).get(PREDICATE_ANNOTATION))


def _signed_canary(project: Path, digest: str) -> dict[str, Any]:
    from release.attest.store import fetch_bundles

    [sb] = fetch_bundles(_registry(project), digest, CANARY)
    stmt = json.loads(base64.b64decode(json.loads(sb.bundle)["dsseEnvelope"]["payload"]))
    return dict(stmt["predicate"])


def _sign_canary(project: Path, digest: str, report: dict[str, Any]) -> str:
    """Sign `report` with the project's own key (a legitimate signer) and attach it."""
    from release.attest import sign

    signer = sign.make_signer("key:.release/keys/signing.pem", project)
    [att] = sign.attest(_registry(project), digest, [(CANARY, report)], signer)
    return str(att.referrer)


# --- 2. dropped promotion evidence --------------------------------------------------------
def test_dropped_promotion_statement_fails_verify(released: dict[str, Any], tmp_path: Path) -> None:
    project, env, digest = _copy(released, tmp_path)
    code, checks = _checks(project, env, digest, "local")
    assert code == 0 and checks["promotion statement"]["ok"], checks
    [promo] = [e for e in _events(project, env, "--env", "local") if e["action"] == "promote"]
    _drop_referrers(project, digest, lambda d: _ptype(d) != PROMOTION)
    code, checks = _checks(project, env, digest, "local")
    assert code == 1
    failed = {n: c["detail"] for n, c in checks.items() if not c["ok"]}
    assert set(failed) == {"promotion statement"}, failed
    assert failed["promotion statement"] == (
        f"ledger event {promo['seq']} made {digest[:19]} live in 'local' but no signed promotion "
        "statement names it (deleted, or never signed)"
    )


# --- 3. truncated ledger --------------------------------------------------------------------
def test_cut_ledger_tail_is_seen_by_verify_and_ledger_verify(
    released: dict[str, Any], tmp_path: Path
) -> None:
    project, env, digest = _copy(released, tmp_path)
    assert cli(project, env, "ledger", "verify").code == 0
    events = _events(project, env)
    promo = next(e for e in events if e["action"] == "promote")
    # the gate decision the promotion acted on (the pipeline's gate stage decided once before)
    gate = [e for e in events if e["action"] == "gate" and e["seq"] < promo["seq"]][-1]
    # the chain alone cannot see this: every remaining event still links
    _sql(project, f"DELETE FROM events WHERE seq >= {promo['seq']}")
    r = cli(project, env, "ledger", "verify")
    assert r.code == 1
    assert r.stderr.splitlines()[0].startswith(
        "release: error: ledger does not hold what signed statements name: "
        f"ledger event seq {promo['seq']} is missing: the promote of {digest[:19]} in 'local' "
        "(signed promotion statement sha256:"
    ), r.stderr
    assert r.stderr.splitlines()[0].endswith(") names it (the ledger was truncated or rewritten)")
    code, checks = _checks(project, env, digest, "local")
    assert code == 1 and not checks["ledger anchors"]["ok"]
    assert f"ledger event seq {promo['seq']} is missing" in checks["ledger anchors"]["detail"]
    assert checks["ledger chain"]["ok"], checks["ledger chain"]
    # cut further, through the gate decision: that one is named too
    _sql(project, f"DELETE FROM events WHERE seq >= {gate['seq']}")
    r = cli(project, env, "ledger", "verify", "--json")
    assert r.code == 1
    problems = json.loads(r.stdout)["problems"]
    assert any(
        p.startswith(f"ledger event seq {gate['seq']} is missing: the gate decision of the promote")
        for p in problems
    ), problems
    assert any(p.startswith(f"ledger event seq {promo['seq']} is missing") for p in problems), (
        problems
    )


def test_rewritten_ledger_with_a_valid_chain_is_seen(
    released: dict[str, Any], tmp_path: Path
) -> None:
    """The tail cut and re-written with a fresh, valid chain (a different promote event at
    the same seq): the signed statement names another hash."""
    from release.config import load
    from release.ledger import open_ledger

    project, env, digest = _copy(released, tmp_path)
    promo = next(e for e in _events(project, env) if e["action"] == "promote")
    _sql(project, f"DELETE FROM events WHERE seq >= {promo['seq']}")
    led = open_ledger(load(project / "release.toml"))
    ev = led.append(
        "local", "promote", digest, actor="mallory", evidence={"reference": digest, "from": ""}
    )
    assert ev.seq == promo["seq"] and ev.hash != promo["hash"]
    r = cli(project, env, "ledger", "verify")
    assert r.code == 1
    assert (
        f"ledger event seq {promo['seq']} has hash {ev.hash}, but the promote of {digest[:19]}"
        in r.stderr
    )


# --- 5. nothing acts on a broken chain -------------------------------------------------------
def test_broken_chain_refuses_invoke_status_rollback(
    released: dict[str, Any], tmp_path: Path
) -> None:
    project, env, _digest = _copy(released, tmp_path)
    event = project / "event.json"
    event.write_text(json.dumps({"text": "The concert was wonderful."}))
    _sql(project, "UPDATE events SET actor = 'mallory' WHERE seq = 1")
    for args in (
        ("invoke", "scorer", event, "--env", "local"),
        ("status", "--env", "local"),
        ("rollback", "--env", "local"),
    ):
        line = _one_error_line(cli(project, env, *args), 1)
        assert line.startswith("ledger sqlite:"), line
        assert line.endswith(
            "chain broken: event seq 1: contents do not match its hash (edited); refusing to act "
            "on what it says is live in 'local' (run `release ledger verify`)"
        ), line


# --- 4. evidence rollback -------------------------------------------------------------------
def _make_live(project: Path, env_name: str, digest: str) -> None:
    from release.config import load
    from release.ledger import open_ledger

    open_ledger(load(project / "release.toml")).append(
        env_name,
        "promote",
        digest,
        actor="another-release",
        evidence={"reference": digest, "from": ""},
    )


def test_canary_report_is_chosen_by_its_signed_time(
    released: dict[str, Any], tmp_path: Path
) -> None:
    project, env, digest = _copy(released, tmp_path)
    first = _signed_canary(project, digest)
    assert first["passed"] is True and first["baseline"] is None and first["created"]
    # another release is live in staging: the first-release report compares with nothing
    _make_live(project, "staging", OTHER)
    _, checks = _checks(project, env, digest, "staging")
    assert not checks["canary"]["ok"]
    assert checks["canary"]["detail"].endswith(
        f"compares with no baseline, but staging runs {OTHER}: run the canary against the live "
        "release (release canary DIGEST --env staging)"
    ), checks["canary"]
    # a newer passing report against the live digest counts
    n = first["n"]
    against_live = {
        "source": "promoted",
        "digest": OTHER,
        "model_digest": None,
        "report_sha256": "0" * 64,
        "paired_items": n,
    }
    newer = {**first, "baseline": against_live, "created": "2030-01-01T00:00:00.000000Z"}
    _sign_canary(project, digest, newer)
    _, checks = _checks(project, env, digest, "staging")
    assert checks["canary"]["ok"], checks["canary"]
    # a failing report attached last but signed as older does not outrank it (index order
    # is nobody's signature) ...
    failing = {**newer, "passed": False, "failed_checks": ["flip-rate"]}
    _sign_canary(project, digest, {**failing, "created": "2029-01-01T00:00:00.000000Z"})
    _, checks = _checks(project, env, digest, "staging")
    assert checks["canary"]["ok"], checks["canary"]
    # ... and a failing report is never outranked by a passing one that is not newer
    _sign_canary(project, digest, failing)
    _, checks = _checks(project, env, digest, "staging")
    assert (checks["canary"]["ok"], checks["canary"]["detail"]) == (False, "failed: flip-rate")
    r = cli(project, env, "gate", digest, "--env", "staging")
    assert r.code == 1 and "  canary: failed (flip-rate)" in r.stderr.splitlines(), r.stderr
    # reordering the referrers index changes nothing
    from release.image.oci import OCI_INDEX, canonical, digest_of, referrers_tag

    reg = _registry(project)
    tag = referrers_tag(digest)
    index = json.loads(reg.get_manifest(reg.tags()[tag])[0])
    index["manifests"].reverse()
    data = canonical(index)
    reg.put_blob(data, digest_of(data))
    reg._add_to_index(digest_of(data), len(data), OCI_INDEX, tag)
    _, checks = _checks(project, env, digest, "staging")
    assert checks["canary"]["detail"] == "failed: flip-rate"


def test_deleted_newest_report_leaves_a_stale_baseline(
    released: dict[str, Any], tmp_path: Path
) -> None:
    """The newest (failing) report deleted after another release went live: the older
    passing one compares with what was live before, not with what is live now."""
    project, env, digest = _copy(released, tmp_path)
    first = _signed_canary(project, digest)
    _make_live(project, "staging", OTHER)
    newest = {
        **first,
        "passed": False,
        "failed_checks": ["flip-rate"],
        "created": "2030-01-01T00:00:00.000000Z",
        "baseline": {
            "source": "promoted",
            "digest": OTHER,
            "model_digest": None,
            "report_sha256": "0" * 64,
            "paired_items": first["n"],
        },
    }
    ref = _sign_canary(project, digest, newest)
    _drop_referrers(project, digest, lambda d: d["digest"] != ref)
    _, checks = _checks(project, env, digest, "staging")
    assert not checks["canary"]["ok"]
    assert f"compares with no baseline, but staging runs {OTHER}" in checks["canary"]["detail"]


def test_a_report_pairing_few_items_fails(released: dict[str, Any], tmp_path: Path) -> None:
    project, env, digest = _copy(released, tmp_path)
    first = _signed_canary(project, digest)
    _make_live(project, "staging", OTHER)
    few = {
        **first,
        "created": "2030-01-01T00:00:00.000000Z",
        "baseline": {
            "source": "promoted",
            "digest": OTHER,
            "model_digest": None,
            "report_sha256": "0" * 64,
            "paired_items": 10,
        },
    }
    ref = _sign_canary(project, digest, few)
    _, checks = _checks(project, env, digest, "staging")
    assert checks["canary"]["detail"] == (
        f"canary report {ref} pairs 10 of {first['n']} items with its baseline: fewer than "
        "[canary].min_paired_fraction = 0.9 of the corpus"
    )


# --- 6. the real collection denies --------------------------------------------------------
def test_tampered_sbom_denies_promote_and_nothing_moves(
    released: dict[str, Any], tmp_path: Path
) -> None:
    from release.attest.store import fetch_bundles

    project, env, digest = _copy(released, tmp_path)
    [sb] = fetch_bundles(_registry(project), digest, SBOM)
    b = json.loads(sb.bundle)
    stmt = json.loads(base64.b64decode(b["dsseEnvelope"]["payload"]))
    lib = next(c for c in stmt["predicate"]["components"] if c.get("type") == "library")
    lib["version"] = "999.0"
    b["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    from release.attest.bundle import ARTIFACT_TYPE, BUNDLE_MEDIA_TYPE, PREDICATE_ANNOTATION

    _drop_referrers(project, digest, lambda d: _ptype(d) != SBOM)
    _registry(project).attach(
        digest,
        ARTIFACT_TYPE,
        json.dumps(b).encode(),
        BUNDLE_MEDIA_TYPE,
        {PREDICATE_ANNOTATION: SBOM},
    )
    before = _events(project, env)
    r = cli(project, env, "promote", digest, "--env", "staging")
    assert r.code == 1, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith(f"release: error: gate denied {digest} for staging: "), r.stderr
    assert any(ln.startswith("  sbom attestation: ") for ln in lines), r.stderr
    after = _events(project, env)
    assert [e["action"] for e in after[len(before) :]] == ["gate"]
    assert after[-1]["decision"]["allow"] is False
    r = cli(project, env, "status", "--env", "staging")
    assert (r.code, r.stderr) == (0, "staging: nothing promoted yet\n")


# --- 9. bad input: one line, the right exit code, no traceback ----------------------------
def _put_image(project: Path, manifest: dict[str, Any] | bytes) -> str:
    from release.image.oci import OCI_MANIFEST, canonical

    data = manifest if isinstance(manifest, bytes) else canonical(manifest)
    return str(_registry(project).put_manifest(data, OCI_MANIFEST))


def _blob(project: Path, data: bytes) -> dict[str, Any]:
    from release.image.oci import digest_of

    _registry(project).put_blob(data, digest_of(data))
    return {"digest": digest_of(data), "size": len(data)}


def test_garbage_index_json_is_bad_input(released: dict[str, Any], tmp_path: Path) -> None:
    project, env, digest = _copy(released, tmp_path)
    index = project / ".release/registry/index.json"
    real = json.loads(index.read_text())
    for content, says in (
        (b"{not json", "index.json is not JSON"),
        (b"[]", "index.json is a JSON array, not an object"),
        (json.dumps({"manifests": {}}).encode(), "index.json: 'manifests' is not an array"),
        (
            json.dumps({"manifests": [{"mediaType": "x"}]}).encode(),
            "index.json manifests[0] has no 'digest'",
        ),
        (
            json.dumps(
                {
                    "manifests": [
                        {**real["manifests"][0], "digest": real["manifests"][0]["digest"] + "\n"}
                    ]
                }
            ).encode(),
            "index.json manifests[0]: 'digest' is not a sha256:<64 hex> digest",
        ),
    ):
        index.write_bytes(content)
        line = _one_error_line(cli(project, env, "verify", digest, "--env", "local"), 2)
        assert line == f"broken OCI layout: oci:.release/registry {says}", line


def test_garbage_referrers_index_and_referrer_manifest(
    released: dict[str, Any], tmp_path: Path
) -> None:
    from release.image.oci import OCI_INDEX, canonical, digest_of, referrers_tag

    project, env, digest = _copy(released, tmp_path)
    reg = _registry(project)
    tag = referrers_tag(digest)
    for doc, says in (
        ({"manifests": 5}, "'manifests' is not an array"),
        ({"manifests": ["x"]}, "manifests[0] is not a JSON object"),
        ({"manifests": [{"annotations": {}}]}, "manifests[0] has no 'digest'"),
    ):
        data = canonical(doc)
        reg.put_blob(data, digest_of(data))
        reg._add_to_index(digest_of(data), len(data), OCI_INDEX, tag)
        line = _one_error_line(cli(project, env, "verify", digest, "--env", "local"), 1)
        assert line.startswith(f"referrers index {digest_of(data)} of {digest}"), line
        assert line.endswith(says), line
    # a referrer manifest that is the wrong JSON type, or misses its layers
    from release.attest.bundle import ARTIFACT_TYPE, PREDICATE_ANNOTATION

    for bad, says in (
        (b"[1, 2]", "is a JSON array, not an object"),
        (b'{"subject": {}}', "has no 'layers'"),
    ):
        m = _blob(project, bad)
        data = canonical(
            {
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "artifactType": ARTIFACT_TYPE,
                        **m,
                        "annotations": {PREDICATE_ANNOTATION: CANARY},
                    }
                ]
            }
        )
        reg.put_blob(data, digest_of(data))
        reg._add_to_index(digest_of(data), len(data), OCI_INDEX, tag)
        line = _one_error_line(cli(project, env, "verify", digest, "--env", "local"), 1)
        assert line.startswith(
            "manifest " if bad.startswith(b"[") else f"referrer manifest {m['digest']}"
        ), line
        assert m["digest"] in line and line.endswith(says), line


def test_malformed_images_fail_with_one_line(released: dict[str, Any], tmp_path: Path) -> None:
    """Images whose manifest, config or layers are garbage (each under its own, correct
    digest): `release verify` and `release sbom` say which document, exit 1."""
    from release.image.inspect import open_image
    from release.image.oci import OCI_LAYER_GZIP, ROLE_ANNOTATION

    project, env, digest = _copy(released, tmp_path)
    real = open_image(_registry(project), digest)
    model = next(la for la in real.layers if la.role == "model")
    blob = (project / ".release/registry/blobs/sha256" / model.digest.split(":")[1]).read_bytes()
    good_config = _blob(
        project,
        json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}).encode(),
    )

    def manifest(config: dict[str, Any], layers: Any) -> dict[str, Any]:
        return {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": layers,
        }

    def layer(data: bytes) -> dict[str, Any]:
        return {
            "mediaType": OCI_LAYER_GZIP,
            **_blob(project, data),
            "annotations": {ROLE_ANNOTATION: "model"},
        }

    cases = [
        (manifest(good_config, {}), "image manifest {d}: 'layers' is not an array"),
        ({"schemaVersion": 2, "layers": []}, "image manifest {d} has no 'config'"),
        (
            manifest({"digest": "sha256:short"}, []),
            "image manifest {d} config: 'digest' is not a sha256:<64 hex> digest",
        ),
        (
            manifest(_blob(project, b'"a string"'), []),
            "image config {c} is a JSON string, not an object",
        ),
        (manifest(_blob(project, b"{}"), []), "image config {c} has no 'rootfs'"),
        (
            manifest(good_config, [{"digest": model.digest}]),
            "image manifest {d} layers[0] has no 'size'",
        ),
        # the SBOM reads the merged filesystem (release/image/fs.py), which names the layer
        # by position, role and short digest
        (
            manifest(good_config, [layer(b"this is not gzip")]),
            "layer 1 (model, {ls}) is not a readable tar: ",
        ),
        (
            manifest(good_config, [layer(blob[: len(blob) // 2])]),
            "layer 1 (model, {ls}) is not a readable tar: ",
        ),
    ]
    for doc, says in cases:
        d = _put_image(project, doc)
        c = (doc.get("config") or {}).get("digest", "")
        ls = doc.get("layers")
        lyr = ls[0]["digest"] if isinstance(ls, list) and ls else ""
        want = says.format(d=d, c=c, l=lyr, ls=lyr[:19])
        line = _one_error_line(cli(project, env, "sbom", d), 1)
        assert line.startswith(want), (line, want)
        _fails(cli(project, env, "verify", d, "--env", "local"), 1, want)


def test_broken_ledger_row_json(released: dict[str, Any], tmp_path: Path) -> None:
    project, env, digest = _copy(released, tmp_path)
    _sql(project, "UPDATE events SET evidence = '{broken' WHERE seq = 1")
    says = ": event row seq 1: column evidence is not JSON (the row was edited outside the tool)"
    (project / "event.json").write_text('{"text": "fine"}')
    for args in (
        ("status", "--env", "local"),
        ("audit", "--env", "local"),
        ("ledger", "verify"),
        ("ledger", "events"),
        ("invoke", "scorer", project / "event.json", "--env", "local"),
    ):
        line = _one_error_line(cli(project, env, *args), 1)
        assert line.startswith("ledger sqlite:") and line.endswith(says), (args, line)
    r = cli(project, env, "verify", digest, "--env", "local")
    _fails(r, 1, says)
    assert "FAIL  ledger chain           ledger sqlite:" in r.stdout, r.stdout


def test_a_digest_with_a_trailing_newline_is_refused(
    released: dict[str, Any], tmp_path: Path
) -> None:
    from release.digest import is_digest, parse_digest
    from release.errors import NotADigest

    project, env, digest = _copy(released, tmp_path)
    assert is_digest(digest) and not is_digest(digest + "\n")
    with pytest.raises(NotADigest):
        parse_digest(digest + "\n")
    line = _one_error_line(cli(project, env, "verify", digest + "\n"), 2)
    assert line.startswith(f"{digest + chr(10)!r} is not a digest"), line


def test_binary_canary_corpus_is_bad_input(released: dict[str, Any], tmp_path: Path) -> None:
    project, env, digest = _copy(released, tmp_path)
    (project / "model" / "canary.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    line = _one_error_line(cli(project, env, "canary", digest), 2)
    assert (
        line == "canary corpus canary.jsonl:1: not UTF-8 text (byte offset 0); the corpus is JSONL"
    )
