"""The guard's Lambda entry: `release.guard.handler.lambda_handler`.

Deploy it from the platform's image or an image of its own with `release` installed and
CMD `release.guard.handler.lambda_handler`, its release.toml (with the signing public key
or the pinned trust root it names) in the function's working directory, as the image
ships it: the config is never taken from anywhere the function's settings could point.
One environment variable wires it: `RELEASE_GUARD_ENV`, the environment it guards.

The topic, rollback and schedule are `[environments.ENV.guard]` of that config. The config and clients are
built on the first event and kept while the function is warm.

An event for a function outside the environment is ignored (no ledger event); any other
is one guard decision (release.guard.check). A failure to check (the ledger's chain
broken, AWS or the registry unreachable, a bad config) is published to the topic as
`{"error": ...}` and returned, so a check that could not be made is never silent.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from release.errors import ReleaseError
from release.guard.check import Guard, GuardReport, check
from release.guard.events import trigger

log = logging.getLogger(__name__)

_GUARDS: dict[tuple[str, str], Guard] = {}


def _guard_from_environment() -> Guard:
    from release.config import load

    env = os.environ.get("RELEASE_GUARD_ENV", "")
    path = "release.toml"  # the image's own copy, in the working directory
    key = (str(Path(path).resolve()), env)
    if key not in _GUARDS:
        if not env:
            from release.errors import ConfigError

            raise ConfigError("release guard: RELEASE_GUARD_ENV names no environment")
        _GUARDS[key] = Guard(load(Path(path)), env)
    return _GUARDS[key]


def handle(event: Any, guard: Guard) -> dict[str, Any]:
    """One event -> the guard's decision as a JSON document (see module docstring)."""
    try:
        t = trigger(event, guard.functions)
        if not t.ours:
            return {"ignored": t.describe() or "not a call on this environment's functions"}
        report: GuardReport = check(guard, trigger=t.describe())
    except ReleaseError as exc:
        log.error("release guard of %s could not check: %s", guard.env, exc.message)
        _alarm_error(guard, exc.message)
        return {"env": guard.env, "ok": False, "error": exc.message}
    doc = report.to_dict()
    log.info("release guard %s", json.dumps(doc, sort_keys=True))
    return doc


def _alarm_error(guard: Guard, message: str) -> None:
    topic = guard.settings.topic
    if not topic:
        return
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        guard.sns().publish(
            TopicArn=topic,
            Subject=f"release guard: {guard.env} could not be checked"[:100],
            Message=json.dumps({"env": guard.env, "ok": False, "error": message}),
        )
    except (ClientError, BotoCoreError) as exc:  # already failing: the log keeps both
        log.error("release guard: publishing the failure to %s failed too: %s", topic, exc)


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """The Lambda entry point (EventBridge delivers the CloudTrail or scheduled event)."""
    logging.getLogger("release").setLevel(logging.INFO)
    try:
        guard = _guard_from_environment()
    except ReleaseError as exc:
        log.error("release guard: %s", exc.message)
        return {"ok": False, "error": exc.message}
    return handle(event, guard)
