"""The `lambda` target: every function of an environment to `REPO@DIGEST`, or none.

For each function in `[environments.ENV].functions` (function -> Lambda function name):
`update_function_code(ImageUri=REPO@DIGEST)` and `update_function_configuration(
ImageConfig.Command=[its handler])`, wait until the update succeeded, `publish_version`
with the `CodeSha256` the code update returned as its precondition (Lambda refuses to
publish when `$LATEST` holds other code by then). What was published is then read back:
the version's CodeSha256 must be the one our update set, the digest its image resolves to
(`get_function` on the version: `Code.ResolvedImageUri`, cross-checked with
`CodeSha256`) must be DIGEST and its CMD the handler. Any difference means another writer
changed the function between our update and the publish: every function is put back and
the promotion fails with `VerificationFailed` (exit 1).
Then the pre-traffic check (`[canary.pretraffic]`, `release.canary.pretraffic`): the new
version of each model-serving function is invoked by version with a sample of the canary
corpus, as is the live version, and the two compared; a failure, an error or a timeout
puts every function back (`CanaryFailed`, exit 1) before any alias weight moves.
Then the live canary: every alias keeps its old version and sends `traffic.canary_weight`
of requests to the new one while a `CanaryWatch` looks (default: `release.canary.live.
LiveCanary`: the environment's CloudWatch `alarms` and the new-vs-stable comparison of the
handlers' and Lambda's metrics per `ExecutedVersion`; a failed or inconclusive canary rolls
back, exit 1; `traffic.bake_seconds = 0` turns the canary off).
Only then is every alias moved to its new version (routing cleared).
Any failure at any step puts every function back: aliases to their previous versions
(or removed if they did not exist), `$LATEST` code and CMD to what they were. The error is
then raised as `RemoteError` (exit 3) naming the step (an interleaved writer: exit 1).

Checks real Lambda would also make, done here because test doubles do not: the image URI
must be an ECR repository by digest, an alias routes only to numbered versions, weights
lie in [0, 1].
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from release.config import Config
from release.deploy import DeployResult, FunctionState, Route, StepCallback
from release.digest import Reference
from release.errors import (
    CanaryFailed,
    ConfigError,
    Interleaved,
    RemoteError,
    StepFailed,
    UsageError,
    VerificationFailed,
    aws_error_code,
    aws_error_message,
)

if TYPE_CHECKING:
    from release.canary.pretraffic import PreTraffic

_ECR_REPO = re.compile(
    r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9]+(?:[._/-][a-z0-9]+)*$"
)
log = logging.getLogger(__name__)
_VERSION = re.compile(r"^[1-9][0-9]*$")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")

#: before_publish(lambda function name): called between our update and publish_version
#: (tests run an interfering writer there)
PublishHook = Callable[[str], None]


def _sha_matches(code_sha256: str, digest: str) -> bool:
    """Lambda's CodeSha256 of an image function is the image digest's hex (base64 of the
    same 32 bytes also accepted)."""
    import base64

    hexd = digest.split(":", 1)[1]
    return code_sha256 in (hexd, base64.b64encode(bytes.fromhex(hexd)).decode())


def image_uri(repository: str, ref: Reference) -> str:
    """`ECR-REPO@sha256:...`, refusing anything Lambda would not run."""
    if not _ECR_REPO.match(repository):
        raise ConfigError(
            f"[image].registry: the lambda target needs an ECR repository "
            f"(ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME), got {repository!r}: "
            "give REPO@sha256:... or set [image].registry to the ECR repository"
        )
    return f"{repository}@{ref.digest}"


def validate_routing(weights: dict[str, float]) -> dict[str, float]:
    """Alias routing as Lambda accepts it: numbered versions only, weights in [0, 1]."""
    for version, w in weights.items():
        if not _VERSION.match(version):
            raise UsageError(
                f"alias routing to {version!r}: only numbered versions can take traffic"
            )
        if not 0.0 <= w <= 1.0:
            raise UsageError(f"alias routing weight {w} for version {version} is outside [0, 1]")
    return weights


@dataclass
class _Before:
    """What one function looked like before we touched it."""

    name: str
    function: str
    image_uri: str | None
    command: list[str] | None
    alias_version: str | None
    code_changed: bool = False
    alias_changed: bool = False
    new_version: str | None = None
    code_sha: str = ""  # CodeSha256 our code update returned


@dataclass(frozen=True)
class CanaryShift:
    """One function taking canary traffic: `weight` of its alias goes to `new_version`."""

    function: str
    alias: str
    old_version: str
    new_version: str
    weight: float


class CanaryWatch(Protocol):
    """Watches the canary traffic; raises CanaryFailed to stop the promotion. `on_step`
    records what it saw (each look) in the ledger."""

    def __call__(self, shifts: list[CanaryShift], on_step: StepCallback | None = None) -> None: ...


class AlarmWatch:
    """An alarms-only watch (the live canary, `release.canary.live.LiveCanary`, is the
    default): for `bake_seconds` every configured CloudWatch alarm must stay out of ALARM;
    a missing alarm is a config error, found before anything is touched."""

    def __init__(
        self,
        alarms: list[str],
        bake_seconds: float,
        *,
        client: Any = None,
        poll_seconds: float = 5.0,
        region: str | None = None,
    ) -> None:
        from release.canary.live import Alarms

        if client is None and alarms:
            import boto3

            client = (
                boto3.client("cloudwatch", region_name=region)
                if region
                else boto3.client("cloudwatch")
            )
        self.alarms = Alarms(alarms, client)
        self.bake_seconds = bake_seconds
        self.poll_seconds = poll_seconds

    def check_configured(self) -> None:
        self.alarms.check_configured()

    def __call__(self, shifts: list[CanaryShift], on_step: StepCallback | None = None) -> None:
        deadline = time.monotonic() + self.bake_seconds
        # A loop of our own, not a boto3 waiter: CloudWatch's waiters wait for an alarm to
        # exist, none waits "stays out of ALARM for N seconds".
        while True:
            self.alarms.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(self.poll_seconds, left))


class UpdateFailed(RuntimeError):
    """Lambda reports the function's last update (or its state) as Failed."""


class LambdaTarget:
    kind = "lambda"

    def __init__(
        self,
        cfg: Config,
        env: str,
        *,
        client: Any = None,
        poll_seconds: float = 0.25,
        timeout_seconds: float = 300.0,
        watch: CanaryWatch | None = None,
        cloudwatch: Any = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        before_publish: PublishHook | None = None,
        now: Callable[[], datetime] | None = None,
        pretraffic: PreTraffic | None = None,
    ) -> None:
        e = cfg.environment(env)
        if not e.functions:
            raise ConfigError(f"[environments.{env}].functions is empty: nothing to deploy")
        self.cfg = cfg
        self.env = env
        self.alias = e.alias
        self.functions = dict(sorted(e.functions.items()))
        self.commands = {name: cfg.functions[name] for name in self.functions}
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        if client is None:
            import boto3

            client = (
                boto3.client("lambda", region_name=e.region) if e.region else boto3.client("lambda")
            )
        self.client = client
        self.canary_weight = e.traffic.canary_weight
        self.before_publish = before_publish
        self.watch: CanaryWatch | None = watch
        self._checked: Any = None
        #: the pre-traffic check (`release.canary.pretraffic.PreTraffic`), when
        #: [canary.pretraffic] names a function of this environment
        self.pretraffic: PreTraffic | None = pretraffic
        if pretraffic is None and any(n in self.functions for n in cfg.canary.pretraffic.functions):
            from release.canary.pretraffic import PreTraffic

            self.pretraffic = PreTraffic(cfg, env)
        if watch is None and e.traffic.bake_seconds > 0:
            from release.canary.live import LiveCanary

            live = LiveCanary(
                e.traffic,
                e.alarms,
                cloudwatch=cloudwatch,
                region=e.region,
                clock=clock or time.monotonic,
                sleep=sleep or time.sleep,
                now=now or (lambda: datetime.now(UTC)),
            )
            self._checked = live
            self.watch = live
        elif hasattr(watch, "check_configured"):
            self._checked = watch

    # --- helpers ----------------------------------------------------------------------
    def repository(self, ref: Reference) -> str:
        if ref.repository:
            return ref.repository
        reg = self.cfg.image.registry
        if reg.startswith("oci:"):
            raise ConfigError(
                f"[environments.{self.env}] is a lambda target but [image].registry is an OCI "
                "layout: push to ECR and give ECR-REPO@sha256:..."
            )
        return reg

    def _call(self, step: str, function: str, op: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        log.debug("lambda %s: %s %s", step, op, function)
        try:
            return getattr(self.client, op)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            log.debug("lambda %s: %s %s failed: %s", step, op, function, aws_error_message(exc))
            raise StepFailed(step, function, exc) from exc

    def _wait(self, step: str, function: str, waiter: str, **kwargs: Any) -> None:
        """Wait with boto3's Lambda waiter `waiter`, polling every `poll_seconds` for at
        most `timeout_seconds`; a terminal state or the time running out is a StepFailed."""
        from botocore.exceptions import ClientError, WaiterError

        attempts = max(1, math.ceil(self.timeout_seconds / self.poll_seconds))
        log.debug(
            "%s %s: waiting (%s, every %gs, at most %d polls)",
            step,
            function,
            waiter,
            self.poll_seconds,
            attempts,
        )
        try:
            self.client.get_waiter(waiter).wait(
                FunctionName=function,
                WaiterConfig={"Delay": self.poll_seconds, "MaxAttempts": attempts},
                **kwargs,
            )
        except WaiterError as exc:
            last = exc.last_response or {}
            if "Error" in last:  # the poll call itself failed
                cause: Exception = ClientError(last, waiter)
                raise StepFailed(step, function, cause) from exc
            conf = last.get("Configuration", last)  # GetFunction nests, the other does not
            status = conf.get("LastUpdateStatus", "?")
            state = conf.get("State", "?")
            if "Max attempts exceeded" in str(exc.kwargs.get("reason", "")):
                cause = TimeoutError(f"still {status}/{state} after {self.timeout_seconds:g}s")
            else:
                reason = (
                    conf.get("LastUpdateStatusReason")
                    or conf.get("StateReason")
                    or "no reason given"
                )
                cause = UpdateFailed(f"update failed: {reason}")
            raise StepFailed(step, function, cause) from exc

    def _wait_updated(self, step: str, function: str, *, failed_ok: bool = False) -> None:
        """Until `$LATEST` has finished its last update (`function_updated_v2`) and is
        Active (`function_active_v2`). `failed_ok`: a failed last update is fine too (a
        rollback overwrites it)."""
        try:
            self._wait(step, function, "function_updated_v2")
        except StepFailed as exc:
            if not (failed_ok and isinstance(exc.cause, UpdateFailed)):
                raise
        self._wait(step, function, "function_active_v2")

    def _snapshot(self, name: str, function: str) -> _Before:
        fn = self._call("read", function, "get_function", FunctionName=function)
        uri = fn.get("Code", {}).get("ImageUri")
        cmd = (
            fn.get("Configuration", {})
            .get("ImageConfigResponse", {})
            .get("ImageConfig", {})
            .get("Command")
        )
        if fn.get("Configuration", {}).get("PackageType", "Image") != "Image":
            raise ConfigError(
                f"Lambda function {function} is not an image function (PackageType Image)"
            )
        try:
            alias = self._call(
                "read", function, "get_alias", FunctionName=function, Name=self.alias
            )
            version: str | None = str(alias["FunctionVersion"])
        except StepFailed as exc:
            if aws_error_code(exc.cause) != "ResourceNotFoundException":
                raise
            version = None
        return _Before(name, function, uri, list(cmd) if cmd else None, version)

    # --- the target -------------------------------------------------------------------
    def deploy(self, ref: Reference, on_step: StepCallback) -> DeployResult:
        uri = image_uri(self.repository(ref), ref)
        before: list[_Before] = []
        if self._checked is not None:
            self._checked.check_configured()
        if self.pretraffic is not None:
            self.pretraffic.prepare()
        try:
            for name, function in self.functions.items():
                before.append(self._snapshot(name, function))
            for b in before:
                b.code_changed = True
                upd = self._call(
                    "update-code",
                    b.function,
                    "update_function_code",
                    FunctionName=b.function,
                    ImageUri=uri,
                )
                b.code_sha = str(upd.get("CodeSha256") or "")
                if not b.code_sha:
                    raise StepFailed(
                        "update-code",
                        b.function,
                        RuntimeError("the response carries no CodeSha256"),
                    )
                self._wait_updated("update-code", b.function)
                self._call(
                    "update-config",
                    b.function,
                    "update_function_configuration",
                    FunctionName=b.function,
                    ImageConfig={"Command": [self.commands[b.name]]},
                )
                self._wait_updated("update-config", b.function)
                on_step(
                    "deploy.update",
                    {"function": b.function, "image": uri, "command": self.commands[b.name]},
                )
            for b in before:
                if self.before_publish is not None:
                    self.before_publish(b.function)
                version = self._publish(b, ref)
                b.new_version = version
                on_step(
                    "deploy.publish",
                    {
                        "function": b.function,
                        "version": version,
                        "digest": ref.digest,
                        "code_sha256": b.code_sha,
                    },
                )
            checked = self._pretraffic(before, ref, on_step)
            watched = self._canary(before, on_step)
            for b in before:
                assert b.new_version is not None
                b.alias_changed = True
                self._point_alias(b.function, b.new_version, exists=b.alias_version is not None)
                on_step(
                    "deploy.alias",
                    {"function": b.function, "alias": self.alias, "version": b.new_version},
                )
        except Interleaved as failure:
            problems = self._restore(before, on_step)
            tail = (
                "every function was put back on its previous version"
                if not problems
                else "AND putting functions back failed - check them now"
            )
            raise VerificationFailed(
                f"lambda {failure.function} changed under this promotion: {failure.detail}; {tail}",
                details=problems,
            ) from None
        except CanaryFailed as failed:
            problems = self._restore(before, on_step)
            tail = (
                "every function was put back on its previous version"
                if not problems
                else "AND putting functions back failed - check them now"
            )
            raise CanaryFailed(f"{failed.message}; {tail}", details=problems) from None
        except StepFailed as failure:
            problems = self._restore(before, on_step)
            msg = (
                f"lambda {failure.step} failed for {failure.function}: {aws_error_message(failure.cause)}; "
                "every function was put back on its previous version"
            )
            if problems:
                msg = (
                    f"lambda {failure.step} failed for {failure.function}: {aws_error_message(failure.cause)}; "
                    "AND putting functions back failed - check them now"
                )
            raise RemoteError(msg, details=problems) from None
        return DeployResult(
            uri,
            tuple(FunctionState(b.name, b.function, b.new_version, uri) for b in before),
            pretraffic=checked,
            live_canary=watched,
        )

    def _pretraffic(
        self, before: list[_Before], ref: Reference, on_step: StepCallback
    ) -> dict[str, Any] | None:
        """The pre-traffic check of the new versions against the live ones (nothing routed
        yet); CanaryFailed stops the promotion. Its result for the promotion predicate."""
        if self.pretraffic is None:
            return None
        from release.canary.pretraffic import Subject

        subjects = [
            Subject(b.name, b.function, b.alias_version, b.new_version or "") for b in before
        ]
        res = self.pretraffic.check(subjects, ref.digest, on_step)
        on_step("pretraffic.passed", {"summary": res.summary(), "seconds": f"{res.seconds:g}"})
        out: dict[str, Any] = res.to_dict()
        return out

    def _publish(self, b: _Before, ref: Reference) -> str:
        """publish_version with our update's CodeSha256 as precondition, then read back
        what was published; Interleaved when it is not what we deployed."""
        try:
            pub = self._call(
                "publish",
                b.function,
                "publish_version",
                FunctionName=b.function,
                Description=f"release {ref.digest}",
                CodeSha256=b.code_sha,
            )
        except StepFailed as exc:
            now = self._call(
                "publish", b.function, "get_function_configuration", FunctionName=b.function
            ).get("CodeSha256")
            if now != b.code_sha:
                raise Interleaved(
                    b.function,
                    f"publish_version refused ({aws_error_message(exc.cause)}): $LATEST has "
                    f"CodeSha256 {now}, not the {b.code_sha} our update set - another writer "
                    "changed it between our update and the publish",
                ) from exc
            raise
        version = str(pub.get("Version", ""))
        if not _VERSION.match(version):
            raise StepFailed(
                "publish",
                b.function,
                RuntimeError(f"published version {version!r} is not a number"),
            )
        self._wait("publish", b.function, "published_version_active", Qualifier=version)
        if pub.get("CodeSha256") != b.code_sha:
            raise Interleaved(
                b.function,
                f"published version {version} has CodeSha256 {pub.get('CodeSha256')}, not the "
                f"{b.code_sha} our update set - another writer changed it between our update "
                "and the publish",
            )
        got = self._route(b.function, version, 1.0)
        want_cmd = (self.commands[b.name],)
        if got.digest != ref.digest:
            raise Interleaved(
                b.function,
                f"published version {version} runs "
                f"{got.digest or 'an image that cannot be told'}"
                f"{' (' + got.problem + ')' if got.problem else ''}, not {ref.digest}",
            )
        if got.command != want_cmd:
            raise Interleaved(
                b.function,
                f"published version {version} runs CMD {list(got.command)}, not {list(want_cmd)}",
            )
        return version

    def _route(self, function: str, version: str, weight: float) -> Route:
        """What `version` of `function` really runs: the digest its image resolved to
        (`Code.ResolvedImageUri`, which must agree with `CodeSha256`) and its CMD."""
        fn = self._call("read", function, "get_function", FunctionName=function, Qualifier=version)
        conf = fn.get("Configuration") or {}
        cmd = tuple(
            (conf.get("ImageConfigResponse") or {}).get("ImageConfig", {}).get("Command") or ()
        )
        resolved = str((fn.get("Code") or {}).get("ResolvedImageUri") or "")
        sha = str(conf.get("CodeSha256") or "")
        _, at, tail = resolved.rpartition("@")
        if not at or not _DIGEST.fullmatch(tail):
            return Route(
                version,
                weight,
                None,
                cmd,
                f"version {version} has no image resolved by digest (ResolvedImageUri "
                f"{resolved or 'missing'})",
            )
        if sha and not _sha_matches(sha, tail):
            return Route(
                version,
                weight,
                None,
                cmd,
                f"version {version}: ResolvedImageUri says {tail}, CodeSha256 says {sha}",
            )
        return Route(version, weight, tail, cmd)

    def _canary(self, before: list[_Before], on_step: StepCallback) -> dict[str, Any] | None:
        """Route canary traffic to the new versions and let the watch look. Skipped on a
        first deployment (no old version to share the alias with) or without a watch
        (`traffic.bake_seconds = 0` and none given). What the live canary saw, for the
        promotion predicate (None: no live canary ran)."""
        if self.watch is None or any(b.alias_version is None for b in before):
            return None
        shifts = []
        for b in before:
            assert b.new_version is not None and b.alias_version is not None
            weights = validate_routing({b.new_version: self.canary_weight})
            b.alias_changed = True
            self._call(
                "canary",
                b.function,
                "update_alias",
                FunctionName=b.function,
                Name=self.alias,
                FunctionVersion=b.alias_version,
                RoutingConfig={"AdditionalVersionWeights": weights},
            )
            shifts.append(
                CanaryShift(
                    b.function, self.alias, b.alias_version, b.new_version, self.canary_weight
                )
            )
            on_step(
                "canary.shift",
                {
                    "function": b.function,
                    "version": b.new_version,
                    "weight": repr(self.canary_weight),
                },
            )
        self.watch(shifts, on_step)
        on_step("canary.passed", {"functions": ",".join(b.function for b in before)})
        evidence = getattr(self.watch, "evidence", None)
        if not callable(evidence):
            return None  # an alarms-only watch
        seen: dict[str, Any] = evidence()
        seen["weight"] = self.canary_weight
        seen["functions"] = {b.function: [b.alias_version, b.new_version] for b in before}
        return seen

    def _point_alias(self, function: str, version: str, *, exists: bool) -> None:
        validate_routing({version: 1.0})
        if exists:
            self._call(
                "alias",
                function,
                "update_alias",
                FunctionName=function,
                Name=self.alias,
                FunctionVersion=version,
                RoutingConfig={"AdditionalVersionWeights": {}},
            )
        else:
            self._call(
                "alias",
                function,
                "create_alias",
                FunctionName=function,
                Name=self.alias,
                FunctionVersion=version,
            )

    def _restore(self, before: list[_Before], on_step: StepCallback) -> list[str]:
        """Put every touched function back; returns what could not be restored."""
        problems: list[str] = []
        for b in reversed(before):
            try:
                if b.alias_changed:
                    if b.alias_version is not None:
                        self._point_alias(b.function, b.alias_version, exists=True)
                    else:
                        self._call(
                            "rollback",
                            b.function,
                            "delete_alias",
                            FunctionName=b.function,
                            Name=self.alias,
                        )
                if b.code_changed and b.image_uri:
                    self._wait_updated("rollback", b.function, failed_ok=True)
                    self._call(
                        "rollback",
                        b.function,
                        "update_function_code",
                        FunctionName=b.function,
                        ImageUri=b.image_uri,
                    )
                    self._wait_updated("rollback", b.function)
                    if b.command:
                        self._call(
                            "rollback",
                            b.function,
                            "update_function_configuration",
                            FunctionName=b.function,
                            ImageConfig={"Command": b.command},
                        )
                        self._wait_updated("rollback", b.function)
                if b.alias_changed or b.code_changed:
                    on_step(
                        "deploy.restore",
                        {
                            "function": b.function,
                            "version": b.alias_version or "",
                            "image": b.image_uri or "",
                        },
                    )
            except StepFailed as exc:
                problems.append(f"{b.function}: {exc}")
        return problems

    def live(self) -> list[FunctionState]:
        """Per function: the alias's version and routing, and what each routed version
        really runs (its image's resolved digest and CMD)."""
        out = []
        for name, function in self.functions.items():
            try:
                out.append(self._live_one(name, function))
            except StepFailed as exc:
                raise RemoteError(
                    f"lambda: cannot read {function}: {aws_error_message(exc.cause)}"
                ) from None
        return out

    def _live_one(self, name: str, function: str) -> FunctionState:
        try:
            alias = self._call(
                "read", function, "get_alias", FunctionName=function, Name=self.alias
            )
        except StepFailed as exc:
            if aws_error_code(exc.cause) != "ResourceNotFoundException":
                raise
            return FunctionState(name, function, None, None)
        primary = str(alias["FunctionVersion"])
        extra = {
            str(v): float(w)
            for v, w in (
                (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
            ).items()
        }
        weights = {primary: max(0.0, 1.0 - sum(extra.values())), **extra}
        routes = tuple(self._route(function, v, w) for v, w in weights.items())
        return FunctionState(name, function, primary, None, routes)

    # --- read-only views (the drift guard, release.guard) --------------------------------
    def resolve(self, function: str, version: str) -> Route:
        """What `version` of the Lambda function `function` runs: its image's resolved
        digest and CMD (StepFailed when Lambda cannot be read)."""
        return self._route(function, version, 1.0)

    def live_function(self, name: str) -> FunctionState:
        """`live()` of one function (its [functions] name)."""
        return self._live_one(name, self.functions[name])
