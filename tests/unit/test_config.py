"""release.toml validation: every error is one line naming the key, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.tools import REPO, run_cli

GOOD = """
[model]
path = "m"

[image]
base = "oci:base@sha256:%s"

[functions]
analysis = "handlers.analysis.lambda_handler"
""" % ("0" * 64)


def test_repo_example_config_loads() -> None:
    from release import config

    cfg = config.load(REPO / "release.toml")
    assert cfg.model.path == "model/examples/sst2-tiny"
    assert set(cfg.functions) == {"scorer", "remediator", "onboarding", "analysis"}
    assert cfg.lock_path == REPO / "model" / "model.lock.json"


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (
            lambda s: s.replace('path = "m"', 'path = "m"\nreop = "x/y"'),
            "release.toml: unknown key [model].reop",
        ),
        (
            lambda s: s.replace('[image]\nbase = "oci:base@sha256:' + "0" * 64 + '"', "[image]"),
            "release.toml: missing required key [image].base",
        ),
        (lambda s: s + "\n[image.extra]\n", "release.toml: unknown key [image].extra"),
        (
            lambda s: s.replace('path = "m"', 'path = "m"\ninclude = "config.json"'),
            "release.toml: [model].include: input should be a valid list, got 'config.json'",
        ),
        (
            lambda s: s + '\n[canary]\nks_alpha = "small"\n',
            "release.toml: [canary].ks_alpha: input should be a valid number, unable to parse string as a number, got 'small'",
        ),
        (
            lambda s: s.replace('path = "m"', 'path = "m"\nrepo = "a/b"'),
            'release.toml: [model]: give exactly one of repo = "ORG/NAME" or path = "DIR"',
        ),
        (
            lambda s: s + '\n[signing]\nmode = "gpg"\n',
            'release.toml: [signing].mode: must be "sigstore", "key:PATH" or "awskms:KEY-ID"',
        ),
        (
            lambda s: s + '\n[environments.prod]\nfunctions = { ghost = "fn" }\n',
            "release.toml: (top level): [environments.prod].functions names ghost, not in [functions]",
        ),
        (
            lambda s: s.replace(
                'analysis = "handlers.analysis.lambda_handler"', 'analysis = "not a handler"'
            ),
            "release.toml: [functions].analysis: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)+$'",
        ),
        (
            lambda s: (
                s
                + '\n[environments.staging]\n[environments.prod]\nafter = "staging"\nsoak = "24x"\n'
            ),
            "release.toml: [environments.prod].soak: '24x' is not a duration (a number with d, h, m or s: 2d, 24h, 30m, 1d12h)",
        ),
        (
            lambda s: s + '\n[environments.prod]\nafter = "stagin"\n[environments.staging]\n',
            "release.toml: [environments.prod].after: no [environments.stagin] (configured: prod, staging)",
        ),
        (
            lambda s: (
                s
                + '\n[environments.prod]\nafter = "staging"\n[environments.staging]\nafter = "prod"\n'
            ),
            "release.toml: [environments.prod].after: the chain loops: prod -> staging -> prod",
        ),
        (
            lambda s: s + '\n[environments.prod]\nsoak = "24h"\n',
            'release.toml: [environments.prod].soak needs after = "ENV" (the environment to soak in)',
        ),
        (lambda s: s + "\n[ledger\n", None),
    ],
)
def test_config_errors_exit_2_with_one_line(tmp_path: Path, edit, line: str | None) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "release.toml").write_text(edit(GOOD))
    r = run_cli("model", "pin", cwd=tmp_path)
    assert r.code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    if line is None:
        assert lines[0].startswith("release: error: release.toml: not valid TOML:")
    else:
        assert lines[0] == f"release: error: {line}"


def test_missing_config_file(tmp_path: Path) -> None:
    r = run_cli("model", "pin", cwd=tmp_path)
    assert r.code == 2
    assert (
        r.stderr.strip()
        == f"release: error: config file release.toml not found in {tmp_path} (use --config)"
    )


def test_unknown_option_is_usage_error(tmp_path: Path) -> None:
    r = run_cli("model", "pin", "--frobnicate", cwd=tmp_path)
    assert r.code == 2
    assert "Error: No such option '--frobnicate'." in r.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("24h", 86400), ("2d", 172800), ("1d12h", 129600), ("90s", 90)],
)
def test_durations(text: str, seconds: int) -> None:
    from release.config import parse_duration

    assert parse_duration(text, "soak") == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "24x", "1h1d", "-1h", "1.5h"])
def test_a_bad_duration_names_the_key(text: str) -> None:
    from release.config import parse_duration
    from release.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        parse_duration(text, "[environments.prod].soak")
    assert exc.value.message.startswith(f"[environments.prod].soak: {text!r} is not a duration")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59, "59s"),
        (60, "1m"),
        (61, "2m"),
        (18720, "5h12m"),
        (86400, "24h"),
        (90000, "25h"),
        (172800, "2d"),
        (183600, "2d3h"),
    ],
)
def test_durations_are_written_rounded_up_to_the_minute(seconds: int, text: str) -> None:
    from release.config import format_duration

    assert format_duration(seconds) == text
