"""Drift per class: each window is compared with the training windows of the class the model gave it.

A bundle's pooled reference describes every class of every training machine at once. One machine's change -- a
re-mounted sensor, a shifted resonance, a growing fault -- stays inside that population's spread, and a monitor
against it finds none of the synthetic scenarios (benchmarks/drift.md, "pooled reference"). Against the training
windows of its own predicted class the same change is several reference standard deviations ("healthy
reference" there). So the runtime keeps one ``DriftMonitor`` per class with a reference of its own
(``reference_stats["by_class"]``), plus the pooled one, which carries the prediction summary (class
distribution, confidence, anomaly score) and still says when a machine is outside everything trained on.
Bundles exported before ``by_class`` existed get the pooled monitor alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.errors import DataError
from edgekit.runtime.drift import DriftMonitor

STATE_VERSION = 1


class ClassConditionalDrift:
    """``DriftMonitor``'s interface over a pooled monitor and one monitor per class; drift when any of them says so.

    ``params`` are DriftMonitor's (thresholds, k, n, min_windows), the same for every monitor.
    """

    def __init__(self, reference_stats: dict, feature_names: Sequence[str], class_names: Sequence[str],
                 **params) -> None:
        self._classes = list(class_names)
        self._pooled = DriftMonitor(reference_stats, feature_names, class_names=self._classes, **params)
        by_class = reference_stats.get("by_class") or {}
        levels = reference_stats.get("quantile_levels", [])
        self._by_class = {
            i: DriftMonitor({"features": by_class[name]["features"], "quantile_levels": levels}, feature_names,
                            class_names=self._classes, **params)
            for i, name in enumerate(self._classes) if name in by_class
        }
        self._drift = False
        self._alarms = 0

    @property
    def drift_detected(self) -> bool:
        return self._drift

    def update_many(self, rows, predicted_classes, confidences=None, anomaly_scores=None) -> "ClassConditionalDrift":
        rows = np.asarray(rows)
        classes = np.asarray(predicted_classes, dtype=np.int64).ravel()
        self._pooled.update_many(rows, classes, confidences, anomaly_scores)
        for index, monitor in self._by_class.items():
            chosen = classes == index
            if chosen.any():
                monitor.update_many(rows[chosen])
        return self

    def report(self) -> dict:
        """The pooled report (prediction summary, population drift) with the per-class feature drift folded in."""
        pooled = self._pooled.report()
        classes = {}
        for index, monitor in self._by_class.items():
            report = monitor.report()
            # Only classes seen enough to vote count: a few windows given a class by mistake would show huge
            # distances, and a class no longer predicted must not hold the alarm on with its old decision.
            if report["voted"]:
                classes[self._classes[index]] = report
        drift = pooled["drift"] or any(r["drift"] for r in classes.values())
        self._alarms += int(drift and not self._drift)
        self._drift = drift
        out = dict(pooled)
        if classes:
            # The headline numbers are those of the class that moved most; the pooled ones stay under "population".
            name, worst = max(classes.items(), key=lambda item: item[1]["effect_max"])
            out.update({key: worst[key] for key in ("psi_max", "effect_max", "n_over", "worst")})
            out["class"] = name
            out["classes"] = {c: {"windows": r["windows"], "effect_max": r["effect_max"], "hits": r["hits"],
                                  "of": r["of"], "drift": r["drift"]} for c, r in classes.items()}
        out["population"] = {"effect_max": pooled["effect_max"], "hits": pooled["hits"], "drift": pooled["drift"]}
        out["over"] = pooled["over"] or any(r["over"] for r in classes.values())
        out["drift"], out["alarms"] = drift, self._alarms
        return out

    def state_dict(self) -> dict:
        return {"version": STATE_VERSION, "pooled": self._pooled.state_dict(), "drift": self._drift,
                "alarms": self._alarms,
                "by_class": {self._classes[i]: m.state_dict() for i, m in self._by_class.items()}}

    def load_state_dict(self, state: dict) -> "ClassConditionalDrift":
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise DataError("the drift state was written by another edgekit version; delete the state file")
        if set(state.get("by_class", {})) != {self._classes[i] for i in self._by_class}:
            raise DataError("the drift state belongs to a bundle with other classes; delete the state file")
        self._pooled.load_state_dict(state["pooled"])
        for index, monitor in self._by_class.items():
            monitor.load_state_dict(state["by_class"][self._classes[index]])
        self._drift, self._alarms = bool(state["drift"]), int(state["alarms"])
        return self
