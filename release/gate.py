"""The gate: Evidence -> Rego input -> Decision(allow, reasons).

The release policy lives in `policy/release/*.rego` (Rego v1, OPA-compatible; `[gate].policy`
names the directory), evaluated in-process with regopy. It must define, in package
`release.gate`, `allow` (boolean) and `deny` (a set of one-line reasons). Files ending in
`_test.rego` are the policy's unit tests: `run_policy_tests` runs every `test_*` rule in
them (pytest calls it). Teams edit the policy, not Python.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.config import Config
from release.errors import ConfigError
from release.evidence import Evidence

PACKAGE = "release.gate"


def vulnerability_claim(cfg: Config, ref: Any, repository: str) -> Any:
    """The vulnerability claim of the Evidence (`release.vulnerabilities`); called by
    `release.claims`."""
    from release.vulnerabilities import vulnerability_claim as claim

    return claim(cfg, ref, repository)


@dataclass(frozen=True)
class Decision:
    allow: bool
    reasons: tuple[str, ...]
    digest: str
    env: str
    policy_digest: str
    evidence_digest: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "allow": self.allow,
            "reasons": list(self.reasons),
            "digest": self.digest,
            "env": self.env,
            "policy_digest": self.policy_digest,
            "evidence_digest": self.evidence_digest,
        }


@dataclass(frozen=True)
class Policy:
    directory: Path
    modules: tuple[tuple[str, str], ...]  # (file name, source), policy files only
    tests: tuple[tuple[str, str], ...]
    digest: str


def load_policy(directory: Path) -> Policy:
    """Every .rego file of `directory` (sorted); `*_test.rego` kept apart as tests."""
    if not directory.is_dir():
        raise ConfigError(f"release policy directory {directory} not found ([gate].policy)")
    files = sorted(directory.glob("*.rego"))
    mods: list[tuple[str, str]] = []
    tests: list[tuple[str, str]] = []
    h = hashlib.sha256()
    for f in files:
        try:
            data = f.read_bytes()
            src = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read policy file {f.name}: {exc}") from None
        (tests if f.name.endswith("_test.rego") else mods).append((f.name, src))
        if not f.name.endswith("_test.rego"):
            h.update(f.name.encode() + b"\0" + hashlib.sha256(data).digest())
    if not mods:
        raise ConfigError(f"no .rego policy files in {directory}")
    return Policy(directory, tuple(mods), tuple(tests), "sha256:" + h.hexdigest())


def policy_for(cfg: Config) -> Policy:
    return load_policy(cfg.resolve(cfg.gate.policy))


def _interpreter(modules: tuple[tuple[str, str], ...]) -> Any:
    import regopy

    rego = regopy.Interpreter()
    for name, src in modules:
        try:
            rego.add_module(name, src)
        except regopy.RegoError as exc:
            import re

            msgs = re.findall(r"errormsg \d+:([^)]*)\)", str(exc))
            first = msgs[0] if msgs else "parse error"
            raise ConfigError(f"release policy {name} does not compile: {first}") from None
    return rego


def _query(rego: Any, query: str) -> Any:
    out = rego.query(query)
    if not out.ok():
        lines = [ln for ln in str(out).splitlines() if ln.strip()]
        raise ConfigError(
            f"release policy failed to evaluate {query}: {lines[0] if lines else 'error'}",
            details=lines[1:8],
        )
    text = str(out)
    if text == "undefined":
        return None
    exprs = json.loads(text).get("expressions") or [None]
    return exprs[0]


def evaluate(evidence: Evidence, policy: Policy) -> Decision:
    """Run the policy over the Evidence: allow, with every deny reason (sorted)."""
    import regopy

    rego = _interpreter(policy.modules)
    rego.set_input(regopy.Input(evidence.to_input()))
    doc = _query(rego, "data." + PACKAGE)
    if not isinstance(doc, dict):
        raise ConfigError(f"release policy defines no package {PACKAGE}")
    deny = doc.get("deny", [])
    if not isinstance(deny, list) or not all(isinstance(r, str) for r in deny):
        raise ConfigError(f"{PACKAGE}.deny must be a set of strings")
    allow = doc.get("allow") is True
    reasons = tuple(sorted(deny))
    if not allow and not reasons:
        reasons = (f"policy did not allow (no {PACKAGE}.deny reason given)",)
    return Decision(
        allow=allow,
        reasons=reasons,
        digest=evidence.digest,
        env=evidence.env,
        policy_digest=policy.digest,
        evidence_digest=evidence.sha256,
    )


@dataclass(frozen=True)
class PolicyTest:
    package: str
    name: str
    passed: bool
    detail: str = ""


def run_policy_tests(policy: Policy) -> list[PolicyTest]:
    """Every `test_*` rule of the `*_test.rego` files: passed when it evaluates to true."""
    import re

    rego = _interpreter(policy.modules + policy.tests)
    results: list[PolicyTest] = []
    for _name, src in policy.tests:
        pkg_m = re.search(r"^package\s+([\w.]+)", src, re.M)
        if not pkg_m:
            raise ConfigError(f"policy test {_name} has no package")
        pkg = pkg_m.group(1)
        for test in re.findall(r"^(test_\w+)\s+if\b", src, re.M):
            out = rego.query(f"data.{pkg}.{test}")
            text = str(out)
            if not out.ok():
                results.append(PolicyTest(pkg, test, False, text.strip().splitlines()[0]))
                continue
            value = json.loads(text).get("expressions", [None])[0] if text != "undefined" else None
            results.append(
                PolicyTest(pkg, test, value is True, "" if value is True else "undefined")
            )
    return results
