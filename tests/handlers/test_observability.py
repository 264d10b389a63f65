"""The metric helpers adopters import or copy (handlers/common/observability.py): what they
print is the EMF the live canary reads (release/canary/live.py), per function and version."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.common.observability import (
    count_prediction,
    count_prediction_by_dimension,
    metrics_for,
    refresh_namespace,
)
from release.canary.live import FUNCTION_DIMENSION, VERSION_DIMENSION
from release.config import TrafficConfig


class Ctx:
    function_name = "tk-classify"
    function_version = "7"


def _emf(out: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in out.splitlines() if x.startswith('{"_aws"')]


def test_by_dimension_is_one_document_per_prediction_with_version_and_label(
    capsys: pytest.CaptureFixture[str],
) -> None:
    t = TrafficConfig(label_metric="Urgency", label_dimension="urgency", metrics_namespace="Tk")
    m = metrics_for("tickets")
    m.namespace = t.metrics_namespace
    for label in ("URGENT", "ROUTINE"):
        count_prediction_by_dimension(
            m, label, t.label_metric or "", t.label_dimension or "", context=Ctx(), resolution=1
        )
    docs = _emf(capsys.readouterr().out)
    assert [d["urgency"] for d in docs] == ["URGENT", "ROUTINE"]
    for d in docs:
        [directive] = d["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Tk"
        [dims] = directive["Dimensions"]
        assert {FUNCTION_DIMENSION, VERSION_DIMENSION, "urgency"} <= set(dims)
        assert (d[FUNCTION_DIMENSION], d[VERSION_DIMENSION]) == ("tk-classify", "7")
        assert directive["Metrics"] == [
            {"Name": "Urgency", "Unit": "Count", "StorageResolution": 1}
        ]
        assert d["Urgency"] == [1.0]


def test_per_label_metric_counts_only_the_named_labels_at_the_asked_resolution(
    capsys: pytest.CaptureFixture[str],
) -> None:
    m = metrics_for("tickets")
    refresh_namespace(m, Ctx())
    per_label = {"URGENT": "Urgent", "ROUTINE": "Routine"}
    count_prediction(m, "URGENT", per_label, resolution=1)
    count_prediction(m, "URGENT", per_label, resolution=1)
    count_prediction(m, "OTHER", per_label, resolution=1)  # not named: not counted
    m.flush_metrics()
    [d] = _emf(capsys.readouterr().out)
    [directive] = d["_aws"]["CloudWatchMetrics"]
    assert directive["Metrics"] == [{"Name": "Urgent", "Unit": "Count", "StorageResolution": 1}]
    assert d["Urgent"] == [1.0, 1.0]
    assert [FUNCTION_DIMENSION, VERSION_DIMENSION] in [
        [k for k in ds if k in (FUNCTION_DIMENSION, VERSION_DIMENSION)]
        for ds in directive["Dimensions"]
    ]
    assert (d[FUNCTION_DIMENSION], d[VERSION_DIMENSION]) == ("tk-classify", "7")
