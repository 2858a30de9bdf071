"""Picks the numba kernels or the numpy reference at the first extraction, and builds the kernels' plan.

numba is imported here lazily, never when ``edgekit.features`` is imported: ``import numba`` itself imports scipy
when scipy is installed (its version check), and the device side must import quickly and stay light.
Set ``EDGEKIT_NO_NUMBA=1`` to force the numpy path (to debug a kernel, or on a board where numba misbehaves).
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from edgekit.features import reference
from edgekit.features.spec import TIME_FEATURES, FeatureSpec, feature_names

_kernels_module = None  # None: not decided yet; False: numpy fallback; else the _kernels module


def kernels():
    """The ``_kernels`` module, or None when numba or rocket-fft is missing (or disabled by EDGEKIT_NO_NUMBA)."""
    global _kernels_module
    if _kernels_module is None:
        _kernels_module = False
        if os.environ.get("EDGEKIT_NO_NUMBA", "") in ("", "0"):
            try:
                import numba  # noqa: F401
                import rocket_fft  # noqa: F401  (np.fft inside njit)
            except ImportError:
                pass
            else:
                from edgekit.features import _kernels

                _kernels_module = _kernels
    return _kernels_module or None


def threads() -> int:
    """Threads the kernels may use now (``numba.set_num_threads`` changes it per calling thread)."""
    import numba

    return numba.get_num_threads()


def backend_name() -> str:
    """Which implementation ``extract`` uses in this process: "numba" or "numpy"."""
    return "numba" if kernels() is not None else "numpy"


@lru_cache(maxsize=64)
def n_features(spec: FeatureSpec) -> int:
    """len(feature_names(spec)), cached: building the names costs more than extracting one window."""
    return len(feature_names(spec))


@lru_cache(maxsize=64)
def plan(spec: FeatureSpec) -> tuple:
    """The kernel arguments after (windows, out, flags, n_threads) for ``spec``; cached, specs are hashable."""
    n = spec.window
    col = 0
    time_col = spec_col = env_col = -1
    if "time" in spec.groups:
        time_col, col = col, col + len(TIME_FEATURES)
    if "spectral" in spec.groups:
        spec_col, col = col, col + len(spec.band_edges) - 1 + 5
    if spec.envelope_enabled:
        env_col = col
    w = reference.hann(n)
    # Bands are contiguous runs of bins (frequencies increase with k), so the kernel sums index ranges.
    band_start, band_stop = [], []
    for mask in reference.band_masks(spec):
        idx = np.flatnonzero(mask)
        band_start.append(idx[0] if idx.size else 0)
        band_stop.append(idx[-1] + 1 if idx.size else 0)
    kept = np.flatnonzero(reference.envelope_band_mask(spec))  # spec validation guarantees at least one bin
    masks = reference.harmonic_masks(spec).astype(np.float64)
    return (
        time_col, spec_col, env_col,
        reference.bin_frequencies(spec), reference.onesided_weights(n), float(1.0 / (n * np.sum(w**2))),
        np.array(band_start, dtype=np.int64), np.array(band_stop, dtype=np.int64),
        int(kept[0]), int(kept[-1]), w, masks,
    )
