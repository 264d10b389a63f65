"""`release.toml` -> a typed, validated `Config`.

All validation happens at load time: an unknown key, a wrong type or a missing field is a
`ConfigError` whose one-line message names the key (`[model].revision: ...`). Relative
paths in the file are relative to the directory that holds it (`Config.root`).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from release.errors import ConfigError

DEFAULT_CONFIG = "release.toml"
_FUNC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HANDLER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Section):
    """What model to pin: a hub repository (default source) or a local directory."""

    repo: str | None = None
    path: str | None = None
    revision: str = "main"
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    lock: str = "model/model.lock.json"

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if (self.repo is None) == (self.path is None):
            raise ValueError('give exactly one of repo = "ORG/NAME" or path = "DIR"')
        if self.repo is not None and not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", self.repo):
            raise ValueError(f"repo {self.repo!r} is not ORG/NAME")
        if not self.include:
            raise ValueError("include must list at least one glob")
        return self


class ImageConfig(_Section):
    """The one image: its base (by digest), where it is stored, and where things go in it."""

    base: str
    registry: str = "oci:.release/registry"
    requirements: str = "handlers/requirements.lock"
    platform: Literal["linux/amd64", "linux/arm64"] = "linux/amd64"
    python: str = "3.11"
    model_dir: str = "/opt/model"
    workdir: str = "/var/task"
    max_size: int | None = Field(default=None, gt=0)


_MODULE = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
_DIR = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"


class CodeConfig(_Section):
    """Your code's contract with `release` (what your repository must contain).

    `package`: the directory (a Python package, next to the config) shipped as the image's
    code layer at `<[image].workdir>/<package>`; the `[functions]` handlers live in it.
    `policy`: an optional data directory (next to the config) shipped at `<workdir>/policy`
    (files your handlers read, e.g. Rego); unset: no data layer. It is not the release gate's policy
    (`[gate].policy`).
    `predict`: `MODULE:CALLABLE` the offline canary calls once as
    `CALLABLE(model_dir, lock_path=LOCK)`; the object it returns has
    `predict(inputs, batch_size=N)` giving, per input, the fields of the `[canary].output`
    type (release/canary/outputs.py): `label` and `confidence` or `probs` (optionally
    `logits`), `probs`, `score` or `vector`. Required by `release canary` (and so by
    `release pipeline`); nothing else needs it.
    `invoke`: the module `release invoke` runs as `python -m MODULE HANDLER`, the event on
    stdin, the handler's JSON result on stdout; exit 0 returned, 1 raised, 2 bad event.
    Unset: the runner shipped with `release` (release/deploy/runner.py), which needs
    nothing in your code. Both are imported from the image's code layer only.
    """

    package: str = Field(default="handlers", pattern=f"^{_DIR}$")
    policy: str | None = Field(default=None, pattern=f"^{_DIR}$")
    predict: str | None = Field(
        default=None,
        pattern=rf"^{_MODULE}:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
    )
    invoke: str | None = Field(default=None, pattern=f"^{_MODULE}$")

    @model_validator(mode="after")
    def _distinct(self) -> CodeConfig:
        if self.policy is not None and self.policy == self.package:
            raise ValueError(
                f"policy = {self.policy!r} is also the code package; give another directory"
            )
        return self


class SigningConfig(_Section):
    """How `release attest` signs and what `release verify` accepts.

    mode: "sigstore" (keyless) | "key:PATH" | "awskms:KEY-ID".
    Verify policy: keyless -> `identity` (exact) or `identity_regex` (full match) plus
    `issuer`; key modes -> `public_key` (PEM path or "awskms:KEY-ID"), default the
    PATH.pub written next to `key:PATH` or the KMS key's own public key.
    `trusted_root`: a pinned Sigstore trusted_root.json (default: the public-good root
    shipped with sigstore-python); verification never uses the network.
    """

    mode: str = "sigstore"
    identity: str | None = None
    identity_regex: str | None = None
    issuer: str | None = None
    public_key: str | None = None
    trusted_root: str | None = None

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v == "sigstore" or v.startswith(("key:", "awskms:")):
            return v
        raise ValueError('must be "sigstore", "key:PATH" or "awskms:KEY-ID"')


class PretrafficFunction(_Section):
    """`[canary.pretraffic.functions.NAME]`: how the pre-traffic check invokes function NAME
    with a corpus input and where the model's output is in the function's response
    (release/canary/pretraffic.py, docs/promotion.md)."""

    #: the invocation event, a JSON document. A string that is exactly "{input}" becomes
    #: the corpus input itself (a string or an object); "{input}" inside a longer string
    #: becomes its text (an object's JSON); "{input_json}" the input as JSON (a JSON body
    #: inside a string). "{id}" becomes the item's id.
    event: str = Field(min_length=2)
    #: where the output is in the response: a dotted path (list positions as numbers,
    #: JSON strings on the way are parsed) to the object holding the `[canary].output`
    #: type's fields ("" = the response itself), or one path per field, e.g.
    #: { label = "results.0.urgency" }
    output: str | dict[str, str] = ""

    @field_validator("event")
    @classmethod
    def _event(cls, v: str) -> str:
        import json

        try:
            json.loads(v)
        except ValueError as exc:
            raise ValueError(f"must be a JSON document: {exc}") from None
        if "{input}" not in v and "{input_json}" not in v:
            raise ValueError(
                'must contain the placeholder "{input}" or "{input_json}" (the corpus input)'
            )
        return v

    @field_validator("output")
    @classmethod
    def _output(cls, v: str | dict[str, str]) -> str | dict[str, str]:
        fields = ("label", "confidence", "probs", "logits", "score", "vector")
        if isinstance(v, dict):
            bad = sorted(set(v) - set(fields))
            if bad or not v:
                raise ValueError(
                    f"names the output fields {', '.join(fields)}, got {', '.join(bad) or 'none'}"
                )
        return v


class PretrafficConfig(_Section):
    """`[canary.pretraffic]`: before any alias weight moves, each function named in
    `functions` is invoked on its new version and on its live version with the same
    sample of the canary corpus and the two compared with the canary's paired checks."""

    #: corpus items invoked per version (a sample seeded by the digest; all when fewer)
    items: int = Field(default=200, ge=1, le=100_000)
    #: one invocation taking longer fails the check
    timeout_seconds: float = Field(default=30.0, gt=0, le=900)
    #: invocations in flight at once
    concurrency: int = Field(default=4, ge=1, le=64)
    functions: dict[str, PretrafficFunction] = Field(default_factory=dict)


class CanaryConfig(_Section):
    """The offline canary: the corpus, what the model returns (`output`, `labels`) and the
    thresholds of each output type's checks (formulas: release/canary/stats.py)."""

    corpus: str = "model/canary.jsonl"
    #: what `[code].predict` returns per input: one label of `labels` (with a confidence
    #: or a probability per label), several labels (a probability per label, decided at
    #: `multilabel_threshold`), a score (float) or a vector (fixed dimension)
    output: Literal["label", "multilabel", "score", "vector"] = "label"
    #: the label set, in the model's order; unset: the model's config.json `id2label`
    labels: list[Annotated[str, Field(min_length=1)]] | None = None
    # thresholds (see release/canary/stats.py for the formulas)
    share_alpha: float = Field(default=1e-3, gt=0, lt=1)
    share_min_shift: float = Field(default=0.02, ge=0, le=1)
    max_flip_rate: float = Field(default=0.05, ge=0, le=1)
    confident_flip_conf: float = Field(default=0.9, ge=0, le=1)
    max_confident_flip_rate: float = Field(default=0.005, ge=0, le=1)
    ks_alpha: float = Field(default=1e-3, gt=0, lt=1)
    accuracy_max_drop: float = Field(default=0.01, ge=0, le=1)
    accuracy_alpha: float = Field(default=0.01, gt=0, lt=1)
    min_accuracy: float = Field(default=0.8, ge=0, le=1)
    low_confidence: float = Field(default=0.6, ge=0, le=1)
    max_low_confidence_rate: float = Field(default=0.2, ge=0, le=1)
    identical_tolerance: float = Field(default=1e-4, ge=0)
    #: a comparison pairing fewer than this share of the corpus with the baseline fails
    min_paired_fraction: float = Field(default=0.9, gt=0, le=1)
    # multi-label outputs: a label is on when its probability >= multilabel_threshold; the
    # per-label shifts are tested at share_alpha (Holm) with share_min_shift
    multilabel_threshold: float = Field(default=0.5, gt=0, lt=1)
    # score outputs: Wilcoxon on the paired differences, KS (ks_alpha), median |difference|;
    # effects in units of the baseline scores' standard deviation
    score_alpha: float = Field(default=1e-3, gt=0, lt=1)
    score_min_shift: float = Field(default=0.05, ge=0)
    score_max_median_abs_diff: float = Field(default=0.1, ge=0)
    # vector outputs: per-item cosine similarity (a floor on a low percentile) and a
    # sign-flip permutation test on the mean paired difference
    vector_cosine_percentile: float = Field(default=5.0, gt=0, lt=100)
    vector_min_cosine: float = Field(default=0.99, ge=-1, le=1)
    vector_alpha: float = Field(default=0.01, gt=0, lt=1)
    vector_min_shift: float = Field(default=0.02, ge=0)
    #: the pre-traffic check of `release promote` on the lambda target (none by default)
    pretraffic: PretrafficConfig = Field(default_factory=PretrafficConfig)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            if len(v) < 1:
                raise ValueError("must list at least one label")
            dup = sorted({x for x in v if v.count(x) > 1})
            if dup:
                raise ValueError(f"labels must be unique, {dup[0]!r} is given twice")
        return v


class TrafficConfig(_Section):
    #: share of alias traffic on the new version during the live canary: 0 < w < 1
    canary_weight: float = Field(default=0.1)
    bake_seconds: int = Field(default=300, ge=0)
    min_samples: int = Field(default=3000, ge=0)
    deadline_seconds: int = Field(default=3600, ge=0)
    looks: int = Field(default=3, ge=1)
    alpha: float = Field(default=0.01, gt=0, lt=1)
    # live canary (release/canary/live.py): where the handlers' EMF metrics are, and the
    # error-rate / p99 regressions that fail it
    metrics_namespace: str = "Release/Handlers"
    #: what the handlers publish per prediction (per version: FunctionName and
    #: ExecutedVersion dimensions): one metric per label (label -> metric name), or one
    #: metric with a label dimension; neither: the live canary compares errors and
    #: latency only (and says so when the promotion starts)
    label_metrics: dict[str, str] = Field(default_factory=dict)
    label_metric: str | None = None
    label_dimension: str | None = None
    #: a score output (regressors, cross-encoders): the metric the handlers publish per
    #: prediction (its value the score), the CloudWatch statistic compared per period
    #: (Average, p50, p90, tm90, ...), and how far that statistic may move before a
    #: significant shift fails the canary (absolute, in the score's units)
    score_metric: str | None = None
    score_statistic: str = "p50"
    max_score_shift: float = Field(default=0.0, ge=0)
    #: the handlers' own error count (per version), compared per function as L2
    error_metric: str | None = None
    #: the comparison uses whole periods after the shift only, the same for both versions;
    #: 60 for standard-resolution metrics (EMF's), 1-30 for high-resolution ones
    period_seconds: int = Field(default=60, ge=1)
    #: whole periods with predictions on both versions needed before L1 can decide
    min_periods: int = Field(default=3, ge=1)
    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1)
    max_p99_increase: float = Field(default=0.2, ge=0)

    @model_validator(mode="after")
    def _metrics(self) -> TrafficConfig:
        if self.label_metrics and self.label_metric:
            raise ValueError("give label_metrics (one metric per label) or label_metric, not both")
        if bool(self.label_metric) != bool(self.label_dimension):
            raise ValueError("label_metric and label_dimension go together")
        if len(self.label_metrics) == 1:
            raise ValueError("label_metrics needs a metric for each of at least 2 labels")
        if self.period_seconds not in (1, 5, 10, 30) and self.period_seconds % 60:
            raise ValueError("period_seconds must be 1, 5, 10, 30 or a multiple of 60 (CloudWatch)")
        if not re.fullmatch(r"Average|p\d{1,2}(\.\d+)?|(tm|wm|tc|ts)\d{1,2}", self.score_statistic):
            raise ValueError(
                f"score_statistic {self.score_statistic!r}: give Average, a percentile (p50, "
                "p99.9) or a trimmed statistic (tm90, wm90, tc90, ts90)"
            )
        return self

    @property
    def label_metrics_named(self) -> bool:
        return bool(self.label_metrics or self.label_metric)

    @property
    def prediction_metrics(self) -> bool:
        return self.label_metrics_named or bool(self.score_metric)

    @field_validator("canary_weight")
    @classmethod
    def _weight(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError(
                f"must be between 0 and 1, both excluded (a share of the alias traffic), got {v}"
            )
        return v


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(value: str, key: str) -> int:
    """`2d`, `24h`, `30m`, `90s` or a combination in that order (`1d12h`) -> seconds; else
    a ConfigError naming `key`."""
    m = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if not value or m is None or not any(m.groups()):
        raise ConfigError(
            f"{key}: {value!r} is not a duration (a number with d, h, m or s: 2d, 24h, 30m, 1d12h)"
        )
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def format_duration(seconds: float) -> str:
    """Seconds -> `5h12m`, `47h59m`, `2d3h`, `45m`, `30s` (rounded up to the minute past
    a minute; days from 2 days on)."""
    total = max(0, int(-(-seconds // 1)))
    if total < 60:
        return f"{total}s"
    minutes = -(-total // 60)
    d, rest = divmod(minutes, 24 * 60) if minutes >= 2 * 24 * 60 else (0, minutes)
    h, m = divmod(rest, 60)
    parts = [f"{d}d" if d else "", f"{h}h" if h else "", f"{m}m" if m else ""]
    return "".join(parts) or "0m"


class GuardConfig(_Section):
    """`[environments.ENV.guard]`: the drift guard of a lambda environment (release.guard).

    topic: the SNS topic ARN a mismatch is published to (none: the result is only logged
    and recorded in the ledger); rollback: move a drifted alias back to the promoted
    version (else alarm only); schedule: the EventBridge schedule of the periodic check.
    Nothing here selects or skips a verification step."""

    topic: str | None = Field(
        default=None, pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+$"
    )
    rollback: bool = False
    schedule: str = Field(
        default="rate(5 minutes)",
        pattern=r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\))$",
    )


class EnvironmentConfig(_Section):
    target: Literal["lambda", "local"] = "local"
    functions: dict[str, str] = Field(default_factory=dict)
    alias: str = "live"
    region: str | None = None
    traffic: TrafficConfig = Field(default_factory=TrafficConfig)
    alarms: list[str] = Field(default_factory=list)
    #: the functions' environment variables (what Lambda gives them; `release invoke`
    #: passes them, `release iam --function` reads table and queue names from them)
    variables: dict[str, str] = Field(default_factory=dict)
    #: per function, on top of `variables`: `[environments.ENV.function_variables.NAME]`
    function_variables: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: the environment a digest must have been promoted to (and soaked in) before the gate
    #: allows it here (docs/promotion.md, "Environment chain and soak")
    after: str | None = None
    #: how long it must have been live in `after`: `24h`, `30m`, `2d`, `1d12h` (unset: 0)
    soak: str | None = None

    @field_validator("soak")
    @classmethod
    def _soak(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_duration(v, "soak")
            except ConfigError:
                raise ValueError(
                    f"{v!r} is not a duration (a number with d, h, m or s: 2d, 24h, 30m, 1d12h)"
                ) from None
        return v

    @property
    def soak_seconds(self) -> int:
        return parse_duration(self.soak, "soak") if self.soak else 0

    #: the drift guard (`release guard`); default: it checks and records, no topic, no rollback
    guard: GuardConfig = Field(default_factory=GuardConfig)

    def variables_of(self, function: str) -> dict[str, str]:
        return {**self.variables, **self.function_variables.get(function, {})}


class LedgerConfig(_Section):
    url: str = "sqlite:.release/ledger.db"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v.startswith(("sqlite:", "dynamodb:")):
            return v
        raise ValueError('must be "sqlite:PATH" or "dynamodb:TABLE"')


class GateConfig(_Section):
    #: the adopter's gate policy directory; unset: the default shipped in the package
    #: (release/policy). Package `release.gate` there replaces the default, package
    #: `release.custom` adds deny reasons to it (docs/policy.md).
    policy: str | None = None
    vulnerabilities: str | None = None
    #: the workflow provenance must name (e.g. ".github/workflows/release.yml"); unset: not checked
    workflow: str | None = None


#: the kinds of row `release readiness` reports (release/readiness/checks.py); each
#: `[[readiness.alarms]]` adds its own, `alarm-NAME`
READINESS_ROWS = (
    "live-digest",
    "esm-report-failures",
    "esm-batching",
    "redrive",
    "dlq-retention",
    "visibility-timeout",
    "sns-failure-destination",
    "function",
    "alarm-sns-failures",
    "alarm-dlq-depth",
    "memory",
    "timeout",
    "reserved-concurrency",
    "architecture",
    "tracing",
    "ecr-scan-on-push",
    "metric-namespace",
    "trigger-declared",
    "trigger-undeclared",
)


class ReadinessAlarm(_Section):
    """`[[readiness.alarms]]`: an alarm a function's handler metric must have. It passes
    when an alarm of the account watches `metric` in the review's namespace on a
    version-free series of `function` (dimension `service` = the function's name, and
    `FunctionName`, if present, its Lambda name), greater-than, threshold at most
    `threshold`, over a window at most `period_seconds` (when given), with `statistic`
    (an extended statistic such as `p95`, when given), with alarm actions."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")  # the row kind is alarm-NAME
    metric: str = Field(min_length=1)
    function: str  # a [functions] name
    threshold: float = Field(ge=0)
    period_seconds: int | None = Field(default=None, ge=10)
    statistic: str | None = None


_TRIGGER_KEY = {"sqs": "queue", "sns": "topic", "eventbridge": "rule"}


class ReadinessTrigger(_Section):
    """One trigger a function must have live, on its alias: `{ type = "sqs", queue = Q }`
    (an event source mapping from queue Q), `{ type = "sns", topic = T }` (a subscription
    of the function to topic T) or `{ type = "eventbridge", rule = R }` (a rule of the
    default event bus, schedule or event pattern, targeting the function). Each value is a
    name, an ARN or (a queue) a URL, and may be `${VAR}`: a variable of
    `[environments.ENV].variables` / `function_variables`, else `[iam].variables`."""

    type: Literal["sqs", "sns", "eventbridge"]
    queue: str | None = Field(default=None, min_length=1)
    topic: str | None = Field(default=None, min_length=1)
    rule: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_key(self) -> ReadinessTrigger:
        need = _TRIGGER_KEY[self.type]
        extra = sorted(k for k in _TRIGGER_KEY.values() if k != need and getattr(self, k))
        if extra:
            raise ValueError(f"a {self.type} trigger takes {need}, not {extra[0]}")
        if not getattr(self, need):
            raise ValueError(f"a {self.type} trigger needs {need}")
        return self

    @property
    def source(self) -> str:
        return str(getattr(self, _TRIGGER_KEY[self.type]))


class ReadinessFunction(_Section):
    """`[readiness.functions.NAME]`: the function's triggers, all of them (`[]`: none)."""

    triggers: list[ReadinessTrigger] = Field(default_factory=list)


class ReadinessConfig(_Section):
    """`release readiness`: the thresholds of the platform's readiness review (defaults
    are the review's; docs/readiness.md). `optional` row kinds are reported but do not
    fail the report; `gate = true` makes the gate require a ready environment."""

    #: the namespace the handlers emit and the alarms watch (unset: the env's
    #: [environments.ENV.traffic].metrics_namespace, default "Release/Handlers")
    metrics_namespace: str | None = None
    dlq_min_retention_days: int = Field(default=14, ge=1, le=14)
    visibility_timeout_factor: float = Field(default=6.0, gt=0)
    max_batch_size: int = Field(default=10, ge=1, le=10_000)
    max_batching_window_seconds: int = Field(default=5, ge=0, le=300)
    sns_failures_threshold: float = Field(default=5, ge=0)
    sns_failures_period_seconds: int = Field(default=300, ge=10)
    dlq_depth_threshold: float = Field(default=100, ge=0)
    min_memory_mb: int = Field(default=2048, ge=128, le=10240)
    max_timeout_seconds: int = Field(default=300, ge=1, le=900)
    reserved_concurrency: bool = True
    tracing: bool = True
    ecr_scan_on_push: bool = True
    #: the alarms the platform's handlers must have (none built in: the example's are in
    #: its release.prod.toml)
    alarms: list[ReadinessAlarm] = Field(default_factory=list)
    #: per [functions] name, the triggers it must have live (none built in: the example's
    #: are in its release.prod.toml); a function not here gets no trigger rows
    functions: dict[str, ReadinessFunction] = Field(default_factory=dict)
    optional: list[str] = Field(default_factory=list)
    gate: bool = False

    @property
    def row_kinds(self) -> tuple[str, ...]:
        return (*READINESS_ROWS, *(f"alarm-{a.name}" for a in self.alarms))

    @model_validator(mode="after")
    def _rows(self) -> ReadinessConfig:
        names = [a.name for a in self.alarms]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"alarms: name {dup[0]!r} is given twice")
        unknown = sorted(set(self.optional) - set(self.row_kinds))
        if unknown:
            raise ValueError(
                f"optional: unknown row kind(s) {', '.join(unknown)} "
                f"(known: {', '.join(self.row_kinds)})"
            )
        return self


class IamStatement(_Section):
    """One IAM statement (Allow) added to a function's execution-role policy."""

    sid: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]+$")
    actions: list[str] = Field(min_length=1)
    #: ARNs; `${Region}`, `${Account}` and `${Partition}` are filled from the environment
    resources: list[str] = Field(min_length=1)

    @field_validator("actions")
    @classmethod
    def _actions(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if not re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9*]+", a)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an IAM action (PREFIX:Action)")
        return v


class IamFunctionConfig(_Section):
    """`[iam.functions.NAME]`: what `release iam --function NAME` cannot read from the
    code, declared: statements added to the function's policy (they cover the calls it
    could not bind, docs/aws-setup.md)."""

    statements: list[IamStatement] = Field(default_factory=list)


class IamConfig(_Section):
    """`release iam --function`: values and statements the code does not show.

    `variables`: environment variables naming AWS resources (a table, a queue URL) for
    every environment, under `[environments.ENV].variables` (which win).
    `statements`: added to every function's policy (e.g. X-Ray for traced functions).
    """

    variables: dict[str, str] = Field(default_factory=dict)
    statements: list[IamStatement] = Field(default_factory=list)
    functions: dict[str, IamFunctionConfig] = Field(default_factory=dict)


class ConfigFile(_Section):
    model: ModelConfig
    image: ImageConfig
    functions: dict[
        Annotated[str, Field(pattern=_FUNC_NAME.pattern)],
        Annotated[str, Field(pattern=_HANDLER.pattern)],
    ]
    code: CodeConfig = Field(default_factory=CodeConfig)
    signing: SigningConfig = Field(default_factory=SigningConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    environments: dict[str, EnvironmentConfig] = Field(default_factory=dict)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    readiness: ReadinessConfig = Field(default_factory=ReadinessConfig)
    iam: IamConfig = Field(default_factory=IamConfig)

    @model_validator(mode="after")
    def _functions(self) -> ConfigFile:
        if not self.functions:
            raise ValueError("[functions] must map at least one function to a handler")
        outside = sorted(
            f for f, h in self.functions.items() if h.split(".", 1)[0] != self.code.package
        )
        if outside:
            raise ValueError(
                f"[functions].{outside[0]}: the handler must live in the code package "
                f"{self.code.package!r} ([code].package)"
            )
        for i, alarm in enumerate(self.readiness.alarms):
            if alarm.function not in self.functions:
                raise ValueError(
                    f"[readiness].alarms.{i}.function: {alarm.function!r} is not in [functions]"
                )
        for name in sorted(set(self.readiness.functions) - set(self.functions)):
            raise ValueError(f"[readiness.functions.{name}]: {name!r} is not in [functions]")
        unknown_pt = sorted(set(self.canary.pretraffic.functions) - set(self.functions))
        if unknown_pt:
            raise ValueError(f"[canary.pretraffic.functions].{unknown_pt[0]}: not in [functions]")
        unknown_iam = sorted(set(self.iam.functions) - set(self.functions))
        if unknown_iam:
            raise ValueError(f"[iam.functions].{unknown_iam[0]}: not in [functions]")
        for env_name, env in self.environments.items():
            for key, names in (
                ("functions", env.functions),
                ("function_variables", env.function_variables),
            ):
                unknown = sorted(set(names) - set(self.functions))
                if unknown:
                    raise ValueError(
                        f"[environments.{env_name}].{key} names {', '.join(unknown)}, "
                        "not in [functions]"
                    )
        return self

    def chain_problem(self) -> str | None:
        """`after` names another configured environment, without a cycle; `soak` needs
        it. The first problem, naming the key, or None."""
        for env_name, env in self.environments.items():
            where = f"[environments.{env_name}]"
            if env.soak is not None and env.after is None:
                return f'{where}.soak needs after = "ENV" (the environment to soak in)'
            if env.after is None:
                continue
            if env.after == env_name:
                return f"{where}.after: an environment cannot come after itself"
            if env.after not in self.environments:
                known = ", ".join(sorted(self.environments))
                return f"{where}.after: no [environments.{env.after}] (configured: {known})"
            seen = [env_name]
            nxt: str | None = env.after
            while nxt is not None:
                if nxt in seen:
                    return f"{where}.after: the chain loops: {' -> '.join([*seen, nxt])}"
                seen.append(nxt)
                nxt = self.environments[nxt].after
        return None


class Config:
    """A loaded config: the validated file plus the directory its paths are relative to."""

    def __init__(self, file: ConfigFile, path: Path) -> None:
        self.file = file
        self.path = path
        self.root = path.parent

    # convenient accessors
    @property
    def model(self) -> ModelConfig:
        return self.file.model

    @property
    def image(self) -> ImageConfig:
        return self.file.image

    @property
    def functions(self) -> dict[str, str]:
        return self.file.functions

    @property
    def code(self) -> CodeConfig:
        return self.file.code

    @property
    def signing(self) -> SigningConfig:
        return self.file.signing

    @property
    def canary(self) -> CanaryConfig:
        return self.file.canary

    @property
    def ledger(self) -> LedgerConfig:
        return self.file.ledger

    @property
    def gate(self) -> GateConfig:
        return self.file.gate

    @property
    def readiness(self) -> ReadinessConfig:
        return self.file.readiness

    @property
    def iam(self) -> IamConfig:
        return self.file.iam

    def environment(self, name: str) -> EnvironmentConfig:
        try:
            return self.file.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.file.environments)) or "none"
            raise ConfigError(
                f"{self.path.name}: no [environments.{name}] (configured: {known})"
            ) from None

    def resolve(self, relative: str | os.PathLike[str]) -> Path:
        """A path from the config, made absolute against the config's directory."""
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    @property
    def lock_path(self) -> Path:
        return self.resolve(self.model.lock)

    @property
    def state_dir(self) -> Path:
        """Where local state lives (`.release/` next to the config)."""
        return self.root / ".release"


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith(("function-", "literal"))]
    if not parts:
        return "(top level)"
    if len(parts) == 1:
        return f"[{parts[0]}]" if parts[0] not in ("functions",) else "[functions]"
    section, *rest = parts
    if section == "environments" and len(rest) > 1:  # [environments.prod].traffic.x
        section, rest = f"environments.{rest[0]}", rest[1:]
    return f"[{section}]." + ".".join(rest)


def _describe(err: dict[str, Any]) -> str:
    kind = err["type"]
    where = _loc(tuple(err["loc"]))
    if kind == "extra_forbidden":
        return f"unknown key {where}"
    if kind == "missing":
        return f"missing required key {where}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    got = err.get("input")
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{where}: {msg.lower()}, got {got!r}"
    return f"{where}: {msg}"


def parse(data: dict[str, Any], path: Path) -> Config:
    try:
        file = ConfigFile.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path.name}: {_describe(dict(e))}" for e in exc.errors(include_url=False)]
        raise ConfigError(lines[0], details=lines[1:]) from None
    problem = file.chain_problem()
    if problem is not None:
        raise ConfigError(f"{path.name}: {problem}")
    return Config(file, path)


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a config file (default: ./release.toml or $RELEASE_CONFIG)."""
    p = Path(path or os.environ.get("RELEASE_CONFIG") or DEFAULT_CONFIG).absolute()
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file {p.name} not found in {p.parent} (use --config)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p.name}: not valid TOML: {exc}") from None
    return parse(data, p)
