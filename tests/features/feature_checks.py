"""Shared checks for the feature tests: compare the numba path with the numpy reference, feature by feature.

Tolerances. Both paths start from the same float32-rounded samples and work in float64; they differ only in
summation order, FFT library (numpy's pocketfft vs rocket-fft's DUCC), the Hann window applied in time (reference)
or as a 3-tap filter on the spectrum (kernels), and the kernels' own vectorized log. Those differences are about
1e-13 of a window's scale; then both are rounded to float32 (1 ulp = 6e-8 relative). So RTOL = 1e-5 (about 80
float32 ulps) leaves a wide margin for rounding yet catches any convention slip, which moves features by percents.
Each feature is also allowed ATOL times its natural scale (peak amplitude, total power, Nyquist, or 1), because
features that come from cancellation (a mean, a skewness, a band with no power) can be near 0 while their
rounding error is set by the window's scale, not by their value. The dominant frequency is checked on its own:
where two bins tie to rounding, either choice is right.
"""

from __future__ import annotations

import numpy as np

from edgekit.features import extract_with_quality, feature_names, reference

RTOL = 1e-5
ATOL = 1e-6


def _scale_kind(name: str) -> str:
    if name in ("time_mean", "time_std", "time_rms", "time_peak", "time_peak_to_peak"):
        return "amplitude"
    if name.startswith("band_"):
        return "power"
    if name in ("spec_centroid", "spec_spread"):
        return "frequency"
    if name in ("time_skewness", "spec_entropy") or name.startswith("env_"):
        return "unit"
    if name == "spec_dominant":
        return "dominant"
    return "ratio"


def assert_matches_reference(windows, spec, values=None, flags=None) -> None:
    """extract_with_quality (numba) equals reference.extract_with_quality within the tolerances above."""
    if values is None:
        values, flags = extract_with_quality(windows, spec)
    expected, expected_flags = reference.extract_with_quality(windows, spec)
    assert values.dtype == np.float32 and values.shape == expected.shape
    assert np.isfinite(values).all()
    np.testing.assert_array_equal(flags, expected_flags)
    x, _, constant = reference.sanitize(windows)
    power = reference.power_spectrum(reference.centered(x, constant))
    scales = {
        "amplitude": np.abs(x).max(axis=1),
        "power": power.sum(axis=1),
        "frequency": np.full(len(x), spec.nyquist),
        "unit": np.ones(len(x)),
        "ratio": np.ones(len(x)),
    }
    got = values.astype(np.float64)
    want = expected.astype(np.float64)
    for col, name in enumerate(feature_names(spec)):
        kind = _scale_kind(name)
        if kind == "dominant":
            _assert_dominant_ok(got[:, col], want[:, col], power, spec)
            continue
        limit = RTOL * np.abs(want[:, col]) + ATOL * scales[kind]
        bad = np.abs(got[:, col] - want[:, col]) > limit
        assert not bad.any(), (
            f"{name}: numba {got[bad, col][:3]} vs reference {want[bad, col][:3]} in rows {np.flatnonzero(bad)[:3]}"
        )


def _assert_dominant_ok(got, want, power, spec) -> None:
    bin_hz = spec.sample_rate / spec.window
    for row, (g, w) in enumerate(zip(got, want)):
        if w == 0:
            assert g == 0, f"row {row}: dominant {g} where the reference has no power"
            continue
        k = int(round(g / bin_hz))
        strongest = power[row, 1:].max()
        assert power[row, k] >= strongest - 1e-9 * power[row].sum(), f"row {row}: dominant {g} Hz, reference {w} Hz"
