"""The run directory: everything export and the device will need from a training run.

::

    RUN_DIR/config.json            resolved training config, dataset version, split, edgekit version
    RUN_DIR/feature_spec.json      the FeatureSpec (the device computes exactly these features)
    RUN_DIR/model.json             architecture, its parameters, class names, input kind and shape, size, MACs
    RUN_DIR/model.pt               the state dict
    RUN_DIR/curves.json|png        training curves
    RUN_DIR/metrics.json|md        test metrics (rewritten by ``edgekit evaluate``), confusion.png
    RUN_DIR/calibration.npz        representative training windows (+ their features) for int8 calibration
    RUN_DIR/holdout.npz            up to 1000 class-stratified test windows (+ features, labels) to validate exports
    RUN_DIR/reference_stats.json   training feature distributions, class distribution (drift reference)
    RUN_DIR/anomaly.json           the anomaly model ("unknown" detection)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.anomaly import MahalanobisAnomaly
from edgekit.errors import DataError
from edgekit.features import FeatureSpec
from edgekit.jsonable import json_default

REQUIRED_FILES = ("config.json", "feature_spec.json", "model.json", "model.pt", "anomaly.json",
                  "reference_stats.json", "calibration.npz", "holdout.npz")


@dataclass
class Run:
    """A loaded run directory."""

    path: Path
    config: dict[str, Any]
    spec: FeatureSpec
    model_info: dict[str, Any]
    model: Any  # torch.nn.Module, in eval mode
    anomaly: MahalanobisAnomaly
    reference_stats: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return list(self.model_info["classes"])

    @property
    def input_kind(self) -> str:
        """``"window"`` (raw samples, [batch, 1, window]) or ``"features"`` ([batch, n_features])."""
        return self.model_info["input"]["kind"]

    def calibration(self) -> dict[str, np.ndarray]:
        return self._arrays("calibration.npz")

    def holdout(self) -> dict[str, np.ndarray]:
        return self._arrays("holdout.npz")

    def _arrays(self, name: str) -> dict[str, np.ndarray]:
        with np.load(self.path / name) as data:
            return {k: data[k] for k in data.files}


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=json_default) + "\n")


def save_run(out: Path, *, config: dict, spec: FeatureSpec, model, model_info: dict, curves: dict,
             anomaly: MahalanobisAnomaly, reference_stats: dict, calibration: dict[str, np.ndarray],
             holdout: dict[str, np.ndarray]) -> Path:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", config)
    _write_json(out / "feature_spec.json", spec.to_dict())
    _write_json(out / "model.json", model_info)
    torch.save(model.state_dict(), out / "model.pt")
    _write_json(out / "curves.json", curves)
    _write_json(out / "anomaly.json", anomaly.to_dict())
    _write_json(out / "reference_stats.json", reference_stats)
    np.savez_compressed(out / "calibration.npz", **calibration)
    np.savez_compressed(out / "holdout.npz", **holdout)
    return out


def load_run(path: str | Path) -> Run:
    """Read a run directory back into a model in eval mode; a missing file names itself."""
    import torch

    from edgekit.train.models import build_model

    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a run directory; create one with 'edgekit train'")
    missing = [f for f in REQUIRED_FILES if not (folder / f).exists()]
    if missing:
        raise DataError(f"{folder} is not a complete run directory: missing {', '.join(missing)}")
    try:
        model_info = json.loads((folder / "model.json").read_text())
        model = build_model(model_info["architecture"], model_info["params"])
        model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        model.eval()
        return Run(
            path=folder,
            config=json.loads((folder / "config.json").read_text()),
            spec=FeatureSpec.from_dict(json.loads((folder / "feature_spec.json").read_text())),
            model_info=model_info,
            model=model,
            anomaly=MahalanobisAnomaly.from_dict(json.loads((folder / "anomaly.json").read_text())),
            reference_stats=json.loads((folder / "reference_stats.json").read_text()),
        )
    except (json.JSONDecodeError, KeyError, TypeError, RuntimeError) as exc:
        raise DataError(f"{folder} is a damaged run directory ({type(exc).__name__}: {exc}); retrain it") from None
