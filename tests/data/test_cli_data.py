"""``edgekit data`` and ``edgekit features`` end to end on a small synthetic dataset."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from edgekit.cli.main import cli


def test_synth_info_verify_plot_and_extract(tmp_path):
    runner = CliRunner()
    out = tmp_path / "ds"
    made = runner.invoke(cli, ["data", "synth", "--out", str(out), "--recordings-per-class", "1", "--duration", "1"])
    assert made.exit_code == 0, made.output
    assert "wrote 7 recordings, 7 classes, 7.0 s at 12000 Hz" in made.output
    info = json.loads(runner.invoke(cli, ["data", "info", str(out), "--format", "json"]).output)
    assert info["classes"][:3] == ["normal", "imbalance", "misalignment"] and info["recordings"] == 7
    assert runner.invoke(cli, ["data", "info", str(out), "--verify"]).output.endswith(
        "all recordings match their sha256\n")

    card = json.loads((out / "dataset.json").read_text())
    card["recordings"][0]["label"] = "imbalance"  # relabelled by hand: the version no longer describes the data
    (out / "dataset.json").write_text(json.dumps(card))
    edited = runner.invoke(cli, ["data", "info", str(out), "--verify"])
    assert edited.exit_code == 1 and "version in dataset.json no longer matches" in edited.output
    card["recordings"][0]["label"] = "normal"
    (out / "dataset.json").write_text(json.dumps(card))

    plotted = runner.invoke(cli, ["data", "plot", str(out), "--out", str(tmp_path / "spectra.png")])
    assert plotted.exit_code == 0 and (tmp_path / "spectra.png").read_bytes()[:4] == b"\x89PNG"

    extracted = runner.invoke(cli, ["features", "extract", str(out), "--bearing", "6205", "--rpm", "1797",
                                    "--out", str(tmp_path / "f.npz"), "--format", "json"])
    assert extracted.exit_code == 0, extracted.output
    summary = json.loads(extracted.output)
    with np.load(tmp_path / "f.npz") as saved:
        assert saved["features"].shape == (summary["windows"], 28) and list(saved["classes"])[0] == "normal"
        assert "env_bpfo" in list(saved["feature_names"])


def test_synth_scenario_and_errors(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "synth", "--out", str(tmp_path / "s"), "--scenario", "nan_bursts",
                                 "--duration", "4"])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "s" / "dataset.json").read_text())
    assert len(card["recordings"]) == 1 and card["recordings"][0]["n_samples"] == 48000
    missing = runner.invoke(cli, ["data", "synth"])
    assert missing.exit_code == 1 and missing.output == "Error: missing --out: name the folder to write the dataset to\n"
    again = runner.invoke(cli, ["data", "synth", "--out", str(tmp_path / "s"), "--duration", "1"])
    assert again.exit_code == 1 and "pass --overwrite to replace it" in again.output
    bad = runner.invoke(cli, ["data", "synth", "--out", str(tmp_path / "x"), "--preset", "turbine"])
    assert bad.exit_code == 1 and bad.output.startswith("Error: unknown machine preset 'turbine'; known: motor, pump")
