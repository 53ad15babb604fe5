"""Calibration (ECE, temperature scaling) and selective prediction, on synthetic predictors whose
calibration is known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepser.evaluation.calibration import (
    apply_temperature,
    calibration_summary,
    coverage_table,
    expected_calibration_error,
    fit_temperature,
    plot_coverage,
    plot_reliability,
    reliability_bins,
    selective_curve,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_CLASSES = 4


def calibrated(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A perfectly calibrated predictor: confidence c, correct with probability c, the remaining
    mass spread evenly over the other classes, a wrong label drawn uniformly among them (so the
    whole probability vector, not just its top label, is the true label distribution)."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.3, 0.98, n)
    pred = rng.integers(0, N_CLASSES, n)
    proba = np.repeat(((1 - conf) / (N_CLASSES - 1))[:, None], N_CLASSES, axis=1)
    proba[np.arange(n), pred] = conf
    correct = rng.random(n) < conf
    wrong = (pred + rng.integers(1, N_CLASSES, n)) % N_CLASSES
    return proba, np.where(correct, pred, wrong)


@pytest.fixture(scope="module")
def cal() -> tuple[np.ndarray, np.ndarray]:
    return calibrated()


@pytest.fixture(scope="module")
def over(cal) -> tuple[np.ndarray, np.ndarray]:
    """Same labels, probabilities sharpened (over-confident): true temperature 1 / 0.4 = 2.5."""
    proba, y = cal
    return apply_temperature(proba, 0.4), y


# ----------------------------------------------------------------------------------- calibration


def test_calibrated_predictor_has_small_ece_and_unit_temperature(cal):
    proba, y = cal
    assert expected_calibration_error(proba, y) < 0.02
    assert fit_temperature(proba, y) == pytest.approx(1.0, abs=0.08)


def test_overconfident_predictor_is_detected_and_fixed(over):
    proba, y = over
    ece = expected_calibration_error(proba, y)
    assert ece > 0.05
    t = fit_temperature(proba, y)
    assert t > 1
    assert t == pytest.approx(2.5, rel=0.15)
    fixed = expected_calibration_error(apply_temperature(proba, t), y)
    assert fixed < 0.03
    assert fixed < ece


def test_ece_by_hand():
    # two bins: [0, .5) holds conf .2 (wrong) and .4 (right); [.5, 1] holds 1.0 (right)
    proba = np.array([[0.2, 0.2, 0.2, 0.2, 0.2], [0.4, 0.3, 0.3, 0.0, 0.0], [1.0, 0, 0, 0, 0]])
    y = np.array([1, 0, 0])
    # bin 0: acc .5, conf .3 -> 2/3 * .2; bin 1: acc 1, conf 1 -> 0
    assert expected_calibration_error(proba, y, n_bins=2) == pytest.approx(2 / 3 * 0.2)
    bins = reliability_bins(proba, y, n_bins=2)
    assert bins["count"] == [2, 1]  # a confidence of exactly 1.0 goes in the last bin
    assert bins["confidence"][1] == pytest.approx(1.0)


def test_apply_temperature_keeps_argmax_and_normalises():
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(5), size=500).astype(np.float32)
    for t in (0.1, 0.5, 1.0, 3.0, 20.0):
        out = apply_temperature(proba, t)
        assert out.dtype == np.float64
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-12)
        np.testing.assert_array_equal(out.argmax(axis=1), proba.argmax(axis=1))
    np.testing.assert_allclose(apply_temperature(proba, 1.0), proba, atol=1e-6)
    soft = apply_temperature(proba, 3.0).max(axis=1)
    assert np.all(soft <= proba.max(axis=1) + 1e-9)  # T > 1 softens


def test_fit_temperature_degenerate_inputs():
    assert fit_temperature(np.empty((0, 3)), np.empty(0, dtype=int)) == 1.0
    proba = np.array([[0.9, 0.1], [0.6, 0.4]])
    assert fit_temperature(proba, np.array([0, 0])) == 1.0


def test_reliability_bins_counts_and_empty_bins(cal):
    proba, y = cal
    bins = reliability_bins(proba, y, n_bins=10)
    assert len(bins["edges"]) == 11 and bins["edges"][0] == 0.0 and bins["edges"][-1] == 1.0
    assert sum(bins["count"]) == len(y)
    # confidences are drawn from [0.3, 0.98]: the first three bins are empty
    assert bins["count"][:3] == [0, 0, 0]
    assert bins["confidence"][0] is None and bins["accuracy"][0] is None
    for lo, hi, c in zip(
        bins["edges"][3:], bins["edges"][4:], bins["confidence"][3:], strict=False
    ):
        assert lo <= c <= hi


def test_calibration_summary_fits_on_validation_only(over):
    proba_test, y_test = over
    # validation from a differently distorted predictor (too soft: true temperature 0.5)
    proba_val, y_val = calibrated(n=8000, seed=7)
    proba_val = apply_temperature(proba_val, 2.0)
    summary = calibration_summary(proba_test, y_test, proba_val, y_val)
    assert summary["temperature"] == pytest.approx(0.5, rel=0.15)  # follows validation, not 2.5
    assert summary["n_fit"] == 8000 and summary["n"] == len(y_test)
    assert summary["ece"] == pytest.approx(expected_calibration_error(proba_test, y_test))
    # the wrong-way temperature makes the over-confident test predictions worse
    assert summary["ece_calibrated"] > summary["ece"]
    assert summary["nll_calibrated"] > summary["nll"]

    # validation from the same distortion: calibration helps
    proba_same, y_same = calibrated(n=8000, seed=8)
    good = calibration_summary(proba_test, y_test, apply_temperature(proba_same, 0.4), y_same)
    assert good["temperature"] == pytest.approx(2.5, rel=0.15)
    assert good["ece_calibrated"] < 0.03 < good["ece"]
    assert good["nll_calibrated"] < good["nll"]

    none = calibration_summary(proba_test, y_test, np.empty((0, N_CLASSES)), np.empty(0, int))
    assert none["temperature"] == 1.0 and none["n_fit"] == 0
    assert none["ece_calibrated"] == pytest.approx(none["ece"], abs=1e-9)


# --------------------------------------------------------------------------- selective prediction


def test_selective_curve(cal):
    proba, y = cal
    curve = selective_curve(proba, y, n_classes=N_CLASSES)
    assert len(curve["coverage"]) == 101
    assert curve["coverage"][-1] == 1.0
    plain = float(np.mean(proba.argmax(axis=1) == y))
    assert curve["accuracy"][-1] == pytest.approx(plain)
    i20 = curve["coverage"].index(0.2)
    assert curve["accuracy"][i20] > curve["accuracy"][-1] + 0.1
    assert curve["ua"][i20] > curve["ua"][-1]
    assert all(a >= b for a, b in zip(curve["threshold"], curve["threshold"][1:], strict=False))
    assert curve["threshold"][-1] == pytest.approx(proba.max(axis=1).min())


def test_selective_curve_small_by_hand():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]])
    y = np.array([0, 0, 1, 1])
    curve = selective_curve(proba, y)
    assert curve["coverage"] == [0.25, 0.5, 0.75, 1.0]
    assert curve["accuracy"] == pytest.approx([1.0, 0.5, 1 / 3, 0.5])
    # k=2: labels {0, 0}, recall of class 0 = 1/2; k=3: class 0 1/2, class 1 0/1
    assert curve["ua"] == pytest.approx([1.0, 0.5, 0.25, 0.5])
    assert curve["threshold"] == pytest.approx([0.9, 0.8, 0.6, 0.55])


def test_coverage_table(cal):
    proba, y = cal
    table = coverage_table(proba, y)
    assert [row["min_confidence"] for row in table] == [0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    coverage = [row["coverage"] for row in table]
    assert coverage[0] == 1.0
    assert all(a >= b for a, b in zip(coverage, coverage[1:], strict=False))
    assert table[0]["accuracy"] == pytest.approx(np.mean(proba.argmax(axis=1) == y))
    assert table[-1]["accuracy"] > table[0]["accuracy"]
    empty = coverage_table(proba, y, thresholds=(0.99,))[0]
    assert empty["coverage"] == 0.0 and empty["accuracy"] is None and empty["ua"] is None


# ----------------------------------------------------------------------------------------- plots


def test_plots_write_png(tmp_path: Path, over):
    proba, y = over
    small = slice(0, 2000)
    curves = {
        "raw": (proba[small], y[small]),
        "calibrated $T$": (apply_temperature(proba[small], 2.5), y[small]),
    }
    out = plot_reliability(curves, tmp_path / "rel.png", "Reliability $x$")
    assert out == tmp_path / "rel.png"
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 1000
    out = plot_coverage(curves, tmp_path / "cov.png", "Coverage")
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 1000


# ------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("proba", "y", "match"),
    [
        (np.array([0.5, 0.5]), np.array([0, 1]), "2-D"),
        (np.array([[0.5, 0.5]]), np.array([2]), r"\[0, 2\)"),
        (np.array([[0.5, 0.5]]), np.array([-1]), r"\[0, 2\)"),
        (np.array([[0.5, 0.5], [0.3, 0.7]]), np.array([0]), "rows"),
        (np.array([[np.nan, 0.5]]), np.array([0]), "non-finite"),
        (np.array([[np.inf, 0.5]]), np.array([0]), "non-finite"),
        (np.array([[0.5, 0.5]]), np.array([0.5]), "integer"),
        (np.array([[0.5, 0.5]]), np.array(["a"]), "integer"),
        (np.array([[1.5, -0.5]]), np.array([0]), r"\[0, 1\]"),
    ],
)
def test_invalid_inputs(proba, y, match):
    for fn in (expected_calibration_error, reliability_bins, fit_temperature, selective_curve):
        with pytest.raises(ValueError, match=match):
            fn(proba, y)
    with pytest.raises(ValueError, match=match):
        coverage_table(proba, y)


def test_invalid_parameters():
    proba, y = np.array([[0.7, 0.3], [0.4, 0.6]]), np.array([0, 1])
    for n_bins in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n_bins"):
            expected_calibration_error(proba, y, n_bins=n_bins)
        with pytest.raises(ValueError, match="n_bins"):
            reliability_bins(proba, y, n_bins=n_bins)
    for t in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            apply_temperature(proba, t)
    with pytest.raises(ValueError, match="n_classes"):
        selective_curve(proba, y, n_classes=3)
    with pytest.raises(ValueError, match="classes"):
        calibration_summary(proba, y, np.array([[0.2, 0.3, 0.5]]), np.array([2]))
    assert np.isnan(expected_calibration_error(np.empty((0, 2)), np.empty(0, int)))
