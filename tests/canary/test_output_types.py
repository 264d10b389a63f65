"""The output types of the predict contract: the statistics each gets (against independent
computations), the type check on the model's outputs, the label set from the model's
config.json, and version 1 reports still read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from release.canary import checks, outputs, stats
from release.canary import report as rpt
from release.config import CanaryConfig
from release.errors import ConfigError, UsageError
from tests.fixtures.tools import run_cli


# --- Stuart-Maxwell and Holm -------------------------------------------------------------
def _stuart_maxwell_by_formula(t: np.ndarray) -> float:
    """The textbook form for K = 3 (Fleiss, Statistical Methods for Rates and Proportions):
    d_i = n_i. - n_.i, nbar_ij = (n_ij + n_ji) / 2,
    chi2 = (nbar23 d1^2 + nbar13 d2^2 + nbar12 d3^2) / (2 (nbar12 nbar23 + nbar12 nbar13 +
    nbar13 nbar23))."""
    d = t.sum(axis=1) - t.sum(axis=0)
    nb = (t + t.T) / 2
    num = nb[1, 2] * d[0] ** 2 + nb[0, 2] * d[1] ** 2 + nb[0, 1] * d[2] ** 2
    den = 2 * (nb[0, 1] * nb[1, 2] + nb[0, 1] * nb[0, 2] + nb[0, 2] * nb[1, 2])
    return float(num / den)


@pytest.mark.parametrize(
    "table",
    [
        [[50, 5, 1], [2, 40, 3], [0, 1, 30]],
        [[500, 30, 10], [12, 400, 20], [5, 8, 300]],
        [[20, 3, 9], [7, 20, 1], [2, 6, 20]],
    ],
)
def test_stuart_maxwell_matches_the_k3_formula(table: list[list[int]]) -> None:
    t = np.asarray(table)
    stat, df = stats.stuart_maxwell(t)
    assert df == 2
    assert stat == pytest.approx(_stuart_maxwell_by_formula(t), rel=1e-9)


def test_exact_stuart_maxwell_by_enumeration_and_the_chi2_tail_for_large_counts() -> None:
    t = np.asarray([[50, 5, 1], [2, 40, 3], [0, 1, 30]])
    # pair totals 7, 1, 4: enumerate every split by hand, weight Binomial(m, 1/2)
    obs = _stuart_maxwell_by_formula(t)
    p = 0.0
    for a in range(8):
        for b in range(2):
            for c in range(5):
                u = t.copy()
                u[0, 1], u[1, 0] = a, 7 - a
                u[0, 2], u[2, 0] = b, 1 - b
                u[1, 2], u[2, 1] = c, 4 - c
                if _stuart_maxwell_by_formula(u) >= obs - 1e-12:
                    p += math.comb(7, a) * math.comb(1, b) * math.comb(4, c) / 2**12
    h = stats.marginal_homogeneity(t)
    assert (h.method, h.p_value) == ("exact Stuart-Maxwell", pytest.approx(p, rel=1e-9))
    big = np.asarray([[5000, 300, 100], [120, 4000, 200], [50, 80, 3000]])
    h = stats.marginal_homogeneity(big)
    assert h.method == "Stuart-Maxwell chi2(2)"
    assert h.p_value == pytest.approx(st.chi2.sf(_stuart_maxwell_by_formula(big), 2), rel=1e-9)
    # K = 2 is exact McNemar on the discordant cells
    h = stats.marginal_homogeneity(np.asarray([[10, 3], [9, 10]]))
    assert (h.method, h.p_value) == ("exact McNemar", pytest.approx(598 / 4096))
    assert stats.marginal_homogeneity(np.diag([5, 6, 7])).p_value == 1.0


def test_holm_adjusts_step_down() -> None:
    # sorted 0.01, 0.03, 0.04, 0.5 -> x4, x3, x2, x1 = 0.04, 0.09, 0.08 -> 0.09, 0.5
    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert stats.holm([0.9, 0.9]) == [1.0, 1.0] and stats.holm([0.6, 0.01]) == [0.6, 0.02]


def test_mean_shift_test_sees_a_systematic_difference_not_noise() -> None:
    rng = np.random.default_rng(3)
    b = rng.normal(size=(400, 8))
    noisy = b + rng.normal(scale=0.05, size=b.shape)
    assert stats.mean_shift_test(b, noisy)[1] > 0.01
    moved = noisy + 0.03
    _, p = stats.mean_shift_test(b, moved)
    assert p == pytest.approx(1 / 2000)  # nothing of 1999 sign flips reaches it
    assert stats.mean_shift_test(b, b) == (0.0, 1.0)


# --- checks per type -------------------------------------------------------------------
T = checks.Thresholds()
LABELS3 = ("ROUTINE", "URGENT", "CRITICAL")


def _three(labels: list[str]) -> checks.Outputs:
    return checks.label_outputs(
        [f"i{k}" for k in range(len(labels))], LABELS3, labels, [0.95] * len(labels)
    )


def test_three_labels_unchanged_shifted_and_permuted() -> None:
    base = ["ROUTINE"] * 500 + ["URGENT"] * 300 + ["CRITICAL"] * 200
    same = checks.run_checks(_three(base), _three(base), T)
    assert all(c.ok for c in same), [c for c in same if not c.ok]
    # 40 URGENT items now CRITICAL: +4 points of CRITICAL
    moved = base[:500] + ["CRITICAL"] * 40 + base[540:]
    c = {c.name: c for c in checks.run_checks(_three(moved), _three(base), T)}
    assert not c["share-shift"].ok and c["share-shift"].value == pytest.approx(0.04)
    assert "CRITICAL share shift" in str(c["share-shift"].statistic)
    assert c["share-shift"].p_value is not None and c["share-shift"].p_value < 1e-9
    # the label order permuted (id2label rotated): every item is named wrongly
    rot = {"ROUTINE": "URGENT", "URGENT": "CRITICAL", "CRITICAL": "ROUTINE"}
    c = {c.name: c for c in checks.run_checks(_three([rot[x] for x in base]), _three(base), T)}
    assert not c["share-shift"].ok and not c["flip-rate"].ok and c["flip-rate"].value == 1.0


def test_a_changed_label_set_fails_naming_the_labels() -> None:
    base = checks.label_outputs(["a", "b"], ("x", "y"), ["x", "y"], [0.9, 0.9])
    cand = checks.label_outputs(["a", "b"], ("x", "z"), ["x", "z"], [0.9, 0.9])
    c = {c.name: c for c in checks.run_checks(cand, base, T)}
    assert not c["label-set"].ok and c["label-set"].detail == "dropped y; added z"


def _multi(on: np.ndarray) -> checks.Outputs:
    probs = np.where(on, 0.9, 0.1)
    return checks.Outputs(
        "multilabel",
        tuple(f"i{k}" for k in range(len(on))),
        ("a", "b", "c"),
        raw=probs,
        on=on,
        correct=(None,) * len(on),
    )


def test_multilabel_per_label_mcnemar_with_holm() -> None:
    rng = np.random.default_rng(1)
    on = rng.random((1000, 3)) < 0.3
    assert all(c.ok for c in checks.run_checks(_multi(on), _multi(on), T))
    cand = on.copy()
    cand[np.flatnonzero(~on[:, 2])[:40], 2] = True  # label c on for 40 more items
    c = {c.name: c for c in checks.run_checks(_multi(cand), _multi(on), T)}
    shift = c["label-shift"]
    assert not shift.ok and shift.value == pytest.approx(0.04)
    assert shift.p_value == pytest.approx(min(1.0, 3 * stats.mcnemar_exact(40, 0)))
    assert str(shift.statistic).startswith("c on-share shift")


def _scores(x: np.ndarray) -> checks.Outputs:
    return checks.Outputs("score", tuple(f"i{k}" for k in range(len(x))), raw=x)


def test_scores_wilcoxon_ks_and_median_abs_diff() -> None:
    rng = np.random.default_rng(2)
    b = rng.normal(2.0, 1.0, 1000)
    noise = b + rng.normal(0, 0.01, 1000)
    assert all(c.ok for c in checks.run_checks(_scores(noise), _scores(b), T))
    c = {c.name: c for c in checks.run_checks(_scores(noise + 0.1), _scores(b), T)}
    sd = float(np.std(b, ddof=1))
    assert not c["score-shift"].ok
    assert c["score-shift"].value == pytest.approx(float(np.median(noise + 0.1 - b)) / sd)
    assert c["score-shift"].p_value == pytest.approx(st.wilcoxon(noise + 0.1 - b).pvalue)
    assert not c["score-median-abs-diff"].ok or c["score-median-abs-diff"].value > 0.09
    scrambled = rng.permutation(b)  # same distribution, unrelated item by item
    c = {c.name: c for c in checks.run_checks(_scores(scrambled), _scores(b), T)}
    assert c["score-ks"].ok and not c["score-median-abs-diff"].ok


def _vectors(x: np.ndarray) -> checks.Outputs:
    return checks.Outputs("vector", tuple(f"i{k}" for k in range(len(x))), raw=x)


def test_vectors_cosine_floor_and_mean_shift() -> None:
    rng = np.random.default_rng(4)
    b = rng.normal(size=(500, 16))
    near = b + rng.normal(scale=0.01, size=b.shape)
    assert all(c.ok for c in checks.run_checks(_vectors(near), _vectors(b), T))
    far = b + rng.normal(scale=0.3, size=b.shape)
    c = {c.name: c for c in checks.run_checks(_vectors(far), _vectors(b), T)}
    cos = stats.cosine(b, far)
    assert not c["cosine-floor"].ok and c["cosine-floor"].value == pytest.approx(
        float(np.percentile(cos, 5))
    )
    other_dim = checks.run_checks(_vectors(b[:, :8]), _vectors(b), T)
    assert [(x.name, x.ok) for x in other_dim][-1] == ("vector-dim", False)


# --- the type check and the label set ------------------------------------------------------
def test_labels_come_from_config_json_id2label(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"id2label": {"1": "URGENT", "0": "ROUTINE", "2": "CRITICAL"}})
    )
    out = outputs.spec(CanaryConfig(), tmp_path)
    assert (out.type, out.labels) == ("label", ["ROUTINE", "URGENT", "CRITICAL"])
    # [canary].labels wins over the model's
    out = outputs.spec(CanaryConfig(labels=["no", "yes"]), tmp_path)
    assert out.labels == ["no", "yes"]
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError) as e:
        outputs.spec(CanaryConfig(), tmp_path)
    assert str(e.value) == (
        "[canary].labels: not set and the model has no config.json id2label; [canary].output = "
        '"label" needs the label set, in the model\'s order'
    )


def test_the_first_output_of_another_type_is_named() -> None:
    out = rpt.Output(type="label", labels=list(LABELS3))
    ok = {"label": "URGENT", "probs": [0.1, 0.7, 0.2]}
    spec, items = outputs.to_items(out, ["t1"], [ok], [None], "image sha256:ab")
    assert items[0].confidence == 0.7 and spec == out
    with pytest.raises(ConfigError) as e:
        outputs.to_items(
            out, ["t1", "t2"], [ok, {"label": "POSITIVE", "confidence": 0.9}], [None, None], "m"
        )
    assert e.value.exit_code == 2
    assert str(e.value) == (
        'm: item t2: [canary].output = "label" expects a label of ROUTINE, URGENT, CRITICAL '
        "with a confidence or probs; the model returned label 'POSITIVE' (fields: confidence, label)"
    )
    vec = rpt.Output(type="vector")
    spec, _ = outputs.to_items(vec, ["a"], [{"vector": [1.0, 2.0]}], [None], "m")
    assert spec.dim == 2
    with pytest.raises(
        ConfigError, match=r"^m: item b: .* of dimension 2; the model returned vector a list of 3"
    ):
        outputs.to_items(
            vec, ["a", "b"], [{"vector": [1, 2]}, {"vector": [1, 2, 3]}], [None] * 2, "m"
        )
    with pytest.raises(ConfigError, match=r"^m: item a: \[canary\].output = \"score\""):
        outputs.to_items(rpt.Output(type="score"), ["a"], [{"label": "x"}], [None], "m")


def test_expected_is_typed_like_the_output(tmp_path: Path) -> None:
    from release.canary.offline import check_corpus, read_corpus

    corpus = tmp_path / "tickets.jsonl"
    corpus.write_text(
        '{"id": "a", "text": "x", "expected": "URGENT"}\n'
        '{"id": "b", "text": {"subject": "s", "body": "y"}, "expected": "POSITIVE"}\n'
    )
    items = read_corpus(corpus).items
    assert items[1].text == {"subject": "s", "body": "y"}
    with pytest.raises(UsageError) as e:
        check_corpus(items, rpt.Output(type="label", labels=list(LABELS3)), "corpus")
    assert str(e.value) == (
        "tickets.jsonl:2: expected must be one of ROUTINE, URGENT, CRITICAL, got 'POSITIVE'"
    )


# --- version 1 reports ------------------------------------------------------------------------
def v1_report(r: rpt.CanaryReport) -> dict[str, object]:
    """A version 2 label report of the example's binary model written as version 1 was."""
    doc = r.to_json()
    for k in ("output", "baseline_label_shares", "score_histogram", "cosine_histogram"):
        doc.pop(k)
    doc["schema_version"] = 1
    doc["confidence_histogram"].pop("baseline_counts")
    doc["items"] = [
        {
            "id": i["id"],
            "label": i["label"],
            "confidence": i["confidence"],
            "logits": None,
            "expected": i.get("expected"),
        }
        for i in doc["items"]
    ]
    return doc


def test_a_version_1_report_is_read_and_compared(tmp_path: Path) -> None:
    from tests.canary.test_compare import make_report

    base = make_report(tmp_path / "base.json")
    (tmp_path / "v1.json").write_text(json.dumps(v1_report(base)))
    old = rpt.read_report(tmp_path / "v1.json")
    assert (old.output.type, old.labels) == ("label", ["NEGATIVE", "POSITIVE"])
    assert (
        old.sha256 == __import__("hashlib").sha256((tmp_path / "v1.json").read_bytes()).hexdigest()
    )
    make_report(tmp_path / "cand.json", flip_neg=30)
    res = run_cli("canary", "compare", "v1.json", "cand.json", "--json", cwd=tmp_path)
    assert res.code == 1, res.stderr
    assert json.loads(res.stdout)["failed_checks"] == [
        "share-shift",
        "confident-flips",
        "accuracy-drop",
    ]
    assert run_cli("canary", "compare", "v1.json", "base.json", cwd=tmp_path).code == 0
    bad = v1_report(base)
    bad["items"][0]["label"] = 3  # type: ignore[index]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    res = run_cli("canary", "compare", "bad.json", "base.json", cwd=tmp_path)
    assert res.code == 2
    assert res.stderr.strip() == (
        "release: error: bad.json: not a canary report (version 1): items/0/label: 3 is not of "
        "type 'string' (see attestations/canary-report-v1.schema.json)"
    )
    # the labels are the report's own (its label_shares keys): another one is refused
    other = v1_report(base)
    other["items"][0]["label"] = "MAYBE"  # type: ignore[index]
    (tmp_path / "other.json").write_text(json.dumps(other))
    res = run_cli("canary", "compare", "other.json", "base.json", cwd=tmp_path)
    assert res.code == 2
    assert res.stderr.startswith("release: error: other.json: ")
    assert "MAYBE" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_version_1_report_is_attested_as_version_1(tmp_path: Path) -> None:
    from release.attest.statements import load_predicate
    from release.evidence import CANARY, CANARY_V1
    from tests.canary.test_compare import make_report

    base = make_report(tmp_path / "base.json")
    (tmp_path / "v1.json").write_text(json.dumps(v1_report(base)))
    assert load_predicate("canary", tmp_path / "v1.json")[0] == CANARY_V1
    assert load_predicate("canary", tmp_path / "base.json")[0] == CANARY
    assert CANARY.endswith("/canary-report/v2") and CANARY_V1.endswith("/canary-report/v1")
