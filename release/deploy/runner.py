"""Run one handler without the Lambda runtime: `python3 -c "$(runner source)" MODULE.FUNC`.

The runner `release invoke` uses when `[code].invoke` is unset. It is run by the image's
own code path, not imported from the tool: `release.deploy.local` passes this file's
source to `python -S -c`, so it imports nothing but the standard library (and the
handler). `python -m release.deploy.runner MODULE.FUNC` runs it where the tool is installed.

Reads the event JSON on stdin, calls the handler with a local context object and prints
the handler's JSON result on stdout (one document). Everything the handler itself writes
to stdout (powertools JSON logs, EMF metric lines) is sent to stderr, so stdout holds the
result only. This is how a container runs a function's CMD outside Lambda.

Exit codes: 0 the handler returned (whatever its statusCode); 1 the handler raised (a
Lambda-style {"errorType", "errorMessage"} document is printed); 2 bad usage or an event
that is not JSON.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import time
import traceback
import uuid
from typing import Any

_TARGET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


class LocalContext:
    """The attributes of a Lambda context object that handlers and powertools read."""

    def __init__(self, function_name: str, timeout_s: float = 900.0) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:000000000000:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _default(o: Any) -> Any:
    from decimal import Decimal

    if isinstance(o, Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not _TARGET.match(args[0]):
        print("usage: runner MODULE.FUNC < event.json", file=sys.stderr)
        return 2
    module_name, func_name = args[0].rsplit(".", 1)
    # keep the real stdout for the result; route everything else written to fd 1 to stderr
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)
    result = os.fdopen(result_fd, "w", encoding="utf-8")
    try:
        raw = sys.stdin.buffer.read()
        try:
            event = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            print(f"the event on stdin is not JSON: {exc}", file=sys.stderr)
            return 2
        try:
            func = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError) as exc:
            print(f"cannot load handler {args[0]}: {exc}", file=sys.stderr)
            return 2
        ctx = LocalContext(
            os.environ.get("AWS_LAMBDA_FUNCTION_NAME", module_name.rsplit(".", 1)[-1])
        )
        try:
            out = func(event, ctx)
        except Exception as exc:  # report as the Lambda runtime would, then exit 1
            traceback.print_exc(file=sys.stderr)
            doc = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            result.write(json.dumps(doc) + "\n")
            return 1
        sys.stdout.flush()
        result.write(json.dumps(out, default=_default, sort_keys=True) + "\n")
        return 0
    finally:
        result.flush()


if __name__ == "__main__":
    sys.exit(main())
