"""``edgekit evaluate``: test metrics of a run, optionally under added noise, written as JSON, Markdown and PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekit.data.splits import Segment, cut_windows
from edgekit.data.store import load_dataset
from edgekit.errors import DataError
from edgekit.features import extract
from edgekit.metrics import classification_report, softmax


def add_noise(windows: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` relative to each window's own power, as the literature reports it.

    >>> w = np.ones((2, 1000), np.float32)
    >>> noisy = add_noise(w, 0.0, np.random.default_rng(0))
    >>> bool(abs(float(((noisy - w) ** 2).mean()) - 1.0) < 0.1)
    True
    """
    power = np.mean(windows.astype(np.float64) ** 2, axis=1, keepdims=True)
    noise = rng.standard_normal(windows.shape) * np.sqrt(power / 10 ** (snr_db / 10))
    return (windows + noise).astype(np.float32)


def evaluate_arrays(y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence[str],
                    anomaly_scores: np.ndarray | None = None, anomaly_threshold: float | None = None) -> dict:
    report = classification_report(y_true, probabilities, classes)
    report["mean_confidence"] = float(probabilities.max(1).mean())
    if anomaly_scores is not None and anomaly_threshold is not None:
        report["anomaly_flag_rate"] = float((anomaly_scores > anomaly_threshold).mean())
    return report


def metrics_markdown(metrics: dict, title: str) -> str:
    lines = [f"# {title}", "",
             f"- windows: {metrics['n']}", f"- accuracy: {metrics['accuracy']:.4f}",
             f"- macro F1: {metrics['macro_f1']:.4f}", f"- macro one-vs-rest AUROC: {metrics['macro_auroc']:.4f}"]
    if "anomaly_flag_rate" in metrics:
        lines.append(f"- windows flagged as unknown by the anomaly score: {metrics['anomaly_flag_rate']:.2%}")
    noise = metrics.get("evaluated_on", {}).get("noise_snr_db")
    if noise is not None:
        lines.append(f"- white noise added at SNR {noise:g} dB")
    lines += ["", "| class | precision | recall | F1 | AUROC | support |", "|---|---|---|---|---|---|"]
    for name, row in metrics["per_class"].items():
        auroc = "n/a" if row["auroc"] is None else f"{row['auroc']:.4f}"
        lines.append(f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {auroc} | "
                     f"{row['support']} |")
    return "\n".join(lines) + "\n"


def write_metrics(folder: Path, metrics: dict, title: str, stem: str = "metrics") -> None:
    from edgekit.train.plots import plot_confusion

    (folder / f"{stem}.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (folder / f"{stem}.md").write_text(metrics_markdown(metrics, title))
    plot_confusion(np.array(metrics["confusion_matrix"]), metrics["classes"], folder / f"{stem}_confusion.png",
                   title=f"{title}: accuracy {metrics['accuracy']:.2%}")


def evaluate_run(run_dir: str | Path, dataset_path: str | Path, *, part: str | None = None,
                 noise_snr_db: float | None = None, seed: int = 0, out: str | Path | None = None) -> dict[str, Any]:
    """Metrics of the run on ``dataset_path``.

    ``part`` is ``test`` (the run's own split of this dataset; the default when it is the training dataset)
    or ``all`` (every window of every recording; the default for any other dataset).
    """
    from edgekit.train.loop import predict_logits
    from edgekit.train.run import load_run
    from edgekit.train.trainer import TrainOptions, split_for

    run = load_run(run_dir)
    dataset = load_dataset(dataset_path)
    if dataset.sample_rate != run.spec.sample_rate:
        raise DataError(f"the dataset is sampled at {dataset.sample_rate:g} Hz but the model was trained at "
                        f"{run.spec.sample_rate:g} Hz; resample it on import (--sample-rate)")
    unknown = sorted({r.label for r in dataset} - set(run.classes))
    if unknown:
        raise DataError(f"the dataset has classes the model does not know: {unknown}; the model knows {run.classes}")
    same_data = dataset.version == run.config["dataset"]["version"]
    part = part or ("test" if same_data else "all")
    if part == "test":
        options = TrainOptions(**{k: v for k, v in run.config["options"].items() if k in TrainOptions.__dataclass_fields__})
        segments = split_for(dataset, options, run.spec.window).test
    elif part == "all":
        segments = [Segment(r.id, 0, r.n_samples) for r in dataset]
    else:
        raise DataError(f"unknown part {part!r}; choose test or all")
    windows, labels_local, _ = cut_windows(dataset, segments, run.spec.window, run.spec.hop)
    # Map the dataset's class indices to the model's.
    labels = np.array([run.classes.index(dataset.classes[i]) for i in labels_local])
    if noise_snr_db is not None:
        windows = add_noise(windows, noise_snr_db, np.random.default_rng(seed))
    features = extract(windows, run.spec)
    inputs = features if run.input_kind == "features" else windows[:, None, :]
    probabilities = softmax(predict_logits(run.model, inputs))
    scores = run.anomaly.score(features)
    metrics = evaluate_arrays(labels, probabilities, run.classes, scores, run.anomaly.threshold)
    metrics["evaluated_on"] = {"dataset_version": dataset.version, "part": part, "noise_snr_db": noise_snr_db}
    target = Path(out) if out else run.path
    target.mkdir(parents=True, exist_ok=True)
    # metrics.json is the run's own test result (export and tracking read it); other evaluations get their own name.
    stem = "metrics" if part == "test" and same_data else f"metrics_{part}_{dataset.version[7:15]}"
    if noise_snr_db is not None:
        stem += f"_snr{noise_snr_db:g}db"
    write_metrics(target, metrics, title=f"{run.model_info['architecture']} on {dataset.name} ({part})", stem=stem)
    return metrics
