"""Re-verify every claim about one image digest: the library behind `release verify`, the
gate (`collect` is the default evidence provider of `release.promote`) and the audit.

Nothing is trusted because it is stored: the image is read by digest and every blob is
re-hashed; each attestation's Sigstore bundle is verified offline against the pinned
trust root (or the signing public key) and the signer policy; subjects must name this
digest; the SBOM is compared with the image's real files; provenance with the image
config; the model directory of the image's MERGED filesystem (every layer, whiteouts
applied: `release.image.fs`) with the lock baked in the image - exactly its files, and
no layer but the model layer touching them; the canary report's
verdict is read from the signed statement; the ledger's hash chain is re-computed.

A claim that cannot be checked is a failed claim with the reason, never a skipped one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from release.audit.model import Check
from release.config import Config
from release.digest import Digest, Reference, parse_reference
from release.errors import ReleaseError, RemoteError, UsageError, VerificationFailed
from release.evidence import (
    CANARY,
    MODEL_SIGNATURE,
    PREDICATES,
    PROMOTION,
    PROVENANCE,
    SBOM,
    CanaryClaim,
    Evidence,
    ModelLayerClaim,
    ProvenanceClaim,
    SbomClaim,
    Signature,
    VulnerabilityClaim,
)

#: where `release build` puts things in the image (contract 1)
IMAGE_MODEL_DIR = "opt/model"
IMAGE_LOCK = "opt/release/model.lock.json"
IMAGE_DEPS_DIR = "opt/deps"
IMAGE_CODE_DIR = "var/task"

#: every attestation a release carries; promotion is optional (written at promote time)
ALL_PREDICATES: dict[str, str] = {**PREDICATES, "promotion": PROMOTION}


@dataclass
class Attestation:
    """The outcome of verifying the stored bundles of one predicate type."""

    name: str
    predicate_type: str
    present: bool
    ok: bool
    reason: str = ""
    predicate: dict[str, Any] | None = None
    statement: dict[str, Any] | None = None
    signer: str | None = None
    issuer: str | None = None
    bundle_digest: str | None = None

    def signature(self) -> Signature:
        return Signature(
            ok=self.ok,
            reason=self.reason,
            predicate_type=self.predicate_type,
            present=self.present,
            signer=self.signer,
            issuer=self.issuer,
            bundle_digest=self.bundle_digest,
        )


@dataclass
class Verification:
    """Everything verified about one digest: a checklist and the gate's Evidence."""

    reference: Reference
    repository: str
    env: str
    checks: list[Check] = field(default_factory=list)
    attestations: dict[str, Attestation] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)
    lock: Any = None  # ModelLock baked in the image
    evidence: Evidence | None = None
    #: every verified promotion statement about the digest (any environment)
    promotions: list[Any] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return self.reference.digest

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "repository": self.repository,
            "env": self.env or None,
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "signers": {
                n: {"signer": a.signer, "issuer": a.issuer, "bundle": a.bundle_digest}
                for n, a in sorted(self.attestations.items())
                if a.ok
            },
            "functions": self.functions,
        }


# --- entry points -----------------------------------------------------------------------
def collect(cfg: Config, ref: Reference, env: str) -> Evidence:
    """The gate's evidence provider: the Evidence of `ref` for `env`, every claim re-verified."""
    v = verify_release(cfg, ref, env, ledger=False)
    assert v.evidence is not None
    return v.evidence


def verify_release(
    cfg: Config, ref: Reference | str, env: str | None = None, *, ledger: bool = True
) -> Verification:
    """Every claim about the digest, as a checklist (`Verification.checks`) and Evidence."""
    from release.image.inspect import open_image
    from release.image.registry import open_registry

    if isinstance(ref, str):
        ref = parse_reference(ref)
    repo_ref = ref.repository or cfg.image.registry
    registry = open_registry(repo_ref, cfg.root)
    v = Verification(ref, registry.name, env or "")
    from release.errors import NotFound

    try:
        image = open_image(registry, ref.digest)
    except RemoteError:
        raise
    except NotFound as exc:  # not there: a failed claim
        v.add("image", False, exc.message)
        v.evidence = _evidence(cfg, v, None, None, None)
        return v
    except UsageError:  # a broken layout, an index given for an image: bad input (exit 2)
        raise
    except ReleaseError as exc:
        v.add("image", False, exc.message)
        v.evidence = _evidence(cfg, v, None, None, None)
        return v
    try:
        merged = merged_view(cfg, image)
    except RemoteError:
        raise
    except ReleaseError as exc:
        v.add("image", False, exc.message)
        v.evidence = _evidence(cfg, v, None, None, None)
        return v
    v.add("image", True, f"{len(image.layers)} layers, every blob matches its digest")
    v.labels = image.labels
    v.functions = image.functions

    model_claim = _check_model_layer(cfg, v, merged, image)
    from release.attest.verify import policy_from_config

    policy = policy_from_config(cfg.signing, cfg.root)  # once: a KMS key is fetched once
    from release.attest.verify import verify_all_stored

    v.promotions = verify_all_stored(registry, ref.digest, PROMOTION, policy)
    canaries = verify_all_stored(registry, ref.digest, CANARY, policy)
    for name, pt in ALL_PREDICATES.items():
        # the model signature is model-signing's: about the model (the lock's root digest)
        model = v.lock.digest if name == "model" and v.lock is not None else None
        v.attestations[name] = _verify_attestation(registry, ref, name, pt, policy, model)
        att = v.attestations[name]
        if name == "promotion" and not att.present:
            continue  # written at promote time; absent before the first promotion
        v.add(
            f"attestation {name}",
            att.ok,
            (f"signed by {att.signer}" + (f" ({att.issuer})" if att.issuer else ""))
            if att.ok
            else att.reason,
        )
    sbom_claim = _check_sbom(v, merged)
    prov_claim = _check_provenance(cfg, v)
    canary_claim = _check_canary(cfg, v, canaries)
    if ledger:
        _check_ledger(cfg, v)
    v.evidence = _evidence(cfg, v, model_claim, sbom_claim, prov_claim, canary_claim)
    return v


# --- the pieces ---------------------------------------------------------------------------
def image_model_dir(cfg: Config, image: Any) -> str:
    """`[image].model_dir` without slashes: where the model lives in the image."""
    return cfg.image.model_dir.strip("/")


#: the runtime model format the handler runs (release/modelformat.py), next to the lock
_RUNTIME = IMAGE_LOCK.rsplit("/", 1)[0] + "/runtime"


def merged_view(cfg: Config, image: Any) -> Any:
    """One read of every layer: the merged filesystem with the model directory hashed and
    watched, the baked lock and the deps' METADATA kept (`release.image.fs`)."""
    import re

    from release.image import fs

    model_dir = image_model_dir(cfg, image)
    meta = re.compile(re.escape(IMAGE_DEPS_DIR) + r"/[^/]+\.dist-info/METADATA")
    return fs.scan(
        image,
        keep=lambda p: p == IMAGE_LOCK or bool(meta.fullmatch(p)),
        hash=lambda p: p.startswith((model_dir + "/", _RUNTIME + "/")),
        watch=[model_dir, IMAGE_LOCK, _RUNTIME],
    )


def _check_model_layer(cfg: Config, v: Verification, merged: Any, image: Any) -> ModelLayerClaim:
    """The model directory of the MERGED filesystem holds exactly the files of the baked
    lock (by sha256), nothing else, and no layer but the model layer touched it or the
    lock (a base or code layer adding, replacing or whiting-out a model file fails here,
    named)."""
    from release.image.fs import check_tree
    from release.modelpin import lock_bytes, parse_lock, read_lock

    raw = merged.read(IMAGE_LOCK)
    if raw is None:
        reason = f"no model lock at /{IMAGE_LOCK} in the image"
        v.add("model layer", False, reason)
        return ModelLayerClaim(ok=False, reason=reason)
    try:
        lock = parse_lock(raw, f"/{IMAGE_LOCK}")
    except ReleaseError as exc:
        v.add("model layer", False, f"baked lock unreadable: {exc.message}")
        return ModelLayerClaim(ok=False, reason=exc.message)
    v.lock = lock
    lock_digest = "sha256:" + hashlib.sha256(lock_bytes(lock)).hexdigest()
    model_dir = image_model_dir(cfg, image)
    env = dict(
        e.split("=", 1) for e in (image.config.get("config") or {}).get("Env") or [] if "=" in e
    )
    runtime_dir = env.get("MODEL_DIR", "/" + model_dir).strip("/")
    if runtime_dir != model_dir:
        reason = f"the image's MODEL_DIR is /{runtime_dir}, [image].model_dir says /{model_dir}"
        v.add("model layer", False, reason)
        return ModelLayerClaim(ok=False, reason=reason, lock_digest=lock_digest)
    if merged.get(model_dir) is None:
        reason = f"no model directory /{model_dir} in the image"
        v.add("model layer", False, reason)
        return ModelLayerClaim(ok=False, reason=reason, lock_digest=lock_digest)
    res = check_tree(
        merged, model_dir, {f.path: f.sha256 for f in lock.files}, owner="model", also=[IMAGE_LOCK]
    )
    changed = [c.split(":", 1)[0] for c in res.changed]
    problems = res.problems()
    if lock.runtime is not None or merged.get(_RUNTIME) is not None:  # the file the handler runs
        want = {f.path: f.sha256 for f in lock.runtime.files} if lock.runtime is not None else {}
        rt = check_tree(merged, _RUNTIME, want, owner="model")
        problems += [f"runtime model /{_RUNTIME}: {p}" for p in rt.problems()]
    if not problems:
        ok, reason = True, ""
        v.add(
            "model layer",
            True,
            f"{len(lock.files)} files match the baked lock {lock.digest}; the merged "
            f"/{model_dir} holds nothing else and only the model layer wrote it"
            + (f"; runtime model {lock.runtime.digest[:19]}" if lock.runtime else ""),
        )
    else:
        ok = False
        reason = "; ".join(problems[:5])
        v.add("model layer", False, reason)
    # the baked lock must be the project's lock when we verify from a project checkout
    label = v.labels.get("dev.release.model.digest")
    if label and label != lock.digest:
        ok = False
        reason = f"image label dev.release.model.digest {label} != baked lock {lock.digest}"
        v.add("model label", False, reason)
    project_lock = cfg.lock_path
    if project_lock.is_file():
        mine = read_lock(project_lock)
        same = mine.digest == lock.digest
        v.add(
            "model lock",
            same,
            f"baked lock is the project's lock ({lock.repo}@{lock.commit[:12]})"
            if same
            else f"image was built from model {lock.digest}, project lock {project_lock.name} says {mine.digest}",
        )
        if not same:
            ok = False
            reason = (
                reason
                or f"image model {lock.digest} is not the project's locked model {mine.digest}"
            )
    return ModelLayerClaim(
        ok=ok,
        reason=reason,
        lock_digest=lock_digest,
        missing=res.missing,
        changed=changed,
        extra=[*res.extra, *res.foreign],
    )


def _verify_attestation(
    registry: Any,
    ref: Reference,
    name: str,
    predicate_type: str,
    policy: Any,
    model: str | None = None,
) -> Attestation:
    """The newest stored bundle of one predicate type that verifies (`verify_stored`);
    `model`: the statement must be about this model root digest instead of the image."""
    from release.attest.verify import NoAttestation, verify_stored

    try:
        if name == "model" and model is None:
            raise VerificationFailed(
                "no readable model lock in the image to check the model signature against"
            )
        about = {"subject": model, "about": "the image's model"} if model else {}
        vs = verify_stored(registry, ref.digest, predicate_type, policy, **about)
    except NoAttestation:
        return Attestation(name, predicate_type, present=False, ok=False, reason="missing")
    except RemoteError:
        raise
    except ReleaseError as exc:
        return Attestation(name, predicate_type, present=True, ok=False, reason=exc.message)
    return Attestation(
        name,
        predicate_type,
        present=True,
        ok=True,
        predicate=vs.predicate,
        statement=vs.statement,
        signer=vs.signer,
        issuer=vs.issuer,
        bundle_digest=vs.bundle_digest,
    )


def _dist_infos(merged: Any) -> dict[str, str]:
    """name (normalised) -> version of every distribution installed in the deps
    directory of the merged filesystem, from its `*.dist-info/METADATA`."""
    import re

    out: dict[str, str] = {}
    for path, data in merged.data.items():
        if not path.endswith(".dist-info/METADATA"):
            continue
        dist = version = None
        for raw in data.decode("utf-8", "replace").splitlines():
            if raw.startswith("Name:"):
                dist = raw.split(":", 1)[1].strip()
            elif raw.startswith("Version:"):
                version = raw.split(":", 1)[1].strip()
            elif not raw.strip():
                break
        if dist and version:
            out[re.sub(r"[-_.]+", "-", dist).lower()] = version
    return out


def _check_sbom(v: Verification, merged: Any) -> SbomClaim:
    import re

    att = v.attestations.get("sbom")
    if att is None or not att.present:
        return SbomClaim(
            ok=False,
            reason="missing",
            present=False,
            subject_ok=False,
            model_files_match_lock=False,
        )
    if not att.ok or att.predicate is None:
        return SbomClaim(
            ok=False,
            reason=att.reason,
            present=True,
            subject_ok=False,
            model_files_match_lock=False,
        )
    bom = att.predicate
    comps = all_components(bom.get("components") or [])
    problems: list[str] = []
    # packages: every library listed is installed in the deps layer at that version
    installed = _dist_infos(merged)
    libs = [
        c
        for c in comps
        if c.get("type") == "library" and str(c.get("purl", "")).startswith("pkg:pypi/")
    ]
    for c in libs:
        key = re.sub(r"[-_.]+", "-", str(c.get("name", ""))).lower()
        have = installed.get(key)
        if have is None:
            problems.append(f"package {c.get('name')} {c.get('version')} is not in the image")
        elif have != c.get("version"):
            problems.append(
                f"package {c.get('name')}: SBOM says {c.get('version')}, image has {have}"
            )
    listed = {re.sub(r"[-_.]+", "-", str(c.get("name", ""))).lower() for c in libs}
    unlisted = sorted(set(installed) - listed)
    if unlisted:
        problems.append(
            f"{len(unlisted)} installed packages not in the SBOM: {', '.join(unlisted[:5])}"
        )
    v.add(
        "sbom packages",
        not problems,
        f"{len(libs)} packages, each installed in the image at the listed version"
        if not problems
        else "; ".join(problems[:3]),
    )
    # the model: every file with the lock's hash, nothing else
    model_ok, model_reason = _sbom_model_matches(comps, v.lock)
    v.add(
        "sbom model",
        model_ok,
        f"model component lists the {len(v.lock.files) if v.lock else 0} locked files with their sha256"
        if model_ok
        else model_reason,
    )
    ok = not problems and model_ok
    return SbomClaim(
        ok=ok,
        reason="; ".join(problems[:3]) or model_reason,
        present=True,
        subject_ok=True,
        model_files_match_lock=model_ok,
    )


def all_components(comps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in comps:
        out.append(c)
        out.extend(all_components(c.get("components") or []))
    return out


def _sbom_model_matches(comps: list[dict[str, Any]], lock: Any) -> tuple[bool, str]:
    models = [c for c in comps if c.get("type") == "machine-learning-model"]
    if not models:
        return False, "no machine-learning-model component"
    if lock is None:
        return False, "the image has no readable model lock to compare with"
    model = models[0]
    files: dict[str, str] = {}
    for sub in model.get("components") or []:
        if sub.get("type") != "file":
            continue
        for h in sub.get("hashes") or []:
            if h.get("alg") == "SHA-256":
                files[str(sub.get("name"))] = str(h.get("content"))
    want = {f.path: f.sha256 for f in lock.files}
    if files == want:
        return True, ""
    missing = sorted(set(want) - set(files))
    extra = sorted(set(files) - set(want))
    changed = sorted(p for p in set(want) & set(files) if want[p] != files[p])
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:3])}")
    if extra:
        parts.append(f"not in the lock: {', '.join(extra[:3])}")
    if changed:
        parts.append(f"hash differs from the lock: {', '.join(changed[:3])}")
    return False, "model files: " + "; ".join(parts)


def _workflow_of(builder_id: str) -> str | None:
    """`.github/workflows/release.yml` of a GitHub builder id
    (`https://github.com/ORG/REPO/.github/workflows/release.yml@refs/heads/main`);
    `local` for a local build (`release.attest.statements.LOCAL_BUILDER_ID`)."""
    from release.attest.statements import LOCAL_BUILDER_ID

    if builder_id in ("local", LOCAL_BUILDER_ID):
        return "local"
    path = builder_id.partition("/.github/workflows/")[2]
    return ".github/workflows/" + path.partition("@")[0] if path else None


def _check_provenance(cfg: Config, v: Verification) -> ProvenanceClaim:
    """The signed provenance agrees with the image: source commit, model, model lock and
    base digest as the image's labels and baked lock say."""
    att = v.attestations.get("provenance")
    expected = {
        "expected_workflow": cfg.gate.workflow,
        "expected_commit": os.environ.get("RELEASE_EXPECTED_COMMIT") or None,
    }
    if att is None or not att.ok or att.predicate is None:
        return ProvenanceClaim(ok=False, reason=att.reason if att else "missing", **expected)
    pred = att.predicate
    builder = str(((pred.get("runDetails") or {}).get("builder") or {}).get("id") or "")
    workflow = _workflow_of(builder)
    deps = (pred.get("buildDefinition") or {}).get("resolvedDependencies") or []
    named = {str(d.get("name")): d.get("digest") or {} for d in deps if d.get("name")}
    source = [
        d.get("digest") or {}
        for d in deps
        if d.get("name") == "source" or str(d.get("uri", "")).startswith("git+")
    ]
    commit = source[0].get("gitCommit") if source else None
    labels = v.labels
    problems: list[str] = []

    def differs(what: str, claimed: str | None, actual: str | None) -> None:
        if claimed and actual and claimed != actual:
            problems.append(f"provenance {what} {claimed[:19]} != {actual[:19]} in the image")

    differs("commit", commit, labels.get("org.opencontainers.image.revision"))
    differs(
        "model commit",
        named.get("model", {}).get("gitCommit"),
        labels.get("dev.release.model", "").rpartition("@")[2],
    )
    differs(
        "base",
        named.get("base", {}).get("sha256"),
        labels.get("org.opencontainers.image.base.digest", "").removeprefix("sha256:"),
    )
    if v.lock is not None:
        # the lock is named by its root digest (model-signing's)
        differs(
            "model lock",
            named.get("model-lock", {}).get("sha256"),
            v.lock.digest.removeprefix("sha256:"),
        )
    ok = not problems
    v.add(
        "provenance",
        ok,
        f"built by {workflow or builder} from {commit[:12] if commit else 'unknown commit'}; agrees with the image"
        if ok
        else "; ".join(problems),
    )
    return ProvenanceClaim(
        ok=ok, reason="; ".join(problems), workflow=workflow, commit=commit, **expected
    )


def _expected_baselines(cfg: Config, v: Verification) -> tuple[set[str | None] | None, str]:
    """The baselines a canary report of `v.digest` may have been compared with in `v.env`:
    the digest live there now (when that is not this digest), and what was live when this
    digest was itself made live (a rollback re-promotes it). None: anything (no `--env`,
    or nothing live yet - a first release has no baseline to roll back to).
    The ledger's chain is verified first (LedgerBroken otherwise)."""
    from release.ledger import open_ledger

    if not v.env:
        return None, ""
    led = open_ledger(cfg)
    cur = led.current(v.env)
    if cur is None:
        return None, ""
    ok: set[str | None] = set()
    if cur.digest != v.digest:
        ok.add(cur.digest)
    for e in led.events(env=v.env, digest=v.digest):
        if e.action in ("promote", "rollback"):
            ok.add(e.evidence.get("from") or None)
    return ok, cur.digest


def _check_canary(cfg: Config, v: Verification, statements: list[Any]) -> CanaryClaim:
    """The report that counts is the newest by the signed `created` time (a failing one
    wins ties); it must be about this image and model, compare with the digest live in
    the environment, and pair at least [canary].min_paired_fraction of its corpus."""
    import math

    from release._io import canonical_json
    from release.canary.report import newest
    from release.errors import VerificationFailed

    att = v.attestations.get("canary")
    chosen = newest(statements)
    if chosen is None:
        return CanaryClaim(ok=False, reason=att.reason if att else "missing", passed=False)
    rep = chosen.predicate
    report_digest = "sha256:" + hashlib.sha256(canonical_json(rep)).hexdigest()

    def fail(reason: str) -> CanaryClaim:
        v.add("canary", False, reason)
        return CanaryClaim(ok=False, reason=reason, passed=False, report_digest=report_digest)

    passed = rep.get("passed") is True
    failed = (
        [str(x) for x in rep.get("failed_checks") or []]
        if isinstance(rep.get("failed_checks"), list)
        else []
    )
    subj = rep.get("subject") if isinstance(rep.get("subject"), dict) else {}
    subject = subj.get("digest")
    if subject and subject != v.digest:
        return fail(f"canary report is about {subject}, not this image")
    if v.lock is not None:
        md = subj.get("model_digest")
        if md and md != v.lock.digest:
            return fail(f"canary ran model {md}, the image has {v.lock.digest}")
    base = rep.get("baseline") if isinstance(rep.get("baseline"), dict) else None
    n = rep.get("n")
    if base is not None:
        paired, need = base.get("paired_items"), cfg.canary.min_paired_fraction
        if not isinstance(paired, int) or not isinstance(n, int) or paired < math.ceil(need * n):
            return fail(
                f"canary report {chosen.bundle_digest} pairs {paired} of {n} items with its baseline: "
                f"fewer than [canary].min_paired_fraction = {need:g} of the corpus"
            )
    try:
        accepted, live = _expected_baselines(cfg, v)
    except VerificationFailed as exc:
        return fail(f"cannot tell what is live in {v.env!r}: {exc.message}")
    if accepted is not None:
        got = base.get("digest") if base is not None else None
        if got not in accepted:
            return fail(
                f"the newest canary report ({rep.get('created') or 'undated'}, {chosen.bundle_digest}) "
                f"compares with {got or 'no baseline'}, but {v.env} runs {live}: "
                f"run the canary against the live release (release canary DIGEST --env {v.env})"
            )
    v.add(
        "canary",
        passed,
        f"passed on {n} items (report of {rep.get('created') or 'undated'})"
        if passed
        else f"failed: {', '.join(failed) or 'see report'}",
    )
    return CanaryClaim(
        ok=True,
        reason="" if passed else ", ".join(failed),
        passed=passed,
        report_digest=report_digest,
        failed_checks=failed,
    )


def _check_ledger(cfg: Config, v: Verification) -> None:
    from release.ledger import LedgerBroken, check_anchors, open_ledger, promotion_anchors

    led = open_ledger(cfg)
    try:
        chain = led.verify_chain()
        all_events = led.events()
    except LedgerBroken as exc:
        v.add("ledger chain", False, exc.message)
        return
    v.add("ledger chain", chain.ok, chain.detail)
    anchors = [a for vs in v.promotions for a in promotion_anchors(vs.predicate, vs.bundle_digest)]
    missing = check_anchors(all_events, anchors)
    v.add(
        "ledger anchors",
        not missing,
        f"{len(anchors)} events named by {len(v.promotions)} signed promotion statements are in the ledger"
        if not missing
        else "; ".join(missing[:3]),
    )
    events = [e for e in all_events if e.digest == v.digest and (not v.env or e.env == v.env)]
    gates = [e for e in events if e.action == "gate"]
    promos = [e for e in events if e.action == "promote"]
    if not v.env:
        if events:
            v.add(
                "ledger",
                True,
                f"{len(events)} events for this digest ({len(gates)} gate, {len(promos)} promote)",
            )
        return
    if not gates:
        v.add("gate decision", False, f"no gate decision for this digest in {v.env!r}")
        return
    last = gates[-1]
    allow = bool((last.decision or {}).get("allow"))
    v.add(
        "gate decision",
        allow,
        f"allowed at {last.time} by {last.actor} (event {last.seq})"
        if allow
        else f"denied at {last.time}: {'; '.join((last.decision or {}).get('reasons', [])[:3])}",
    )
    live = [e for e in events if e.action in ("promote", "rollback")]
    if live:
        last_live = live[-1]
        named = [
            vs
            for vs in v.promotions
            if vs.predicate.get("env") == v.env
            and (vs.predicate.get("ledger") or {}).get("seq") == last_live.seq
            and (vs.predicate.get("ledger") or {}).get("hash") == last_live.hash
        ]
        v.add(
            "promotion statement",
            bool(named),
            f"the {last_live.action} at ledger seq {last_live.seq} is signed ({named[0].bundle_digest})"
            if named
            else f"ledger event {last_live.seq} made {v.digest[:19]} live in {v.env!r} but no signed "
            "promotion statement names it (deleted, or never signed)",
        )
    if promos:
        p = promos[-1]
        preceded = any(g.seq < p.seq and (g.decision or {}).get("allow") for g in gates)
        v.add(
            "promotion",
            preceded,
            f"promoted at {p.time} by {p.actor} (event {p.seq}) after an allowing gate decision"
            if preceded
            else f"promotion event {p.seq} has no allowing gate decision before it",
        )


@dataclass(frozen=True)
class LedgerCheck:
    """`release ledger verify`: the chain, and every event a signed statement names."""

    chain: Any  # release.ledger.ChainStatus
    anchors: int
    statements: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems


def verify_ledger(cfg: Config) -> LedgerCheck:
    """Re-compute the chain, then check it against every signed anchor that can be found:
    the promotion statements stored with each digest the ledger names and (an OCI layout
    registry) with every image the registry holds. A missing or different event that a
    signed statement names is a problem naming it. A row that cannot be read: LedgerBroken."""
    from release.attest.store import fetch_bundles
    from release.attest.verify import policy_from_config, verify_all_stored
    from release.digest import is_digest
    from release.image.layout import LayoutRegistry
    from release.image.oci import MANIFEST_TYPES
    from release.image.registry import open_registry
    from release.ledger import check_anchors, open_ledger, promotion_anchors

    led = open_ledger(cfg)
    chain = led.verify_chain()
    events = led.events()
    where: dict[str, set[str]] = {}
    for e in events:
        ref = e.evidence.get("reference") or ""
        repo = ref.rpartition("@")[0] if "@" in ref else ""
        if is_digest(e.digest):
            where.setdefault(repo or cfg.image.registry, set()).add(e.digest)
    default = open_registry(cfg.image.registry, cfg.root)
    if isinstance(default, LayoutRegistry):  # a layout can list every image it holds
        for m in default._index().get("manifests", []):
            if m.get("mediaType") in MANIFEST_TYPES and not m.get("artifactType"):
                where.setdefault(cfg.image.registry, set()).add(m["digest"])
    policy = None  # read only once a statement is found (a KMS key is fetched once)
    anchors = []
    statements = 0
    for repo, digests in sorted(where.items()):
        reg = default if repo == cfg.image.registry else open_registry(repo, cfg.root)
        for d in sorted(digests):
            if not fetch_bundles(reg, Digest(d), PROMOTION):
                continue
            policy = policy or policy_from_config(cfg.signing, cfg.root)
            for vs in verify_all_stored(reg, d, PROMOTION, policy):
                statements += 1
                anchors.extend(promotion_anchors(vs.predicate, vs.bundle_digest))
    problems = tuple(check_anchors(events, anchors))
    return LedgerCheck(chain, len(anchors), statements, problems)


def _vulnerabilities(cfg: Config, v: Verification) -> VulnerabilityClaim:
    from release.gate import vulnerability_claim

    claim: VulnerabilityClaim = vulnerability_claim(cfg, v.reference, v.repository)
    return claim


def _evidence(
    cfg: Config,
    v: Verification,
    model: ModelLayerClaim | None,
    sbom: SbomClaim | None,
    prov: ProvenanceClaim | None,
    canary: CanaryClaim | None = None,
) -> Evidence:
    sigs = {}
    for name in PREDICATES:
        att = v.attestations.get(name)
        sigs[name] = (
            att.signature()
            if att
            else Signature(
                ok=False, reason="not checked", predicate_type=PREDICATES[name], present=False
            )
        )
    vuln = _vulnerabilities(cfg, v)
    if vuln.configured:
        v.add(
            "vulnerabilities",
            vuln.ok,
            vuln.reason or f"{vuln.critical} critical, {vuln.high} high ({vuln.source})",
        )
    return Evidence(
        digest=v.digest,
        repository=v.repository,
        env=v.env,
        signatures=sigs,
        sbom=sbom
        or SbomClaim(
            ok=False,
            reason="not checked",
            present=False,
            subject_ok=False,
            model_files_match_lock=False,
        ),
        provenance=prov or ProvenanceClaim(ok=False, reason="not checked"),
        model_layer=model or ModelLayerClaim(ok=False, reason="not checked"),
        canary=canary or CanaryClaim(ok=False, reason="not checked", passed=False),
        vulnerabilities=vuln,
    )


__all__ = [
    "CANARY",
    "MODEL_SIGNATURE",
    "PROVENANCE",
    "SBOM",
    "Verification",
    "collect",
    "verify_release",
]
