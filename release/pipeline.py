"""`release pipeline`: every stage in order, stopping at the first failure.

    lock -> build -> sbom -> attest -> canary -> gate -> promote

Each stage is the same library call its own command makes (`release model verify|fetch`,
`release build`, `release sbom`, `release attest`, `release canary`, `release gate`,
`release promote`), so the pipeline can never disagree with the commands. A failing stage
raises its `ReleaseError`, whose exit code is the pipeline's. Outputs (SBOM, canary
report, model signature `model.sig`, audit summary) go to `.release/out/<digest hex[:12]>/`.

Each stage is a function that takes what it needs (the config, earlier stages' typed
results, the registry and signer of this run) and returns its own frozen result
(`LockResult`, `BuildResult`, ...); `run` chains them and collects them in a
`PipelineResult`, which the CLI renders. Progress goes to the `release.pipeline` logger:
`[i/n] stage ...` before and `[i/n] stage: summary (seconds)` after each stage.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from release.config import Config
from release.digest import Reference, parse_reference
from release.errors import CanaryFailed, CheckFailed, ConfigError, UsageError
from release.evidence import MODEL_SIGNATURE

if TYPE_CHECKING:
    from release.attest.sign import Attestation, Signer
    from release.evidence import Evidence
    from release.gate import Decision
    from release.image.registry import Registry
    from release.promote import EvidenceProvider, PromotionResult

log = logging.getLogger(__name__)

STAGES = ("lock", "build", "sbom", "attest", "canary", "gate", "promote")


# --- what each stage hands on ---------------------------------------------------------------
@dataclass(frozen=True)
class Signed:
    """One signed statement attached to the digest."""

    predicate_type: str
    referrer: str

    @classmethod
    def of(cls, a: Attestation) -> Signed:
        return cls(a.predicate_type, a.referrer)

    def to_dict(self) -> dict[str, str]:
        return {"predicate_type": self.predicate_type, "referrer": self.referrer}


@dataclass(frozen=True)
class LockResult:
    """The model source matches the lock."""

    repo: str
    commit: str
    model_digest: str
    files: int

    def summary(self, root: Path) -> str:
        return f"{self.repo}@{self.commit[:12]}: {self.files} files match {self.model_digest[:19]}"

    def data(self) -> dict[str, Any]:
        return {"model": f"{self.repo}@{self.commit}", "model_digest": self.model_digest}


@dataclass(frozen=True)
class BuildResult:
    """The image, by digest, and where this run's outputs go."""

    ref: Reference
    image: dict[str, Any]  # `BuiltImage.to_json()`
    layers: int
    functions: int
    out_dir: Path

    @property
    def reference(self) -> str:
        return str(self.ref)

    def summary(self, root: Path) -> str:
        return f"{self.ref} ({self.layers} layers, {self.functions} functions)"

    def data(self) -> dict[str, Any]:
        return {"image": self.image}


@dataclass(frozen=True)
class SbomResult:
    path: Path
    components: int

    def summary(self, root: Path) -> str:
        return f"{self.components} components -> {_rel(root, self.path)}"

    def data(self) -> dict[str, Any]:
        return {"sbom": str(self.path)}


@dataclass(frozen=True)
class AttestResult:
    attestations: tuple[Signed, ...]
    signer: str
    model_signature: Path | None  # the model signature as a file (`model_signing verify`)

    def summary(self, root: Path) -> str:
        return f"{len(self.attestations)} statements signed ({self.signer}) and attached"

    def data(self) -> dict[str, Any]:
        return {"model_signature": str(self.model_signature)} if self.model_signature else {}


@dataclass(frozen=True)
class CanaryResult:
    """A passed canary (a failed one is `CanaryFailed`, its report signed all the same)."""

    report_path: Path
    checks: int
    items: int
    baseline: str  # `vs promoted sha256:...` / `absolute checks (first release)`
    attestation: Signed

    def summary(self, root: Path) -> str:
        return (
            f"passed {self.baseline}: {self.checks} checks on {self.items} items -> "
            f"{_rel(root, self.report_path)}"
        )

    def data(self) -> dict[str, Any]:
        return {"canary_report": str(self.report_path)}


@dataclass(frozen=True)
class GateStageResult:
    """An allow (a deny is `GateDenied`), and the Evidence it was decided on."""

    decision: Decision
    evidence: Evidence

    def summary(self, root: Path) -> str:
        return f"allow for {self.decision.env} (policy {self.decision.policy_digest[:19]})"

    def data(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class PromoteResult:
    promotion: PromotionResult
    predicate_path: Path
    attestation: Signed | None  # None when the evidence came from a test's provider
    report: Path  # the audit summary (Markdown)

    def summary(self, root: Path) -> str:
        p = self.promotion
        return (
            f"{p.env} now runs {p.digest[:19]} on {len(p.functions)} functions -> "
            f"{_rel(root, self.report)}"
        )

    def data(self) -> dict[str, Any]:
        return {}


class _Stage(Protocol):
    def summary(self, root: Path) -> str: ...

    def data(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class StageRecord:
    name: str
    seconds: float
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    """Every stage that ran, in order, with its typed result."""

    env: str
    stages: list[StageRecord] = field(default_factory=list)
    lock: LockResult | None = None
    build: BuildResult | None = None
    sbom: SbomResult | None = None
    attest: AttestResult | None = None
    canary: CanaryResult | None = None
    gate: GateStageResult | None = None
    promote: PromoteResult | None = None

    @property
    def digest(self) -> str | None:
        return self.build.ref.digest if self.build else None

    @property
    def reference(self) -> str | None:
        return self.build.reference if self.build else None

    @property
    def out_dir(self) -> Path | None:
        return self.build.out_dir if self.build else None

    @property
    def decision(self) -> Decision | None:
        if self.promote is not None:
            return self.promote.promotion.decision
        return self.gate.decision if self.gate else None

    @property
    def attestations(self) -> list[Signed]:
        out = list(self.attest.attestations) if self.attest else []
        out += [self.canary.attestation] if self.canary else []
        if self.promote is not None and self.promote.attestation is not None:
            out.append(self.promote.attestation)
        return out

    @property
    def report(self) -> Path | None:
        return self.promote.report if self.promote else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "reference": self.reference,
            "env": self.env,
            "out_dir": str(self.out_dir) if self.out_dir else None,
            "decision": self.decision.to_dict() if self.decision else None,
            "attestations": [a.to_dict() for a in self.attestations],
            "report": str(self.report) if self.report else None,
            "stages": [
                {"name": s.name, "seconds": round(s.seconds, 3), "summary": s.summary, **s.data}
                for s in self.stages
            ],
        }


def default_env(cfg: Config) -> str:
    envs = list(cfg.file.environments)
    if not envs:
        raise UsageError("no [environments.*] in the config: nothing to gate or promote against")
    return "local" if "local" in envs else envs[0]


S = TypeVar("S", bound=_Stage)


class _Steps:
    """Runs the wanted stages one by one: times each, logs it, records it."""

    def __init__(self, cfg: Config, res: PipelineResult, wanted: tuple[str, ...]) -> None:
        self.cfg, self.res, self.wanted = cfg, res, wanted

    @property
    def done(self) -> bool:
        return len(self.res.stages) == len(self.wanted)

    def __call__(self, name: str, fn: Callable[[], S]) -> S:
        i, n = len(self.res.stages) + 1, len(self.wanted)
        log.info("[%d/%d] %s ...", i, n, name)
        t0 = time.monotonic()
        result = fn()
        rec = StageRecord(name, time.monotonic() - t0, result.summary(self.cfg.root), result.data())
        self.res.stages.append(rec)
        log.info("[%d/%d] %s: %s (%.1fs)", i, n, name, rec.summary, rec.seconds)
        return result


class _Session:
    """The registry and the signer of one run, each opened once when first needed."""

    def __init__(self, cfg: Config, ref: Reference) -> None:
        self.cfg, self.ref = cfg, ref

    @functools.cached_property
    def registry(self) -> Registry:
        from release.image.registry import open_registry

        return open_registry(self.ref.repository or self.cfg.image.registry, self.cfg.root)

    @functools.cached_property
    def signer(self) -> Signer:
        from release.attest import sign

        return sign.make_signer(self.cfg.signing.mode, self.cfg.root)


def run(
    cfg: Config,
    *,
    env: str | None = None,
    through: str = "promote",
    actor: str | None = None,
    evidence_provider: EvidenceProvider | None = None,
) -> PipelineResult:
    """The stages through `through`. `evidence_provider` replaces `release.claims.collect`
    (tests only, a Python argument; its promotions are not signed)."""
    from release.promote import default_provider

    if through not in STAGES:
        raise UsageError(f"--through {through!r}: expected one of {', '.join(STAGES)}")
    env = env or default_env(cfg)
    cfg.environment(env)
    stages = STAGES[: STAGES.index(through) + 1]
    if "canary" in stages and not cfg.code.predict:  # say so before anything is built
        raise ConfigError(
            "[code].predict is not set: the canary stage calls MODULE:CALLABLE of your code "
            "to score the corpus (docs/migrating.md; or run --through attest)"
        )
    if "gate" in stages:  # a broken or missing policy stops the run before the build
        from release.gate import policy_for

        policy_for(cfg)
    res = PipelineResult(env=env)
    step = _Steps(cfg, res, STAGES[: STAGES.index(through) + 1])
    provider = evidence_provider or default_provider()

    res.lock = step("lock", lambda: lock_stage(cfg))
    if step.done:
        return res
    built = res.build = step("build", lambda: build_stage(cfg))
    if step.done:
        return res
    session = _Session(cfg, built.ref)
    res.sbom = step("sbom", lambda: sbom_stage(cfg, built, session.registry))
    if step.done:
        return res
    res.attest = step("attest", lambda: attest_stage(cfg, built, session.registry, session.signer))
    if step.done:
        return res
    res.canary = step(
        "canary", lambda: canary_stage(cfg, built, env, session.registry, session.signer)
    )
    if step.done:
        return res
    gated = res.gate = step("gate", lambda: gate_stage(cfg, built, env, provider, actor))
    if step.done:
        return res
    signed = evidence_provider is None
    res.promote = step(
        "promote",
        lambda: promote_stage(
            cfg,
            built,
            gated,
            actor,
            registry=session.registry,
            signer=session.signer if signed else None,
        ),
    )
    return res


# --- stages -------------------------------------------------------------------------------
def lock_stage(cfg: Config) -> LockResult:
    """The model source still matches the lock (local source: re-hash the directory, which
    the build then reads through the cache; hub: fetch every locked file, each verified)."""
    from release import modelpin

    lock = modelpin.read_lock(cfg.lock_path)
    modelpin.check_lock_matches_config(cfg, lock)
    if cfg.model.path:
        src = cfg.resolve(cfg.model.path)
        if not src.is_dir():
            raise modelpin.missing_model_dir(src, cfg.model.path)
        vr = modelpin.verify_dir(src, lock, progress=False)
        if not vr.ok:
            raise CheckFailed(
                f"model source {cfg.model.path} no longer matches {cfg.lock_path.name}: "
                + "; ".join(vr.problems()[:3])
                + " (re-pin with `release model pin` if the change is intended)",
                details=vr.problems()[3:],
            )
    else:  # hub: every locked file, downloaded or from the cache, each verified
        modelpin.fetch(cfg, offline=False)
    return LockResult(lock.repo, lock.commit, lock.digest, len(lock.files))


def build_stage(cfg: Config) -> BuildResult:
    """`release build`; the run's output directory is named after the digest."""
    from release.image.build import build

    img = build(cfg)
    ref = parse_reference(img.ref)
    out_dir = cfg.state_dir / "out" / ref.digest.split(":", 1)[1][:12]
    out_dir.mkdir(parents=True, exist_ok=True)
    return BuildResult(ref, img.to_json(), len(img.layers), len(img.functions), out_dir)


def sbom_stage(cfg: Config, built: BuildResult, registry: Registry) -> SbomResult:
    """`release sbom DIGEST -o OUT/sbom.cdx.json`."""
    from release import sbom
    from release._io import atomic_write_bytes

    doc = sbom.generate(registry, built.ref.digest, cfg=cfg)
    path = built.out_dir / "sbom.cdx.json"
    atomic_write_bytes(path, sbom.dumps(doc))
    return SbomResult(path, len(doc.get("components") or []))


def attest_stage(
    cfg: Config, built: BuildResult, registry: Registry, signer: Signer
) -> AttestResult:
    """`release attest DIGEST`: the built-in statements signed and attached; the model
    signature also written to OUT/model.sig (for `model_signing verify ... --signature`)."""
    from release._io import atomic_write_bytes
    from release.attest import sign, statements
    from release.attest.store import fetch_bundles

    digest = built.ref.digest
    done = sign.attest(registry, digest, statements.build(cfg, registry, digest), signer)
    model = [a for a in done if a.predicate_type == MODEL_SIGNATURE]
    sig_path: Path | None = None
    if model:
        stored = {b.referrer: b.bundle for b in fetch_bundles(registry, digest, MODEL_SIGNATURE)}
        sig_path = built.out_dir / "model.sig"
        atomic_write_bytes(sig_path, stored[model[-1].referrer])
    return AttestResult(tuple(Signed.of(a) for a in done), signer.description, sig_path)


def canary_stage(
    cfg: Config, built: BuildResult, env: str, registry: Registry, signer: Signer
) -> CanaryResult:
    """`release canary DIGEST --env ENV`: compared with the signed report of the digest
    live in `env` (absolute checks on a first release); the report is signed and attached
    whatever its verdict - a failed canary is evidence too - then a failure raises."""
    from release.attest import sign, statements
    from release.canary import baseline as bl
    from release.canary import offline
    from release.canary import report as rpt

    ref = built.ref
    t = rpt.thresholds(cfg.canary)
    corpus = offline.read_corpus(cfg.resolve(cfg.canary.corpus))
    base = bl.select(cfg, corpus, t, env=env)
    report = offline.run_image(
        cfg,
        str(ref) if ref.repository else ref.digest,
        corpus,
        t,
        baseline=base.report,
        baseline_source=base.source,
    )
    path = built.out_dir / "canary.json"
    rpt.write_report(path, report)
    (att,) = sign.attest(registry, ref.digest, [statements.load_predicate("canary", path)], signer)
    if not report.passed:
        exc = rpt.failure(report)
        raise CanaryFailed(
            f"{exc.message} ({base.description})", details=[*exc.details, f"report: {path}"]
        )
    return CanaryResult(path, len(report.checks), report.n, base.description, Signed.of(att))


def gate_stage(
    cfg: Config, built: BuildResult, env: str, provider: EvidenceProvider, actor: str | None
) -> GateStageResult:
    """`release gate DIGEST --env ENV`; a deny raises `GateDenied`."""
    from release import promote

    g = promote.gate(cfg, built.ref, env, provider, actor=actor)
    if not g.decision.allow:
        raise promote.denied(g.decision)
    return GateStageResult(g.decision, g.evidence)


def promote_stage(
    cfg: Config,
    built: BuildResult,
    gated: GateStageResult,
    actor: str | None,
    *,
    registry: Registry,
    signer: Signer | None,
) -> PromoteResult:
    """`release promote DIGEST --env ENV` on the Evidence the gate stage verified moments
    ago in this run; the promotion statement signed (unless `signer` is None: evidence from
    a test's provider) and an audit summary written to OUT/audit.md."""
    from release import promote
    from release._io import atomic_write_bytes
    from release.audit import render
    from release.audit.collect import collect

    env = gated.decision.env
    p = promote.promote(cfg, built.ref, env, lambda *_: gated.evidence, actor=actor)
    # the promotion itself becomes a signed statement about the digest (anchoring the ledger)
    pred_path = built.out_dir / f"promotion-{env}.json"
    atomic_write_bytes(pred_path, json.dumps(p.predicate(), indent=2, sort_keys=True).encode())
    signed = None
    if signer is not None:
        signed = Signed.of(promote.attest_promotion(cfg, p, signer=signer, registry=registry))
    path = built.out_dir / "audit.md"
    atomic_write_bytes(
        path, render.to_markdown(collect(cfg, env=env, digest=built.ref.digest)).encode()
    )
    return PromoteResult(p, pred_path, signed, path)


def _rel(root: Path, p: Path) -> str:
    try:
        return str(p.relative_to(root))
    except ValueError:
        return str(p)
