"""Export: every shipped profile exports and validates; budgets, thresholds and signatures are enforced."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
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
    markdown = (tmp_path / "bundle" / "report.md").read_text()
    assert markdown.startswith(f"# Export report: mlp for {target}")
    if "tflite_int8" in profile.formats:  # the MCU profiles ship only this file: its layers are reported too
        assert report["tflite_int8_layers"][-1]["module"] == "logits"
        assert "## Full-int8 TFLite, layer by layer" in markdown


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


# A stand-in for the TensorRT 10 Python API (no GPU here): enough of it to run edgekit's build path, recording what
# edgekit asks of it. It checks edgekit's side of the contract - flags, optimization profile, where the engine goes,
# what the bundle and report say - not TensorRT itself, which has never run on this project's machines.
FAKE_TENSORRT = """
import onnx

calls = []

class Logger:
    WARNING = 2
    def __init__(self, severity): pass

class MemoryPoolType:
    WORKSPACE = "workspace"

class BuilderFlag:
    FP16, INT8 = "fp16", "int8"

class _Input:
    def __init__(self, value_info):
        self.name = value_info.name
        self.shape = tuple(d.dim_value if d.dim_value else -1 for d in value_info.type.tensor_type.shape.dim)

class _Network:
    def get_input(self, index): return self.inputs[index]

class OnnxParser:
    num_errors = 0
    def __init__(self, network, logger): self.network = network
    def parse(self, data):
        self.network.inputs = [_Input(v) for v in onnx.load_from_string(data).graph.input]
        return True

class _Config:
    def __init__(self): self.flags, self.profiles, self.pools = set(), [], {}
    def set_memory_pool_limit(self, pool, size): self.pools[pool] = size
    def set_flag(self, flag): self.flags.add(flag)
    def add_optimization_profile(self, profile): self.profiles.append(profile.shapes)

class _Profile:
    def __init__(self): self.shapes = {}
    def set_shape(self, name, lo, opt, hi): self.shapes[name] = (lo, opt, hi)

class Builder:
    def __init__(self, logger): pass
    def create_network(self, flags): return _Network()
    def create_builder_config(self): return _Config()
    def create_optimization_profile(self): return _Profile()
    def build_serialized_network(self, network, config):
        calls.append({"flags": sorted(config.flags), "profiles": config.profiles, "pools": config.pools})
        return b"fake-plan:" + ",".join(sorted(config.flags)).encode()
"""


def test_a_built_tensorrt_engine_is_bundled_and_its_onnx_source_checked(mlp_run_dir, tmp_path, monkeypatch):
    (tmp_path / "tensorrt.py").write_text(FAKE_TENSORRT)
    spec = importlib.util.spec_from_file_location("tensorrt", tmp_path / "tensorrt.py")
    tensorrt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tensorrt)
    monkeypatch.setitem(sys.modules, "tensorrt", tensorrt)  # gone again after the test

    report = export_run(mlp_run_dir, "gpu-server", tmp_path / "gpu")
    rows = {a["target_format"]: a for a in report["artifacts"]}
    int8, fp16 = rows["tensorrt_int8"], rows["tensorrt_fp16"]
    assert (int8["file"], int8["built"], fp16["file"], fp16["built"]) == ("model_int8.plan", True, "model_fp16.plan", True)
    # The numbers are the ONNX source's, identical to that artifact's own check, and the notes say so.
    assert int8["agreement"] == rows["onnx_int8"]["agreement"] and int8["accuracy"] == rows["onnx_int8"]["accuracy"]
    assert "checks run its ONNX source" in int8["notes"]
    fp16_call, int8_call = tensorrt.calls  # FORMATS order: fp16 first
    assert fp16_call["flags"] == ["fp16"] and int8_call["flags"] == ["fp16", "int8"]
    # fp16 is built from the dynamic-batch file: batch 1 to 64, tuned for 8; the int8 source has a static batch.
    n_features = fp16_call["profiles"][0]["input"][0][1]
    assert fp16_call["profiles"] == [{"input": ((1, n_features), (8, n_features), (64, n_features))}]
    assert int8_call["profiles"] == []
    bundle = open_bundle(tmp_path / "gpu", trust="hashes")
    plans = {a["file"]: a for a in bundle.artifacts if a["format"] == "tensorrt-plan"}
    assert set(plans) == {"model_int8.plan", "model_fp16.plan"}
    assert (tmp_path / "gpu" / "model_int8.plan").read_bytes() == b"fake-plan:fp16,int8"
    assert "| model_int8.plan | tensorrt_int8 | int8 |" in (tmp_path / "gpu" / "report.md").read_text()


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
