"""The `local` target through the CLI: the live digest is kept in the ledger."""

from __future__ import annotations

import json
from pathlib import Path

from tests.deploy.conftest import cli_env, digest_of, good_evidence, put_evidence, run_gated
from tests.fixtures.tools import run_cli

A, B = digest_of("a"), digest_of("b")


def test_promote_status_rollback_local(project: Path) -> None:
    for d in (A, B):
        put_evidence(project, good_evidence(d, repository="oci:.release/registry"))
    cfg = project / "release.toml"
    env = cli_env({"RELEASE_ACTOR": "alice"})
    r = run_cli("status", "--env", "prod", "--config", cfg, env=env)
    assert (r.code, r.stderr) == (0, "prod: nothing promoted yet\n")
    for d in (A, B):
        r = run_gated("promote", d, "--env", "prod", "--config", cfg, env=env)
        assert r.code == 0, r.stderr
        assert r.stdout == d + "\n"
    r = run_cli("status", "--env", "prod", "--config", cfg, "--json", env=env)
    doc = json.loads(r.stdout)
    assert (doc["digest"], doc["by"], doc["action"], doc["target"]) == (
        B,
        "alice",
        "promote",
        "local",
    )
    r = run_gated("rollback", "--env", "prod", "--config", cfg, "--json", env=env)
    assert r.code == 0, r.stderr
    pred = json.loads(r.stdout)
    assert (pred["action"], pred["digest"], pred["previous"]) == ("rollback", A, B)
    assert pred["decision"]["allow"] is True
    r = run_cli("ledger", "events", "--env", "prod", "--config", cfg, "--json")
    actions = [e["action"] for e in json.loads(r.stdout)]
    assert actions == ["gate", "promote.start", "promote"] * 2 + [
        "gate",
        "rollback.start",
        "rollback",
    ]
    r = run_cli("ledger", "verify", "--config", cfg)
    assert r.code == 0, r.stderr


def test_promotion_schema_matches_the_predicate(project: Path) -> None:
    import jsonschema

    from tests.fixtures.tools import REPO

    put_evidence(project, good_evidence(A, repository="oci:.release/registry"))
    r = run_gated(
        "promote", A, "--env", "prod", "--config", project / "release.toml", "--json", env=cli_env()
    )
    assert r.code == 0, r.stderr
    schema = json.loads((REPO / "attestations" / "promotion.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(r.stdout), schema)


def test_no_environment_variable_replaces_the_evidence_provider(project: Path) -> None:
    """The variable tests once used is ignored: the real collection runs and denies (the
    digest is not in the registry), nothing is promoted."""
    put_evidence(project, good_evidence(A, repository="oci:.release/registry"))
    cfg = project / "release.toml"
    r = run_cli(
        "promote",
        A,
        "--env",
        "prod",
        "--config",
        cfg,
        env={**cli_env(), "RELEASE_EVIDENCE_PROVIDER": "tests.deploy.conftest:file_provider"},
    )
    assert r.code == 1, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith(f"release: error: gate denied {A} for prod: "), r.stderr
    assert "  sbom attestation: missing" in lines, r.stderr  # the file provider would say ok
    r = run_cli("status", "--env", "prod", "--config", cfg)
    assert (r.code, r.stderr) == (0, "prod: nothing promoted yet\n")


def test_unknown_environment(project: Path) -> None:
    r = run_gated(
        "promote", A, "--env", "staging", "--config", project / "release.toml", env=cli_env()
    )
    assert r.code == 2
    assert r.stderr.splitlines()[0] == (
        "release: error: release.toml: no [environments.staging] (configured: prod)"
    )
