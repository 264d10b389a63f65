"""Powertools Logger and Metrics (CloudWatch EMF on stdout), one pair per handler.

The namespace is $METRICS_NAMESPACE (else $POWERTOOLS_METRICS_NAMESPACE, else
"Release/Handlers"); the `service` dimension is the handler's name unless
$POWERTOOLS_SERVICE_NAME says otherwise.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

__all__ = ["MetricUnit", "logger_for", "metrics_for"]


def _namespace() -> str:
    return os.environ.get("METRICS_NAMESPACE") or os.environ.get(
        "POWERTOOLS_METRICS_NAMESPACE", "Release/Handlers"
    )


def logger_for(service: str) -> Logger:
    return Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", service))


def metrics_for(service: str) -> Metrics:
    m = Metrics(service=os.environ.get("POWERTOOLS_SERVICE_NAME", service), namespace=_namespace())
    return m


def refresh_namespace(metrics: Metrics) -> None:
    """Apply the current environment's namespace (read per invocation)."""
    metrics.namespace = _namespace()
