"""Batch extraction: validated public entry points over the numba kernels, or the numpy reference without numba."""

from __future__ import annotations

import numpy as np

from edgekit.errors import ConfigError, DataError
from edgekit.features import _backend, reference
from edgekit.features.spec import FeatureSpec


def _validated(windows, spec: FeatureSpec) -> np.ndarray:
    """``windows`` as a C-contiguous native-endian float32/float64 array of shape (n, spec.window)."""
    if not isinstance(spec, FeatureSpec):
        raise ConfigError(f"spec must be a FeatureSpec, got {type(spec).__name__}")
    expected = f"(n, {spec.window})"
    if not isinstance(windows, np.ndarray):
        raise DataError(f"windows must be a float32 or float64 numpy array of shape {expected}, "
                        f"got {type(windows).__name__}")
    if windows.dtype.kind != "f" or windows.dtype.itemsize not in (4, 8):
        raise DataError(f"windows must be float32 or float64 with shape {expected}, got dtype {windows.dtype}")
    if windows.ndim != 2 or windows.shape[1] != spec.window:
        raise DataError(f"windows must have shape {expected} for a spec with window={spec.window}, "
                        f"got {windows.shape}; cut a 1-D signal with frame(signal, spec.window, spec.hop)")
    windows = np.ascontiguousarray(windows, dtype=windows.dtype.newbyteorder("="))
    if not windows.flags.writeable:
        # numba compiles read-only arrays as a type of their own: a copy keeps it to one kernel per dtype.
        windows = windows.copy()
    return windows


def extract_with_quality(windows: np.ndarray, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Features float32[n, f] (columns named by ``feature_names(spec)``) and quality flags uint8[n].

    Always finite: non-finite samples become 0 (flag ``QUALITY_NONFINITE``), constant windows are flagged
    (``QUALITY_CONSTANT``), ratios with a zero denominator are 0, and features beyond the float32 range are
    saturated (``QUALITY_SATURATED``).

    >>> from edgekit.features import FeatureSpec
    >>> windows = np.random.default_rng(0).standard_normal((3, 1024)).astype(np.float32)
    >>> windows[1, 5] = np.nan
    >>> windows[2] = 0.25
    >>> values, flags = extract_with_quality(windows, FeatureSpec())
    >>> values.shape, values.dtype, flags.tolist(), bool(np.isfinite(values).all())
    ((3, 24), dtype('float32'), [0, 1, 2], True)
    """
    windows = _validated(windows, spec)
    kernels = _backend.kernels()
    if kernels is None:
        return reference.extract_with_quality(windows, spec)
    out = np.empty((windows.shape[0], _backend.n_features(spec)), dtype=np.float32)
    flags = np.empty(windows.shape[0], dtype=np.uint8)
    kernels.extract_kernel(windows, out, flags, _backend.threads(), *_backend.plan(spec))
    return out, flags


def extract(windows: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Features float32[n, f] of 2-D ``windows`` [n, spec.window]; see ``extract_with_quality`` for the flags.

    >>> from edgekit.features import FeatureSpec, feature_names
    >>> t = np.arange(1024) / 12000.0
    >>> tone = np.sin(2 * np.pi * 3375.0 * t)[None, :]
    >>> spec = FeatureSpec()
    >>> values = dict(zip(feature_names(spec), extract(tone, spec)[0]))
    >>> round(float(values["time_crest"]), 3), float(values["spec_dominant"]), bool(values["band_3000_3750hz"] > 0.49)
    (1.414, 3375.0, True)
    """
    return extract_with_quality(windows, spec)[0]
