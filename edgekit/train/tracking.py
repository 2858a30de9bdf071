"""Optional experiment tracking: log a finished run directory to MLflow (extra ``mlflow``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from edgekit.errors import require_module


def _flat(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value
    return out


def log_run(run_dir: str | Path, tracking_uri: str = "file:./mlruns", experiment: str = "edgekit") -> str:
    """Log params (the resolved config), test metrics, curves and every file of ``run_dir``; returns the run id."""
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        # MLflow 3 refuses its file store unless asked; a local file store is what offline users want, and the
        # skinny client (our extra) has no SQL backend to offer instead.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow = require_module("mlflow", "mlflow")
    folder = Path(run_dir)
    config = json.loads((folder / "config.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    curves = json.loads((folder / "curves.json").read_text())
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=folder.name) as active:
        params = _flat("", {"options": config["options"], "split": config["split"],
                            "dataset_version": config["dataset"]["version"]}, {})
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: metrics[k] for k in ("accuracy", "macro_f1", "macro_auroc") if k in metrics})
        for name in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
            for step, value in enumerate(curves[name]):
                mlflow.log_metric(name, value, step=step)
        mlflow.log_artifacts(str(folder))
        return active.info.run_id
