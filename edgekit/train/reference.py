"""Reference statistics of the training data, for drift monitoring on the device.

Per feature (over all training windows, and per class in ``by_class``): moments, quantiles, and a histogram on
the training deciles (so each bin holds ~10% of training windows and population stability (PSI) and binned
Wasserstein/KS can be computed on the device from counts alone). Plus the training class distribution and, on held-out windows, the predicted-class distribution,
mean confidence and anomaly-score quantiles: what "healthy and as trained" looks like.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

QUANTILE_LEVELS = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
N_BINS = 10
SCHEMA_VERSION = 1
#: A class needs this many training windows for histograms of its own (``by_class``); fewer give noisy deciles.
MIN_CLASS_WINDOWS = 50


def feature_histogram(values: np.ndarray, n_bins: int = N_BINS) -> tuple[list[float], list[float]]:
    """Interior bin edges at the training quantiles and the fraction of values in each bin.

    Bins are ``(-inf, e0), [e0, e1), ..., [e_last, inf)``; repeated quantiles (discrete or constant features)
    collapse into fewer bins.

    >>> edges, fractions = feature_histogram(np.arange(100.0), 4)
    >>> edges, fractions
    ([24.75, 49.5, 74.25], [0.25, 0.25, 0.25, 0.25])
    """
    interior = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(interior, values, side="right"), minlength=len(interior) + 1)
    return interior.tolist(), (counts / max(len(values), 1)).tolist()


def _per_feature(features: np.ndarray, feature_names: Sequence[str]) -> dict:
    per_feature = {}
    for i, name in enumerate(feature_names):
        column = features[:, i].astype(np.float64)
        edges, fractions = feature_histogram(column)
        per_feature[name] = {
            "mean": float(column.mean()), "std": float(column.std()),
            "min": float(column.min()), "max": float(column.max()),
            "quantiles": np.quantile(column, QUANTILE_LEVELS).tolist(),
            "bin_edges": edges, "bin_fractions": fractions,
        }
    return per_feature


def reference_statistics(
    features: np.ndarray,
    feature_names: Sequence[str],
    labels: np.ndarray,
    class_names: Sequence[str],
    held_out_probabilities: np.ndarray | None = None,
    held_out_anomaly_scores: np.ndarray | None = None,
) -> dict:
    counts = np.bincount(labels, minlength=len(class_names))
    stats = {
        "schema_version": SCHEMA_VERSION,
        "n_windows": int(len(features)),
        "quantile_levels": list(QUANTILE_LEVELS),
        "features": _per_feature(features, feature_names),
        "class_distribution": {c: float(n / counts.sum()) for c, n in zip(class_names, counts)},
        # Per class too: one machine's change (a re-mounted sensor, a growing fault) hides inside the spread of
        # all classes pooled, but stands out against the training windows of the class the model says it is in.
        "by_class": {c: {"n_windows": int(counts[i]), "features": _per_feature(features[labels == i], feature_names)}
                     for i, c in enumerate(class_names) if counts[i] >= MIN_CLASS_WINDOWS},
    }
    if held_out_probabilities is not None and len(held_out_probabilities):
        predicted = np.bincount(held_out_probabilities.argmax(1), minlength=len(class_names))
        stats["predicted_distribution"] = {c: float(n / predicted.sum()) for c, n in zip(class_names, predicted)}
        stats["mean_confidence"] = float(held_out_probabilities.max(1).mean())
    if held_out_anomaly_scores is not None and len(held_out_anomaly_scores):
        stats["anomaly_score_quantiles"] = np.quantile(held_out_anomaly_scores, QUANTILE_LEVELS).tolist()
    return stats
