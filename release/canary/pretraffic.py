"""The pre-traffic check: the new version of each model-serving function, on the platform,
against its live version, before any alias weight moves (`[canary.pretraffic]`).

The lambda target calls `PreTraffic.check` after every function's new version is
published and before the live canary shifts any traffic (`release.deploy.lambda_`). For
each function named in `[canary.pretraffic.functions]`:

1. a sample of the canary corpus (`items`, default 200; all items when the corpus is
   smaller) is drawn deterministically: the items with the smallest
   sha256(DIGEST NUL id), so the same release samples the same items every time and the
   evidence can be reproduced;
2. each item becomes an event (`event`, a JSON template: "{input}" is the corpus input,
   "{input_json}" its JSON, "{id}" the item's id) and is invoked with Lambda `Invoke` (`Qualifier=VERSION`,
   RequestResponse) on the new version and on the version the alias serves now - the
   function's real memory, architecture, environment variables, timeout and CMD;
3. the output is read from each response (`output`: a dotted path to the object with
   the `[canary].output` type's fields, or one path per field) and checked against the
   declared type (`release.canary.outputs`);
4. the two runs are compared with the offline canary's paired checks of the output type
   (`release.canary.checks.run_checks`, the `[canary]` thresholds), on the items they
   share. The absolute checks (accuracy, low confidence) are the offline canary's on the
   whole corpus, not repeated here. A label handler that returns no confidence is
   compared on its labels only (the confidence checks are left out and the result says
   so).

A function error, an invocation taking longer than `timeout_seconds`, an output not of
the declared type or a failing check raises `CanaryFailed` naming the pre-traffic check,
the function, the versions and the item or check; the target then puts every function
back. On a first deployment (no live version), and on a rollback (it restores earlier
behaviour on purpose: `compare = False`), the new version is invoked alone: errors,
timeouts and the output type are checked, nothing is compared.

The result (`PretrafficResult.to_dict`) goes into the signed promotion predicate
(`pretraffic`), and each function's verdict is a `pretraffic.check` ledger step.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from release.canary import checks as ck
from release.canary import report as rpt
from release.checks import Check
from release.config import Config, PretrafficFunction
from release.errors import CanaryFailed, ConfigError

log = logging.getLogger(__name__)

#: (step, detail) -> None: what the promotion records in the ledger
Step = Callable[[str, dict[str, str]], None]
#: checks that need a confidence per item (left out when the handler returns none)
CONFIDENCE_CHECKS = frozenset({"confident-flips", "confidence-ks"})
_FIELDS = ("label", "confidence", "probs", "logits", "score", "vector")


@dataclass(frozen=True)
class Subject:
    """One function to check: its [functions] name, Lambda name, live and new versions."""

    name: str
    function: str
    live: str | None
    new: str


@dataclass(frozen=True)
class FunctionResult:
    name: str
    function: str
    live: str | None
    candidate: str
    n: int
    checks: tuple[Check, ...]
    note: str = ""

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "live": self.live,
            "candidate": self.candidate,
            "n": self.n,
            "passed": self.passed,
            **({"note": self.note} if self.note else {}),
            "checks": [
                {
                    "name": c.name,
                    "passed": c.ok,
                    **{
                        k: v
                        for k, v in (
                            ("value", c.value),
                            ("threshold", c.threshold),
                            ("p_value", c.p_value),
                            ("p_threshold", c.p_threshold),
                        )
                        if v is not None
                    },
                }
                for c in self.checks
            ],
        }


@dataclass(frozen=True)
class PretrafficResult:
    output: str
    items: int  # the sample's size
    corpus_sha256: str
    seed: str  # the digest the sample is seeded by
    functions: tuple[FunctionResult, ...] = field(default_factory=tuple)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.functions)

    def to_dict(self) -> dict[str, Any]:
        """The promotion predicate's `pretraffic` (attestations/promotion.schema.json)."""
        return {
            "passed": self.passed,
            "output": self.output,
            "items": self.items,
            "corpus_sha256": self.corpus_sha256,
            "sample_seed": self.seed,
            "functions": {f.name: f.to_dict() for f in self.functions},
        }

    def summary(self) -> str:
        n = len(self.functions)
        return (
            f"{'passed' if self.passed else 'failed'}: {n} function{'s' if n != 1 else ''}, "
            f"{self.items} items per version"
        )


def _said(c: Check) -> str:
    """A failed check in one clause: its statistics and, when short, its detail (the
    labels that moved)."""
    text = rpt.describe(c)
    return f"{text} ({c.detail})" if c.detail and len(c.detail) <= 120 else text


# --- the sample, the event, the output -------------------------------------------------
def sample(ids: Sequence[str], n: int, digest: str) -> list[int]:
    """Positions of the `n` items with the smallest sha256(digest NUL id), in corpus order."""
    key = {i: hashlib.sha256(f"{digest}\0{iid}".encode()).hexdigest() for i, iid in enumerate(ids)}
    return sorted(sorted(key, key=key.__getitem__)[:n])


def render_event(template: str, iid: str, value: str | dict[str, Any]) -> Any:
    """The event of one item: `template` parsed, then in every string: exactly "{input}"
    -> the input itself; "{input_json}" -> the input as JSON (for a JSON body inside a
    string); "{input}" -> its text; "{id}" -> the item's id."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {fill(k): fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        if isinstance(node, str):
            if node == "{input}":
                return value
            if node == "{id}":
                return iid
            node = node.replace("{input_json}", json.dumps(value, sort_keys=True))
            return node.replace("{input}", text).replace("{id}", iid)
        return node

    return fill(json.loads(template))


def _step(node: Any, part: str) -> Any:
    if isinstance(node, str):
        try:
            node = json.loads(node)
        except ValueError:
            raise LookupError(f"{part!r} of a string that is not JSON") from None
    if isinstance(node, dict) and part in node:
        return node[part]
    if (
        isinstance(node, list)
        and part.lstrip("-").isdigit()
        and -len(node) <= int(part) < len(node)
    ):
        return node[int(part)]
    raise LookupError(f"no {part!r}")


def at(doc: Any, path: str) -> Any:
    """The value at a dotted `path` in `doc` ("" = doc); JSON strings met on the way, and
    a JSON string at the end, are parsed."""
    node = doc
    for part in filter(None, path.split(".")):
        node = _step(node, part)
    if isinstance(node, str) and node[:1] in ("{", "["):
        try:
            return json.loads(node)
        except ValueError:
            return node
    return node


def extract(response: Any, spec: str | dict[str, str]) -> dict[str, Any]:
    """The output fields of one response per `[canary.pretraffic.functions.NAME].output`."""
    if isinstance(spec, str):
        got = at(response, spec)
        if not isinstance(got, dict):
            where = spec or "the response"
            raise LookupError(f"{where} is {type(got).__name__}, not an object")
        return {k: got[k] for k in _FIELDS if k in got}
    return {k: at(response, p) for k, p in spec.items()}


# --- invoking ----------------------------------------------------------------------------
class InvokeFailed(Exception):
    pass


def invoke(client: Any, function: str, version: str, event: Any, timeout: float) -> Any:
    """Lambda Invoke (RequestResponse) of `function:version`; the decoded payload, or
    InvokeFailed (a function error, an AWS error, a timeout, a payload that is not JSON)."""
    from botocore.exceptions import BotoCoreError, ClientError

    t0 = time.monotonic()
    try:
        resp = client.invoke(
            FunctionName=function,
            Qualifier=version,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        payload = resp["Payload"].read()
    except (ClientError, BotoCoreError) as exc:
        from release.errors import aws_error_message

        raise InvokeFailed(aws_error_message(exc)) from None
    took = time.monotonic() - t0
    if took > timeout:
        raise InvokeFailed(f"took {took:.1f} s, more than timeout_seconds = {timeout:g}")
    executed = resp.get("ExecutedVersion")
    if executed and str(executed) != version:
        raise InvokeFailed(f"Lambda ran version {executed}, not {version}")
    if resp.get("FunctionError"):
        try:
            err = json.loads(payload)
            msg = f"{err.get('errorType', 'Error')}: {err.get('errorMessage', '')}"
        except (ValueError, AttributeError):
            msg = payload[:200].decode(errors="replace")
        raise InvokeFailed(f"function error ({resp['FunctionError']}) {msg}".strip())
    try:
        return json.loads(payload)
    except ValueError:
        raise InvokeFailed(f"the response is not JSON: {payload[:80]!r}") from None


class PreTraffic:
    """The check of `[canary.pretraffic]` (see the module docstring). `client`: a boto3
    Lambda client (default: one for the environment's region whose read timeout is
    `timeout_seconds`)."""

    def __init__(self, cfg: Config, env: str, *, client: Any = None) -> None:
        self.cfg = cfg
        self.conf = cfg.canary.pretraffic
        self.env = env
        if client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            region = cfg.environment(env).region
            client = boto3.client(
                "lambda",
                **({"region_name": region} if region else {}),
                config=BotoConfig(
                    read_timeout=self.conf.timeout_seconds + 5,
                    retries={"max_attempts": 1},
                    max_pool_connections=max(10, self.conf.concurrency * 2),
                ),
            )
        self.client = client
        #: False for a rollback: it restores earlier behaviour, so the new version is
        #: invoked alone (errors, timeouts, the output type), not compared with the live one
        self.compare = True
        self._prepared: tuple[rpt.Output, Any] | None = None

    @property
    def names(self) -> list[str]:
        """The environment's functions the check invokes."""
        fns = self.cfg.environment(self.env).functions
        return sorted(n for n in self.conf.functions if n in fns)

    def output_spec(self) -> rpt.Output:
        from release.canary.outputs import spec

        model_dir = self.cfg.resolve(self.cfg.model.path) if self.cfg.model.path else None
        try:
            return spec(self.cfg.canary, model_dir)
        except ConfigError as exc:
            raise ConfigError(f"[canary.pretraffic]: {exc.message}") from None

    def prepare(self) -> tuple[rpt.Output, Any]:
        """The output type and the corpus, read before anything is touched (a config or
        corpus problem is found before the first update)."""
        if self._prepared is None:
            from release.canary.offline import check_corpus, read_corpus

            out = self.output_spec()
            corpus = read_corpus(self.cfg.resolve(self.cfg.canary.corpus))
            check_corpus(corpus.items, out, corpus.meta.path)
            self._prepared = (out, corpus)
        return self._prepared

    def check(self, subjects: Sequence[Subject], digest: str, on_step: Step) -> PretrafficResult:
        """Invoke and compare every subject; CanaryFailed on the first that fails."""
        t0 = time.monotonic()
        out, corpus = self.prepare()
        items = corpus.items
        picked = [items[i] for i in sample([c.id for c in items], self.conf.items, digest)]
        results: list[FunctionResult] = []
        for s in subjects:
            if s.name not in self.conf.functions:
                continue
            res = self._one(s, self.conf.functions[s.name], out, picked)
            results.append(res)
            failed = [c for c in res.checks if not c.ok]
            on_step(
                "pretraffic.check",
                {
                    "function": s.function,
                    "version": s.new,
                    "live": s.live or "",
                    "n": str(res.n),
                    "passed": "true" if res.passed else "false",
                    **({"failed": ",".join(c.name for c in failed)} if failed else {}),
                },
            )
            if failed:
                raise CanaryFailed(
                    f"pre-traffic check failed for {s.function}: version {s.new} against "
                    f"live version {s.live} on {res.n} items: "
                    + "; ".join(_said(c) for c in failed)
                )
        return PretrafficResult(
            out.type,
            len(picked),
            corpus.meta.sha256,
            digest,
            tuple(results),
            round(time.monotonic() - t0, 3),
        )

    def _run(
        self, s: Subject, version: str, fn: PretrafficFunction, out: rpt.Output, picked: list[Any]
    ) -> tuple[ck.Outputs, bool]:
        """One version over the sample: its outputs, and whether the handler returned
        confidences (label outputs)."""
        from release.canary.outputs import to_items

        timeout = self.conf.timeout_seconds

        def call(item: Any) -> Any:
            event = render_event(fn.event, item.id, item.text)
            try:
                return invoke(self.client, s.function, version, event, timeout)
            except InvokeFailed as exc:
                raise CanaryFailed(
                    f"pre-traffic check failed for {s.function}: version {version} on item "
                    f"{item.id}: {exc}"
                ) from None

        pool = ThreadPoolExecutor(self.conf.concurrency)
        futures = [pool.submit(call, item) for item in picked]
        try:
            for done in as_completed(futures):  # the first failure, as soon as it happens
                done.result()
        except BaseException:
            # nothing more is sent; the invocations in flight end on their own timeout
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        responses = [f.result() for f in futures]
        raw: list[dict[str, Any]] = []
        confident = True
        for item, resp in zip(picked, responses, strict=True):
            try:
                got = extract(resp, fn.output)
            except LookupError as exc:
                raise CanaryFailed(
                    f"pre-traffic check failed for {s.function}: version {version} on item "
                    f"{item.id}: the output is not where [canary.pretraffic.functions."
                    f"{s.name}].output says ({exc})"
                ) from None
            if out.type == "label" and got.get("confidence") is None and got.get("probs") is None:
                confident = False
                got["confidence"] = 1.0  # compared on labels only (CONFIDENCE_CHECKS left out)
            raw.append(got)
        try:
            typed, its = to_items(
                out,
                [c.id for c in picked],
                raw,
                [c.expected for c in picked],
                f"pre-traffic {s.function} version {version}",
            )
        except ConfigError as exc:
            raise CanaryFailed(f"pre-traffic check failed: {exc.message}") from None
        return rpt.outputs(typed, its), confident

    def _one(
        self, s: Subject, fn: PretrafficFunction, out: rpt.Output, picked: list[Any]
    ) -> FunctionResult:
        log.debug(
            "pre-traffic %s: %d items, version %s vs %s", s.function, len(picked), s.new, s.live
        )
        cand, c_conf = self._run(s, s.new, fn, out, picked)
        if s.live is None:
            return FunctionResult(
                s.name, s.function, None, s.new, cand.n, (), "first deployment: nothing to compare"
            )
        if not self.compare:
            return FunctionResult(
                s.name,
                s.function,
                s.live,
                s.new,
                cand.n,
                (),
                "rollback: the earlier release invoked alone, not compared with the live one",
            )
        base, b_conf = self._run(s, s.live, fn, out, picked)
        t = rpt.thresholds(self.cfg.canary)
        absolute = {c.name for c in ck.check_absolute(cand, t)}
        checks = [c for c in ck.run_checks(cand, base, t) if c.name not in absolute]
        note = ""
        if not (c_conf and b_conf):
            checks = [c for c in checks if c.name not in CONFIDENCE_CHECKS]
            note = "the handler returns no confidence: compared on labels only"
        return FunctionResult(s.name, s.function, s.live, s.new, cand.n, tuple(checks), note)
