"""The adopter's contract and the CLI's promises: a configurable canary entry point, the
code package, canary_weight bounds, one --json rule for errors, `gate --save-evidence`
round-tripping into `gate --evidence`, and `release canary --help` showing its options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.tools import REPO, run_cli

BASE = f'base = "oci:base@sha256:{"0" * 64}"'


def _config(
    tmp_path: Path,
    extra: str = "",
    functions: str = 'analysis = "handlers.analysis.lambda_handler"',
) -> Path:
    p = tmp_path / "release.toml"
    p.write_text(f'[model]\npath = "m"\n[image]\n{BASE}\n[functions]\n{functions}\n{extra}')
    return p


# --- [code]: the canary calls the configured entry point, from the given code only ----------
PREDICTOR = '''
class P:
    def __init__(self, label, confidence):
        self.label, self.confidence = label, confidence

class KeywordModel:
    """Not a neural net: POSITIVE when a happy word occurs. Enough to show the contract."""
    @classmethod
    def load(cls, model_dir, lock_path=None):
        import os
        assert os.path.isdir(model_dir) and os.path.isfile(lock_path)
        return cls()

    def predict(self, texts, batch_size=64):
        good = ("good", "great", "wonderful", "love", "excellent", "delight")
        return [P("POSITIVE", 0.9) if any(w in t.lower() for w in good) else P("NEGATIVE", 0.7) for t in texts]
'''


def test_canary_runs_the_configured_entry_point(tmp_path: Path) -> None:
    from release.canary.offline import read_corpus, run_on_model_dir

    code = tmp_path / "code"
    (code / "mycode").mkdir(parents=True)
    (code / "mycode" / "__init__.py").write_text("")
    (code / "mycode" / "kw.py").write_text(PREDICTOR)
    corpus = read_corpus(REPO / "model" / "canary.jsonl")
    run = run_on_model_dir(
        REPO / "model" / "examples" / "sst2-tiny",
        REPO / "model" / "model.lock.json",
        code,
        corpus.items[:20],
        predict="mycode.kw:KeywordModel.load",
    )
    want = [
        "POSITIVE"
        if any(
            w in c.text.lower()
            for w in ("good", "great", "wonderful", "love", "excellent", "delight")
        )
        else "NEGATIVE"
        for c in corpus.items[:20]
    ]
    assert [i.label for i in run.items] == want
    assert all(i.logits is None for i in run.items)  # optional in the contract


def test_a_missing_entry_point_module_is_named(tmp_path: Path) -> None:
    from release.canary.offline import read_corpus, run_on_model_dir
    from release.errors import VerificationFailed

    (tmp_path / "code").mkdir()
    corpus = read_corpus(REPO / "model" / "canary.jsonl")
    with pytest.raises(VerificationFailed) as e:
        run_on_model_dir(
            REPO / "model" / "examples" / "sst2-tiny",
            REPO / "model" / "model.lock.json",
            tmp_path / "code",
            corpus.items[:2],
            predict="mycode.kw:KeywordModel.load",
        )
    assert (
        "no mycode/kw.py in the image's code ([code].predict = 'mycode.kw:KeywordModel.load')"
        in e.value.message
    )


@pytest.mark.parametrize(
    ("extra", "functions", "line"),
    [
        (
            "",
            'analysis = "app.analysis.lambda_handler"',
            "release.toml: (top level): [functions].analysis: the handler must live in the code package 'handlers' ([code].package)",
        ),
        (
            '[code]\npredict = "handlers.common.model"',
            'analysis = "handlers.analysis.lambda_handler"',
            "release.toml: [code].predict: String should match pattern",
        ),
        (
            "[environments.prod]\ntraffic = { canary_weight = 1.0 }",
            'analysis = "handlers.analysis.lambda_handler"',
            "release.toml: [environments.prod].traffic.canary_weight: must be between 0 and 1, both excluded (a share of the alias traffic), got 1.0",
        ),
        (
            "[environments.prod]\ntraffic = { canary_weight = 0 }",
            'analysis = "handlers.analysis.lambda_handler"',
            "release.toml: [environments.prod].traffic.canary_weight: must be between 0 and 1, both excluded (a share of the alias traffic), got 0.0",
        ),
        (
            '[environments.prod.function_variables.ghost]\nX = "1"',
            'analysis = "handlers.analysis.lambda_handler"',
            "release.toml: (top level): [environments.prod].function_variables names ghost, not in [functions]",
        ),
    ],
)
def test_contract_and_bounds_are_checked_at_load(
    tmp_path: Path, extra: str, functions: str, line: str
) -> None:
    cfg = _config(tmp_path, extra, functions)
    r = run_cli("status", "--env", "prod", "--config", cfg)
    assert r.code == 2
    assert r.stderr.splitlines()[0].startswith("release: error: " + line), r.stderr


def test_a_package_other_than_handlers_is_accepted(tmp_path: Path) -> None:
    from release import config

    cfg = config.load(
        _config(
            tmp_path,
            '[code]\npackage = "app"\npredict = "app.ml:Model.load"\ninvoke = "app.run"',
            'analysis = "app.analysis.handler"',
        )
    )
    assert (cfg.code.package, cfg.code.predict, cfg.code.invoke) == (
        "app",
        "app.ml:Model.load",
        "app.run",
    )


# --- one --json rule -------------------------------------------------------------------------
def test_json_usage_errors_are_one_document_on_stdout(tmp_path: Path) -> None:
    r = run_cli("gate", "--json", "--config", _config(tmp_path))  # DIGEST and --env missing
    assert r.code == 2
    doc = json.loads(r.stdout)
    assert (
        doc["exit_code"] == 2
        and "Missing argument 'DIGEST'" in doc["error"]
        and doc["details"] == []
    )
    r = run_cli(
        "gate", "sha256:" + "1" * 64, "--env", "nope", "--json", "--config", _config(tmp_path)
    )
    assert r.code == 2
    assert json.loads(r.stdout)["error"].startswith("release.toml: no [environments.nope]")


# --- gate --save-evidence -> gate --evidence -------------------------------------------------
def test_saved_evidence_replays_to_the_same_decision(tmp_path: Path) -> None:
    from tests.deploy.conftest import cli_env, good_evidence, put_evidence, write_config

    write_config(tmp_path)
    digest = "sha256:" + "c" * 64
    doc = good_evidence(digest)
    doc["canary"] = {"ok": True, "passed": False}
    put_evidence(tmp_path, doc)
    saved = tmp_path / "saved.json"
    first = run_cli(
        "gate",
        digest,
        "--env",
        "prod",
        "--save-evidence",
        saved,
        "--json",
        cwd=tmp_path,
        env=cli_env(),
    )
    assert first.code == 1, first.stderr
    assert json.loads(saved.read_text())["digest"] == digest
    again = run_cli("gate", digest, "--env", "prod", "--evidence", saved, "--json", cwd=tmp_path)
    assert again.code == 1
    assert json.loads(again.stdout)["reasons"] == json.loads(first.stdout)["reasons"]
    assert any("canary" in r for r in json.loads(first.stdout)["reasons"])


def test_canary_help_shows_its_own_options() -> None:
    r = run_cli("canary", "--help")
    assert r.code == 0
    for opt in ("--baseline", "--corpus", "--batch-size", "--env", "--output"):
        assert opt in r.stdout, opt
    assert "compare" in r.stdout
