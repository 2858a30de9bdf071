"""Drift monitoring on the device: is this machine's feature stream still the training data the model knows?

``DriftMonitor`` bins every window's features on the bundle's reference bins (training deciles) and, each time
the pipeline closes a report, compares the report's histograms with the reference: population stability (PSI),
Wasserstein-1 in reference standard deviations (the effect size) and the binned KS statistic, plus the
predicted-class distribution, mean confidence and anomaly score. A report is *over* when some feature has both
PSI >= ``psi_threshold`` and W1 >= ``effect_threshold`` reference standard deviations; drift is declared while
``k`` of the last ``n`` reports are over.

Why these defaults (measured by ``benchmarks/drift.py`` on the synthetic scenarios, default FeatureSpec, reports
of 128 windows = 5.5 s at 12 kHz with hop 512; table and sweep in ``benchmarks/drift.md``):

- PSI alone cannot decide. The reference describes a *population* of machines; one machine fills only a few of
  its decile bins, so healthy machines reach PSI 2-8 on ``time_mean`` in ordinary reports: every device would be
  "drifted". PSI >= 0.25 (the usual "major shift") is kept as a gate; the decision is the effect size.
- W1 / reference std: single reports of healthy machines reach 2.75, always on the window mean (and with it the
  RMS): the slow 1/f wander of the process noise moves a whole report at once. A x1.5 gain step gives ~10, a 15%
  resonance shift ~3.0, a growing outer-race fault passes 7 early in its growth. Hence ``effect_threshold=2.75``.
- ``k=2`` of ``n=3``: one report over never alarms (at 2.75 std, 1 of 1 gave a false alarm in 1.5 h of healthy
  machines; 2 of 3 none, 3 of 4 none but 5.5 s later). Detection: 8-14 s after an abrupt change.
- ``min_windows=32``: a report cut short (the pipeline also reports on a timer) has too few windows for its
  histograms to mean anything, so it is published but does not vote.

The reference must describe healthy operation: against statistics pooled over all fault classes nothing is
found. A 15% speed change is not found either: it moves the default features by under one reference std.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np

from edgekit.errors import ConfigError, DataError
from edgekit.runtime.drift_stats import ks_binned, psi, tail_excess_from_quantiles, w1_binned

STATE_VERSION = 1
WORST_FEATURES = 3  # how many features a report names: enough to see what moved, small enough for ~400 bytes
_ANOMALY_BUFFER = 4096  # anomaly scores kept per report for its p95; beyond that every other one is dropped


def _sig(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


class DriftMonitor:
    """Feature, prediction and anomaly drift against the bundle's ``reference_stats``, decided with persistence.

    Parameters: ``reference_stats`` is ``manifest["reference_stats"]``; ``feature_names`` the order of the
    feature vector (``edgekit.features.feature_names(spec)``). ``psi_threshold`` and ``effect_threshold`` (W1 in
    reference standard deviations) decide when a feature is over; ``k`` of the last ``n`` voting reports must be
    over for ``drift_detected``; reports with fewer than ``min_windows`` windows do not vote. ``class_names`` is
    the model's class list (``manifest["classes"]``), the order of the predicted class indices.

    >>> deciles = [-1.2816, -0.8416, -0.5244, -0.2533, 0.0, 0.2533, 0.5244, 0.8416, 1.2816]  # of N(0, 1)
    >>> normal = {"bin_edges": deciles, "bin_fractions": [0.1] * 10, "std": 1.0, "min": -3.5, "max": 3.5}
    >>> monitor = DriftMonitor({"features": {"a": normal, "b": normal}}, ["a", "b"])
    >>> rng = np.random.default_rng(0)
    >>> reports = [monitor.update_many(rng.normal(size=(128, 2))).report() for _ in range(5)]
    >>> monitor.drift_detected, reports[-1]["n_over"]
    (False, 0)
    >>> reports = [monitor.update_many(rng.normal(size=(128, 2)) + [0.0, 4.0]).report() for _ in range(2)]
    >>> monitor.drift_detected, reports[-1]["worst"][0][0], reports[-1]["hits"], reports[-1]["of"]
    (True, 'b', 2, 3)
    """

    def __init__(self, reference_stats: dict, feature_names: Sequence[str], *, psi_threshold: float = 0.25,
                 effect_threshold: float = 2.75, k: int = 2, n: int = 3, min_windows: int = 32,
                 class_names: Sequence[str] | None = None) -> None:
        for name, value in (("psi_threshold", psi_threshold), ("effect_threshold", effect_threshold)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ConfigError(f"{name} must be a positive number (e.g. 0.25 for PSI, 2.75 for the effect size), "
                                  f"got {value!r}")
        for name, value in (("k", k), ("n", n), ("min_windows", min_windows)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if k > n:
            raise ConfigError(f"k={k} reports over threshold out of the last n={n} can never happen; "
                              f"choose k between 1 and n={n}")
        self._params = {"psi_threshold": float(psi_threshold), "effect_threshold": float(effect_threshold),
                        "k": int(k), "n": int(n), "min_windows": int(min_windows)}
        self._names = list(feature_names)
        self._class_names = list(class_names) if class_names is not None else None
        self._prepare_reference(reference_stats)
        self._history: list[bool] = []
        self._drift = False
        self._reports = 0
        self._alarms = 0
        self._last: dict = {}
        self._reset()

    def _prepare_reference(self, reference: dict) -> None:
        per_feature = reference.get("features") if isinstance(reference, dict) else None
        missing = [n for n in self._names if not isinstance(per_feature, dict) or n not in per_feature]
        if not self._names or missing:
            raise DataError(f"the reference statistics lack feature(s) {missing[:5] or '(none named)'}: the bundle "
                            "was built with another feature spec; use the bundle's spec or re-export the model")
        self._fingerprint = hashlib.sha256(json.dumps([reference, self._names], sort_keys=True,
                                                      default=float).encode()).hexdigest()[:16]
        stats = [per_feature[n] for n in self._names]
        self._nbins = np.array([len(s["bin_fractions"]) for s in stats])
        f, width = len(stats), int(self._nbins.max())
        # Padded with +inf so one vectorized comparison bins every feature; a padded bin never fills.
        self._edges = np.full((f, width - 1), np.inf)
        self._ref = np.zeros((f, width))
        self._ref_tails = np.zeros((f, 2))
        self._scale = np.ones(f)
        levels = reference.get("quantile_levels", [])
        for j, s in enumerate(stats):
            edges, fractions = np.asarray(s["bin_edges"], float), np.asarray(s["bin_fractions"], float)
            if len(edges) + 1 != len(fractions) or len(edges) == 0 or np.any(np.diff(edges) <= 0):
                raise DataError(f"reference bins of {self._names[j]!r} are malformed (need increasing edges and "
                                "one more fraction than edges); re-export the bundle")
            self._edges[j, :len(edges)] = edges
            self._ref[j, :len(fractions)] = fractions
            self._ref_tails[j] = tail_excess_from_quantiles(
                edges[0], edges[-1], fractions[0], 1.0 - fractions[-1], levels if "quantiles" in s else [],
                s.get("quantiles", []), s.get("min", edges[0]), s.get("max", edges[-1]))
            # A feature constant in training has std 0; any change of it is then an (arbitrarily) large effect.
            self._scale[j] = max(float(s.get("std", 0.0)), 1e-12 * max(1.0, abs(float(edges[0]))))
        self._low, self._high = self._edges[:, 0], self._edges[np.arange(f), self._nbins - 2]
        # Class indices are the model's output order: the manifest's class list. The reference's dicts are keyed by
        # name, and JSON writers may sort keys, so their order says nothing about the indices.
        self._classes = (self._class_names if self._class_names is not None else
                         list(reference.get("class_distribution") or reference.get("predicted_distribution") or []))
        predicted = reference.get("predicted_distribution")
        self._ref_pred = np.array([predicted.get(c, 0.0) for c in self._classes]) if predicted else None
        self._ref_conf = reference.get("mean_confidence")
        quantiles = reference.get("anomaly_score_quantiles")
        self._anom_p99 = float(quantiles[levels.index(0.99)]) if quantiles and 0.99 in levels else None

    def _reset(self) -> None:
        """Empty the accumulators of the report being collected."""
        self._counts = np.zeros(self._ref.shape, dtype=np.int64)
        self._tails = np.zeros((len(self._names), 2))
        self._n = self._skipped = 0
        self._class_counts = np.zeros(len(self._classes), dtype=np.int64)
        self._conf = [0.0, 0]
        self._anom = {"sum": 0.0, "n": 0, "over": 0, "kept": [], "stride": 1}

    @property
    def drift_detected(self) -> bool:
        """True while ``k`` of the last ``n`` voting reports were over threshold (persistent, not a one-step event)."""
        return self._drift

    def update(self, features_row, predicted_class: int | None = None, confidence: float | None = None,
               anomaly_score: float | None = None) -> "DriftMonitor":
        """Add one window: its feature vector [f] and, when the pipeline has them, the model's outputs."""
        return self.update_many(np.asarray(features_row, dtype=np.float64).reshape(1, -1),
                                None if predicted_class is None else [predicted_class],
                                None if confidence is None else [confidence],
                                None if anomaly_score is None else [anomaly_score])

    def update_many(self, rows, predicted_classes=None, confidences=None, anomaly_scores=None) -> "DriftMonitor":
        """Add a batch of windows: features [m, f] and optional per-window class indices, confidences, scores.

        A window with a non-finite feature is counted as skipped (the data-quality checks report why), not binned.
        """
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(self._names):
            raise DataError(f"expected feature rows of shape [m, {len(self._names)}] in the order of the bundle's "
                            f"feature names, got {rows.shape}")
        finite = np.isfinite(rows).all(axis=1)
        good = rows[finite]
        self._skipped += int(len(rows) - len(good))
        if len(good):
            # searchsorted(edges, x, side="right") for every feature at once: the count of edges <= x.
            bins = (good[:, :, None] >= self._edges[None]).sum(axis=2)
            flat = bins + np.arange(len(self._names))[None, :] * self._ref.shape[1]
            self._counts += np.bincount(flat.ravel(), minlength=self._counts.size).reshape(self._counts.shape)
            self._tails[:, 0] += np.maximum(self._low - good, 0.0).sum(axis=0)
            self._tails[:, 1] += np.maximum(good - self._high, 0.0).sum(axis=0)
            self._n += len(good)
        if predicted_classes is not None and len(self._classes):
            classes = np.asarray(predicted_classes, dtype=np.int64).ravel()
            if classes.size and (classes.min() < 0 or classes.max() >= len(self._classes)):
                raise DataError(f"predicted class index out of range 0..{len(self._classes) - 1}: the model and the "
                                "bundle's reference statistics disagree on the classes")
            self._class_counts += np.bincount(classes, minlength=len(self._classes))
        if confidences is not None:
            c = np.asarray(confidences, dtype=np.float64).ravel()
            c = c[np.isfinite(c)]
            self._conf[0] += float(c.sum())
            self._conf[1] += int(c.size)
        if anomaly_scores is not None:
            self._add_anomaly(np.asarray(anomaly_scores, dtype=np.float64).ravel())
        return self

    def _add_anomaly(self, scores: np.ndarray) -> None:
        a = self._anom
        for s in scores[np.isfinite(scores)].tolist():
            a["sum"] += s
            a["over"] += int(self._anom_p99 is not None and s > self._anom_p99)
            # Keep every stride-th score; halve the kept ones when full, so the p95 comes from an even sample.
            if a["n"] % a["stride"] == 0:
                a["kept"].append(s)
                if len(a["kept"]) >= _ANOMALY_BUFFER:
                    a["kept"], a["stride"] = a["kept"][::2], a["stride"] * 2
            a["n"] += 1

    def report(self) -> dict:
        """Close the current report: compare it with the reference, vote, reset, and return a compact dict."""
        p = self._params
        f = len(self._names)
        rows = np.zeros((f, 3))  # psi, w1 / std, ks
        if self._n:
            fractions = self._counts / self._n
            tails = self._tails / self._n
            for j in range(f):
                nb = self._nbins[j]
                ref, cur = self._ref[j, :nb], fractions[j, :nb]
                rows[j] = (psi(ref, cur),
                           w1_binned(self._edges[j, :nb - 1], ref, cur, self._ref_tails[j], tails[j]) / self._scale[j],
                           ks_binned(ref, cur))
        over = (rows[:, 0] >= p["psi_threshold"]) & (rows[:, 1] >= p["effect_threshold"])
        votes = self._n >= p["min_windows"]
        if votes:
            self._history = (self._history + [bool(over.any())])[-p["n"]:]
            drift = sum(self._history) >= p["k"]
            self._alarms += int(drift and not self._drift)
            self._drift = drift
        self._reports += 1
        worst = np.lexsort((-rows[:, 0], -rows[:, 1]))[:WORST_FEATURES] if self._n else []
        out = {
            "report": self._reports, "windows": self._n, "skipped": self._skipped,
            "psi_max": _sig(rows[:, 0].max()), "effect_max": _sig(rows[:, 1].max()), "n_over": int(over.sum()),
            "worst": [[self._names[j], _sig(rows[j, 0]), _sig(rows[j, 1]), _sig(rows[j, 2])] for j in worst],
        }
        out.update(self._prediction_summary())
        out.update({"voted": votes, "over": bool(votes and over.any()), "hits": sum(self._history),
                    "of": len(self._history), "drift": self._drift, "alarms": self._alarms})
        self._last = {"features": {n: {"psi": float(r[0]), "w1_std": float(r[1]), "ks": float(r[2])}
                                   for n, r in zip(self._names, rows)}, "report": out}
        self._reset()
        return out

    def _prediction_summary(self) -> dict:
        out: dict = {}
        total = int(self._class_counts.sum())
        if total:
            fractions = self._class_counts / total
            top = np.argsort(-fractions, kind="stable")[:3]
            out["pred"] = {self._classes[i]: _sig(fractions[i]) for i in top if fractions[i] > 0}
            if self._ref_pred is not None:
                out["pred_psi"] = _sig(psi(self._ref_pred, fractions))
        if self._conf[1]:
            out["conf"] = _sig(self._conf[0] / self._conf[1])
            if self._ref_conf is not None:
                out["conf_ref"] = _sig(self._ref_conf)
        a = self._anom
        if a["n"]:
            out["anom_mean"] = _sig(a["sum"] / a["n"])
            out["anom_p95"] = _sig(float(np.quantile(a["kept"], 0.95)))
            if self._anom_p99 is not None:
                out["anom_over_p99"] = _sig(a["over"] / a["n"])
        return out

    def statistics(self) -> dict:
        """Everything about the last closed report (every feature's PSI, W1 / std, KS) and the decision state."""
        return {"drift_detected": self._drift, "reports": self._reports, "alarms": self._alarms,
                "history": list(self._history), "windows_pending": self._n, **self._params, **self._last}

    def state_dict(self) -> dict:
        """JSON-able state: the decision history and the report being collected, so a restart loses nothing."""
        return {
            "version": STATE_VERSION, "reference": self._fingerprint, "params": dict(self._params),
            "history": list(self._history), "drift": self._drift, "reports": self._reports, "alarms": self._alarms,
            "pending": {"counts": self._counts.tolist(), "tails": self._tails.tolist(), "n": self._n,
                        "skipped": self._skipped, "class_counts": self._class_counts.tolist(),
                        "conf": list(self._conf), "anom": {**self._anom, "kept": list(self._anom["kept"])}},
        }

    def load_state_dict(self, state: dict) -> "DriftMonitor":
        """Continue from ``state_dict()``; it must come from a monitor with this reference and these parameters."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise DataError(f"drift state has version {state.get('version') if isinstance(state, dict) else None!r}, "
                            f"this edgekit reads {STATE_VERSION}; delete the state file to start afresh")
        if state.get("reference") != self._fingerprint:
            raise DataError("the drift state was written for another bundle's reference statistics; delete the "
                            "state file (or use another --state-dir) after deploying a new bundle")
        if state.get("params") != self._params:
            raise ConfigError(f"the drift state was decided with {state.get('params')}, this monitor uses "
                              f"{self._params}; build it with DriftMonitor.from_state or delete the state file")
        pending = state["pending"]
        counts = np.asarray(pending["counts"], dtype=np.int64)
        if counts.shape != self._counts.shape:
            raise DataError("the drift state's histograms do not match the reference bins; delete the state file")
        self._history = [bool(v) for v in state["history"]][-self._params["n"]:]
        self._drift, self._reports, self._alarms = bool(state["drift"]), int(state["reports"]), int(state["alarms"])
        self._counts, self._tails = counts, np.asarray(pending["tails"], dtype=np.float64).reshape(self._tails.shape)
        self._n, self._skipped = int(pending["n"]), int(pending["skipped"])
        self._class_counts = np.asarray(pending["class_counts"], dtype=np.int64).reshape(len(self._classes))
        self._conf = [float(pending["conf"][0]), int(pending["conf"][1])]
        self._anom = {**pending["anom"], "kept": [float(v) for v in pending["anom"]["kept"]]}
        return self

    @classmethod
    def from_state(cls, reference_stats: dict, feature_names: Sequence[str], state: dict) -> "DriftMonitor":
        """A monitor with the parameters stored in ``state``, continuing where it stopped."""
        params = state.get("params") if isinstance(state, dict) else None
        if not isinstance(params, dict):
            raise DataError("the drift state has no parameters; delete the state file to start afresh")
        return cls(reference_stats, feature_names, **params).load_state_dict(state)
