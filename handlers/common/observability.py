"""Powertools Logger, Metrics (CloudWatch EMF on stdout) and Tracer (X-Ray), per handler.

The namespace is $METRICS_NAMESPACE (else $POWERTOOLS_METRICS_NAMESPACE, else
"Release/Handlers", the default of `[environments.*.traffic].metrics_namespace` and of
`[readiness].metrics_namespace`). Every metric is emitted in three dimension sets (one
EMF line, so no value is counted twice within a set):

- `service`, `FunctionName`, `ExecutedVersion`: per published version, read by the live
  canary (release/canary/live.py) to compare a new version against the stable one;
- `service`, `FunctionName` and `service` alone: VERSION-FREE, so a fixed alarm (and the
  runbook's query by metric name) keeps watching the same series after every promotion.

`count_prediction` counts one prediction the way the live canary reads it (`release`'s
`[environments.ENV].traffic.label_metrics`): under its label's own metric (the example's
`SentimentPositive`/`SentimentNegative`); `count_prediction_by_dimension` under one
metric with the label in a dimension (`traffic.label_metric` + `label_dimension`). Both
take `resolution`: 1 stores the count at one-second resolution, so the live canary can
compare ten-second periods (`traffic.period_seconds = 10`): a handler that makes several
predictions per invocation (an SQS batch) needs many periods for its dispersion to be
estimated (docs/canary.md). A few lines on powertools: adopters can import them or copy
them.

The Tracer records each invocation as an X-Ray subsegment (and patches boto3 calls) when
the function runs in Lambda with active tracing; outside Lambda it is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

__all__ = [
    "MetricUnit",
    "count_prediction",
    "count_prediction_by_dimension",
    "logger_for",
    "metrics_for",
    "tracer_for",
]

#: the dimension sets without a version (alarms and the runbook query these)
VERSION_FREE_SETS: tuple[tuple[str, ...], ...] = (("service", "FunctionName"), ("service",))


def _namespace() -> str:
    return os.environ.get("METRICS_NAMESPACE") or os.environ.get(
        "POWERTOOLS_METRICS_NAMESPACE", "Release/Handlers"
    )


def logger_for(service: str) -> Logger:
    return Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", service))


def tracer_for(service: str) -> Tracer:
    return Tracer(service=os.environ.get("POWERTOOLS_SERVICE_NAME", service))


def metrics_for(service: str) -> Metrics:
    m = Metrics(service=os.environ.get("POWERTOOLS_SERVICE_NAME", service), namespace=_namespace())
    return m


def refresh_namespace(metrics: Metrics, context: Any = None) -> None:
    """Per invocation: apply the current environment's namespace, add the dimensions the
    live canary reads per version (release/canary/live.py): `FunctionName` and
    `ExecutedVersion` (the published version serving this invocation), and the
    version-free dimension sets the alarms watch."""
    metrics.namespace = _namespace()
    # sets left by an invocation that flushed nothing (powertools clears only on a flush)
    leftover = getattr(getattr(metrics, "provider", None), "dimension_sets", None)
    if isinstance(leftover, list):
        leftover.clear()
    name = getattr(context, "function_name", None) or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    version = getattr(context, "function_version", None) or os.environ.get(
        "AWS_LAMBDA_FUNCTION_VERSION"
    )
    if isinstance(name, str) and name:
        metrics.add_dimension(name="FunctionName", value=name)
    if isinstance(version, str) and version:
        metrics.add_dimension(name="ExecutedVersion", value=version)
    service = metrics.service or "handlers"
    if isinstance(name, str) and name:
        metrics.add_dimensions(service=service, FunctionName=name)
    metrics.add_dimensions(service=service)


def count_prediction(
    metrics: Metrics, label: str, per_label: Mapping[str, str], resolution: int = 60
) -> None:
    """Count one prediction of `label` for the live canary under its label's metric
    (`per_label`: label -> metric name, what `traffic.label_metrics` names); a label it
    does not name is not counted. The per-version dimensions `refresh_namespace` set
    apply, so the canary can compare versions. `resolution`: 60 (standard) or 1 (high)."""
    name = per_label.get(label)
    if name:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1, resolution=resolution)


def count_prediction_by_dimension(
    metrics: Metrics,
    label: str,
    metric: str,
    dimension: str = "label",
    context: Any = None,
    resolution: int = 60,
) -> None:
    """Count one prediction of `label` under one metric (`traffic.label_metric`) with the
    label in `dimension` (`traffic.label_dimension`), per function and version (the
    dimensions the live canary reads). Its own EMF document (powertools `single_metric`):
    a label dimension must not split the handler's other metrics."""
    name = getattr(context, "function_name", None) or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    version = getattr(context, "function_version", None) or os.environ.get(
        "AWS_LAMBDA_FUNCTION_VERSION"
    )
    dims = {"service": metrics.service or "handlers", dimension: label}
    if isinstance(name, str) and name:
        dims["FunctionName"] = name
    if isinstance(version, str) and version:
        dims["ExecutedVersion"] = version
    with single_metric(
        name=metric,
        unit=MetricUnit.Count,
        value=1,
        resolution=resolution,
        namespace=metrics.namespace,
        default_dimensions=dims,
    ):
        pass
