"""The plain numpy implementation of every feature: the definition the numba kernels are tested against.

It is also the fallback where numba (or rocket-fft) is missing, so it imports nothing but numpy. Readability
wins over speed here; every step is vectorized over the batch of windows, one step per line.

Conventions shared with the kernels (they are part of the feature definitions):

- Samples are rounded to float32 first (the device's sample type), so float32 and float64 input give the same
  features; anything that is not a finite float32 (NaN, +-inf, |x| > FLOAT32_MAX) is replaced by 0 and flagged.
  All arithmetic after that is float64, whose range holds every power of a float32 window without overflow.
- A constant window (flagged) has its centred signal set to exactly 0, so its variance-based features are
  exactly 0 instead of ratios of rounding noise.
- A ratio whose denominator is 0 is 0.
- The spectral window is the periodic Hann window, w[n] = 0.5 - 0.5 cos(2 pi n / N): it is exactly a 3-tap
  filter in the frequency domain, which the kernels exploit. One-sided power P_k = c_k |X_k|^2 / (N sum w^2),
  c_k = 2 except at DC and Nyquist, so sum P is about the variance.
- Bin k has frequency k * sample_rate / window.
- Features beyond the float32 range are saturated to +-FLOAT32_MAX and flagged.

>>> from edgekit.features import FeatureSpec
>>> spec = FeatureSpec(sample_rate=12000, window=1024)
>>> t = np.arange(1024) / 12000
>>> x = np.sin(2 * np.pi * 1500 * t)[None, :]
>>> values, flags = extract_with_quality(x, spec)
>>> round(float(values[0, 2]), 4), round(float(values[0, -1])), int(flags[0])   # rms, dominant Hz
(0.7071, 1500, 0)
"""

from __future__ import annotations

import numpy as np

from edgekit.features.quality import QUALITY_CONSTANT, QUALITY_NONFINITE, QUALITY_SATURATED
from edgekit.features.spec import FeatureSpec

FLOAT32_MAX = float(np.finfo(np.float32).max)
# A harmonic's search band: +-3% of its frequency (real bearings slip 1-2% below the kinematic values and speed
# wanders), but never narrower than one bin.
HARMONIC_TOLERANCE = 0.03
# Envelope power below this fraction of the mean squared envelope is rounding noise of a flat envelope (a pure tone
# in the band); its ratios would be noise, so they are 0. Rounding noise sits near 1e-30, real modulation far above.
QUIET_ENVELOPE = 1e-20


# ---- conventions (also used to build the kernels' plan) ----

def hann(n: int) -> np.ndarray:
    """The periodic Hann window of ``n`` samples (numpy's ``np.hanning`` is the symmetric one)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def bin_frequencies(spec: FeatureSpec) -> np.ndarray:
    """Hz of each one-sided FFT bin."""
    return np.arange(spec.window // 2 + 1) * spec.sample_rate / spec.window


def onesided_weights(n: int) -> np.ndarray:
    """c_k: 2 for bins that stand for a positive and a negative frequency, 1 for DC and (even n) Nyquist."""
    c = np.full(n // 2 + 1, 2.0)
    c[0] = 1.0
    if n % 2 == 0:
        c[-1] = 1.0
    return c


def band_masks(spec: FeatureSpec) -> np.ndarray:
    """bool[n_bands, n_bins]: bins with f in [lo, hi), the last band closed at hi."""
    f = bin_frequencies(spec)
    edges = spec.band_edges
    masks = [(f >= lo) & (f < hi) for lo, hi in zip(edges[:-1], edges[1:])]
    masks[-1] |= f == edges[-1]
    return np.array(masks)


def envelope_band_mask(spec: FeatureSpec) -> np.ndarray:
    """bool[n_bins]: the bins kept by the envelope's band-pass, f in [low, high]."""
    f = bin_frequencies(spec)
    lo, hi = spec.envelope_band
    return (f >= lo) & (f <= hi)


def harmonic_masks(spec: FeatureSpec) -> np.ndarray:
    """bool[4, n_bins]: for bpfo, bpfi, 2 x bsf, ftf, the bins within tolerance of any of their harmonics.

    A bin near two harmonics counts once, so each ratio stays within 0..1.
    """
    f = bin_frequencies(spec)
    bin_hz = spec.sample_rate / spec.window
    masks = []
    for fundamental in spec.defect_frequencies().values():
        mask = np.zeros(f.shape, dtype=bool)
        for h in range(1, spec.envelope_harmonics + 1):
            center = h * fundamental
            mask |= np.abs(f - center) <= max(bin_hz, HARMONIC_TOLERANCE * center)
        masks.append(mask)
    return np.array(masks).reshape(-1, f.size)


# ---- steps ----

def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where den is 0."""
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def sanitize(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 copy of the float32-rounded windows with non-finite samples set to 0; flags; constant rows."""
    with np.errstate(over="ignore"):  # float64 beyond float32 range becomes inf, then counts as non-finite
        x = np.asarray(windows).astype(np.float32).astype(np.float64)
    bad = ~np.isfinite(x)
    x[bad] = 0.0
    constant = x.max(axis=1) == x.min(axis=1)
    flags = np.where(bad.any(axis=1), QUALITY_NONFINITE, 0) | np.where(constant, QUALITY_CONSTANT, 0)
    return x, flags.astype(np.uint8), constant


def centered(x: np.ndarray, constant: np.ndarray) -> np.ndarray:
    """x minus its mean, exactly 0 for constant rows."""
    d = x - x.mean(axis=1, keepdims=True)
    d[constant] = 0.0
    return d


def power_spectrum(y: np.ndarray) -> np.ndarray:
    """One-sided power of each Hann-windowed row, normalized so that sum P is about the variance."""
    n = y.shape[1]
    w = hann(n)
    spectrum = np.fft.rfft(y * w, axis=1)
    return onesided_weights(n) * np.abs(spectrum) ** 2 / (n * np.sum(w**2))


def time_features(x: np.ndarray, d: np.ndarray) -> np.ndarray:
    """[n, 11]: mean, std, rms, peak, peak_to_peak, crest, kurtosis, skewness, shape, impulse, clearance."""
    mean = x.mean(axis=1)
    m2 = np.mean(d**2, axis=1)
    m3 = np.mean(d**3, axis=1)
    m4 = np.mean(d**4, axis=1)
    rms = np.sqrt(np.mean(x**2, axis=1))
    peak = np.abs(x).max(axis=1)
    abs_mean = np.abs(x).mean(axis=1)
    sqrt_abs_mean = np.sqrt(np.abs(x)).mean(axis=1)
    return np.stack([
        mean,
        np.sqrt(m2),
        rms,
        peak,
        x.max(axis=1) - x.min(axis=1),
        _ratio(peak, rms),
        _ratio(m4, m2**2),
        _ratio(m3, m2**1.5),
        _ratio(rms, abs_mean),
        _ratio(peak, abs_mean),
        _ratio(peak, sqrt_abs_mean**2),
    ], axis=1)


def spectral_features(d: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """[n, n_bands + 5]: band powers, then centroid, spread, entropy, spectral kurtosis, dominant frequency."""
    p = power_spectrum(d)
    f = bin_frequencies(spec)
    bands = p @ band_masks(spec).T.astype(np.float64)
    total = p.sum(axis=1)
    centroid = _ratio(p @ f, total)
    offset = f[None, :] - centroid[:, None]
    m2 = _ratio(np.sum(offset**2 * p, axis=1), total)
    m4 = _ratio(np.sum(offset**4 * p, axis=1), total)
    share = p / np.where(total > 0, total, 1.0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(share > 0, share * np.log(share), 0.0)
    entropy = -plogp.sum(axis=1) / np.log(p.shape[1])
    strongest = 1 + np.argmax(p[:, 1:], axis=1)  # first maximum, DC excluded
    dominant = np.where(p[np.arange(len(p)), strongest] > 0, f[strongest], 0.0)
    return np.column_stack([bands, centroid, np.sqrt(m2), entropy, _ratio(m4, m2**2), dominant])


def envelope(d: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """[n, window]: |analytic signal| of each centred row band-passed to ``spec.envelope_band``.

    The band-pass zeroes the FFT bins outside the band (of the unwindowed row: a Hann taper here would scale
    the envelope by the window and smear the low envelope frequencies where the defect lines are).
    """
    n = d.shape[1]
    keep = envelope_band_mask(spec)  # excludes DC and Nyquist, so every kept bin is doubled
    spectrum = np.fft.rfft(d, axis=1)
    analytic = np.zeros((d.shape[0], n), dtype=np.complex128)
    analytic[:, : keep.size] = np.where(keep, 2.0 * spectrum, 0.0)
    return np.abs(np.fft.ifft(analytic, axis=1))


def envelope_features(d: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """[n, 4]: share of envelope power at bpfo, bpfi, 2 x bsf and ftf harmonics (0..1, gain-invariant).

    The envelope's power spectrum is taken like the signal's (mean removed, Hann window, same normalization);
    each share is the power in the bins within tolerance of harmonics 1..envelope_harmonics over the total.
    """
    env = envelope(d, spec)
    p = power_spectrum(env - env.mean(axis=1, keepdims=True))
    total = p.sum(axis=1)
    quiet = total <= QUIET_ENVELOPE * np.mean(env**2, axis=1)
    shares = _ratio(p @ harmonic_masks(spec).T.astype(np.float64), total[:, None])
    shares[quiet] = 0.0
    return shares


def extract_with_quality(windows: np.ndarray, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """float32[n, f] features and uint8[n] quality flags of 2-D ``windows`` (not validated here)."""
    x, flags, constant = sanitize(windows)
    d = centered(x, constant)
    parts = []
    if "time" in spec.groups:
        parts.append(time_features(x, d))
    if "spectral" in spec.groups:
        parts.append(spectral_features(d, spec))
    if spec.envelope_enabled:
        parts.append(envelope_features(d, spec))
    values = np.concatenate(parts, axis=1)
    saturated = np.any(np.abs(values) > FLOAT32_MAX, axis=1)
    flags |= np.where(saturated, QUALITY_SATURATED, 0).astype(np.uint8)
    return np.clip(values, -FLOAT32_MAX, FLOAT32_MAX).astype(np.float32), flags


def extract(windows: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """float32[n, f] features of 2-D ``windows`` (not validated here)."""
    return extract_with_quality(windows, spec)[0]
