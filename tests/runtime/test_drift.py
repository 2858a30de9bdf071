"""DriftMonitor: binned statistics against hand-computed values, the detector contract, restart, report size, and
detection on the synthetic drift scenarios against the reference of a healthy training set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.data.scenarios import generate_scenario
from edgekit.data.synth import CLASSES, generate_dataset, synthesize
from edgekit.errors import ConfigError, DataError
from edgekit.features import FeatureSpec, extract, feature_names, frame
from edgekit.runtime.drift import DriftMonitor
from edgekit.runtime.drift_stats import ks_binned, psi, tail_excess_from_quantiles, w1_binned
from edgekit.train.reference import reference_statistics

SPEC = FeatureSpec(sample_rate=12000.0, window=1024, hop=512)
NAMES = feature_names(SPEC)
REPORT = 128  # windows per report, as benchmarks/drift.py and the pipeline's default cadence (5.5 s)


# --- binned statistics --------------------------------------------------------------------------------------

def test_psi_matches_hand_computed_values():
    # By hand: (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5 = 0.2746531
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.2746531, abs=1e-7)
    # An empty bin counts as 1e-4: (1e-4 - 0.5) ln(1e-4 / 0.5) + 0.5 ln 2 = 4.2577448 + 0.3465736 = 4.6043184
    assert psi([0.5, 0.5], [0.0, 1.0]) == pytest.approx(4.6043184, abs=1e-6)
    assert psi([0.1] * 10, [0.1] * 10) == 0.0


def test_psi_agrees_with_numpy_formula_on_random_histograms():
    rng = np.random.default_rng(1)
    for _ in range(20):
        e, a = rng.dirichlet(np.ones(10)), rng.dirichlet(np.ones(10))
        assert psi(e, a) == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-9)


def test_ks_binned_is_largest_cdf_gap_at_the_edges():
    # CDFs at the two edges: 0.2 vs 0.5 and 0.5 vs 0.8, so 0.3 (by hand)
    assert ks_binned([0.2, 0.3, 0.5], [0.5, 0.3, 0.2]) == pytest.approx(0.3)
    assert ks_binned([1.0], [1.0]) == 0.0


def test_w1_binned_exact_for_a_shifted_uniform():
    # Uniform[0, 100] against Uniform[5, 105] on the decile edges: W1 = 5 exactly. By hand: interior CDF gap 0.05
    # over 80 units = 4; tails E[(10 - x)+] 0.5 vs 0.125 and E[(x - 90)+] 0.5 vs 1.125 add 0.375 + 0.625.
    edges = np.arange(10.0, 100.0, 10.0)
    shifted = np.array([0.05] + [0.1] * 8 + [0.15])
    assert w1_binned(edges, np.full(10, 0.1), shifted, (0.5, 0.5), (0.125, 1.125)) == pytest.approx(5.0)


def test_w1_binned_close_to_exact_w1_of_samples():
    """Numpy reference: W1 of two equal-size samples is the mean gap of their sorted values."""
    rng = np.random.default_rng(2)
    ref = rng.normal(size=20000)
    for cur in (rng.normal(0.7, 1.0, 20000), rng.normal(0.0, 1.6, 20000), rng.gamma(2.0, 1.0, 20000)):
        exact = float(np.mean(np.abs(np.sort(ref) - np.sort(cur))))
        edges = np.quantile(ref, np.linspace(0, 1, 51)[1:-1])
        frac = [np.bincount(np.searchsorted(edges, x, side="right"), minlength=50) / x.size for x in (ref, cur)]
        tails = [(np.maximum(edges[0] - x, 0).mean(), np.maximum(x - edges[-1], 0).mean()) for x in (ref, cur)]
        assert w1_binned(edges, frac[0], frac[1], tails[0], tails[1]) == pytest.approx(exact, rel=0.05)


def test_tail_excess_from_quantiles_of_a_uniform():
    # Uniform[0, 100]: E[(10 - x)+] = integral_0^10 x / 100 dx = 0.5, and the same for the upper tail (by hand).
    low, high = tail_excess_from_quantiles(10.0, 90.0, 0.1, 0.9, [0.01, 0.05, 0.95, 0.99], [1.0, 5.0, 95.0, 99.0],
                                           0.0, 100.0)
    assert (low, high) == pytest.approx((0.5, 0.5))


# --- the detector contract ----------------------------------------------------------------------------------

def gaussian_reference(n_features: int = 3, seed: int = 0, with_model: bool = True) -> tuple[dict, list[str]]:
    rng = np.random.default_rng(seed)
    names = [f"f{i}" for i in range(n_features)]
    x = rng.normal(size=(4000, n_features))
    labels = rng.integers(0, len(CLASSES), 4000)
    probabilities = rng.dirichlet(np.ones(len(CLASSES)), 500) if with_model else None
    scores = rng.gamma(2.0, 1.0, 500) if with_model else None
    return reference_statistics(x, names, labels, CLASSES, probabilities, scores), names


def feed(monitor: DriftMonitor, rows: np.ndarray, rng: np.random.Generator | None = None) -> list[dict]:
    """Feed ``rows`` window by window (with model outputs when ``rng`` is given), reporting every REPORT windows."""
    reports = []
    for i, row in enumerate(rows):
        if rng is None:
            monitor.update(row)
        else:
            monitor.update(row, int(rng.integers(len(CLASSES))), float(rng.uniform(0.5, 1)), float(rng.gamma(2, 1)))
        if (i + 1) % REPORT == 0:
            reports.append(monitor.report())
    return reports


def test_constant_stream_never_drifts():
    ref, names = gaussian_reference()
    monitor = DriftMonitor(ref, names)
    # All mass in one decile bin (PSI ~ 8) but W1 ~ 0.8 std: a distribution narrower than the reference is not drift.
    reports = feed(monitor, np.zeros((20 * REPORT, 3)))
    assert reports[-1]["psi_max"] > 1.0
    assert not any(r["drift"] for r in reports) and not monitor.drift_detected


def test_stationary_stream_never_drifts_and_a_step_is_found_within_three_reports():
    ref, names = gaussian_reference()
    rng = np.random.default_rng(3)
    monitor = DriftMonitor(ref, names)
    before = feed(monitor, rng.normal(size=(50 * REPORT, 3)))
    assert not any(r["drift"] for r in before)
    step = rng.normal(size=(3 * REPORT, 3)) + [0.0, 0.0, 4.0]
    after = feed(monitor, step)
    assert [r["drift"] for r in after] == [False, True, True]  # k=2 of n=3: the second report over confirms
    assert after[-1]["worst"][0][0] == "f2" and after[-1]["alarms"] == 1
    assert monitor.drift_detected
    back = feed(monitor, rng.normal(size=(3 * REPORT, 3)))
    assert [r["drift"] for r in back] == [True, False, False]  # clears when fewer than k of the last n are over


def test_batch_and_single_updates_agree():
    ref, names = gaussian_reference()
    rows = np.random.default_rng(4).normal(size=(300, 3)) * 1.5
    one, many = DriftMonitor(ref, names), DriftMonitor(ref, names)
    for row in rows:
        one.update(row)
    assert one.report() == many.update_many(rows).report()


def test_short_reports_and_bad_windows_do_not_vote():
    ref, names = gaussian_reference()
    monitor = DriftMonitor(ref, names, min_windows=32)
    rows = np.full((10, 3), 9.0)
    rows[3, 1] = np.nan
    report = monitor.update_many(rows).report()
    assert (report["windows"], report["skipped"], report["voted"], report["of"]) == (9, 1, False, 0)
    assert monitor.statistics()["features"]["f0"]["w1_std"] > 5


def test_predictions_and_anomaly_scores_are_summarised():
    ref, names = gaussian_reference()
    rng = np.random.default_rng(5)
    monitor = DriftMonitor(ref, names)
    scores = rng.gamma(2.0, 1.0, 10000)  # more than the kept buffer, so the p95 comes from an even subsample
    monitor.update_many(rng.normal(size=(10000, 3)), np.zeros(10000, int), np.full(10000, 0.9), scores)
    report = monitor.report()
    assert report["pred"] == {"normal": 1.0} and report["pred_psi"] > 1.0 and report["conf"] == 0.9
    assert report["conf_ref"] == pytest.approx(ref["mean_confidence"], rel=1e-2)
    assert report["anom_p95"] == pytest.approx(np.quantile(scores, 0.95), rel=0.03)
    assert report["anom_over_p99"] == pytest.approx(np.mean(scores > ref["anomaly_score_quantiles"][-1]), abs=1e-3)
    with pytest.raises(DataError, match="out of range 0..6"):
        monitor.update(np.zeros(3), predicted_class=7)


def test_report_is_a_few_hundred_bytes_of_json():
    ref, names = gaussian_reference(len(NAMES))
    ref["features"] = {n: v for n, v in zip(NAMES, ref["features"].values())}
    rng = np.random.default_rng(6)
    monitor = DriftMonitor(ref, NAMES)
    reports = feed(monitor, rng.normal(size=(2 * REPORT, len(NAMES))) * 3, rng)
    size = max(len(json.dumps(r, separators=(",", ":"))) for r in reports)
    assert size < 600, reports[-1]


@pytest.mark.parametrize("kwargs, message", [
    ({"psi_threshold": 0}, "psi_threshold must be a positive number"),
    ({"effect_threshold": float("nan")}, "effect_threshold must be a positive number"),
    ({"k": 0}, "k must be a positive integer"),
    ({"n": 2.5}, "n must be a positive integer"),
    ({"k": 4, "n": 3}, "choose k between 1 and n=3"),
    ({"min_windows": True}, "min_windows must be a positive integer"),
])
def test_invalid_parameters_name_the_valid_values(kwargs, message):
    ref, names = gaussian_reference()
    with pytest.raises(ConfigError, match=message):
        DriftMonitor(ref, names, **kwargs)


def test_reference_and_rows_must_match_the_feature_names():
    ref, names = gaussian_reference()
    with pytest.raises(DataError, match="lack feature"):
        DriftMonitor(ref, names + ["band_0_750hz"])
    with pytest.raises(DataError, match=r"shape \[m, 3\]"):
        DriftMonitor(ref, names).update(np.zeros(4))


# --- restart ------------------------------------------------------------------------------------------------

def test_restart_mid_report_gives_the_decisions_of_an_uninterrupted_run():
    ref, names = gaussian_reference()
    rng = np.random.default_rng(7)
    rows = np.concatenate([rng.normal(size=(6 * REPORT, 3)), rng.normal(size=(6 * REPORT, 3)) + [0, 3.0, 0]])
    outputs = np.random.default_rng(8)
    whole = feed(DriftMonitor(ref, names, k=2, n=4), rows, outputs)
    cut = 7 * REPORT + 50  # mid-report, just after the change: history and pending histograms both matter
    first = DriftMonitor(ref, names, k=2, n=4)
    outputs = np.random.default_rng(8)
    part = feed(first, rows[:cut], outputs)
    state = json.loads(json.dumps(first.state_dict()))  # what the pipeline writes to --state-dir
    second = DriftMonitor.from_state(ref, names, state)
    for i in range(cut, len(rows)):
        second.update(rows[i], int(outputs.integers(len(CLASSES))), float(outputs.uniform(0.5, 1)),
                      float(outputs.gamma(2, 1)))
        if (i + 1) % REPORT == 0:
            part.append(second.report())
    assert part == whole and any(r["drift"] for r in whole)
    assert second.drift_detected and second.statistics()["history"] == whole[-1]["of"] * [True]


def test_state_from_another_reference_or_other_parameters_is_refused():
    ref, names = gaussian_reference()
    state = DriftMonitor(ref, names).state_dict()
    with pytest.raises(DataError, match="another bundle"):
        DriftMonitor(gaussian_reference(seed=1)[0], names).load_state_dict(state)
    with pytest.raises(ConfigError, match="from_state"):
        DriftMonitor(ref, names, k=3).load_state_dict(state)
    with pytest.raises(DataError, match="version"):
        DriftMonitor(ref, names).load_state_dict({"version": 99})


# --- the synthetic drift scenarios ----------------------------------------------------------------------------

def features_of(signal: np.ndarray) -> np.ndarray:
    return extract(np.ascontiguousarray(frame(signal, SPEC.window, SPEC.hop)), SPEC)


@pytest.fixture(scope="module")
def healthy_reference() -> dict:
    """A healthy training set as in benchmarks/drift.py: 16 recordings x 10 s over loads 0-3, seed 100."""
    ds = generate_dataset("motor", seed=100, recordings_per_class=16, duration_s=10.0, classes=["normal"])
    features = np.concatenate([features_of(r.signal) for r in ds.recordings])
    return reference_statistics(features, NAMES, np.zeros(len(features), dtype=int), ds.classes)


def first_alarm(reference: dict, features: np.ndarray) -> int | None:
    """Window index (end of the report) at which drift was first declared, reporting every REPORT windows."""
    monitor = DriftMonitor(reference, NAMES)
    for start in range(0, len(features) - REPORT + 1, REPORT):
        if monitor.update_many(features[start:start + REPORT]).report()["drift"]:
            return start + REPORT - 1
    return None


# Stated bounds, in windows after the first window holding a post-change sample (42.7 ms each). Abrupt changes:
# three reports (16.4 s), the most k=2 of n=3 can take when the change falls early in a report. fault_growth
# starts from nothing and grows over the 30 s after onset, so it is found once it is visible: within 512 windows
# (21.8 s, severity < 0.55). Measured on seeds 0-3 in benchmarks/drift.md; this seed: 193, 321, 449.
BOUNDS = {"gain_change": 3 * REPORT, "resonance_shift": 3 * REPORT, "fault_growth": 4 * REPORT}
SPEED_NOT_FOUND = ("a 15% speed change moves the default features by under one reference std, inside the spread "
                   "of healthy machines (benchmarks/drift.md); the effect-size rule cannot see it")


@pytest.mark.parametrize("name", [
    "gain_change", "resonance_shift", "fault_growth",
    pytest.param("speed_change", marks=pytest.mark.xfail(strict=True, reason=SPEED_NOT_FOUND)),
])
def test_scenario_change_is_flagged_within_the_stated_windows(healthy_reference, name):
    rec = generate_scenario(name, "motor", seed=4, duration_s=60.0).recordings[0]
    features = features_of(rec.signal)
    change = -(-(rec.meta["change_sample"] - SPEC.window + 1) // SPEC.hop)
    alarm = first_alarm(healthy_reference, features)
    assert alarm is not None, f"{name} was not flagged"
    assert change <= alarm <= change + BOUNDS.get(name, 3 * REPORT), (name, change, alarm)


def test_long_stationary_stream_raises_no_alarm(healthy_reference):
    # 6 minutes (8,400 windows, 65 reports) of a healthy machine the training set never saw; benchmarks/drift.py
    # runs 80 minutes more.
    features = features_of(synthesize("normal", "motor", load=2, duration_s=360.0, rng=2024))
    assert first_alarm(healthy_reference, features) is None


def test_a_class_no_longer_predicted_does_not_hold_the_alarm():
    """Per-class drift decides on the classes seen now; a class the model stopped predicting keeps no old alarm."""
    from edgekit.runtime.drift_by_class import ClassConditionalDrift
    from edgekit.train.reference import reference_statistics

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 1000)
    train = rng.normal(size=(2000, 2)) + np.where(labels[:, None] == 1, 10.0, 0.0)
    monitor = ClassConditionalDrift(reference_statistics(train, ["a", "b"], labels, ["c0", "c1"]), ["a", "b"],
                                    ["c0", "c1"])
    for _ in range(3):  # class c0 moves by 5 of its own std in b: far off for c0, inside the pooled spread
        report = monitor.update_many(rng.normal(size=(128, 2)) + [0.0, 5.0], np.zeros(128, int)).report()
    assert monitor.drift_detected and report["class"] == "c0" and not report["population"]["drift"]
    for _ in range(3):  # then only c1, as trained
        monitor.update_many(rng.normal(size=(128, 2)) + 10.0, np.ones(128, int)).report()
    assert not monitor.drift_detected
