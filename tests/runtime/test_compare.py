import numpy as np
import pytest

from capsdeploy.runtime.compare import DEFAULT_TOLERANCES, Tolerances, compare_outputs, error_stats

TIGHT = Tolerances(atol=1e-3, rtol=0.0, min_top1_agreement=1.0, max_accuracy_drop=0.0)


def test_error_statistics_by_hand():
    ref = np.array([[1.0, 2.0], [0.5, 0.0]])
    cand = np.array([[1.0, 2.2], [0.4, 0.0]])
    s = error_stats(ref, cand, TIGHT)
    assert s["max_abs_error"] == pytest.approx(0.2)
    assert s["max_rel_error"] == pytest.approx(0.2)  # 0.1 / 0.5 and 0.2 / 2.0
    assert s["mean_abs_error"] == pytest.approx(0.3 / 4)
    assert s["elements_out_of_tolerance"] == 2 and s["passed"] is False
    # Row 1 turns: cos = (1 + 4.4) / (sqrt(5) sqrt(5.84)); row 2 is only scaled: cos = 1.
    assert s["min_cosine_similarity"] == pytest.approx(5.4 / np.sqrt(5 * 5.84))
    assert s["mean_cosine_similarity"] == pytest.approx((5.4 / np.sqrt(5 * 5.84) + 1) / 2)


def test_top1_and_accuracy_verdicts():
    ref = {"scores": np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])}
    flipped = {"scores": np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])}
    labels = np.array([0, 1, 0])
    same = compare_outputs(ref, ref, TIGHT, labels)
    assert same and same.passed and same.top1_agreement == 1.0 and same.reference_accuracy == 1.0
    r = compare_outputs(ref, flipped, DEFAULT_TOLERANCES["int8"], labels)
    assert r.top1_agreement == pytest.approx(2 / 3)
    assert r.candidate_accuracy == pytest.approx(2 / 3)
    assert not r and not r.passed and len(r.failures) == 2  # agreement and accuracy drop
    assert "scores" in r.outputs and "passed" not in r.outputs["scores"]  # int8: not judged
    d = r.to_dict()  # the JSON shape reports carry
    assert d["passed"] is False and d["num_samples"] == 3 and d["candidate_accuracy"] == pytest.approx(2 / 3)


def test_nothing_compared_is_a_failure_not_a_pass():
    ref = {"scores": np.ones((4, 10))}
    r = compare_outputs(ref, {"logits": np.ones((4, 10))}, TIGHT)
    assert not r and "no output in common" in r.failures[0]
    r = compare_outputs({"scores": np.ones((0, 10))}, {"scores": np.ones((0, 10))}, TIGHT)
    assert not r and r.failures == ["zero samples compared"]
    r = compare_outputs(ref, {"scores": np.ones((3, 10))}, TIGHT)
    assert not r and "shape" in r.failures[0]


def test_overrides_and_per_precision_ordering():
    t = DEFAULT_TOLERANCES["fp32"].with_overrides(atol=1e-2)
    assert t.atol == 1e-2 and t.rtol == DEFAULT_TOLERANCES["fp32"].rtol
    assert DEFAULT_TOLERANCES["fp32"].atol < DEFAULT_TOLERANCES["fp16"].atol
    assert DEFAULT_TOLERANCES["int8"].atol is None
