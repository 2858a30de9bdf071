"""A small synthetic dataset and trained runs shared by the training tests (seconds, not minutes)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from edgekit.data.store import save_dataset  # noqa: E402
from edgekit.data.synth import generate_dataset  # noqa: E402

CLASSES = ["normal", "imbalance", "outer_race", "inner_race"]


@pytest.fixture(scope="session")
def synth_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "synth"
    dataset = generate_dataset("motor", seed=3, recordings_per_class=2, duration_s=4.0, loads=[0, 2], classes=CLASSES)
    save_dataset(dataset, path)
    return path


@pytest.fixture(scope="session")
def mlp_run(synth_dataset, tmp_path_factory):
    from edgekit.train.trainer import TrainOptions, train

    out = tmp_path_factory.mktemp("runs") / "mlp"
    metrics = train(synth_dataset, out, TrainOptions(model="mlp", epochs=25, seed=0, bearing="6205", rpm=1790))
    return out, metrics
