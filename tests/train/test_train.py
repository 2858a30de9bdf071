"""Training: accuracy on synthetic data, run directories that round-trip, determinism, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgekit.cli.main import cli
from edgekit.data.store import Dataset, Recording, save_dataset
from edgekit.data.synth import generate_dataset
from edgekit.errors import ConfigError, DataError
from edgekit.train.evaluate import evaluate_run
from edgekit.train.models import Cnn1d, FeatureMlp, count_macs, count_parameters
from edgekit.train.run import load_run
from edgekit.train.trainer import TrainOptions, train


def test_mlp_reaches_stated_accuracy_on_synthetic_faults(mlp_run):
    _, metrics = mlp_run
    # Four physically distinct classes at two loads, envelope features on: separable by design.
    assert metrics["accuracy"] >= 0.95
    assert metrics["macro_f1"] >= 0.95 and metrics["macro_auroc"] >= 0.98


def test_cnn1d_reaches_stated_accuracy(synth_dataset, tmp_path):
    metrics = train(synth_dataset, tmp_path / "cnn", TrainOptions(model="cnn1d", epochs=6, seed=0, train_hop=256))
    assert metrics["accuracy"] >= 0.9


def test_run_directory_round_trips(mlp_run, synth_dataset, tmp_path):
    run_dir, metrics = mlp_run
    run = load_run(run_dir)
    assert run.classes == ["normal", "imbalance", "outer_race", "inner_race"]
    assert run.input_kind == "features" and run.spec.bearing is not None and run.spec.rpm == 1790
    assert isinstance(run.model, FeatureMlp) and not run.model.training
    calibration = run.calibration()
    assert calibration["windows"].shape[1] == run.spec.window
    assert 0 < len(calibration["windows"]) <= 300 and set(calibration["labels"]) == {0, 1, 2, 3}
    holdout = run.holdout()
    assert len(holdout["windows"]) == len(holdout["features"]) == len(holdout["labels"]) > 0
    assert set(holdout["labels"]) == {0, 1, 2, 3}
    stats = run.reference_stats
    from edgekit.features import feature_names

    assert list(stats["features"]) == feature_names(run.spec)
    assert sum(stats["class_distribution"].values()) == pytest.approx(1.0)
    for name, feature in stats["features"].items():
        assert sum(feature["bin_fractions"]) == pytest.approx(1.0), name
    # Evaluating the reloaded run on the same split reproduces the metrics written at training time.
    again = evaluate_run(run_dir, synth_dataset, out=tmp_path)
    assert again["accuracy"] == pytest.approx(metrics["accuracy"])
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    assert (tmp_path / "metrics.md").exists() and (tmp_path / "metrics_confusion.png").exists()
    for name in ("config.json", "curves.json", "curves.png", "anomaly.json", "model.pt"):
        assert (run_dir / name).exists()


def test_same_seed_same_weights_other_seed_other_weights(synth_dataset, tmp_path):
    options = TrainOptions(model="mlp", epochs=3, seed=7)
    a = train(synth_dataset, tmp_path / "a", options)
    b = train(synth_dataset, tmp_path / "b", options)
    train(synth_dataset, tmp_path / "c", TrainOptions(model="mlp", epochs=3, seed=8))
    wa, wb, wc = (torch.load(tmp_path / n / "model.pt") for n in "abc")
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    assert any(not torch.equal(wa[k], wc[k]) for k in wa if k.endswith("weight"))
    assert a["accuracy"] == b["accuracy"]


def test_noise_evaluation_is_recorded(mlp_run, synth_dataset, tmp_path):
    run_dir, _ = mlp_run
    clean = evaluate_run(run_dir, synth_dataset, out=tmp_path)
    noisy = evaluate_run(run_dir, synth_dataset, noise_snr_db=-10, out=tmp_path)
    assert noisy["evaluated_on"]["noise_snr_db"] == -10
    assert (tmp_path / "metrics_snr-10db.json").exists()
    assert noisy["accuracy"] < clean["accuracy"]


def test_anomaly_score_flags_a_class_never_seen(synth_dataset, tmp_path):
    """Trained without 'ball', the model must call ball windows unknown far more often than known ones."""
    known = generate_dataset("motor", seed=5, recordings_per_class=2, duration_s=4.0, loads=[0, 2],
                             classes=["normal", "imbalance", "outer_race", "inner_race"])
    unseen = generate_dataset("motor", seed=6, recordings_per_class=2, duration_s=4.0, loads=[0, 2], classes=["ball"])
    save_dataset(known, tmp_path / "known")
    train(tmp_path / "known", tmp_path / "run", TrainOptions(model="mlp", epochs=5, bearing="6205", rpm=1790))
    run = load_run(tmp_path / "run")
    from edgekit.data.splits import Segment, cut_windows
    from edgekit.features import extract

    windows, _, _ = cut_windows(unseen, [Segment(r.id, 0, r.n_samples) for r in unseen], 1024, 512)
    flagged = run.anomaly.is_anomalous(extract(windows, run.spec)).mean()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert flagged > 0.5 > 0.1 > metrics["anomaly_flag_rate"]


def test_model_sizes_are_as_documented():
    cnn = Cnn1d(1024, 10)
    assert count_parameters(cnn) == 34650 and count_macs(cnn, torch.zeros(1, 1, 1024)) == 721536
    mlp = FeatureMlp(28, 10)
    assert count_parameters(mlp) == 4266  # 28*64+64 + 64*32+32 + 32*10+10, as in benchmarks/accuracy.md


def test_bad_input_is_refused_clearly(tmp_path, synth_dataset):
    one_class = Dataset(12000, [Recording("a", "normal", np.zeros(20000)), Recording("b", "normal", np.ones(20000))])
    save_dataset(one_class, tmp_path / "one")
    with pytest.raises(DataError, match="one class .* at least two"):
        train(tmp_path / "one", tmp_path / "r1", TrainOptions(model="mlp"))

    empty = tmp_path / "empty"
    save_dataset(one_class, empty)
    card = json.loads((empty / "dataset.json").read_text())
    card["recordings"] = []
    (empty / "dataset.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match="no recordings"):
        train(empty, tmp_path / "r2", TrainOptions(model="mlp"))

    with pytest.raises(DataError, match="too short for a blocks split"):
        train(synth_dataset, tmp_path / "r3", TrainOptions(model="mlp", window=40000))

    with pytest.raises(ConfigError, match="--split conditions needs --train-conditions"):
        train(synth_dataset, tmp_path / "r4", TrainOptions(model="mlp", split="conditions"))

    (tmp_path / "r5").mkdir()
    (tmp_path / "r5" / "x").write_text("keep")
    with pytest.raises(DataError, match="not empty"):
        train(synth_dataset, tmp_path / "r5", TrainOptions(model="mlp"))


def test_evaluate_refuses_mismatched_sample_rate_and_unknown_classes(mlp_run, tmp_path):
    run_dir, _ = mlp_run
    other_rate = Dataset(8000, [Recording("a", "normal", np.zeros(20000)), Recording("b", "imbalance", np.ones(20000))])
    save_dataset(other_rate, tmp_path / "rate")
    with pytest.raises(DataError, match="sampled at 8000 Hz but the model was trained at 12000 Hz"):
        evaluate_run(run_dir, tmp_path / "rate")
    unknown = Dataset(12000, [Recording("a", "gearbox", np.zeros(20000))])
    save_dataset(unknown, tmp_path / "unknown")
    with pytest.raises(DataError, match=r"classes the model does not know: \['gearbox'\]"):
        evaluate_run(run_dir, tmp_path / "unknown")


def test_cli_train_and_evaluate_json(synth_dataset, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", str(synth_dataset), "--model", "mlp", "--epochs", "4",
                                 "--out", str(tmp_path / "run"), "--format", "json"])
    assert result.exit_code == 0, result.output
    trained = json.loads(result.output)
    assert 0 <= trained["accuracy"] <= 1 and 0 <= trained["macro_f1"] <= 1
    result = runner.invoke(cli, ["evaluate", str(tmp_path / "run"), "--dataset", str(synth_dataset),
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["accuracy"] == pytest.approx(trained["accuracy"])
    bad = runner.invoke(cli, ["evaluate", str(tmp_path), "--dataset", str(synth_dataset)])
    assert bad.exit_code == 1 and "is not a complete run directory: missing config.json" in bad.output


def test_mlflow_logs_params_metrics_and_artifacts(mlp_run, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    from edgekit.train.tracking import log_run

    run_dir, metrics = mlp_run
    uri = (tmp_path / "mlruns").as_uri()
    run_id = log_run(run_dir, uri)
    client = mlflow.tracking.MlflowClient(uri)
    logged = client.get_run(run_id)
    assert logged.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
    assert logged.data.params["options.model"] == "mlp"
    assert len(client.get_metric_history(run_id, "val_loss")) == metrics["epochs_run"]
    assert {"model.pt", "metrics.json", "feature_spec.json"} <= {a.path for a in client.list_artifacts(run_id)}


def test_noise_augmentation_hits_half_the_windows_at_the_stated_snr():
    from edgekit.train.loop import _add_noise

    batch = torch.ones(1000, 1, 8192)  # long windows: the measured noise power is then within ~0.3 dB of its draw
    noisy = _add_noise(batch, 10.0, torch.Generator().manual_seed(0))
    noise_power = (noisy - batch).pow(2).mean(dim=(1, 2))
    touched = noise_power > 0
    assert 0.45 < touched.float().mean() < 0.55
    snr_db = 10 * torch.log10(1.0 / noise_power[touched])
    assert 10.0 - 0.5 < snr_db.min() and snr_db.max() < 30.0 + 0.5  # signal power 1, SNR drawn in [10, 30] dB


def test_cli_rejects_contradicting_augmentation_and_damaged_runs(mlp_run, synth_dataset, tmp_path):
    runner = CliRunner()
    both = runner.invoke(cli, ["train", str(synth_dataset), "--out", str(tmp_path / "r"), "--augment-snr", "5",
                               "--no-augment"])
    assert both.exit_code == 1 and "--augment-snr and --no-augment contradict" in both.output
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(mlp_run[0], damaged)
    (damaged / "model.json").write_text("{not json")
    result = runner.invoke(cli, ["evaluate", str(damaged), "--dataset", str(synth_dataset)])
    assert result.exit_code == 1 and "is a damaged run directory (JSONDecodeError" in result.output
    assert not (tmp_path / "r").exists() and not (tmp_path / ".r.partial").exists()


def test_mlp_trains_on_noisy_copies_and_holds_up_under_noise(mlp_run, synth_dataset, tmp_path):
    from edgekit.features import extract, feature_spec
    from edgekit.train.trainer import _noisy_feature_copies

    rng = np.random.default_rng(0)
    windows = rng.standard_normal((40, 1024)).astype(np.float32)
    spec = feature_spec(12000.0, 1024)
    clean = extract(windows, spec)
    labels = np.arange(40) % 4
    features, copied_labels = _noisy_feature_copies(windows, clean, labels, spec, TrainOptions(model="mlp"))
    assert features.shape == (4 * 40, clean.shape[1]) and np.array_equal(copied_labels, np.tile(labels, 4))
    assert np.array_equal(features[:40], clean)
    changed = np.any(features[40:] != np.tile(clean, (3, 1)), axis=1)
    assert 0.3 < changed.mean() < 0.7  # noise on about half of the copies' windows
    off, _ = _noisy_feature_copies(windows, clean, labels, spec, TrainOptions(model="mlp", noise_snr_db=None))
    assert off is clean
    # What it is for: under 0 dB noise the augmented MLP keeps far more of its accuracy than one without.
    plain = tmp_path / "plain"
    train(synth_dataset, plain, TrainOptions(model="mlp", epochs=25, seed=0, bearing="6205", rpm=1790,
                                             noise_snr_db=None, gain_augmentation=1.0))
    augmented = evaluate_run(mlp_run[0], synth_dataset, noise_snr_db=0, out=tmp_path / "a")["accuracy"]
    unaugmented = evaluate_run(plain, synth_dataset, noise_snr_db=0, out=tmp_path / "p")["accuracy"]
    print(f"accuracy at SNR 0 dB: augmented {augmented:.3f}, not augmented {unaugmented:.3f}")
    assert augmented > unaugmented + 0.1
