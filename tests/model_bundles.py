"""Small real bundles for the runtime tests: a synthetic dataset, a briefly trained model, a real export."""

from __future__ import annotations

from pathlib import Path

CLASSES = ["normal", "imbalance", "outer_race", "inner_race"]


def make_bundle(root: Path, model: str = "cnn1d", target: str = "rpi4") -> Path:
    """Train ``model`` on a small synthetic dataset and export it for ``target``; returns the bundle folder."""
    from edgekit.data.store import save_dataset
    from edgekit.data.synth import generate_dataset
    from edgekit.export.pipeline import export_run
    from edgekit.train.trainer import TrainOptions, train

    data = root / "data"
    if not data.exists():
        save_dataset(generate_dataset("motor", seed=5, recordings_per_class=2, duration_s=4.0, loads=[0, 1],
                                      classes=CLASSES), data)
    run = root / f"run-{model}"
    if not run.exists():
        train(data, run, TrainOptions(model=model, epochs=6 if model == "cnn1d" else 30, seed=0, train_hop=256,
                                      bearing="6205", rpm=1790))
    out = root / f"bundle-{model}-{target}"
    export_run(run, target, out)
    return out
