"""``edgekit train`` and ``edgekit evaluate``."""

from __future__ import annotations

import click

from edgekit.cli.output import echo_json, format_option
from edgekit.errors import ConfigError


def _print_metrics(metrics: dict, fmt: str) -> None:
    if fmt == "json":
        echo_json(metrics)
        return
    click.echo(f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
               f"macro AUROC {metrics['macro_auroc']:.4f}  ({metrics['n']} windows)")
    if "anomaly_flag_rate" in metrics:
        click.echo(f"flagged unknown by the anomaly score: {metrics['anomaly_flag_rate']:.2%}")
    width = max(len(c) for c in metrics["per_class"])
    for name, row in metrics["per_class"].items():
        click.echo(f"  {name:<{width}}  precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
                   f"support {row['support']}")


@click.command("train")
@click.argument("dataset", type=click.Path(exists=True, file_okay=False))
@click.option("--model", type=click.Choice(["cnn1d", "mlp"]), default="cnn1d", show_default=True,
              help="cnn1d on raw windows, or mlp on the FeatureSpec features.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New run directory.")
@click.option("--split", type=click.Choice(["blocks", "conditions"]), default="blocks", show_default=True,
              help="blocks: time blocks of every recording; conditions: whole recordings by condition.")
@click.option("--train-conditions", help="With --split conditions, e.g. load=0,1")
@click.option("--test-conditions", help="With --split conditions, e.g. load=2,3")
@click.option("--epochs", default=40, show_default=True, type=click.IntRange(1), help="Maximum epochs.")
@click.option("--patience", default=8, show_default=True, type=click.IntRange(1),
              help="Stop after this many epochs without a better validation loss.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--window", default=1024, show_default=True, type=click.IntRange(16))
@click.option("--hop", type=click.IntRange(1), help="Hop of validation/test (and device) windows [window/2].")
@click.option("--train-hop", type=click.IntRange(1), help="Hop of training windows [window/8].")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(2))
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Learning rate [cnn1d 2e-3, mlp 3e-3].")
@click.option("--augment-snr", type=float, default=0.0, show_default=True,
              help="Add white noise at a random SNR in [DB, DB+20] dB to half the training windows (the mlp: to "
                   "3 extra copies whose features it also trains on).")
@click.option("--no-augment", is_flag=True, help="Train without noise (and, for the cnn1d, gain) augmentation.")
@click.option("--bearing", help="Bearing designation (e.g. 6205) for envelope features.")
@click.option("--rpm", type=click.FloatRange(min=1), help="Shaft speed for envelope features.")
@click.option("--mlflow", "mlflow_uri", is_flag=False, flag_value="file:./mlruns", default=None,
              help="Log params, metrics and artifacts to MLflow (default store file:./mlruns).")
@format_option
def train(dataset, model, out, split, train_conditions, test_conditions, epochs, patience, seed, window, hop,
          train_hop, batch_size, lr, augment_snr, no_augment, bearing, rpm, mlflow_uri, fmt) -> None:
    """Train a fault classifier on DATASET and write a run directory."""
    from tqdm.auto import tqdm

    from edgekit.train.trainer import TrainOptions, train as run_training

    if no_augment and augment_snr != 0.0:
        raise ConfigError("--augment-snr and --no-augment contradict each other; pass one of them")
    options = TrainOptions(model=model, split=split, train_conditions=train_conditions,
                           test_conditions=test_conditions, epochs=epochs, seed=seed, window=window, hop=hop,
                           train_hop=train_hop, batch_size=batch_size, lr=lr, patience=patience,
                           bearing=bearing, rpm=rpm, noise_snr_db=None if no_augment else augment_snr,
                           gain_augmentation=1.0 if no_augment else TrainOptions.gain_augmentation)

    def progress(epochs_range):
        return tqdm(epochs_range, desc=f"training {model}", unit="epoch", leave=True, disable=fmt == "json")

    metrics = run_training(dataset, out, options, progress=progress)
    if mlflow_uri:
        from edgekit.train.tracking import log_run

        log_run(out, mlflow_uri)
    _print_metrics(metrics, fmt)
    if fmt != "json":
        click.echo(f"run written to {out} (test metrics in metrics.json)")


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--split", "part", type=click.Choice(["test", "all"]),
              help="test: the run's held-out part (default on its own dataset); all: every window.")
@click.option("--noise-snr", type=float, help="Add white noise at this SNR in dB to the test windows.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the added noise.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for metrics files [RUN_DIR].")
@format_option
def evaluate(run_dir, dataset, part, noise_snr, seed, out, fmt) -> None:
    """Evaluate a run: accuracy, macro-F1, per-class precision/recall, AUROC, confusion matrix."""
    from edgekit.train.evaluate import evaluate_run

    metrics = evaluate_run(run_dir, dataset, part=part, noise_snr_db=noise_snr, seed=seed, out=out)
    _print_metrics(metrics, fmt)
