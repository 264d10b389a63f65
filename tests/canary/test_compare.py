"""`release canary compare`: the checks on two reports, driven as a user would."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import jsonschema
import pytest

from release.canary import report as rpt
from release.canary.offline import read_corpus
from tests.fixtures.tools import REPO, run_cli

CORPUS = REPO / "model" / "canary.jsonl"
#: the example model's labels (its config.json id2label)
OUTPUT = rpt.Output(type="label", labels=["NEGATIVE", "POSITIVE"])


def _conf(i: str) -> float:
    return 0.55 + 0.45 * (hashlib.sha256(i.encode()).digest()[0] / 255)


def make_report(
    path: Path, *, flip_neg: int = 0, scale: float = 1.0, wrong: int = 0
) -> rpt.CanaryReport:
    """A report over the real canary corpus: the labelled answer (a perfect model) with
    deterministic confidences; optionally `flip_neg` NEGATIVE items turned POSITIVE,
    confidences pulled towards 0.5 by `scale`, or `wrong` items answered wrong."""
    corpus = read_corpus(CORPUS)
    items = []
    flipped = 0
    for k, c in enumerate(corpus.items):
        label = c.expected or "POSITIVE"
        conf = 0.5 + (_conf(c.id) - 0.5) * scale
        if flip_neg and label == "NEGATIVE" and flipped < flip_neg:
            label, flipped = "POSITIVE", flipped + 1
        elif k < wrong:
            label = "NEGATIVE" if label == "POSITIVE" else "POSITIVE"
        items.append(rpt.Item(id=c.id, label=label, confidence=conf, expected=c.expected))
    r = rpt.build(
        subject=rpt.Subject(model="example@" + "0" * 40),
        corpus=corpus.meta,
        items=items,
        t=rpt.thresholds(rpt_defaults()),
        output=OUTPUT,
    )
    rpt.write_report(path, r)
    return r


def rpt_defaults():  # type: ignore[no-untyped-def]
    from release.config import CanaryConfig

    return CanaryConfig()


def test_same_report_twice_passes(tmp_path: Path) -> None:
    make_report(tmp_path / "a.json")
    res = run_cli("canary", "compare", "a.json", "a.json", "-o", "out.json", cwd=tmp_path)
    assert res.code == 0, res.stderr
    assert "canary passed: 8 checks on 600 items" in res.stderr
    assert "  ok   paired-items: value 100.00%, threshold 90.00%" in res.stdout
    assert (
        "  ok   share-shift: value +0.00%, |shift| threshold 2.00%, p = 1 (alpha 0.001)"
        in res.stdout
    )
    out = rpt.read_report(tmp_path / "out.json")
    assert out.passed and out.baseline is not None and out.baseline.paired_items == 600


def test_shifted_candidate_fails_naming_each_check(tmp_path: Path) -> None:
    make_report(tmp_path / "base.json")
    make_report(tmp_path / "cand.json", flip_neg=30)
    res = run_cli("canary", "compare", "base.json", "cand.json", cwd=tmp_path)
    assert res.code == 1, res.stderr
    lines = res.stderr.splitlines()
    assert (
        lines[0]
        == "release: error: canary failed 3 of 8 checks: share-shift, confident-flips, accuracy-drop"
    )
    assert (
        lines[1]
        == "  share-shift: value +5.00%, |shift| threshold 2.00%, p = 1.86e-09 (alpha 0.001)"
    )
    assert lines[2] == (
        "  confident-flips: value 0.83%, threshold 0.50%; flipped: c0010, c0011, c0023, c0024, c0028"
    )
    assert lines[3] == "  accuracy-drop: value 5.00%, threshold 1.00%, p = 1.86e-09 (alpha 0.01)"


def test_confidence_collapse_at_unchanged_share_fails_ks(tmp_path: Path) -> None:
    make_report(tmp_path / "base.json")
    make_report(tmp_path / "cand.json", scale=0.3)
    res = run_cli("canary", "compare", "base.json", "cand.json", "--json", cwd=tmp_path)
    assert res.code == 1
    doc = json.loads(res.stdout)
    assert doc["failed_checks"] == ["low-confidence", "confidence-ks"]
    assert doc["label_shares"] == make_report(tmp_path / "x.json").label_shares
    ks = next(c for c in doc["checks"] if c["name"] == "confidence-ks")
    assert ks["value"] > 0.5 and ks["threshold"] == pytest.approx(0.11255, abs=1e-5)
    assert "  confidence-ks: value " in res.stderr


def test_not_a_report_is_a_usage_error(tmp_path: Path) -> None:
    make_report(tmp_path / "base.json")
    (tmp_path / "bad.json").write_text('{"schema_version": 2, "items": []}')
    res = run_cli("canary", "compare", "base.json", "bad.json", cwd=tmp_path)
    assert res.code == 2
    assert res.stderr.splitlines()[0] == (
        "release: error: bad.json: not a canary report: output: Field required "
        "(see attestations/canary-report.schema.json)"
    )
    res = run_cli("canary", "compare", "base.json", "missing.json", cwd=tmp_path)
    assert (res.code, res.stderr.strip()) == (
        2,
        "release: error: canary report missing.json not found",
    )


def test_thresholds_come_from_the_config(tmp_path: Path) -> None:
    make_report(tmp_path / "base.json")
    make_report(tmp_path / "cand.json", flip_neg=30)
    cfg = (
        (REPO / "release.toml")
        .read_text()
        .replace(
            '[canary]\ncorpus = "model/canary.jsonl"',
            '[canary]\ncorpus = "model/canary.jsonl"\nshare_min_shift = 0.06\n'
            "max_confident_flip_rate = 0.05\naccuracy_max_drop = 0.06",
        )
    )
    (tmp_path / "release.toml").write_text(cfg)
    res = run_cli("canary", "compare", "base.json", "cand.json", cwd=tmp_path)
    assert res.code == 0, res.stderr


def test_schema_file_is_generated_from_the_model(tmp_path: Path) -> None:
    path = REPO / rpt.SCHEMA_PATH
    if os.environ.get("RELEASE_REGEN_GOLDEN"):
        path.write_text(rpt.schema_text())
    assert path.read_text() == rpt.schema_text(), (
        "regenerate: RELEASE_REGEN_GOLDEN=1 pytest tests/canary"
    )
    r = make_report(tmp_path / "a.json", flip_neg=3)
    jsonschema.validate(r.to_json(), json.loads(path.read_text()))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**r.to_json(), "extra": 1}, json.loads(path.read_text()))


def _subset(src: Path, dest: Path, n: int) -> None:
    """A copy of a report that keeps only its first `n` items (a small baseline)."""
    doc = json.loads(src.read_text())
    doc["items"] = doc["items"][:n]
    doc["n"] = n
    dest.write_text(json.dumps(doc))


def test_a_small_baseline_fails_the_paired_items_minimum(tmp_path: Path) -> None:
    """10 baseline items against 600: a comparison on 1.7% of the corpus fails (exit 1);
    [canary].min_paired_fraction moves the minimum and is validated."""
    make_report(tmp_path / "cand.json")
    _subset(tmp_path / "cand.json", tmp_path / "base.json", 10)
    res = run_cli("canary", "compare", "base.json", "cand.json", cwd=tmp_path)
    assert res.code == 1, res.stderr
    lines = res.stderr.splitlines()
    assert lines[0] == "release: error: canary failed 1 of 8 checks: paired-items"
    assert lines[1] == "  paired-items: value 1.67%, threshold 90.00%"
    cfg = (REPO / "release.toml").read_text()
    (tmp_path / "release.toml").write_text(
        cfg.replace(
            '[canary]\ncorpus = "model/canary.jsonl"',
            '[canary]\ncorpus = "model/canary.jsonl"\nmin_paired_fraction = 0.01',
        )
    )
    res = run_cli("canary", "compare", "base.json", "cand.json", cwd=tmp_path)
    assert res.code == 0, res.stderr
    for bad in ("0", "1.5", '"most"'):
        (tmp_path / "release.toml").write_text(
            cfg.replace(
                '[canary]\ncorpus = "model/canary.jsonl"',
                f'[canary]\ncorpus = "model/canary.jsonl"\nmin_paired_fraction = {bad}',
            )
        )
        res = run_cli("canary", "compare", "base.json", "cand.json", cwd=tmp_path)
        assert res.code == 2, res.stderr
        assert len(res.stderr.splitlines()) == 1 and "min_paired_fraction" in res.stderr, res.stderr


def test_a_binary_corpus_is_bad_input(tmp_path: Path) -> None:
    """Not UTF-8: one line naming the file and line, exit 2 (not a traceback, not exit 1)."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b'{"id": "a", "text": "fine"}\n\x89PNG\r\n\x1a\n\xff\xfe')
    from release.errors import UsageError

    with pytest.raises(UsageError) as info:
        read_corpus(corpus)
    assert info.value.exit_code == 2
    assert (
        str(info.value)
        == "canary corpus corpus.jsonl:2: not UTF-8 text (byte offset 28); the corpus is JSONL"
    )
