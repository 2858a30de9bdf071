"""Features of synthetic physical signals, and the reference's steps against scipy as an independent third check."""

import numpy as np
import pytest
import scipy.signal
import scipy.stats

from edgekit.bearing import BearingGeometry
from edgekit.features import FeatureSpec, extract, feature_names, frame, reference
from feature_checks import assert_matches_reference

SPEC = FeatureSpec(sample_rate=12000.0, window=1024)


def named(values: np.ndarray, spec: FeatureSpec) -> dict[str, np.ndarray]:
    return dict(zip(feature_names(spec), values.T))


@pytest.mark.parametrize("freq", [97.0, 1234.5, 3375.0, 5900.2])
def test_sine_dominant_frequency_band_and_levels(freq):
    rng = np.random.default_rng(11)
    t = np.arange(8 * SPEC.window) / SPEC.sample_rate
    signal = 2.0 * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    windows = frame(signal.astype(np.float32), SPEC.window, SPEC.hop)
    f = named(extract(windows, SPEC), SPEC)
    bin_hz = SPEC.sample_rate / SPEC.window
    assert np.all(np.abs(f["spec_dominant"] - freq) <= bin_hz)
    bands = np.column_stack([v for k, v in f.items() if k.startswith("band_")])
    home = np.searchsorted(SPEC.band_edges, freq, side="right") - 1
    assert np.all(bands[:, home] > 0.98 * bands.sum(axis=1))
    assert np.all(np.abs(bands.sum(axis=1) - 2.0) < 0.05)  # sum P ~ variance = A**2 / 2
    assert np.all(np.abs(f["time_peak"] - 2.0) < 0.01)
    assert np.all(np.abs(f["time_crest"] - np.sqrt(2)) < 0.02)
    assert np.all(np.abs(f["time_kurtosis"] - 1.5) < 0.05)  # a sine's kurtosis is 3/2
    assert_matches_reference(windows, SPEC)


def test_gaussian_noise_moments():
    rng = np.random.default_rng(12)
    windows = rng.normal(0.5, 2.0, size=(400, SPEC.window)).astype(np.float32)
    f = named(extract(windows, SPEC), SPEC)
    # Averages over 400 windows: the kurtosis estimator's spread is sqrt(24 / 1024) = 0.15 per window.
    assert abs(f["time_kurtosis"].mean() - 3.0) < 0.05
    assert abs(f["time_skewness"].mean()) < 0.03
    assert abs(f["time_std"].mean() - 2.0) < 0.01
    assert abs(f["time_mean"].mean() - 0.5) < 0.01
    centred = named(extract(windows - np.float32(0.5), SPEC), SPEC)
    assert abs(centred["time_shape"].mean() - np.sqrt(np.pi / 2)) < 0.01  # E|x| = sigma sqrt(2 / pi)
    assert f["spec_entropy"].mean() > 0.9  # white: power spread evenly over the bins
    assert abs(f["spec_centroid"].mean() - SPEC.nyquist / 2) < 60


def bearing_fault_signal(defect_hz: float, spec: FeatureSpec, seconds: float = 2.0) -> np.ndarray:
    """Impacts at ``defect_hz`` ringing a 3 kHz resonance (1 ms decay), in Gaussian noise: a race defect."""
    rng = np.random.default_rng(13)
    t = np.arange(int(seconds * spec.sample_rate)) / spec.sample_rate
    signal = 0.2 * rng.standard_normal(t.size)
    for start in np.arange(rng.uniform(0, 1 / defect_hz), seconds, 1 / defect_hz):
        after = t >= start
        lag = t[after] - start
        signal[after] += np.exp(-lag / 1e-3) * np.sin(2 * np.pi * 3000.0 * lag)
    return signal


@pytest.mark.parametrize("fault", ["bpfo", "bpfi"])
def test_envelope_finds_the_defect_frequency(fault):
    spec = FeatureSpec(window=2048, bearing=BearingGeometry.named("6205"), rpm=1797.0)
    windows = frame(bearing_fault_signal(spec.defect_frequencies()[fault], spec), spec.window, spec.hop)
    values = extract(windows, spec)
    f = named(values, spec)
    others = [f[f"env_{k}"] for k in ("bpfo", "bpfi", "bsf", "ftf") if k != fault]
    assert np.all(f[f"env_{fault}"] > 0.2)
    # 3 x BPFO and 2 x BPFI of a 6205 are 0.7 % apart, so each picks up a little of the other: hence 2x, not 10x.
    assert np.all(f[f"env_{fault}"] > 2 * np.max(others, axis=0))
    assert_matches_reference(windows.astype(np.float32), spec)
    # Gain-invariant: the shares do not move when the signal is scaled.
    np.testing.assert_allclose(extract(1000.0 * windows, spec)[:, -4:], values[:, -4:], rtol=1e-4, atol=1e-6)


def test_time_moments_agree_with_scipy_stats():
    rng = np.random.default_rng(14)
    windows = rng.gamma(2.0, size=(20, 256)).astype(np.float32)
    x, _, constant = reference.sanitize(windows)
    time = reference.time_features(x, reference.centered(x, constant))
    np.testing.assert_allclose(time[:, 6], scipy.stats.kurtosis(x, axis=1, fisher=False), rtol=1e-10)
    np.testing.assert_allclose(time[:, 7], scipy.stats.skew(x, axis=1), rtol=1e-10)
    np.testing.assert_allclose(time[:, 1], np.std(x, axis=1), rtol=1e-12)


def test_power_spectrum_agrees_with_scipy_periodogram():
    rng = np.random.default_rng(15)
    windows = rng.standard_normal((5, 1000)) + 3.0
    np.testing.assert_allclose(reference.hann(1000), scipy.signal.get_window("hann", 1000), atol=1e-15)  # periodic
    x, _, constant = reference.sanitize(windows)
    ours = reference.power_spectrum(reference.centered(x, constant))
    # Our P is scipy's one-sided density (detrended, Hann) times the bin width.
    _, density = scipy.signal.periodogram(x, fs=8000.0, window="hann", detrend="constant", axis=1)
    np.testing.assert_allclose(ours, density * 8000.0 / 1000, rtol=1e-9, atol=1e-12)


def test_envelope_agrees_with_scipy_hilbert():
    spec = FeatureSpec(window=2048, bearing=BearingGeometry.named("6205"), rpm=1797.0)
    windows = frame(bearing_fault_signal(100.0, spec, seconds=0.5), spec.window, spec.hop)
    x, _, constant = reference.sanitize(windows)
    d = reference.centered(x, constant)
    keep = reference.envelope_band_mask(spec)
    band_passed = np.fft.irfft(np.fft.rfft(d, axis=1) * keep, n=spec.window, axis=1)
    np.testing.assert_allclose(reference.envelope(d, spec), np.abs(scipy.signal.hilbert(band_passed, axis=1)),
                               rtol=1e-9, atol=1e-12)
