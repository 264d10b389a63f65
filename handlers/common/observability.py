"""Powertools Logger and Metrics (CloudWatch EMF on stdout), one pair per handler.

The namespace is $METRICS_NAMESPACE (else $POWERTOOLS_METRICS_NAMESPACE, else
"Release/Handlers", the default of `[environments.*.traffic].metrics_namespace`); the
dimensions are `service` (the handler's name unless $POWERTOOLS_SERVICE_NAME says
otherwise), `FunctionName` and `ExecutedVersion` (from the Lambda context), so the live
canary can compare a new version against the stable one.
"""

from __future__ import annotations

import os
from typing import Any

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


def refresh_namespace(metrics: Metrics, context: Any = None) -> None:
    """Per invocation: apply the current environment's namespace, and add the dimensions
    the live canary reads per version (release/canary/live.py): `FunctionName` and
    `ExecutedVersion` (the published version serving this invocation)."""
    metrics.namespace = _namespace()
    name = getattr(context, "function_name", None) or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    version = getattr(context, "function_version", None) or os.environ.get(
        "AWS_LAMBDA_FUNCTION_VERSION"
    )
    if isinstance(name, str) and name:
        metrics.add_dimension(name="FunctionName", value=name)
    if isinstance(version, str) and version:
        metrics.add_dimension(name="ExecutedVersion", value=version)
