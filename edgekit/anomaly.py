"""An anomaly score for operating states the classifier never saw, so the device can answer "unknown".

A classifier always picks one of its classes, even for a fault it was never shown. This model scores how far a
window's features lie from every training class: the Mahalanobis distance to the nearest class mean, with one
shared covariance (shrunk towards the identity so a few hundred windows give a stable inverse). The threshold is
a high quantile of the scores of held-out (validation) windows, so about 1 - quantile of normal traffic is flagged.

Fitting and scoring are plain numpy and the model is JSON, so the device scores without training libraries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.errors import DataError


@dataclass(frozen=True)
class MahalanobisAnomaly:
    """Nearest-class Mahalanobis distance on standardized features.

    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 1, (200, 3)), rng.normal(5, 1, (200, 3))])
    >>> y = np.repeat([0, 1], 200)
    >>> model = MahalanobisAnomaly.fit(x, y, x, quantile=0.99)
    >>> bool(model.score(np.array([[0.0, 0.0, 0.0]]))[0] < model.threshold)
    True
    >>> bool(model.score(np.array([[20.0, -20.0, 0.0]]))[0] > model.threshold)
    True
    """

    mean: np.ndarray            # [f] feature means of the training windows
    scale: np.ndarray           # [f] feature standard deviations (1 where constant)
    class_means: np.ndarray     # [c, f] in standardized units
    precision: np.ndarray       # [f, f] inverse of the shrunk pooled covariance
    threshold: float
    quantile: float

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, held_out: np.ndarray, *,
            quantile: float = 0.995, shrinkage: float = 0.1) -> "MahalanobisAnomaly":
        """Fit on training ``features``/``labels``; set the threshold on the ``held_out`` features."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or len(features) < 2:
            raise DataError("the anomaly model needs at least two training windows of features")
        if not 0 < quantile < 1:
            raise DataError(f"anomaly quantile must be in (0, 1), got {quantile}")
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        z = (features - mean) / scale
        classes = np.unique(labels)
        class_means = np.zeros((int(classes.max()) + 1, z.shape[1]))
        centred = np.empty_like(z)
        for c in classes:
            rows = labels == c
            class_means[c] = z[rows].mean(axis=0)
            centred[rows] = z[rows] - class_means[c]
        covariance = centred.T @ centred / max(len(z) - len(classes), 1)
        target = np.trace(covariance) / covariance.shape[0] * np.eye(covariance.shape[0])
        precision = np.linalg.pinv((1 - shrinkage) * covariance + shrinkage * target)
        model = cls(mean, scale, class_means, precision, threshold=np.inf, quantile=quantile)
        scores = model.score(np.asarray(held_out, dtype=np.float64))
        return cls(mean, scale, class_means, precision, threshold=float(np.quantile(scores, quantile)),
                   quantile=quantile)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Distance (in standard deviations) from each row to the nearest class; larger is stranger."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        diff = z[:, None, :] - self.class_means[None, :, :]
        squared = np.einsum("ncf,fg,ncg->nc", diff, self.precision, diff)
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0))

    def is_anomalous(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) > self.threshold

    def to_dict(self) -> dict:
        return {"kind": "mahalanobis", "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "class_means": self.class_means.tolist(), "precision": self.precision.tolist(),
                "threshold": self.threshold, "quantile": self.quantile}

    @classmethod
    def from_dict(cls, data: dict) -> "MahalanobisAnomaly":
        if data.get("kind") != "mahalanobis":
            raise DataError(f"unknown anomaly model kind {data.get('kind')!r}; this edgekit knows 'mahalanobis'")
        return cls(np.array(data["mean"]), np.array(data["scale"]), np.array(data["class_means"]),
                   np.array(data["precision"]), float(data["threshold"]), float(data["quantile"]))
