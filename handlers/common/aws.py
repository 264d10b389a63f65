"""boto3 clients and resources, created once per container and per endpoint/region.

boto3 honours AWS_ENDPOINT_URL (tests point it at a local moto server); the cache key
includes it so a changed environment gets a new client.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

_LOCK = threading.Lock()
_CLIENTS: dict[tuple[str, str, str, str], Any] = {}
_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=10
)


def _key(kind: str, service: str) -> tuple[str, str, str, str]:
    return (
        kind,
        service,
        os.environ.get("AWS_ENDPOINT_URL", ""),
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", ""),
    )


def client(service: str) -> Any:
    key = _key("client", service)
    with _LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = boto3.session.Session().client(service, config=_CONFIG)
        return _CLIENTS[key]


def table(name: str) -> Any:
    key = _key("table", name)
    with _LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = boto3.session.Session().resource("dynamodb", config=_CONFIG).Table(name)
        return _CLIENTS[key]


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        return str(resp.get("Error", {}).get("Code", ""))
    return ""
