"""The deployed model of a bundle: which artifact and engine run, what the graph takes, class probabilities out.

The graph takes raw windows ``[n, 1, window]`` (cnn1d) or features ``[n, f]`` after the manifest's
``input_normalization`` (the MLP; kept out of the graph because one int8 input scale cannot cover features from
1e-5 g^2 to kHz). Export validation feeds the artifacts exactly these inputs, through the same engine classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.anomaly import MahalanobisAnomaly
from edgekit.errors import ConfigError
from edgekit.runtime.engines import ENGINES, Engine, open_engine

#: With no --engine/--artifact: the smallest precision first (what the profile quantized for), then the
#: profile's engine order.
PRECISION_ORDER = ("int8", "fp16", "fp32")


def normalize_inputs(inputs: np.ndarray, normalization: dict | None) -> np.ndarray:
    """``(x - mean) / scale`` with the manifest's ``input_normalization``; the identity when it is None.

    >>> normalize_inputs(np.array([[2.0, 4.0]], np.float32), {"mean": [1.0, 2.0], "scale": [1.0, 2.0]})
    array([[1., 1.]], dtype=float32)
    """
    if normalization is None:
        return inputs
    mean = np.asarray(normalization["mean"], dtype=np.float32)
    scale = np.asarray(normalization["scale"], dtype=np.float32)
    return ((inputs - mean) / scale).astype(np.float32)


def choose_artifact(manifest: dict, engine: str | None = None, file: str | None = None) -> dict:
    """The artifact to run: the named ``file``, else the best deployed one that ``engine`` (or any) can run."""
    artifacts = [a for a in manifest.get("artifacts", []) if a.get("built", True) and a.get("engine") in ENGINES]
    listing = ", ".join(f"{a['file']} ({a.get('engine')})" for a in artifacts) or "none"
    if file is not None:
        match = [a for a in artifacts if a["file"] == file]
        if not match:
            raise ConfigError(f"no runnable artifact {file!r} in this bundle; runnable here: {listing}")
        if engine is not None and match[0]["engine"] != engine:
            raise ConfigError(f"{file} runs on {match[0]['engine']}, not {engine}")
        return match[0]
    if engine is not None:
        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
        artifacts = [a for a in artifacts if a["engine"] == engine]
    deployed = [a for a in artifacts if a.get("deployed", True)] or artifacts
    if not deployed:
        raise ConfigError(f"this bundle has no artifact for engine {engine!r}; runnable here: {listing}")
    engine_order = manifest.get("target", {}).get("engines") or list(ENGINES)

    def rank(artifact: dict) -> tuple[int, int]:
        precision = artifact.get("precision", "fp32")
        return (PRECISION_ORDER.index(precision) if precision in PRECISION_ORDER else len(PRECISION_ORDER),
                engine_order.index(artifact["engine"]) if artifact["engine"] in engine_order else len(engine_order))

    return min(deployed, key=rank)


class DeployedModel:
    """Runs one artifact of a bundle: ``predict(windows, features) -> (probabilities, anomaly scores)``."""

    def __init__(self, bundle, engine: str | None = None, artifact_file: str | None = None, threads: int = 1):
        manifest = bundle.manifest
        self.artifact: dict[str, Any] = choose_artifact(manifest, engine, artifact_file)
        self.engine: Engine = open_engine(bundle.file_path(self.artifact["file"]), self.artifact["engine"],
                                          self.artifact, threads)
        model = manifest.get("model", {})
        self.input_kind = model.get("input", {}).get("kind", "window")
        if self.input_kind not in ("window", "features"):
            raise ConfigError(f"the bundle's model takes {self.input_kind!r} inputs; this runtime knows window "
                              "and features")
        self.normalization = model.get("input_normalization")
        self.classes: list[str] = list(manifest["classes"])
        anomaly = manifest.get("anomaly")
        self.anomaly = MahalanobisAnomaly.from_dict(anomaly) if anomaly else None

    def describe(self) -> str:
        return f"{self.artifact['file']} ({self.artifact['precision']}) on {self.engine.name}"

    def inputs(self, windows: np.ndarray, features: np.ndarray) -> np.ndarray:
        """What the graph takes for these windows and their features."""
        if self.input_kind == "window":
            return np.ascontiguousarray(windows, dtype=np.float32)[:, None, :]
        return normalize_inputs(features.astype(np.float32), self.normalization)

    def predict(self, windows: np.ndarray, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities [n, classes] and anomaly scores [n] (NaN without an anomaly model)."""
        if len(windows) == 0:
            return np.zeros((0, len(self.classes)), np.float32), np.zeros(0)
        logits = self.engine.run(self.inputs(windows, features)).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        scores = self.anomaly.score(features) if self.anomaly is not None else np.full(len(windows), np.nan)
        return probabilities.astype(np.float32), scores
