"""Data-quality checks of raw windows, on the device, before a window reaches the model.

The feature kernels already flag non-finite samples, constant windows and saturated features
(``edgekit.features.quality``). This module adds what a sensor in the field gets wrong without making a window
constant: a clipped ADC, single-sample electrical spikes, a partly stuck output, and a stream whose sample rate
or window length is not the one the model was trained on. A flagged window is counted and skipped for
inference and drift statistics; it never raises.

The thresholds were measured (numbers from this repository's synthetic classes and the 12 kHz CWRU drive-end
files, all 161 of them): the largest |deviation from the median| of a window is at most 3.1 x its 99th
percentile on every real or synthetic window, faulty bearings included (their impacts repeat, so the top 1%
holds several of them), and at least 38 x on the windows of the ``spikes`` scenario. ``SPIKE_RATIO = 8`` sits
between the two.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from edgekit.features.quality import QUALITY_FLAGS

#: Bits beyond the feature kernels' (1, 2, 4). Names are what reports and JSON lines show.
QUALITY_CLIPPED = 8
QUALITY_SPIKES = 16
QUALITY_FLATLINE = 32
QUALITY_WRONG_RATE = 64
QUALITY_WRONG_LENGTH = 128

FLAGS: Mapping[str, int] = {
    **QUALITY_FLAGS,
    "clipped": QUALITY_CLIPPED,
    "spikes": QUALITY_SPIKES,
    "flatline": QUALITY_FLATLINE,
    "wrong_rate": QUALITY_WRONG_RATE,
    "wrong_length": QUALITY_WRONG_LENGTH,
}

#: A sample this many times the window's 99th-percentile deviation stands alone: a spike (see module doc).
SPIKE_RATIO = 8.0
#: An ADC that saturates repeats its extreme code; this many equal samples in a row at the window's extreme.
CLIP_RUN = 3
#: A stuck sensor repeats one value; this fraction of a window in one run of equal samples is a flatline.
FLATLINE_FRACTION = 0.1


def flag_names(flags: int) -> list[str]:
    """The names of the bits set in ``flags``.

    >>> flag_names(0), flag_names(QUALITY_SPIKES | 1)
    ([], ['nonfinite', 'spikes'])
    """
    return [name for name, bit in FLAGS.items() if flags & bit]


def _longest_equal_run(windows: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
    """Per row: the longest run of consecutive equal samples (restricted to samples equal to ``at`` if given)."""
    same = windows[:, 1:] == windows[:, :-1]
    if at is not None:
        same &= windows[:, 1:] == at[:, None]
    n, m = same.shape
    longest = np.zeros(n, dtype=np.int64)
    if m == 0:
        return longest + 1
    # Run lengths from a cumulative count that restarts at every False (vectorized over rows).
    counts = np.cumsum(same, axis=1)
    resets = np.where(~same, counts, 0)
    runs = counts - np.maximum.accumulate(resets, axis=1)
    return runs.max(axis=1) + 1


def check_windows(windows: np.ndarray, feature_flags: np.ndarray | None = None) -> np.ndarray:
    """uint8 flags per window of ``windows`` [n, w], OR-ed with the kernels' ``feature_flags``.

    >>> rng = np.random.default_rng(0)
    >>> w = rng.normal(0, 0.1, (4, 1024)).astype(np.float32)
    >>> w[1, 500] = 5.0                     # one electrical spike
    >>> w[2, 100:103] = w[2].max() + 1.0    # three equal samples at the extreme: a clipped ADC
    >>> w[3, 200:400] = 0.05                # stuck for 200 samples
    >>> [flag_names(int(f)) for f in check_windows(w)]
    [[], ['spikes'], ['clipped'], ['flatline']]
    """
    windows = np.asarray(windows)
    flags = np.zeros(len(windows), dtype=np.uint8) if feature_flags is None else feature_flags.astype(np.uint8)
    if windows.size == 0:
        return flags
    finite = np.where(np.isfinite(windows), windows, 0.0)
    usable = (flags & (FLAGS["nonfinite"] | FLAGS["constant"])) == 0  # those already say what is wrong
    deviation = np.abs(finite - np.median(finite, axis=1, keepdims=True))
    p99 = np.percentile(deviation, 99, axis=1)
    spikes = deviation.max(axis=1) > SPIKE_RATIO * np.maximum(p99, np.finfo(np.float32).tiny)
    extreme = np.where(finite.max(axis=1) >= -finite.min(axis=1), finite.max(axis=1), finite.min(axis=1))
    clipped = _longest_equal_run(finite, extreme) >= CLIP_RUN
    flatline = _longest_equal_run(finite) >= max(2, int(FLATLINE_FRACTION * windows.shape[1]))
    flags |= np.where(usable & spikes, QUALITY_SPIKES, 0).astype(np.uint8)
    flags |= np.where(usable & clipped, QUALITY_CLIPPED, 0).astype(np.uint8)
    flags |= np.where(usable & flatline, QUALITY_FLATLINE, 0).astype(np.uint8)
    return flags


class QualityCounter:
    """Counts windows per flag since the last ``take()`` and in total (a window with two flags counts in both).

    >>> counter = QualityCounter()
    >>> counter.add(np.array([0, QUALITY_SPIKES, QUALITY_SPIKES | QUALITY_CLIPPED], dtype=np.uint8))
    >>> counter.take()
    {'windows': 3, 'skipped': 2, 'flags': {'clipped': 1, 'spikes': 2}}
    >>> counter.take()["windows"], counter.totals()["skipped"]
    (0, 2)
    """

    def __init__(self, totals: Mapping | None = None) -> None:
        self._period = self._empty()
        self._total = self._empty()
        if totals:
            self._total["windows"] = int(totals.get("windows", 0))
            self._total["skipped"] = int(totals.get("skipped", 0))
            self._total["flags"].update({k: int(v) for k, v in totals.get("flags", {}).items() if k in FLAGS})

    @staticmethod
    def _empty() -> dict:
        return {"windows": 0, "skipped": 0, "flags": dict.fromkeys(FLAGS, 0)}

    def add(self, flags: np.ndarray) -> None:
        flags = np.asarray(flags, dtype=np.uint8)
        for counts in (self._period, self._total):
            counts["windows"] += int(flags.size)
            counts["skipped"] += int(np.count_nonzero(flags))
            for name, bit in FLAGS.items():
                counts["flags"][name] += int(np.count_nonzero(flags & bit))

    @staticmethod
    def _compact(counts: dict) -> dict:
        return {"windows": counts["windows"], "skipped": counts["skipped"],
                "flags": {k: v for k, v in sorted(counts["flags"].items()) if v}}

    def take(self) -> dict:
        """The counts since the last call (only flags that occurred), and start a new period."""
        period, self._period = self._period, self._empty()
        return self._compact(period)

    def totals(self) -> dict:
        return self._compact(self._total)
