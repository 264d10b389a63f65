"""The reference docs are generated from the code and must not be stale: docs/cli.md
(click), docs/configuration.md (config models), the IAM blocks of docs/aws-setup.md
(`release iam`). Also the one environment-variable rule and the README's promises."""

from __future__ import annotations

import re
import subprocess
import sys

import click

from tests.fixtures.tools import REPO


def test_generated_docs_are_current() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "release.docs", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr


def _commands() -> list[click.Command]:
    from release.docs import _commands

    return [c for _, c in _commands()]


def test_an_option_has_a_variable_exactly_when_its_help_names_it() -> None:
    for cmd in _commands():
        for p in cmd.params:
            if not isinstance(p, click.Option):
                continue
            named = re.findall(r"\[env: ([A-Z_]+)", p.help or "")
            assert named == ([p.envvar] if isinstance(p.envvar, str) else []), (cmd.name, p.opts)


def test_every_command_takes_config_and_json() -> None:
    for cmd in _commands():
        opts = {o for p in cmd.params for o in p.opts}
        assert {"--config", "--json"} <= opts, cmd.name


def test_every_option_in_the_config_reference_and_cli_reference_exists() -> None:
    from release.config import ConfigFile

    text = (REPO / "docs" / "configuration.md").read_text()
    for name in ConfigFile.model_fields:
        assert f"`[{name}]" in text or f"`[{name}." in text, name
    cli = (REPO / "docs" / "cli.md").read_text()
    assert (
        "## `release canary`" in cli and "`--baseline`" in cli
    )  # the hidden run command's options


def test_readme_is_short_and_keeps_the_two_quick_start_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 160
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block is not None
    cmds = [ln for ln in block.group(1).splitlines() if ln and not ln.startswith("#")]
    assert cmds == [".ci/quickstart", ".ci/test"]
    for link in re.findall(r"\]\((docs/[a-z-]+\.md)\)", readme):
        assert link in {
            "docs/getting-started.md",
            "docs/configuration.md",
            "docs/cli.md",
            "docs/aws-setup.md",
            "docs/setup.md",
            "docs/github-actions.md",
            "docs/migrating.md",
            "docs/verifying.md",
            "docs/canary.md",
            "docs/threat-model.md",
            "docs/internals.md",
            "docs/example-platform.md",
            "docs/sbom.md",
            "docs/promotion.md",
            "docs/readiness.md",
            "docs/model-format.md",
            "docs/install.md",
            "docs/policy.md",
        }, link
    assert (
        "scripts/quickstart.sh" not in readme
        and "scripts/quickstart.sh" not in (REPO / "release.toml").read_text()
    )
