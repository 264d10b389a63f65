"""Which canary report a candidate is compared with: `select(...) -> Baseline`.

`release canary DIGEST` and the pipeline's canary stage both call `select`, so the two can
never pick different baselines. The choice, in order:

- `--baseline FILE`: that canary report file;
- `--baseline DIGEST`: that image's own model run over the same corpus, now;
- `--env ENV` (the pipeline always gives it): the signed canary report of the digest live
  in ENV, verified against `[signing]` (`offline.promoted_baseline`); nothing live there
  yet is a first release;
- none of them: a first release - the candidate gets the absolute checks only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from release.canary import offline
from release.canary import report as rpt
from release.config import Config

log = logging.getLogger(__name__)

Source = Literal["report", "digest", "promoted"]


@dataclass(frozen=True)
class Baseline:
    """The report to compare with (None: a first release, absolute checks only), where it
    came from, and a few words saying so (`vs promoted sha256:...`)."""

    report: rpt.CanaryReport | None
    source: Source
    description: str


def select(
    cfg: Config,
    corpus: offline.Corpus,
    t: Any,
    *,
    baseline: str | None = None,
    env: str | None = None,
    batch_size: int = offline.DEFAULT_BATCH,
) -> Baseline:
    """The baseline for a canary run over `corpus` with thresholds `t` (see the module
    docstring for the order). `baseline` is a report file or an image digest; `env` is
    used only without `baseline`. A digest is parsed before anything runs (a tag is a
    `NotADigest`, exit 2); a promoted digest without a valid signed report is a
    `VerificationFailed` naming it."""
    from release.digest import parse_reference

    if baseline:
        if Path(baseline).is_file():
            report = rpt.read_report(Path(baseline))
            return Baseline(report, "report", f"vs report {Path(baseline).name}")
        ref = parse_reference(baseline)
        log.info("running baseline %s ...", baseline)
        report = offline.run_image(cfg, baseline, corpus, t, batch_size=batch_size)
        return Baseline(report, "digest", f"vs {ref.digest[:19]}")
    if env:
        found = offline.promoted_baseline(cfg, env)
        if found is not None:
            report, live = found
            log.info("baseline: the signed canary report of %s (live in %s)", live, env)
            return Baseline(report, "promoted", f"vs promoted {live[:19]}")
        log.info("nothing promoted to %s yet: first release, absolute checks only", env)
    else:
        log.info("no baseline: first release, absolute checks only")
    return Baseline(None, "report", "absolute checks (first release)")
