"""The gate: Evidence -> Rego input -> Decision(allow, reasons).

The default release policy ships in the tool (`release/policy/*.rego`, Rego v1,
OPA-compatible), evaluated in-process with regopy. It defines, in package `release.gate`,
`allow` (boolean) and `deny` (a set of one-line reasons). `[gate].policy` names the
adopter's own directory: files in package `release.gate` replace the default; files in
package `release.custom` extend it (their `deny` reasons are added; `import
data.release.gate` reuses its helpers). Every decision records the policy's name and
digest. Files ending in `_test.rego` are the policy's unit tests: `run_policy_tests` runs
every `test_*` rule in them (`release gate --test-policy`, pytest). Teams edit Rego, not
Python.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.config import Config
from release.errors import ConfigError
from release.evidence import Evidence

PACKAGE = "release.gate"
#: the package of an adopter's policy that extends the default (its `deny` is added)
CUSTOM_PACKAGE = "release.custom"
#: the name decisions record for the policy shipped in the package
DEFAULT_NAME = "default"


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
    #: which policy decided: `default`, `default + DIR` (extended) or `DIR` (replaced)
    policy_name: str = DEFAULT_NAME

    def to_dict(self) -> dict[str, Any]:
        return {
            "allow": self.allow,
            "reasons": list(self.reasons),
            "digest": self.digest,
            "env": self.env,
            "policy_name": self.policy_name,
            "policy_digest": self.policy_digest,
            "evidence_digest": self.evidence_digest,
        }


@dataclass(frozen=True)
class Policy:
    #: `default`, `default + DIR` or `DIR` (see `policy_for`)
    name: str
    modules: tuple[tuple[str, str], ...]  # (file name, source), policy files only
    tests: tuple[tuple[str, str], ...]
    digest: str


def _policy(name: str, files: list[tuple[str, bytes]], where: str) -> Policy:
    """A Policy from (file name, bytes) pairs: tests kept apart, the digest over the
    sorted policy files (name and SHA-256 of each)."""
    mods: list[tuple[str, str]] = []
    tests: list[tuple[str, str]] = []
    h = hashlib.sha256()
    for fname, data in sorted(files):
        try:
            src = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{where}: policy file {fname} is not UTF-8: {exc}") from None
        if fname.endswith("_test.rego"):
            tests.append((fname, src))
        else:
            mods.append((fname, src))
            h.update(fname.encode() + b"\0" + hashlib.sha256(data).digest())
    if not mods:
        raise ConfigError(f"{where}: no .rego policy files (only *_test.rego or nothing)")
    return Policy(name, tuple(mods), tuple(tests), "sha256:" + h.hexdigest())


def default_policy() -> Policy:
    """The policy shipped in the package (release/policy), read with importlib.resources."""
    from importlib.resources import files

    pkg = files("release.policy")
    found = [
        (f.name, f.read_bytes()) for f in pkg.iterdir() if f.is_file() and f.name.endswith(".rego")
    ]
    return _policy(DEFAULT_NAME, found, "the default policy")


def load_policy(directory: Path, name: str | None = None, key: str = "[gate].policy") -> Policy:
    """Every .rego file of `directory` (sorted); `*_test.rego` kept apart as tests."""
    if not directory.is_dir():
        raise ConfigError(f"{key}: policy directory {directory} not found")
    found: list[tuple[str, bytes]] = []
    for f in sorted(directory.glob("*.rego")):
        try:
            found.append((f.name, f.read_bytes()))
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read policy file {f.name}: {exc}") from None
    return _policy(name or str(directory), found, f"{key} ({directory})")


_PACKAGE_LINE = re.compile(r"^package\s+([\w.]+)", re.M)


def packages_of(policy: Policy) -> set[str]:
    return {m.group(1) for _n, src in policy.modules for m in [_PACKAGE_LINE.search(src)] if m}


def extend(base: Policy, own: Policy) -> Policy:
    """`base` and `own` evaluated together (module names prefixed so they cannot clash);
    the digest covers both."""
    mods = tuple((f"default/{n}", s) for n, s in base.modules) + tuple(
        (f"custom/{n}", s) for n, s in own.modules
    )
    tests = tuple((f"default/{n}", s) for n, s in base.tests) + tuple(
        (f"custom/{n}", s) for n, s in own.tests
    )
    h = hashlib.sha256(f"{base.digest}\0{own.digest}".encode())
    return Policy(f"{base.name} + {own.name}", mods, tests, "sha256:" + h.hexdigest())


def policy_for(cfg: Config) -> Policy:
    """The gate's policy for this config: the shipped default when `[gate].policy` is
    unset; the adopter's directory alone when it declares package `release.gate`
    (replaces); else the default extended by it (package `release.custom`)."""
    base = default_policy()
    if cfg.gate.policy is None:
        return base
    own = load_policy(cfg.resolve(cfg.gate.policy), cfg.gate.policy)
    pkgs = packages_of(own)
    if PACKAGE in pkgs:
        return own
    if CUSTOM_PACKAGE not in pkgs:
        raise ConfigError(
            f"[gate].policy: {cfg.gate.policy} declares neither package {PACKAGE} (replaces "
            f"the default policy) nor {CUSTOM_PACKAGE} (adds deny reasons to it); it has "
            f"{', '.join(sorted(pkgs)) or 'no package'}"
        )
    return extend(base, own)


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
            raise ConfigError(
                f"[gate].policy: release policy {name} does not compile: {first}"
            ) from None
    return rego


def _query(rego: Any, query: str) -> Any:
    out = rego.query(query)
    if not out.ok():
        lines = [ln for ln in str(out).splitlines() if ln.strip()]
        raise ConfigError(
            f"[gate].policy: the policy failed to evaluate {query}: "
            f"{lines[0] if lines else 'error'}",
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
        raise ConfigError(f"[gate].policy: {policy.name} defines no package {PACKAGE}")
    deny = doc.get("deny", [])
    if not isinstance(deny, list) or not all(isinstance(r, str) for r in deny):
        raise ConfigError(f"[gate].policy: {policy.name}: {PACKAGE}.deny must be a set of strings")
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
        policy_name=policy.name,
    )


@dataclass(frozen=True)
class PolicyTest:
    package: str
    name: str
    passed: bool
    detail: str = ""


def run_policy_tests(policy: Policy) -> list[PolicyTest]:
    """Every `test_*` rule of the `*_test.rego` files: passed when it evaluates to true."""
    rego = _interpreter(policy.modules + policy.tests)
    results: list[PolicyTest] = []
    for _name, src in policy.tests:
        pkg_m = re.search(r"^package\s+([\w.]+)", src, re.M)
        if not pkg_m:
            raise ConfigError(f"[gate].policy: policy test {_name} has no package")
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
