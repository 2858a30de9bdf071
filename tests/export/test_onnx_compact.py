"""Compacting the int8 ONNX file: smaller, the same numbers, the same integer kernels, the names users look for."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgekit.export import onnx_compact, onnx_export  # noqa: E402
from edgekit.export.onnx_export import export_torch_to_onnx, quantize_onnx  # noqa: E402
from edgekit.export.torch_prep import deployable_model  # noqa: E402
from edgekit.targets import get_profile  # noqa: E402
from edgekit.train.run import load_run  # noqa: E402


@pytest.fixture(scope="module")
def cnn(cnn_run_dir, tmp_path_factory):
    run = load_run(cnn_run_dir)
    root = tmp_path_factory.mktemp("compact")
    windows = np.asarray(run.calibration()["windows"], dtype=np.float32)[:, None, :]
    fp32 = export_torch_to_onnx(deployable_model(run.model), windows, root / "fp32.onnx")
    holdout = np.asarray(run.holdout()["windows"], dtype=np.float32)[:, None, :]
    return {"fp32": fp32, "calibration": windows[:64], "holdout": holdout[:64], "root": root}


def _optimized(path, out):
    """Run ``path`` with ORT's full optimizations; returns the run function and the fused graph's op counts."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    options.optimized_model_filepath = str(out)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, Counter(node.op_type for node in onnx.load(str(out)).graph.node)


# arm64 u8/s8, x86 AVX2 7-bit weights, TensorRT symmetric s8/s8: every preset the profiles use.
@pytest.mark.parametrize("target", ["rpi4", "x86-64-avx2", "gpu-server"])
def test_compaction_keeps_integer_kernels_and_numbers(cnn, target, monkeypatch):
    root, quantization = cnn["root"], get_profile(target).quantization
    compact = root / f"{target}-compact.onnx"
    quantize_onnx(cnn["fp32"], compact, cnn["calibration"], quantization)
    monkeypatch.setattr(onnx_export, "compact_qdq", lambda model: model)
    plain = root / f"{target}-plain.onnx"
    quantize_onnx(cnn["fp32"], plain, cnn["calibration"], quantization)

    assert compact.stat().st_size < 0.9 * plain.stat().st_size
    plain_session, plain_ops = _optimized(plain, root / f"{target}-plain-opt.onnx")
    compact_session, compact_ops = _optimized(compact, root / f"{target}-compact-opt.onnx")
    assert compact_ops == plain_ops  # nothing the fusion needs was removed
    if target != "gpu-server":  # ORT has no s8-activation QLinearConv on x86; TensorRT fuses those
        assert compact_ops["QLinearConv"] == 5
    for window in cnn["holdout"]:
        feed = {"input": window[None]}
        np.testing.assert_array_equal(compact_session.run(None, feed)[0], plain_session.run(None, feed)[0])


def test_compaction_keeps_user_facing_names(cnn, monkeypatch):
    compact, plain = cnn["root"] / "names-compact.onnx", cnn["root"] / "names-plain.onnx"
    quantization = get_profile("rpi4").quantization
    quantize_onnx(cnn["fp32"], compact, cnn["calibration"], quantization)
    monkeypatch.setattr(onnx_export, "compact_qdq", lambda model: model)
    quantize_onnx(cnn["fp32"], plain, cnn["calibration"], quantization)
    fp32, plain, int8 = (onnx.load(str(path)) for path in (cnn["fp32"], plain, compact))

    def layers(model):  # the ops a user debugs, by node name and output tensor
        return {(n.name, n.output[0]) for n in model.graph.node if n.op_type not in onnx_compact.QDQ_OPS}

    assert layers(int8) == layers(plain) and len(layers(int8)) >= 10
    parameters = {init.name for init in fp32.graph.initializer if init.name.endswith((".weight", ".bias"))}
    int8_initializers = {init.name: init for init in int8.graph.initializer}
    assert parameters <= set(int8_initializers)
    assert int8_initializers["features.0.weight"].data_type == onnx.TensorProto.INT8
    assert not int8.graph.value_info and plain.graph.value_info
