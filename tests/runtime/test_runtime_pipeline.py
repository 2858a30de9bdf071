"""The device loop on real bundles: same answers as offline, bad samples counted, state kept, commands obeyed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.bundle import open_bundle
from edgekit.data.synth import synthesize
from edgekit.errors import ConfigError
from edgekit.features import FeatureSpec, extract, frame
from edgekit.runtime.model import DeployedModel
from edgekit.runtime.pipeline import REPORT_WINDOWS, Runtime, RuntimeOptions
from edgekit.runtime.sources import ArraySource, Chunk, open_source

pytest.importorskip("torch")


class RecordingTelemetry:
    """Stands in for MQTT: keeps what the runtime publishes."""

    def __init__(self):
        self.messages: list[tuple[str, dict]] = []

    def publish(self, kind, body):
        self.messages.append((kind, json.loads(json.dumps(body))))  # must be JSON-able
        return len(self.messages) - 1

    def kinds(self, kind):
        return [body for k, body in self.messages if k == kind]


def signal_of(label="normal", seconds=6.0, seed=1):
    return synthesize(label, duration_s=seconds, rng=seed)


def test_runtime_gives_the_offline_answers_window_by_window(cnn_bundle):
    bundle = open_bundle(cnn_bundle, trust="hashes")
    signal = np.concatenate([signal_of("normal", 3, 1), signal_of("outer_race", 3, 2)])
    records = []
    runtime = Runtime(bundle, RuntimeOptions(artifact="model_fp32.onnx"), emit=records.append)
    runtime.run(ArraySource(signal, 12000.0, chunk=777))   # odd chunks: windows straddle them
    windows = np.array(frame(signal, 1024, 512))
    spec = FeatureSpec.from_dict(bundle.manifest["feature_spec"])
    probabilities, scores = DeployedModel(bundle, artifact_file="model_fp32.onnx").predict(
        windows, extract(windows, spec))
    per_window = [r for r in records if "window" in r]
    assert [r["window"] for r in per_window] == list(range(len(windows)))
    assert [r["class"] for r in per_window] == [bundle.manifest["classes"][i] for i in probabilities.argmax(1)]
    np.testing.assert_allclose([r["confidence"] for r in per_window], probabilities.max(1), atol=1e-4)
    np.testing.assert_allclose([r["anomaly"] for r in per_window], scores, atol=1e-3)
    # The model tells the two halves apart, and the smoothed decision follows.
    assert per_window[10]["smoothed"] == "normal" and per_window[-1]["smoothed"] == "outer_race"


@pytest.mark.parametrize("artifact", ["model_int8.onnx", "model_int8.tflite"])
def test_int8_artifacts_agree_with_fp32_on_the_device(cnn_bundle, artifact):
    bundle = open_bundle(cnn_bundle, trust="hashes")
    signal = np.concatenate([signal_of(label, 2, 3) for label in ("normal", "imbalance", "inner_race")])

    def classes(name):
        out = []
        Runtime(bundle, RuntimeOptions(artifact=name), emit=out.append).run(ArraySource(signal, 12000.0))
        return [r["class"] for r in out if "class" in r]

    reference, got = classes("model_fp32.onnx"), classes(artifact)
    assert np.mean(np.array(reference) == np.array(got)) >= 0.98


def test_mlp_bundle_applies_the_feature_normalization_like_training(mlp_bundle, mlp_run):
    """The MLP's normalization is outside the graph: the runtime must match the torch model it came from."""
    import torch

    from edgekit.train.run import load_run

    bundle = open_bundle(mlp_bundle, trust="hashes")
    signal = np.concatenate([signal_of(label, 2, 4) for label in ("normal", "outer_race", "inner_race")])
    out = []
    Runtime(bundle, RuntimeOptions(artifact="model_fp32.onnx"), emit=out.append).run(ArraySource(signal, 12000.0))
    run = load_run(mlp_run)
    spec = FeatureSpec.from_dict(bundle.manifest["feature_spec"])
    with torch.no_grad():
        logits = run.model(torch.from_numpy(extract(np.array(frame(signal, 1024, 512)), spec))).numpy()
    assert [r["class"] for r in out if "class" in r] == [run.classes[i] for i in logits.argmax(1)]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_samples_never_crash_and_the_counts_match_what_was_injected(cnn_bundle_opened, data):
    signal = signal_of("normal", 4, 5).copy()
    n_windows = len(frame(signal, 1024, 512))
    kind = data.draw(st.sampled_from(["nan", "inf", "-inf", "huge", "spike"]))
    positions = sorted(set(data.draw(st.lists(st.integers(0, len(signal) - 1), min_size=1, max_size=8))))
    value = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e39, "spike": 60.0}[kind]
    signal[positions] = value
    chunk = data.draw(st.integers(1, 5000))
    records = []
    Runtime(cnn_bundle_opened, RuntimeOptions(artifact="model_fp32.onnx"),
            emit=records.append).run(ArraySource(signal, 12000.0, chunk=chunk))
    per_window = [r for r in records if "window" in r]
    expected = {i for i in range(n_windows) for p in positions if i * 512 <= p < i * 512 + 1024}
    assert len(per_window) == n_windows
    assert {r["window"] for r in per_window if r.get("skipped")} == expected
    flag = "spikes" if kind == "spike" else "nonfinite"
    assert all(flag in r["quality"] for r in per_window if r.get("skipped"))
    totals = [r for r in records if "report" in r][-1]
    assert sum(r["quality"]["skipped"] for r in records if "report" in r) == len(expected)
    assert totals["quality"]["windows"] <= REPORT_WINDOWS


def test_wrong_sample_rate_and_wrong_window_length_are_flagged_not_classified(cnn_bundle_opened):
    records = []
    runtime = Runtime(cnn_bundle_opened, RuntimeOptions(artifact="model_fp32.onnx"), emit=records.append)
    runtime.process(Chunk(signal_of("normal", 1, 6), 48000.0))
    runtime.process(Chunk(np.zeros(1000, np.float32), 12000.0, window=True))
    runtime.process(Chunk(signal_of("normal", 1, 6)[:1024], 12000.0, window=True))
    flags = [r.get("quality") for r in records]
    assert flags[:-2] == [["wrong_rate"]] * (len(records) - 2)
    assert flags[-2] == ["wrong_length"] and flags[-1] is None and records[-1]["class"]


def test_state_survives_a_restart_and_decisions_match_an_uninterrupted_run(cnn_bundle_opened, tmp_path):
    signal = np.concatenate([signal_of("normal", 10, 7), 1.5 * signal_of("normal", 10, 8)])
    options = RuntimeOptions(artifact="model_fp32.onnx", report_every=64)
    whole = RecordingTelemetry()
    Runtime(cnn_bundle_opened, options, telemetry=whole, state_dir=tmp_path / "a").run(ArraySource(signal, 12000.0))
    split = RecordingTelemetry()
    first = Runtime(cnn_bundle_opened, options, telemetry=split, state_dir=tmp_path / "b")
    first.run(ArraySource(signal[:64 * 512 * 3], 12000.0))      # ends exactly on a report boundary
    second = Runtime(cnn_bundle_opened, options, telemetry=split, state_dir=tmp_path / "b")
    assert second.windows == first.windows and second.reports == 3
    second.run(ArraySource(signal[64 * 512 * 3:], 12000.0))
    assert [r["drift"]["drift"] for r in split.kinds("drift")] == [r["drift"]["drift"] for r in whole.kinds("drift")]


def test_set_report_interval_and_upload_windows_commands(cnn_bundle_opened, tmp_path):
    from edgekit.protocol import parse_command

    telemetry = RecordingTelemetry()
    runtime = Runtime(cnn_bundle_opened, RuntimeOptions(artifact="model_fp32.onnx"), telemetry=telemetry,
                      state_dir=tmp_path)
    runtime.commands.put(parse_command(json.dumps({"name": "set_report_interval",
                                                   "args": {"windows": 20}}).encode()))
    runtime.run(ArraySource(signal_of("normal", 3, 9), 12000.0))
    reports = telemetry.kinds("drift")
    assert [r["windows"] for r in reports[:-1]] == [20] * (len(reports) - 1)
    assert json.loads((tmp_path / "runtime_state.json").read_text())["report_every"] == 20
    runtime.handle_command(parse_command(json.dumps({"name": "upload_windows",
                                                     "args": {"count": 3, "only_drifted": False}}).encode()))
    uploads = telemetry.kinds("upload")
    assert [u["window"] for u in uploads] == [runtime.windows - 3, runtime.windows - 2, runtime.windows - 1]
    import base64

    samples = np.frombuffer(base64.b64decode(uploads[-1]["samples"]), "<f4")
    np.testing.assert_array_equal(samples, np.array(frame(signal_of("normal", 3, 9), 1024, 512))[-1])


def test_report_interval_must_be_one_way(cnn_bundle_opened):
    with pytest.raises(ConfigError, match="in windows or in seconds, not both"):
        Runtime(cnn_bundle_opened, RuntimeOptions(report_every=10, report_seconds=2.0))
    runtime = Runtime(cnn_bundle_opened, RuntimeOptions(report_seconds=2.0))
    assert runtime.report_every == 47  # ceil(2 s * 12000 / 512)


# Stated delays, in reports of 128 windows (5.5 s): a step is confirmed by the 2-of-3 rule within 3 reports; a
# fault that grows from nothing (quadratically) needs one more to become large enough.
@pytest.mark.parametrize("scenario, reports", [("gain_change", 3), ("resonance_shift", 3), ("fault_growth", 4)])
def test_drift_is_flagged_after_the_change_and_not_before(cnn_bundle_opened, scenario, reports):
    """60 s scenarios with the change at 30 s (window ~703), run through the whole device loop."""
    records = []
    Runtime(cnn_bundle_opened, RuntimeOptions(), emit=records.append).run(
        open_source(f"synth:{scenario}:duration=60"))
    sent = [r for r in records if "report" in r]
    change = 30 * 12000 // 512
    first = next(r for r in sent if r["drift_detected"])
    assert all(not r["drift_detected"] for r in sent if r["first_window"] + r["windows"] <= change)
    assert first["first_window"] + first["windows"] - change <= reports * REPORT_WINDOWS
    assert len(json.dumps(first["drift"])) < 800  # a few hundred bytes on the wire


def test_a_long_stationary_stream_raises_no_alarm(cnn_bundle_opened):
    records = []
    runtime = Runtime(cnn_bundle_opened, RuntimeOptions(), emit=records.append)
    runtime.run(ArraySource(synthesize("normal", duration_s=240, rng=11, load=1), 12000.0))
    reports = [r for r in records if "report" in r]
    assert len(reports) >= 40 and not any(r["drift_detected"] for r in reports)
