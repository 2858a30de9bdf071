"""Drift statistics computed from binned counts alone, so the device never keeps the windows themselves.

Every function compares a reference histogram (the training fractions on the training deciles) with the
current one on the same bins: ``(-inf, e0), [e0, e1), ..., [e_last, inf)``. Pure numpy, no scipy: the device
side must stay light (see ``edgekit.runtime``).

>>> ref = np.array([0.25, 0.25, 0.25, 0.25])
>>> cur = np.array([0.0, 0.25, 0.25, 0.5])
>>> round(psi(ref, cur), 3), ks_binned(ref, cur)
(2.129, 0.25)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

PSI_EPSILON = 1e-4  # stands in for an empty bin's fraction; 1e-4 is the usual choice in credit-risk PSI practice


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index ``sum((a - e) * ln(a / e))`` of two fraction vectors on the same bins.

    Empty bins count as ``epsilon``, which bounds a single empty bin's contribution (about 0.9 for a bin that
    held 10% of the reference) instead of making it infinite.
    """
    e = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    a = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_binned(expected: np.ndarray, actual: np.ndarray) -> float:
    """Largest CDF difference at the bin edges: the Kolmogorov-Smirnov statistic of the binned data.

    A lower bound of the KS statistic of the raw values, exact when the raw CDFs differ most at an edge.
    """
    diff = np.cumsum(np.asarray(actual, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
    return float(np.max(np.abs(diff[:-1]))) if diff.size > 1 else 0.0


def w1_binned(edges: Sequence[float], expected: np.ndarray, actual: np.ndarray,
              expected_tails: tuple[float, float] = (0.0, 0.0),
              actual_tails: tuple[float, float] = (0.0, 0.0)) -> float:
    """Wasserstein-1 distance ``integral |F_actual - F_expected| dx`` from the CDFs at the bin edges.

    Between edges ``|F_actual - F_expected|`` is taken as linear (trapezoids). The two open bins have no width,
    so each side's tail is described by its mean excess beyond the outer edge, ``E[(e0 - x)+]`` and
    ``E[(x - e_last)+]`` (``*_tails``), and contributes the difference of the two: exact when one tail lies
    beyond the other, as when a gain step pushes values past the training maximum.
    """
    edges = np.asarray(edges, dtype=np.float64)
    diff = np.abs(np.cumsum(np.asarray(actual, dtype=np.float64) - np.asarray(expected, dtype=np.float64))[:-1])
    inner = float(np.sum(0.5 * (diff[1:] + diff[:-1]) * np.diff(edges))) if edges.size > 1 else 0.0
    return inner + abs(actual_tails[0] - expected_tails[0]) + abs(actual_tails[1] - expected_tails[1])


def tail_excess_from_quantiles(edge_low: float, edge_high: float, cdf_low: float, cdf_high: float,
                               levels: Sequence[float], quantiles: Sequence[float], minimum: float,
                               maximum: float) -> tuple[float, float]:
    """A distribution's mean excess beyond its outer bin edges, ``E[(e0 - x)+]`` and ``E[(x - e_last)+]``.

    The reference keeps no values, only quantiles, minimum and maximum; the CDF is taken as linear between those
    knots (``cdf_low = F(e0)``, ``cdf_high = F(e_last)``) and ``integral F`` below ``e0`` and
    ``integral (1 - F)`` above ``e_last`` are summed by trapezoids.

    >>> # uniform on [0, 100] with deciles as edges: each tail is a triangle of area 0.1 * 10 / 2
    >>> low, high = tail_excess_from_quantiles(10.0, 90.0, 0.1, 0.9, [0.05, 0.95], [5.0, 95.0], 0.0, 100.0)
    >>> round(low, 9), round(high, 9)
    (0.5, 0.5)
    """
    pairs = sorted(zip(quantiles, levels))
    below = [(minimum, 0.0)] + [(q, p) for q, p in pairs if q < edge_low and p < cdf_low] + [(edge_low, cdf_low)]
    above = [(edge_high, cdf_high)] + [(q, p) for q, p in pairs if q > edge_high and p > cdf_high] + [(maximum, 1.0)]
    low = sum(0.5 * (f0 + f1) * (x1 - x0) for (x0, f0), (x1, f1) in zip(below, below[1:]) if x1 > x0)
    high = sum(0.5 * ((1 - f0) + (1 - f1)) * (x1 - x0) for (x0, f0), (x1, f1) in zip(above, above[1:]) if x1 > x0)
    return float(low), float(high)
