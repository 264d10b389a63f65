"""`release pipeline`: every stage in order, stopping at the first failure.

    lock -> build -> sbom -> attest -> canary -> gate -> promote

Each stage is the same library call its own command makes (`release model verify|fetch`,
`release build`, `release sbom`, `release attest`, `release canary`, `release gate`,
`release promote`), so the pipeline can never disagree with the commands. A failing stage
raises its `ReleaseError`, whose exit code is the pipeline's. Outputs (SBOM, canary
report, model signature `model.sig`, audit summary) go to `.release/out/<digest hex[:12]>/`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from release.config import Config
from release.digest import Reference, parse_reference
from release.errors import CanaryFailed, CheckFailed, UsageError
from release.evidence import MODEL_SIGNATURE

STAGES = ("lock", "build", "sbom", "attest", "canary", "gate", "promote")


@dataclass
class StageResult:
    name: str
    seconds: float
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    stages: list[StageResult] = field(default_factory=list)
    digest: str | None = None
    reference: str | None = None
    env: str | None = None
    out_dir: Path | None = None
    decision: dict[str, Any] | None = None
    attestations: list[dict[str, str]] = field(default_factory=list)
    report: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "reference": self.reference,
            "env": self.env,
            "out_dir": str(self.out_dir) if self.out_dir else None,
            "decision": self.decision,
            "attestations": self.attestations,
            "report": self.report,
            "stages": [
                {"name": s.name, "seconds": round(s.seconds, 3), "summary": s.summary, **s.data}
                for s in self.stages
            ],
        }


Progress = Callable[[str], None]


def default_env(cfg: Config) -> str:
    envs = list(cfg.file.environments)
    if not envs:
        raise UsageError("no [environments.*] in the config: nothing to gate or promote against")
    return "local" if "local" in envs else envs[0]


def run(
    cfg: Config,
    *,
    env: str | None = None,
    through: str = "promote",
    progress: Progress = lambda line: None,
    actor: str | None = None,
    evidence_provider: Callable[..., Any] | None = None,
) -> PipelineResult:
    """The stages through `through`. `evidence_provider` replaces `release.claims.collect`
    (tests only, a Python argument; its promotions are not signed)."""
    if through not in STAGES:
        raise UsageError(f"--through {through!r}: expected one of {', '.join(STAGES)}")
    env = env or default_env(cfg)
    cfg.environment(env)
    res = PipelineResult(env=env)
    wanted = STAGES[: STAGES.index(through) + 1]
    from release.promote import default_provider

    ctx: dict[str, Any] = {
        "provider": evidence_provider or default_provider(),
        "sign_promotion": evidence_provider is None,
    }
    for i, name in enumerate(wanted, 1):
        progress(f"[{i}/{len(wanted)}] {name} ...")
        t0 = time.monotonic()
        fn = _STAGE_FUNCS[name]
        summary, data = fn(cfg, res, ctx, env, actor)
        st = StageResult(name, time.monotonic() - t0, summary, data)
        res.stages.append(st)
        progress(f"[{i}/{len(wanted)}] {name}: {summary} ({st.seconds:.1f}s)")
    return res


# --- stages -------------------------------------------------------------------------------
def _lock(
    cfg: Config, res: PipelineResult, ctx: dict[str, Any], env: str, actor: str | None
) -> tuple[str, dict[str, Any]]:
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
    return f"{lock.repo}@{lock.commit[:12]}: {len(lock.files)} files match {lock.digest[:19]}", {
        "model": f"{lock.repo}@{lock.commit}",
        "model_digest": lock.digest,
    }


def _build(
    cfg: Config, res: PipelineResult, ctx: dict[str, Any], env: str, actor: str | None
) -> tuple[str, dict[str, Any]]:
    from release.image.build import build

    img = build(cfg)
    doc = img.to_json()
    ref = parse_reference(img.ref)
    ctx["ref"] = ref
    res.digest = ref.digest
    res.reference = img.ref
    res.out_dir = cfg.state_dir / "out" / ref.digest.split(":", 1)[1][:12]
    res.out_dir.mkdir(parents=True, exist_ok=True)
    return f"{img.ref} ({len(img.layers)} layers, {len(img.functions)} functions)", {"image": doc}


def _registry(cfg: Config, ctx: dict[str, Any]) -> Any:
    from release.image.registry import open_registry

    if "registry" not in ctx:
        ref: Reference = ctx["ref"]
        ctx["registry"] = open_registry(ref.repository or cfg.image.registry, cfg.root)
    return ctx["registry"]


def _sbom(
    cfg: Config, res: PipelineResult, ctx: dict[str, Any], env: str, actor: str | None
) -> tuple[str, dict[str, Any]]:
    from release import sbom
    from release._io import atomic_write_bytes

    ref: Reference = ctx["ref"]
    doc = sbom.generate(_registry(cfg, ctx), ref.digest, cfg=cfg)
    assert res.out_dir is not None
    path = res.out_dir / "sbom.cdx.json"
    atomic_write_bytes(path, sbom.dumps(doc))
    return f"{len(doc.get('components') or [])} components -> {_rel(cfg, path)}", {
        "sbom": str(path)
    }


def _attest(
    cfg: Config, res: PipelineResult, ctx: dict[str, Any], env: str, actor: str | None
) -> tuple[str, dict[str, Any]]:
    from release.attest import statements

    ref: Reference = ctx["ref"]
    done = _sign(cfg, res, ctx, statements.build(cfg, _registry(cfg, ctx), ref.digest))
    data: dict[str, Any] = {}
    model = [a for a in done if a.predicate_type == MODEL_SIGNATURE]
    if model:
        # the model signature as a file, for `model_signing verify ... --signature model.sig`
        from release._io import atomic_write_bytes
        from release.attest.store import fetch_bundles

        stored = {
            b.referrer: b.bundle
            for b in fetch_bundles(_registry(cfg, ctx), ref.digest, MODEL_SIGNATURE)
        }
        assert res.out_dir is not None
        path = res.out_dir / "model.sig"
        atomic_write_bytes(path, stored[model[-1].referrer])
        data["model_signature"] = str(path)
    return f"{len(done)} statements signed ({_signer(cfg, ctx).description}) and attached", data


def _sign(
    cfg: Config, res: PipelineResult, ctx: dict[str, Any], predicates: list[Any]
) -> list[Any]:
    """Sign statements about the digest and attach them to it (as `release attest`)."""
    from release.attest import sign

    ref: Reference = ctx["ref"]
    done = sign.attest(_registry(cfg, ctx), ref.digest, predicates, _signer(cfg, ctx))
    res.attestations += [{"predicate_type": a.predicate_type, "referrer": a.referrer} for a in done]
    return list(done)


def _signer(cfg: Config, ctx: dict[str, Any]) -> Any:
    from release.attest import sign

    if "signer" not in ctx:
        ctx["signer"] = sign.make_signer(cfg.signing.mode, cfg.root)
    return ctx["signer"]


def _canary(
    cfg: Config, res: PipelineResult, ctx: dict[str, Any], env: str, actor: str | None
) -> tuple[str, dict[str, Any]]:
    from release.attest import statements
    from release.canary import offline
    from release.canary import report as rpt

    ref: Reference = ctx["ref"]
    t = rpt.thresholds(cfg.canary)
    corpus = offline.read_corpus(cfg.resolve(cfg.canary.corpus))
    baseline, source = _promoted_baseline(cfg, env, ref)
    report = offline.run_image(
        cfg,
        str(ref) if ref.repository else ref.digest,
        corpus,
        t,
        baseline=baseline,
        baseline_source=source,
    )
    assert res.out_dir is not None
    path = res.out_dir / "canary.json"
    rpt.write_report(path, report)
    # signed and attached whatever its verdict: a failed canary is evidence too
    _sign(cfg, res, ctx, [statements.load_predicate("canary", path)])
    base_txt = (
        f"vs promoted {baseline.subject.digest[:19]}"
        if baseline and baseline.subject.digest
        else "absolute checks (first release)"
    )
    if not report.passed:
        exc = rpt.failure(report)
        raise CanaryFailed(f"{exc.message} ({base_txt})", details=[*exc.details, f"report: {path}"])
    return (
        f"passed {base_txt}: {len(report.checks)} checks on {report.n} items -> {_rel(cfg, path)}",
        {"canary_report": str(path)},
    )


def _promoted_baseline(
    cfg: Config, env: str, ref: Reference
) -> tuple[Any, Literal["report", "digest", "promoted"]]:
    """The signed canary report of the digest live in `env` (verified), or none on a first
    release (`release canary --env ENV` does the same)."""
    from release.canary import offline

    found = offline.promoted_baseline(cfg, env)
    if found is None:
        return None, "report"
    return found[0], "promoted"


def _gate(
    cfg: Config, res: PipelineResult, ctx: dict[str, Any], env: str, actor: str | None
) -> tuple[str, dict[str, Any]]:
    from release import promote

    ref: Reference = ctx["ref"]
    g = promote.gate(cfg, ref, env, ctx["provider"], actor=actor)
    ctx["evidence"] = g.evidence  # verified moments ago in this run: promote re-gates on it
    res.decision = g.decision.to_dict()
    if not g.decision.allow:
        raise promote.denied(g.decision)
    return f"allow for {env} (policy {g.decision.policy_digest[:19]})", {}


def _promote(
    cfg: Config, res: PipelineResult, ctx: dict[str, Any], env: str, actor: str | None
) -> tuple[str, dict[str, Any]]:
    from release import promote
    from release._io import atomic_write_bytes
    from release.audit import render
    from release.audit.collect import collect

    ref: Reference = ctx["ref"]
    evidence = ctx.get("evidence")
    provider = (lambda *_: evidence) if evidence is not None else ctx["provider"]
    p = promote.promote(cfg, ref, env, provider, actor=actor)
    res.decision = p.decision.to_dict()
    assert res.out_dir is not None
    # the promotion itself becomes a signed statement about the digest (anchoring the ledger)
    pred_path = res.out_dir / f"promotion-{env}.json"
    atomic_write_bytes(pred_path, json.dumps(p.predicate(), indent=2, sort_keys=True).encode())
    if ctx["sign_promotion"]:
        a = promote.attest_promotion(cfg, p, signer=_signer(cfg, ctx), registry=_registry(cfg, ctx))
        res.attestations.append({"predicate_type": a.predicate_type, "referrer": a.referrer})
    report = collect(cfg, env=env, digest=ref.digest)
    path = res.out_dir / "audit.md"
    atomic_write_bytes(path, render.to_markdown(report).encode())
    res.report = str(path)
    return (
        f"{env} now runs {ref.digest[:19]} on {len(p.functions)} functions -> {_rel(cfg, path)}",
        {},
    )


_STAGE_FUNCS = {
    "lock": _lock,
    "build": _build,
    "sbom": _sbom,
    "attest": _attest,
    "canary": _canary,
    "gate": _gate,
    "promote": _promote,
}


def _rel(cfg: Config, p: Path) -> str:
    try:
        return str(p.relative_to(cfg.root))
    except ValueError:
        return str(p)
