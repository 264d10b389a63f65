"""Settings of every handler, read from the environment (documented in the README).

Read per invocation (`load()` is a few dict look-ups), so a test or a Lambda
configuration change is always seen; nothing is cached here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """An environment variable has a value the handlers cannot use."""


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (use true/false)")


def _float(name: str, default: float, lo: float, hi: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not lo <= v <= hi:
        raise SettingsError(f"{name}={raw!r} is outside [{lo}, {hi}]")
    return v


def _int(name: str, default: int, lo: int, hi: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if not lo <= v <= hi:
        raise SettingsError(f"{name}={raw!r} is outside [{lo}, {hi}]")
    return v


def _str(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    model_dir: str
    model_lock: str
    max_tokens: int
    batch_size: int
    intra_op_threads: int
    low_confidence: float
    analysis_table: str
    analysis_entity_index: str
    entities_table: str
    scores_table: str
    remediations_table: str
    idempotency_table: str
    dlq_url: str
    scoring_queue_url: str
    findings_queue_url: str
    dry_run: bool
    sentiment_weight: float
    sentiment_window: int
    scoring_policy_dir: str
    metrics_namespace: str
    service: str
    direct_invoke: str
    time_reserve_ms: int
    analysis_ttl_days: int
    idempotency_ttl_seconds: int


def load() -> Settings:
    """The current settings (raises SettingsError naming the bad variable)."""
    return Settings(
        model_dir=_str("MODEL_DIR", "/opt/model"),
        model_lock=_str("MODEL_LOCK", "/opt/release/model.lock.json"),
        max_tokens=_int("MAX_TOKENS", 512, 8, 512),
        batch_size=_int("BATCH_SIZE", 64, 1, 1024),
        intra_op_threads=_int("ORT_INTRA_OP_THREADS", 0, 0, 64),
        low_confidence=_float("LOW_CONFIDENCE", 0.6, 0.0, 1.0),
        analysis_table=_str("ANALYSIS_TABLE", "analysis-results"),
        analysis_entity_index=_str("ANALYSIS_ENTITY_INDEX", "entity_id-index"),
        entities_table=_str("ENTITIES_TABLE", "entities"),
        scores_table=_str("SCORES_TABLE", "posture-scores"),
        remediations_table=_str("REMEDIATIONS_TABLE", "remediations"),
        idempotency_table=_str("IDEMPOTENCY_TABLE", "idempotency"),
        dlq_url=_str("DLQ_URL", ""),
        scoring_queue_url=_str("SCORING_QUEUE_URL", ""),
        findings_queue_url=_str("FINDINGS_QUEUE_URL", ""),
        dry_run=_bool("DRY_RUN", True),
        sentiment_weight=_float("SENTIMENT_WEIGHT", 0.1, 0.0, 1.0),
        sentiment_window=_int("SENTIMENT_WINDOW", 50, 1, 1000),
        scoring_policy_dir=_str("SCORING_POLICY_DIR", _default_policy_dir()),
        metrics_namespace=_str(
            "METRICS_NAMESPACE", os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Release/Handlers")
        ),
        service=_str("POWERTOOLS_SERVICE_NAME", "release-handlers"),
        direct_invoke=_choice("DIRECT_INVOKE", "sync", ("sync", "async")),
        time_reserve_ms=_int("TIME_RESERVE_MS", 5000, 0, 900_000),
        analysis_ttl_days=_int("ANALYSIS_TTL_DAYS", 90, 0, 36_500),
        idempotency_ttl_seconds=_int("IDEMPOTENCY_TTL_SECONDS", 7 * 24 * 3600, 60, 365 * 24 * 3600),
    )


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    v = raw.strip().lower()
    if v not in allowed:
        raise SettingsError(f"{name}={raw!r} is not one of {', '.join(allowed)}")
    return v


def _default_policy_dir() -> str:
    # the image: /var/task/policy/scoring; a checkout: <repo>/policy/scoring (same relative place)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(here, "policy", "scoring")
