"""Tiny trained runs shared by the export tests."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from edgekit.data.store import save_dataset  # noqa: E402
from edgekit.data.synth import generate_dataset  # noqa: E402

CLASSES = ["normal", "imbalance", "outer_race", "inner_race"]


@pytest.fixture(scope="session")
def export_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("export-data") / "synth"
    save_dataset(generate_dataset("motor", seed=11, recordings_per_class=2, duration_s=3.0, loads=[0, 1],
                                  classes=CLASSES), path)
    return path


def _train(dataset, out, model):
    from edgekit.train.trainer import TrainOptions, train

    train(dataset, out, TrainOptions(model=model, epochs=6 if model == "cnn1d" else 20, seed=0, train_hop=256,
                                     bearing="6205", rpm=1790))
    return out


@pytest.fixture(scope="session")
def mlp_run_dir(export_dataset, tmp_path_factory):
    return _train(export_dataset, tmp_path_factory.mktemp("export-runs") / "mlp", "mlp")


@pytest.fixture(scope="session")
def cnn_run_dir(export_dataset, tmp_path_factory):
    return _train(export_dataset, tmp_path_factory.mktemp("export-runs") / "cnn", "cnn1d")
