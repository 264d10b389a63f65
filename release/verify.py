"""Re-verify every claim about one image digest: the library behind `release verify`, the
gate (`collect` is the default evidence provider of `release.promote`) and the audit.

Nothing is trusted because it is stored: the image is read by digest and every blob is
re-hashed; each attestation's Sigstore bundle is verified offline against the pinned
trust root (or the signing public key) and the signer policy; subjects must name this
digest; the SBOM is compared with the image's real layers; provenance with the image
config; the model lock baked in the image with its model layer; the canary report's
verdict is read from the signed statement; the ledger's hash chain is re-computed.

A claim that cannot be checked is a failed claim with the reason, never a skipped one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release.audit.model import Check
from release.config import Config
from release.digest import Reference, parse_reference
from release.errors import ReleaseError, RemoteError, VerificationFailed
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
    try:
        image = open_image(registry, ref.digest)
    except RemoteError:
        raise
    except ReleaseError as exc:
        v.add("image", False, exc.message)
        v.evidence = _evidence(cfg, v, None, None, None)
        return v
    from release.image.inspect import local_blob

    bad = []
    for la in image.layers:
        try:
            with local_blob(registry, la.digest):
                pass
        except RemoteError:
            raise
        except ReleaseError as exc:
            bad.append(f"{la.role} layer {la.digest[:19]}: {exc.message}")
    if bad:
        v.add("image", False, "; ".join(bad))
        v.evidence = _evidence(cfg, v, None, None, None)
        return v
    v.add("image", True, f"{len(image.layers)} layers, every blob matches its digest")
    v.labels = image.labels
    v.functions = image.functions

    with _extracted(image, ["model"]) as root:
        model_claim = _check_model_layer(cfg, v, root)
        from release.attest.verify import policy_from_config

        policy = policy_from_config(cfg.signing, cfg.root)  # once: a KMS key is fetched once
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
        sbom_claim = _check_sbom(v, image, root)
        prov_claim = _check_provenance(cfg, v)
        canary_claim = _check_canary(v)
    if ledger:
        _check_ledger(cfg, v)
    v.evidence = _evidence(cfg, v, model_claim, sbom_claim, prov_claim, canary_claim)
    return v


# --- the pieces ---------------------------------------------------------------------------
@contextmanager
def _extracted(image: Any, roles: list[str]) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="release-verify-") as tmp:
        present = [r for r in roles if image.layers_with([r])]
        image.extract(present, Path(tmp))
        yield Path(tmp)


def _check_model_layer(cfg: Config, v: Verification, root: Path) -> ModelLayerClaim:
    from release import modelpin
    from release.modelpin import lock_bytes, read_lock

    lock_path = root / IMAGE_LOCK
    if not lock_path.is_file():
        reason = f"no model lock at /{IMAGE_LOCK} in the image"
        v.add("model layer", False, reason)
        return ModelLayerClaim(ok=False, reason=reason)
    try:
        lock = read_lock(lock_path)
    except ReleaseError as exc:
        v.add("model layer", False, f"baked lock unreadable: {exc.message}")
        return ModelLayerClaim(ok=False, reason=exc.message)
    v.lock = lock
    lock_digest = "sha256:" + hashlib.sha256(lock_bytes(lock)).hexdigest()
    model_rel = cfg.image.model_dir.strip("/")  # [image].model_dir (default /opt/model)
    model_dir = root / model_rel
    if not model_dir.is_dir():
        reason = f"no model directory /{model_rel} in the image"
        v.add("model layer", False, reason)
        return ModelLayerClaim(ok=False, reason=reason, lock_digest=lock_digest)
    from release.modelformat import verify_runtime

    res = modelpin.verify_dir(model_dir, lock, progress=False)
    changed = [p for p, _ in res.changed]
    problems = res.problems() + verify_runtime(lock_path.parent, lock)  # + the runtime model
    if not problems:
        ok, reason = True, ""
        v.add("model layer", True, f"{len(lock.files)} files match the baked lock {lock.digest}"
              + (f", runtime model {lock.runtime.digest[:19]}" if lock.runtime else ""))
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
        extra=res.extra,
    )


def _verify_attestation(
    registry: Any, ref: Reference, name: str, predicate_type: str, policy: Any, model: str | None = None
) -> Attestation:
    """The newest stored bundle of one predicate type that verifies (`verify_stored`);
    `model`: the statement must be about this model root digest instead of the image."""
    from release.attest.verify import NoAttestation, verify_stored

    try:
        if name == "model" and model is None:
            raise VerificationFailed("no readable model lock in the image to check the model signature against")
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


def _dist_infos(image: Any) -> dict[str, str]:
    """name (normalised) -> version of every distribution installed in the deps layer, read
    from the `*.dist-info/METADATA` members of the layer stream (nothing else unpacked)."""
    import re

    out: dict[str, str] = {}
    prefix = IMAGE_DEPS_DIR + "/"
    for layer in image.layers_with(["deps"]):
        with image._tar(layer) as tf:
            for member in tf:
                name = member.name.lstrip("./")
                rest = name[len(prefix) :] if name.startswith(prefix) else ""
                if not member.isfile() or not re.fullmatch(r"[^/]+\.dist-info/METADATA", rest):
                    continue
                f = tf.extractfile(member)
                assert f is not None
                dist = version = None
                for raw in f.read().decode("utf-8", "replace").splitlines():
                    if raw.startswith("Name:"):
                        dist = raw.split(":", 1)[1].strip()
                    elif raw.startswith("Version:"):
                        version = raw.split(":", 1)[1].strip()
                    elif not raw.strip():
                        break
                if dist and version:
                    out[re.sub(r"[-_.]+", "-", dist).lower()] = version
    return out


def _check_sbom(v: Verification, image: Any, root: Path) -> SbomClaim:
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
    installed = _dist_infos(image)
    libs = [c for c in comps if c.get("type") == "library"]
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
    differs("model commit", named.get("model", {}).get("gitCommit"), labels.get("dev.release.model", "").rpartition("@")[2])
    differs("base", named.get("base", {}).get("sha256"), labels.get("org.opencontainers.image.base.digest", "").removeprefix("sha256:"))
    if v.lock is not None:
        # the lock is named by its root digest (model-signing's)
        differs("model lock", named.get("model-lock", {}).get("sha256"), v.lock.digest.removeprefix("sha256:"))
    ok = not problems
    v.add(
        "provenance",
        ok,
        f"built by {workflow or builder} from {commit[:12] if commit else 'unknown commit'}; agrees with the image"
        if ok
        else "; ".join(problems),
    )
    return ProvenanceClaim(ok=ok, reason="; ".join(problems), workflow=workflow, commit=commit, **expected)


def _check_canary(v: Verification) -> CanaryClaim:
    from release._io import canonical_json

    att = v.attestations.get("canary")
    if att is None or not att.ok or att.predicate is None:
        return CanaryClaim(ok=False, reason=att.reason if att else "missing", passed=False)
    rep = att.predicate
    passed = bool(rep.get("passed"))
    failed = [str(x) for x in rep.get("failed_checks") or []]
    subject = (rep.get("subject") or {}).get("digest")
    report_digest = "sha256:" + hashlib.sha256(canonical_json(rep)).hexdigest()
    if subject and subject != v.digest:
        reason = f"canary report is about {subject}, not this image"
        v.add("canary", False, reason)
        return CanaryClaim(ok=False, reason=reason, passed=False, report_digest=report_digest)
    if v.lock is not None:
        md = (rep.get("subject") or {}).get("model_digest")
        if md and md != v.lock.digest:
            reason = f"canary ran model {md}, the image has {v.lock.digest}"
            v.add("canary", False, reason)
            return CanaryClaim(ok=False, reason=reason, passed=False, report_digest=report_digest)
    n = rep.get("n")
    v.add(
        "canary",
        passed,
        f"passed on {n} items" if passed else f"failed: {', '.join(failed) or 'see report'}",
    )
    return CanaryClaim(
        ok=True,
        reason="" if passed else ", ".join(failed),
        passed=passed,
        report_digest=report_digest,
        failed_checks=failed,
    )


def _check_ledger(cfg: Config, v: Verification) -> None:
    from release.ledger import open_ledger

    led = open_ledger(cfg)
    chain = led.verify_chain()
    v.add("ledger chain", chain.ok, chain.detail)
    events = led.events(env=v.env or None, digest=v.digest)
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
