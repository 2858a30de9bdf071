"""``edgekit bench``: the figures are there and sane, accuracy is the runtime's own, mistakes are one-line errors.

Timings are never asserted (rule: speed is measured by benchmarks, not tests); only that they were measured.
The bundles come from the session fixtures in tests/conftest.py, shared with the other runtime tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.bench.measure import benchmark_bundle
from edgekit.bench.report import markdown, write_report
from edgekit.bundle import open_bundle
from edgekit.bundle_writer import write_bundle
from edgekit.cli.main import cli
from edgekit.data.store import Dataset, Recording, save_dataset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRT = "model_fp16.plan"
TRT_REASON = "not runnable on this machine: its engine 'tensorrt' is not one of onnxruntime, litert"


def invoke(*args: str):
    return CliRunner().invoke(cli, ["bench", *map(str, args)])


def with_artifacts(bundle_dir: Path, out: Path, keep: list[str], tensorrt: bool) -> Path:
    """A copy of ``bundle_dir`` holding only the ``keep`` artifacts, plus a TensorRT plan this machine cannot run."""
    source = open_bundle(bundle_dir, trust="hashes")
    manifest = {k: v for k, v in source.manifest.items() if k not in ("files", "signing")}
    manifest["artifacts"] = [a for a in source.artifacts if a["file"] in keep]
    files = {entry["file"]: source.file_path(entry["file"]) for entry in source.manifest["files"]}
    if tensorrt:
        manifest["artifacts"].append({"file": TRT, "format": "tensorrt", "precision": "fp16", "engine": "tensorrt",
                                      "built": True, "deployed": True})
        files[TRT] = b"a serialized TensorRT engine runs only on its GPU"
    return write_bundle(out, files, manifest)


@pytest.fixture(scope="module")
def dataset_dir(mlp_bundle) -> Path:
    return Path(mlp_bundle).parent / "data"  # make_bundle's training set: 12 kHz, the bundle's four classes


@pytest.fixture(scope="module")
def mlp_with_trt(mlp_bundle, tmp_path_factory) -> Path:
    keep = [a["file"] for a in open_bundle(mlp_bundle, trust="hashes").artifacts]
    return with_artifacts(Path(mlp_bundle), tmp_path_factory.mktemp("bench") / "mlp-trt", keep, tensorrt=True)


@pytest.fixture(scope="module")
def result(mlp_with_trt, dataset_dir) -> dict:
    return benchmark_bundle(mlp_with_trt, dataset=dataset_dir, seconds=3.0, batch=16, latency_budget_s=0.1)


def test_every_runnable_artifact_is_measured(result):
    rows = {row["file"]: row for row in result["artifacts"]}
    assert set(rows) == {"model_fp32.onnx", "model_int8.onnx", TRT}
    runnable = [row for row in result["artifacts"] if row["runnable"]]
    assert [row["file"] for row in runnable] == ["model_fp32.onnx", "model_int8.onnx"]
    assert sum(row["default"] for row in result["artifacts"]) == 1 and rows["model_int8.onnx"]["default"]
    for row in runnable:
        latency = row["latency_ms"]
        assert 0 < latency["p50"] <= latency["p99"] and latency["runs"] >= 50
        assert row["throughput"]["batch"] == 16 and row["throughput"]["windows_per_s"] > 0
        # The exported graphs have a static batch of 1, so "throughput" is window by window, and says so.
        assert (row["throughput"]["static_batch"], row["throughput"]["mode"]) == (1, "window by window")
        assert row["size_bytes"] == Path(result["bundle"]["path"], row["file"]).stat().st_size
        assert 0.0 <= row["accuracy"] <= 1.0
        runtime = row["runtime"]
        assert runtime["cold_start_s"] > sum(runtime["startup_s"].values()) > 0
        assert runtime["first_window_classified"]
        rss = runtime["rss_kib"]
        assert 0 < rss["after_imports"] <= rss["after_first_prediction"] <= rss["peak"]
        end_to_end = runtime["end_to_end"]
        assert end_to_end["real_time_factor"] > 0 and end_to_end["windows"] > 0
        assert end_to_end["skipped_windows"] == 0
        assert end_to_end["signal_s"] == pytest.approx(3.0 - 1024 / 12000)  # the first window was the cold start
    fp32 = rows["model_fp32.onnx"]["throughput"]["batched_twin"]
    assert fp32["file"] == "model_dynamic.onnx" and fp32["windows_per_s"] > 0


def test_an_artifact_this_machine_cannot_run_is_listed_not_run(result):
    trt = next(row for row in result["artifacts"] if row["file"] == TRT)
    assert trt == {"file": TRT, "engine": "tensorrt", "format": "tensorrt", "precision": "fp16", "deployed": True,
                   "size_bytes": trt["size_bytes"], "runnable": False, "default": False, "reason": TRT_REASON}


def test_features_dataset_and_settings_are_recorded(result, dataset_dir):
    assert result["features"]["windows_per_s"] > 0 and result["features"]["threads"] == 1
    assert result["dataset"]["path"] == str(dataset_dir) and result["dataset"]["windows"] > 0
    assert (result["settings"]["seconds"], result["settings"]["batch"], result["settings"]["engine_threads"]) == \
        (3.0, 16, 1)
    assert result["bundle"]["target"] == "x86-64-avx2" and result["bundle"]["sample_rate"] == 12000.0


def test_accuracy_is_what_the_deployed_model_predicts(result, mlp_with_trt, dataset_dir):
    from edgekit.data.store import load_dataset
    from edgekit.features import FeatureSpec, extract, frame
    from edgekit.runtime.model import DeployedModel

    bundle = open_bundle(mlp_with_trt, trust="hashes")
    spec = FeatureSpec.from_dict(bundle.manifest["feature_spec"])
    data = load_dataset(dataset_dir)
    windows = np.concatenate([frame(r.signal, spec.window, spec.hop) for r in data.recordings]).astype(np.float32)
    labels = np.concatenate([np.full(len(frame(r.signal, spec.window, spec.hop)),
                                     bundle.manifest["classes"].index(r.label)) for r in data.recordings])
    assert result["dataset"]["windows"] == len(windows)  # fewer than --max-windows: all of them
    for row in (r for r in result["artifacts"] if r["runnable"]):
        model = DeployedModel(bundle, row["engine"], row["file"])
        probabilities, _ = model.predict(windows, extract(windows, spec))
        assert row["accuracy"] == float(np.mean(probabilities.argmax(axis=1) == labels))


def test_report_files(result, tmp_path):
    paths = write_report(result, tmp_path / "out")
    assert [p.name for p in paths] == ["bench.json", "bench.md", "bench.png"]
    assert json.loads(paths[0].read_text()) == json.loads(json.dumps(result))
    assert paths[1].read_text() == markdown(result)
    assert paths[2].read_bytes().startswith(PNG_MAGIC)
    md = markdown(result)
    assert "| `model_int8.onnx` * | onnxruntime | int8 |" in md
    assert f"- `{TRT}` (tensorrt, fp16): {TRT_REASON}" in md


def test_cli_json_and_files_on_the_rpi4_cnn(cnn_bundle, tmp_path):
    """The cnn1d for rpi4 covers windows as model input and LiteRT (full-int8 TFLite) next to onnxruntime."""
    out = tmp_path / "bench"
    result = invoke(cnn_bundle, "--format", "json", "--out", out, "--seconds", "2", "--batch", "8")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = {row["file"]: row for row in report["artifacts"]}
    assert {row["engine"] for row in rows.values() if row["runnable"]} == {"onnxruntime", "litert"}
    assert all(row["runtime"]["end_to_end"]["real_time_factor"] > 0 for row in rows.values() if row["runnable"])
    assert report["bundle"]["input"] == "window" and report["dataset"] is None
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "bench.md", "bench.png"]
    assert (out / "bench.png").read_bytes().startswith(PNG_MAGIC)
    header = next(line for line in (out / "bench.md").read_text().splitlines() if line.startswith("| artifact |"))
    assert "p99 batch 1" in header and "accuracy" not in header  # no dataset, no accuracy column


def test_an_engine_without_artifacts_is_an_error(mlp_bundle):
    result = invoke(mlp_bundle, "--engine", "litert")
    assert result.exit_code == 1
    assert result.output == ("Error: no artifact of this bundle is for engine 'litert'; its artifacts: "
                             "model_fp32.onnx (onnxruntime), model_int8.onnx (onnxruntime)\n")


def test_a_bundle_with_nothing_runnable_here_is_an_error(mlp_bundle, tmp_path):
    only_trt = with_artifacts(Path(mlp_bundle), tmp_path / "trt-only", [], tensorrt=True)
    result = invoke(only_trt)
    assert result.exit_code == 1
    assert result.output == (f"Error: no artifact of this bundle can run on this machine ({TRT}: {TRT_REASON}); "
                             "benchmark it on its target, or re-export it for a target whose engines are installed "
                             "here\n")


def test_an_unknown_artifact_is_an_error(mlp_bundle):
    result = invoke(mlp_bundle, "--artifact", "model.tflite")
    assert result.exit_code == 1
    assert result.output == ("Error: no artifact 'model.tflite' in this bundle; it has: model_fp32.onnx, "
                             "model_int8.onnx\n")


def _dataset(path: Path, sample_rate: float, label: str) -> Path:
    signal = np.random.default_rng(3).standard_normal(int(sample_rate)).astype(np.float32)
    save_dataset(Dataset(sample_rate, [Recording("r0", label, signal)], classes=[label]), path)
    return path


def test_a_dataset_at_another_sample_rate_is_an_error(mlp_bundle, tmp_path):
    data = _dataset(tmp_path / "slow", 8000.0, "normal")
    result = invoke(mlp_bundle, "--dataset", data)
    assert result.exit_code == 1
    assert result.output == (f"Error: {data} is sampled at 8000 Hz but the bundle's model expects 12000 Hz; give a "
                             "dataset recorded (or imported with --sample-rate) at 12000 Hz\n")


def test_a_dataset_with_classes_the_model_does_not_know_is_an_error(mlp_bundle, tmp_path):
    data = _dataset(tmp_path / "pump", 12000.0, "cavitation")
    result = invoke(mlp_bundle, "--dataset", data)
    assert result.exit_code == 1
    assert result.output == (f"Error: {data} has classes the bundle's model does not know: cavitation; "
                             "the model's classes are: normal, imbalance, outer_race, inner_race\n")


def test_bench_has_help():
    result = invoke("-h")
    assert result.exit_code == 0 and "Usage: cli bench [OPTIONS] BUNDLE" in result.output
