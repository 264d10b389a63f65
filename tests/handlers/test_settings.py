"""handlers.common.settings: defaults (contract 1 paths) and one-line errors for bad values."""

from __future__ import annotations

import pytest

from handlers.common import settings
from tests.fixtures.tools import REPO

VARS = [
    "MODEL_DIR",
    "MODEL_LOCK",
    "LOW_CONFIDENCE",
    "DRY_RUN",
    "SENTIMENT_WEIGHT",
    "BATCH_SIZE",
    "SCORING_POLICY_DIR",
    "METRICS_NAMESPACE",
    "POWERTOOLS_METRICS_NAMESPACE",
]


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for v in VARS:
        monkeypatch.delenv(v, raising=False)
    s = settings.load()
    assert (s.model_dir, s.model_lock) == ("/opt/model", "/opt/release/model.lock.json")
    assert (s.low_confidence, s.dry_run, s.sentiment_weight, s.batch_size) == (0.6, True, 0.1, 64)
    assert s.scoring_policy_dir == str(REPO / "policy" / "scoring")
    assert s.metrics_namespace == "Release/Handlers"


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("DRY_RUN", "maybe", "DRY_RUN='maybe' is not a boolean (use true/false)"),
        ("LOW_CONFIDENCE", "high", "LOW_CONFIDENCE='high' is not a number"),
        ("SENTIMENT_WEIGHT", "1.5", "SENTIMENT_WEIGHT='1.5' is outside [0.0, 1.0]"),
        ("BATCH_SIZE", "0", "BATCH_SIZE='0' is outside [1, 1024]"),
        ("MAX_TOKENS", "1000", "MAX_TOKENS='1000' is outside [8, 512]"),
    ],
)
def test_bad_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(settings.SettingsError) as ei:
        settings.load()
    assert str(ei.value) == message


def test_dry_run_false_and_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRY_RUN", "false")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Ops/MA")
    monkeypatch.delenv("METRICS_NAMESPACE", raising=False)
    s = settings.load()
    assert (s.dry_run, s.metrics_namespace) == (False, "Ops/MA")
