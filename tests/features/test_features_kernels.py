"""The numba kernels against the numpy reference: seeded random data and hypothesis-generated windows."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgekit.bearing import BearingGeometry
from edgekit.features import (
    QUALITY_CONSTANT,
    QUALITY_NONFINITE,
    QUALITY_SATURATED,
    FeatureSpec,
    _backend,
    _kernels,
    extract_with_quality,
    feature_names,
)
from feature_checks import assert_matches_reference

BEARING = BearingGeometry.named("6205")
SPECS = {
    "default": FeatureSpec(),
    "envelope": FeatureSpec(bearing=BEARING, rpm=1797.0),
    "odd_window_custom_bands": FeatureSpec(sample_rate=25600.0, window=1000, hop=250,
                                           band_edges=(0.0, 100.0, 1000.0, 2500.5, 12800.0)),
    "partial_bands_envelope_only": FeatureSpec(window=256, groups=("spectral", "envelope"), band_edges=(500.0, 2000.0),
                                               envelope_band=(2000.0, 4000.0), envelope_harmonics=5,
                                               bearing=BearingGeometry.named("6203"), rpm=3600.0),
    "time_only": FeatureSpec(window=64, groups=("time",)),
}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_numba_backend_is_active():
    # Otherwise every comparison below would compare the reference with itself.
    assert _backend.backend_name() == "numba"


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 31, 70])  # below, not a multiple of, and above the kernels' block of rows
def test_matches_reference_on_seeded_noise(name, dtype, n):
    spec = SPECS[name]
    rng = np.random.default_rng(20240601 + n)
    # Different offsets, gains and tails per row: kurtosis, skewness and band shapes vary.
    gains = 10.0 ** rng.uniform(-3, 3, size=(n, 1))
    windows = (rng.standard_t(df=4, size=(n, spec.window)) * gains + rng.normal(0, 5, (n, 1)) * gains).astype(dtype)
    assert_matches_reference(windows, spec)


def test_results_do_not_depend_on_batch_size_or_threads():
    import numba

    spec = SPECS["envelope"]
    windows = np.random.default_rng(5).standard_normal((45, spec.window)).astype(np.float32)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = extract_with_quality(windows, spec)[0]
        numba.set_num_threads(max(2, threads) if numba.config.NUMBA_NUM_THREADS > 1 else 1)
        parallel = extract_with_quality(windows, spec)[0]
    finally:
        numba.set_num_threads(threads)
    one_by_one = np.concatenate([extract_with_quality(windows[i : i + 1], spec)[0] for i in range(len(windows))])
    np.testing.assert_array_equal(serial, parallel)
    np.testing.assert_array_equal(serial, one_by_one)


def test_matches_reference_on_structured_signals():
    spec = SPECS["envelope"]
    t = np.arange(spec.window) / spec.sample_rate
    rng = np.random.default_rng(7)
    windows = np.array([
        np.sin(2 * np.pi * 3000.0 * t),                  # bin-centred tone in the envelope band: flat envelope
        np.sin(2 * np.pi * 1000.0 * t),                  # tone on the envelope band's edge
        np.sin(2 * np.pi * 3001.3 * t) + 0.1,            # off-bin tone with offset
        np.where(np.arange(spec.window) % 112 == 0, 1.0, 0.0),  # impulse train
        np.r_[np.zeros(spec.window - 1), 1.0],          # single impulse at the edge
        np.sign(np.sin(2 * np.pi * 50.0 * t)),           # square wave, few distinct values
        1e-30 * rng.standard_normal(spec.window),        # tiny but non-constant
        3e38 * rng.uniform(-1, 1, spec.window),          # powers beyond float32: saturated
        np.full(spec.window, 0.1),                       # constant
    ])
    values, flags = extract_with_quality(windows, spec)
    assert flags[-1] == QUALITY_CONSTANT and flags[-2] == QUALITY_SATURATED and not flags[:-2].any()
    # A flat envelope's spectrum is rounding noise: its shares are defined as 0, not noise.
    assert not values[0, -4:].any() and values[1, -4:].any()
    assert_matches_reference(windows, spec, values, flags)


def test_vectorized_log_matches_numpy_log():
    rng = np.random.default_rng(3)
    # Every binade from the smallest normal to 1, as shares are; plus exact zeros and subnormals (skipped).
    p = np.concatenate([10.0 ** rng.uniform(-307, 0, 4000), [0.0, 1e-310, 1.0, 0.5, np.sqrt(0.5)]])
    scratch = np.empty(p.size), np.empty(p.size, np.int64), np.empty(p.size, np.int64)
    got = _kernels._xlogx_sum(p, 1.0, *scratch)
    normal = p > 1e-300
    want = np.sum(p[normal] * np.log(p[normal]))
    assert got == pytest.approx(want, rel=1e-14)


finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def window_batches(draw, elements=finite32, dtype=np.float32):
    window = draw(st.sampled_from([16, 17, 48]))
    n = draw(st.integers(1, 3))
    return draw(hnp.arrays(dtype, (n, window), elements=elements))


@SETTINGS
@given(window_batches(), st.booleans())
def test_arbitrary_finite_windows_match_reference(windows, envelope):
    spec = FeatureSpec(window=windows.shape[1], bearing=BEARING if envelope else None, rpm=1797.0)
    values, flags = extract_with_quality(windows, spec)
    assert not (flags & QUALITY_NONFINITE).any()
    assert_matches_reference(windows, spec, values, flags)


@SETTINGS
@given(window_batches(elements=st.floats(allow_nan=False, allow_infinity=False), dtype=np.float64))
def test_float64_beyond_float32_range_counts_as_nonfinite(windows):
    spec = FeatureSpec(window=windows.shape[1])
    values, flags = extract_with_quality(windows, spec)
    beyond = (np.abs(windows) > np.finfo(np.float32).max).any(axis=1)
    np.testing.assert_array_equal(flags & QUALITY_NONFINITE > 0, beyond)
    assert_matches_reference(windows, spec, values, flags)


@SETTINGS
@given(window_batches(), st.data())
def test_nan_and_inf_are_replaced_and_flagged(windows, data):
    spec = FeatureSpec(window=windows.shape[1], bearing=BEARING, rpm=1500.0)
    n, w = windows.shape
    dirty = windows.copy()
    hits = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, w - 1),
                                        st.sampled_from([np.nan, np.inf, -np.inf])), min_size=1, max_size=6))
    for row, col, value in hits:
        dirty[row, col] = value
        windows[row, col] = 0.0
    values, flags = extract_with_quality(dirty, spec)
    hit_rows = sorted({row for row, _, _ in hits})
    np.testing.assert_array_equal(np.flatnonzero(flags & QUALITY_NONFINITE), hit_rows)
    # Same features as the window with zeros in place of the bad samples.
    clean_values, clean_flags = extract_with_quality(windows, spec)
    np.testing.assert_array_equal(values, clean_values)
    np.testing.assert_array_equal(flags & ~np.uint8(QUALITY_NONFINITE), clean_flags & ~np.uint8(QUALITY_NONFINITE))
    assert_matches_reference(dirty, spec, values, flags)


@SETTINGS
@given(finite32, st.sampled_from([16, 64]), st.sampled_from([np.float32, np.float64]))
def test_constant_windows(value, window, dtype):
    spec = FeatureSpec(window=window, bearing=BEARING, rpm=1797.0)
    windows = np.full((2, window), value, dtype=dtype)
    values, flags = extract_with_quality(windows, spec)
    assert (flags & QUALITY_CONSTANT).all()
    row = dict(zip(feature_names(spec), values[0]))
    assert row["time_mean"] == np.float32(value) and row["time_std"] == 0
    assert row["time_kurtosis"] == 0 and row["time_skewness"] == 0
    spectral = [v for k, v in row.items() if k.startswith(("band_", "spec_", "env_"))]
    assert not any(spectral)
    assert_matches_reference(windows, spec, values, flags)
