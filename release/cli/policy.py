"""`release policy show|test|export`: the gate policy this config uses, its Rego unit
tests, and a copy of the shipped default to start a replacement from."""

from __future__ import annotations

from pathlib import Path

import click

from release.cli import Out, cli, common, load_config


@cli.group("policy")
def policy_group() -> None:
    """The release gate's Rego policy: the default shipped with release, extended or
    replaced by `[gate].policy` (docs/policy.md)."""


@policy_group.command("show")
@common
def show_cmd(config_path: Path | None, out: Out) -> None:
    """Which policy the gate uses for this config: its name (`default`, `default + DIR`
    or `DIR`), digest (what every gate decision records), files and packages."""
    from release import gate

    pol = gate.policy_for(load_config(config_path))
    doc = {
        "name": pol.name,
        "digest": pol.digest,
        "files": [n for n, _ in pol.modules],
        "tests": [n for n, _ in pol.tests],
        "packages": sorted(gate.packages_of(pol)),
    }
    out.data(doc)
    out.info(f"policy  {pol.name}")
    out.info(f"digest  {pol.digest}")
    out.info(f"files   {', '.join(doc['files'])}")
    if doc["tests"]:
        out.info(f"tests   {', '.join(doc['tests'])}")


@policy_group.command("test")
@common
def test_cmd(config_path: Path | None, out: Out) -> None:
    """Run every `test_*` rule of the policy's `*_test.rego` files (the default's and
    yours); exit 1 when one does not hold."""
    from release import gate
    from release.errors import CheckFailed

    pol = gate.policy_for(load_config(config_path))
    results = gate.run_policy_tests(pol)
    failed = [r for r in results if not r.passed]
    out.data(
        {
            "policy": pol.name,
            "digest": pol.digest,
            "passed": not failed,
            "tests": [
                {"package": r.package, "name": r.name, "passed": r.passed, "detail": r.detail}
                for r in results
            ],
        }
    )
    for r in results:
        out.info(
            f"{'PASS' if r.passed else 'FAIL'}  {r.package}.{r.name}"
            + (f"  ({r.detail})" if r.detail else "")
        )
    if failed:
        raise CheckFailed(
            f"{len(failed)} of {len(results)} policy tests failed ({pol.name})",
            details=[f"{r.package}.{r.name}" for r in failed],
        )
    out.status(f"{len(results)} policy tests passed ({pol.name})")


@policy_group.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@common
def export_cmd(config_path: Path | None, out: Out, directory: Path) -> None:
    """Write the default policy's files (package release.gate, with its tests) into
    DIRECTORY, to start a policy that replaces the default (then set [gate].policy to
    it). Refuses to overwrite a file."""
    from release import gate
    from release._io import atomic_write_bytes
    from release.errors import UsageError

    pol = gate.default_policy()
    files = pol.modules + pol.tests
    clash = [n for n, _ in files if (directory / n).exists()]
    if clash:
        raise UsageError(f"{directory / clash[0]} exists; export into an empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    for name, src in files:
        atomic_write_bytes(directory / name, src.encode())
    out.data({"directory": str(directory), "files": [n for n, _ in files], "digest": pol.digest})
    out.status(f"wrote {len(files)} files of the default policy ({pol.digest[:19]}) to {directory}")
