"""Export: every shipped profile exports and validates; budgets, thresholds and signatures are enforced."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.bundle import open_bundle
from edgekit.cli.main import cli
from edgekit.export.base import BudgetError, ExportError
from edgekit.export.pipeline import export_run
from edgekit.runtime.engines import open_engine
from edgekit.targets import load_profiles, shipped_targets_dir

# Every shipped profile gets a test: a new profile without a working export fails here.
PROFILES = sorted(load_profiles())


@pytest.mark.parametrize("target", PROFILES)
def test_every_profile_exports_a_verified_bundle(target, mlp_run_dir, tmp_path):
    report = export_run(mlp_run_dir, target, tmp_path / "bundle")
    profile = load_profiles()[target]
    bundle = open_bundle(tmp_path / "bundle", trust="hashes")
    produced = {a["target_format"] for a in bundle.artifacts}
    assert set(profile.formats) | {"onnx_fp32"} == produced
    for artifact in report["artifacts"]:
        if artifact["built"]:
            assert artifact["agreement"] >= profile.validation.min_agreement_int8, artifact
            assert artifact["size_bytes"] > 0 and artifact["latency_ms"] > 0
    manifest = bundle.manifest
    assert manifest["classes"] == ["normal", "imbalance", "outer_race", "inner_race"]
    assert manifest["feature_spec"]["bearing"] is not None and manifest["anomaly"]["kind"] == "mahalanobis"
    assert manifest["target"]["name"] == target
    for entry in bundle.artifacts:
        assert {"file", "format", "precision", "sha256"} <= set(entry)
    assert (tmp_path / "bundle" / "report.md").read_text().startswith(f"# Export report: mlp for {target}")


def test_cnn1d_for_rpi4_int8_stays_close_to_fp32(cnn_run_dir, tmp_path):
    report = export_run(cnn_run_dir, "rpi4", tmp_path / "rpi4")
    rows = {a["target_format"]: a for a in report["artifacts"]}
    assert rows["onnx_fp32"]["max_abs_error"] < 1e-4  # against torch
    for fmt in ("onnx_int8", "tflite_int8"):
        assert rows[fmt]["agreement"] >= 0.99
        assert abs(rows[fmt]["accuracy"] - rows["onnx_fp32"]["accuracy"]) <= 0.005
    assert rows["onnx_int8"]["size_bytes"] < 0.4 * rows["onnx_fp32"]["size_bytes"]
    # Conv layers are quantized too, and the per-layer report covers the whole graph.
    layers = report["int8_layers"]
    assert layers and layers[-1]["tensor"] == "logits" and all(layer["cosine"] > 0.9 for layer in layers)
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "rpi4" / "model_int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    manifest = json.loads((tmp_path / "rpi4" / "manifest.json").read_text())
    int8 = next(a for a in manifest["artifacts"] if a["target_format"] == "onnx_int8")
    assert int8["input_quantization"]["dtype"] == "uint8"  # rpi4 preset: u8 activations / s8 weights


def test_the_exported_files_give_the_reported_numbers(mlp_run_dir, tmp_path):
    """Re-run an artifact from the bundle with the device's engine: the report is not made up."""
    from edgekit.train.run import load_run

    report = export_run(mlp_run_dir, "x86-64-avx2", tmp_path / "b")
    run = load_run(mlp_run_dir)
    holdout = run.holdout()
    engine = open_engine(tmp_path / "b" / "model_int8.onnx", "onnxruntime")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    norm = manifest["model"]["input_normalization"]  # the device standardizes features before the int8 MLP
    features = (holdout["features"] - np.array(norm["mean"], np.float32)) / np.array(norm["scale"], np.float32)
    accuracy = float(np.mean(engine.run(features.astype(np.float32)).argmax(1) == holdout["labels"]))
    row = next(a for a in report["artifacts"] if a["target_format"] == "onnx_int8")
    assert accuracy == pytest.approx(row["accuracy"])
    avx2 = json.loads((tmp_path / "b" / "manifest.json").read_text())
    settings = next(a for a in avx2["artifacts"] if a["target_format"] == "onnx_int8")["extra"]["quantization"]
    assert settings["reduce_range"] is True and settings["per_channel"] is True


def test_tensorrt_is_never_claimed_without_tensorrt(mlp_run_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    report = export_run(mlp_run_dir, "gpu-server", tmp_path / "gpu")
    trt = [a for a in report["artifacts"] if a["target_format"].startswith("tensorrt")]
    assert trt and all(not a["built"] for a in trt)
    assert all("no engine was built" in a["notes"] for a in trt)
    script = (tmp_path / "gpu" / "build_engine_int8.sh").read_text()
    assert "trtexec --onnx=model_int8.onnx --int8" in script
    assert '--saveEngine="$out/model_int8.plan"' in script  # outside the bundle, whose files are hash-checked
    assert "**no**" in (tmp_path / "gpu" / "report.md").read_text()
    assert not list((tmp_path / "gpu").glob("*.plan"))


def _custom_profile(folder: Path, name: str, edits: dict[str, str]) -> Path:
    text = (shipped_targets_dir() / "x86-64-avx2.toml").read_text().replace('name = "x86-64-avx2"', f'name = "{name}"')
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(text)
    return folder


def test_budget_error_says_which_artifact_and_by_how_much(mlp_run_dir, tmp_path):
    boards = _custom_profile(tmp_path / "boards", "tiny-board", {"flash_kib = 262144": "flash_kib = 1"})
    with pytest.raises(BudgetError, match=r"model_fp32.onnx is [\d.]+ KiB, [\d.]+ KiB over tiny-board's flash budget of 1 KiB"):
        export_run(mlp_run_dir, "tiny-board", tmp_path / "out", targets_dir=boards)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_validation_failure_is_an_export_error_with_numbers(mlp_run_dir, tmp_path):
    boards = _custom_profile(tmp_path / "boards", "strict", {"max_abs_error_fp32 = 1e-4": "max_abs_error_fp32 = 1e-15"})
    with pytest.raises(ExportError, match=r"model_fp32.onnx \(onnx_fp32\) vs torch: max abs error [\d.e-]+ exceeds 1e-15"):
        export_run(mlp_run_dir, "strict", tmp_path / "out", targets_dir=boards)


def test_cli_export_signed_archive_verify_and_tamper(mlp_run_dir, tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["keys", "generate", "--out", str(tmp_path / "k")]).exit_code == 0
    result = runner.invoke(cli, ["export", str(mlp_run_dir), "--target", "x86-64-vnni", "--out", str(tmp_path / "b"),
                                 "--archive", "--sign-key", str(tmp_path / "k.key"), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert {"file", "size_bytes", "accuracy", "agreement", "max_abs_error", "latency_ms"} <= set(
        json.loads(result.output)["artifacts"][0])
    assert (tmp_path / "b.tar.gz").exists()
    ok = runner.invoke(cli, ["bundle", "verify", str(tmp_path / "b"), "--pubkey", str(tmp_path / "k.pub")])
    assert ok.exit_code == 0 and "signature verified" in ok.output
    copy = tmp_path / "tampered"
    shutil.copytree(tmp_path / "b", copy)
    data = bytearray((copy / "model_int8.onnx").read_bytes())
    data[-1] ^= 1
    (copy / "model_int8.onnx").write_bytes(bytes(data))
    bad = runner.invoke(cli, ["bundle", "verify", str(copy), "--pubkey", str(tmp_path / "k.pub")])
    assert bad.exit_code == 1 and "model_int8.onnx: sha256 mismatch" in bad.output


def test_cli_unknown_target_lists_known_ones(mlp_run_dir, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(mlp_run_dir), "--target", "rpi9", "--out", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: unknown target 'rpi9'; known targets: cortex-m4, cortex-m7, gpu-server")
