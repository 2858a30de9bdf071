"""Anti-aliased sample-rate conversion for importers (scipy; never used on the device)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from edgekit.errors import DataError, require_module


def resample(signal: np.ndarray, from_rate: float, to_rate: float) -> np.ndarray:
    """Resample ``signal`` from ``from_rate`` to ``to_rate`` Hz with a polyphase anti-aliasing FIR filter.

    >>> x = np.sin(2 * np.pi * 100 * np.arange(48000) / 48000)
    >>> y = resample(x, 48000, 12000)
    >>> y.shape, round(float(np.abs(y[1000:-1000]).max()), 2)
    ((12000,), 1.0)
    """
    if from_rate <= 0 or to_rate <= 0:
        raise DataError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate:
        return np.asarray(signal, dtype=np.float32)
    ratio = Fraction(to_rate / from_rate).limit_denominator(1000)
    if abs(float(ratio) - to_rate / from_rate) > 1e-9 * to_rate / from_rate:
        raise DataError(f"cannot resample {from_rate} Hz to {to_rate} Hz exactly; choose a rate with a simple ratio")
    signal_mod = require_module("scipy.signal", "data")
    # resample_poly low-passes at the lower Nyquist with a Kaiser window before decimating.
    out = signal_mod.resample_poly(np.asarray(signal, dtype=np.float64), ratio.numerator, ratio.denominator)
    return out.astype(np.float32)
