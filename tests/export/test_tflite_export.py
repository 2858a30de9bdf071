"""Full-integer TFLite export: int8 in and out, int8 kernels, and the same answers as the float model."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from edgekit.errors import ConfigError, MissingDependencyError  # noqa: E402
from edgekit.export.base import ExportContext, ExportError  # noqa: E402
from edgekit.export.tflite_export import TfliteInt8Exporter  # noqa: E402
from edgekit.export.pipeline import graph_inputs  # noqa: E402
from edgekit.features import extract  # noqa: E402
from edgekit.runtime.engines import LiteRtEngine  # noqa: E402
from edgekit.targets import get_profile  # noqa: E402

CLASSES = ["normal", "outer_race", "inner_race"]
MIN_AGREEMENT = 0.97  # top-1 agreement with the float model on the held-out windows
KERNEL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A cnn1d and a feature MLP trained for seconds on a three-class synthetic set: enough to have weights."""
    from edgekit.data.store import save_dataset
    from edgekit.data.synth import generate_dataset
    from edgekit.train.run import load_run
    from edgekit.train.trainer import TrainOptions, train

    root = tmp_path_factory.mktemp("tflite")
    save_dataset(generate_dataset("motor", seed=0, recordings_per_class=2, duration_s=3.0, loads=[0],
                                  classes=CLASSES), root / "data")
    train(root / "data", root / "cnn", TrainOptions(model="cnn1d", epochs=2, seed=0, train_hop=512,
                                                             noise_snr_db=None))  # 2 clean epochs: a decided model
    train(root / "data", root / "mlp", TrainOptions(model="mlp", epochs=10, seed=0, train_hop=256))
    return {"cnn1d": load_run(root / "cnn"), "mlp": load_run(root / "mlp")}


def _graph_inputs(run, windows):
    """What the exported graph takes, as the pipeline passes it: windows, or features after normalization."""
    return graph_inputs(run, {"windows": windows, "features": extract(windows, run.spec)})


def _context(run, profile, out_dir, calibration=None) -> ExportContext:
    holdout = run.holdout()
    inputs = _graph_inputs(run, run.calibration()["windows"]) if calibration is None else calibration
    out_dir.mkdir(parents=True, exist_ok=True)
    return ExportContext(run=run, profile=profile, out_dir=out_dir, calibration_inputs=inputs,
                         holdout_inputs=_graph_inputs(run, holdout["windows"]), holdout_labels=holdout["labels"])


def _with_quantization(profile, **changes):
    return dataclasses.replace(profile, quantization=dataclasses.replace(profile.quantization, **changes))


@pytest.fixture(scope="module")
def cnn_export(runs, tmp_path_factory):
    ctx = _context(runs["cnn1d"], get_profile("rpi4"), tmp_path_factory.mktemp("cnn-tflite"))
    return ctx, TfliteInt8Exporter().export(ctx)


@pytest.fixture(scope="module")
def mlp_export(runs, tmp_path_factory):
    ctx = _context(runs["mlp"], get_profile("cortex-m4"), tmp_path_factory.mktemp("mlp-tflite"))
    return ctx, TfliteInt8Exporter().export(ctx)


def _interpreter(path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without the default XNNPACK delegate, so the op list is the file's own ops, not one DELEGATE node.
    return Interpreter(model_path=str(path),
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def _float_logits(run, inputs):
    import torch

    from edgekit.export.torch_prep import deployable_model

    with torch.no_grad():
        return deployable_model(run.model)(torch.from_numpy(inputs)).numpy()


def _agreement(ctx, artifact):
    """Top-1 agreement and max abs logit error of the .tflite, run through the device's engine, vs the float model."""
    expected = _float_logits(ctx.run, ctx.holdout_inputs)
    got = LiteRtEngine(ctx.path(artifact.file)).run(ctx.holdout_inputs)
    error = float(np.abs(got - expected).max())
    print(f"{ctx.run.model_info['architecture']}: agreement {np.mean(got.argmax(1) == expected.argmax(1)):.3f}, "
          f"max abs error {error:.4f} (logits up to {np.abs(expected).max():.2f})")
    return float(np.mean(got.argmax(1) == expected.argmax(1))), error, float(np.abs(expected).max())


def _assert_full_integer(path, out_channels_by_op: dict[str, set[int]] | None = None):
    interpreter = _interpreter(path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():
        dtypes = [np.dtype(tensors[i]["dtype"]).name for i in op["inputs"] if i >= 0]
        out = [np.dtype(tensors[i]["dtype"]).name for i in op["outputs"]]
        assert "float32" not in dtypes + out, op
        if op["op_name"] in KERNEL_OPS:
            # int8 activations and weights, int32 bias: the integer kernels of LiteRT, TFLite Micro and CMSIS-NN.
            assert dtypes == ["int8", "int8", "int32"] and out == ["int8"], op
            weights = tensors[op["inputs"][1]]["quantization_parameters"]
            assert np.all(weights["zero_points"] == 0)  # symmetric weights
            if out_channels_by_op is not None:
                out_channels_by_op.setdefault(op["op_name"], set()).add(len(weights["scales"]))
    return interpreter


def test_cnn1d_is_full_integer_with_the_float_input_layout(cnn_export):
    ctx, artifact = cnn_export
    interpreter = _interpreter(ctx.path(artifact.file))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    # The device passes the window as the float model takes it: [1, 1, window], NCW.
    assert list(inp["shape"]) == [1, 1, 1024] and list(out["shape"]) == [1, len(CLASSES)]
    assert artifact.extra["input_layout"] == "NCW"
    assert artifact.input_quantization == {"scale": pytest.approx(inp["quantization"][0]),
                                           "zero_point": inp["quantization"][1], "dtype": "int8"}
    assert artifact.output_quantization == {"scale": pytest.approx(out["quantization"][0]),
                                            "zero_point": out["quantization"][1], "dtype": "int8"}
    assert (artifact.file, artifact.target_format, artifact.format, artifact.precision, artifact.engine,
            artifact.reference) == ("model_int8.tflite", "tflite_int8", "tflite", "int8", "litert", "torch")

    channels: dict[str, set[int]] = {}
    _assert_full_integer(ctx.path(artifact.file), channels)
    # Five convolutions and the head, one op per layer: the pools share their input's scale, so the converter
    # needs no requantize (and no transposes around it) between them.
    assert artifact.extra["ops"] == {"CONV_2D": 4, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "MAX_POOL_2D": 4,
                                     "MEAN": 1, "RESHAPE": 2, "TRANSPOSE": 1}
    # Per-channel weights: one scale per output channel (16 for the first conv, 32/64 after, 3 classes).
    assert channels == {"DEPTHWISE_CONV_2D": {16}, "CONV_2D": {32, 64}, "FULLY_CONNECTED": {3}}


def test_cnn1d_agrees_with_the_float_model_and_is_smaller(cnn_export):
    ctx, artifact = cnn_export
    agreement, error, logit_range = _agreement(ctx, artifact)
    assert agreement >= MIN_AGREEMENT
    # Measured 0.0035 on logits up to 0.55 (0.6 %); 5 % leaves room for other seeds, not for a broken layer.
    assert error <= 0.05 * logit_range
    # The converter reproduces its fake-quantized torch graph to one output step (measured 1.0).
    check = artifact.extra["conversion_check"]
    assert check["output_steps"] <= 1.5 and check["top1_agreement"] == 1.0 and check["windows"] == 64
    params = sum(p.numel() for p in ctx.run.model.parameters())
    size = ctx.path(artifact.file).stat().st_size
    # int8 weights: 48.5 kB against 136.8 kB of fp32 parameters (35 %), flatbuffer overhead included.
    assert size < 0.4 * 4 * params


def test_mlp_is_full_integer_and_agrees(mlp_export):
    ctx, artifact = mlp_export
    interpreter = _assert_full_integer(ctx.path(artifact.file))
    inp = interpreter.get_input_details()[0]
    assert list(inp["shape"]) == [1, ctx.holdout_inputs.shape[1]] and artifact.extra["input_layout"] == "NF"
    # Normalized features: the calibrated input range is a few standard deviations, not the raw 1e-4..3e3.
    assert 0.01 < artifact.input_quantization["scale"] < 0.2
    assert artifact.extra["ops"] == {"FULLY_CONNECTED": 3}  # ReLU fused into the FC kernels
    assert artifact.notes == "int8 activations and per-channel int8 weights (LiteRT and TFLite Micro kernels)"
    agreement, error, logit_range = _agreement(ctx, artifact)
    assert agreement >= MIN_AGREEMENT and error <= 0.05 * logit_range


def test_profile_scheme_is_honored(runs, tmp_path):
    run = runs["mlp"]
    profile = _with_quantization(get_profile("cortex-m4"), symmetric_activations=True, per_channel=False)
    ctx = _context(run, profile, tmp_path)
    artifact = TfliteInt8Exporter().export(ctx)
    assert artifact.input_quantization["zero_point"] == 0 and artifact.output_quantization["zero_point"] == 0
    channels: dict[str, set[int]] = {}
    _assert_full_integer(ctx.path(artifact.file), channels)
    assert channels == {"FULLY_CONNECTED": {1}}  # per-tensor weights: one scale per layer
    assert artifact.extra["per_channel"] is False and artifact.extra["symmetric_activations"] is True
    assert _agreement(ctx, artifact)[0] >= MIN_AGREEMENT


def test_uint8_activations_of_an_onnx_profile_are_noted_not_used(cnn_export):
    _, artifact = cnn_export  # rpi4 asks onnxruntime for uint8 activations
    assert artifact.notes.endswith("; the profile's uint8 activation type applies to ONNX only")


def test_uint8_weights_are_refused(runs, tmp_path):
    profile = _with_quantization(get_profile("cortex-m4"), weight_type="uint8")
    with pytest.raises(ConfigError) as error:
        TfliteInt8Exporter().export(_context(runs["mlp"], profile, tmp_path))
    assert str(error.value) == ('target cortex-m4: tflite_int8 needs int8 weights, the profile asks for uint8; '
                                'set quantization.weight_type = "int8" or drop tflite_int8 from its formats')


def test_missing_converter_names_the_extra(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "litert_torch", None)  # makes `import litert_torch` fail
    with pytest.raises(MissingDependencyError) as error:
        TfliteInt8Exporter().export(_context(runs["mlp"], get_profile("cortex-m4"), tmp_path))
    assert str(error.value) == "litert_torch is not installed; install it with: pip install 'edgekit[tflite]'"


def test_converter_failure_names_the_model(runs, tmp_path, monkeypatch):
    import litert_torch

    def fail(*args, **kwargs):
        raise RuntimeError("failed to legalize operation 'aten.foo'\nMLIR dump follows")

    monkeypatch.setattr(litert_torch, "convert", fail)
    run = runs["mlp"]
    with pytest.raises(ExportError) as error:
        TfliteInt8Exporter().export(_context(run, get_profile("cortex-m4"), tmp_path))
    assert str(error.value) == (f"tflite_int8: litert-torch could not convert mlp from {run.path}: "
                                "RuntimeError: failed to legalize operation 'aten.foo'")


def test_a_converted_file_that_strays_from_its_graph_is_refused(runs, tmp_path, monkeypatch):
    from edgekit.export import tflite_export

    # Tighter than the one output step any conversion has: stands in for a converter that miscomputes.
    monkeypatch.setattr(tflite_export, "CONVERSION_TOLERANCE_STEPS", 0.5)
    with pytest.raises(ExportError, match=r"differs from its fake-quantized torch graph by .* \(allowed .*, 0\.5 "
                                          r"output steps; top-1 agreement 1\.000\); this is a converter fault"):
        TfliteInt8Exporter().export(_context(runs["mlp"], get_profile("cortex-m4"), tmp_path))


def test_no_calibration_inputs_is_an_error(runs, tmp_path):
    run = runs["mlp"]
    empty = _graph_inputs(run, run.calibration()["windows"])[:0]
    with pytest.raises(ExportError) as error:
        TfliteInt8Exporter().export(_context(run, get_profile("cortex-m4"), tmp_path, calibration=empty))
    assert str(error.value) == "tflite_int8: no calibration inputs; int8 ranges need the run's calibration windows"


def test_tensor_names_are_readable_module_paths(cnn_export):
    ctx, artifact = cnn_export
    names = [t["name"] for t in _interpreter(ctx.path(artifact.file)).get_tensor_details()]
    assert not [name for name in names if "torch." in name or "edgekit." in name]
    assert "Sequential_features/ReLU_1;;Sequential_features/Conv1d_0;" in names  # a fused conv + relu


@pytest.mark.parametrize("name, short", [
    ("edgekit.export.torch_prep._DeployedCnn/torch.nn.modules.container.Sequential_features/"
     "torch.nn.modules.conv.Conv1d_0;1", "Sequential_features/Conv1d_0;1"),
    ("a.B/c.Sequential_features/d.ReLU_1;;a.B/c.Sequential_features/e.Conv1d_0;",
     "Sequential_features/ReLU_1;;Sequential_features/Conv1d_0;"),
    ("edgekit.export.torch_prep._DeployedCnn;1", "_DeployedCnn;1"),
    ("serving_default_args_0", "serving_default_args_0"),
])
def test_short_tensor_name(name, short):
    from edgekit.export.tflite_export import short_tensor_name

    assert short_tensor_name(name) == short


def test_layer_report_follows_every_layer_and_points_at_a_broken_one(cnn_export, tmp_path):
    from ai_edge_litert.tools import flatbuffer_utils

    from edgekit.export.tflite_layers import tflite_layer_report
    from edgekit.export.torch_prep import deployable_model

    ctx, artifact = cnn_export
    model = deployable_model(ctx.run.model)
    rows = tflite_layer_report(model, ctx.path(artifact.file), ctx.holdout_inputs)
    # Every conv (with its fused ReLU) and pool, then the logits: 5 + 4 + 1 rows, in graph order.
    assert [r["module"] for r in rows] == ["features.1", "features.2", "features.4", "features.5", "features.7",
                                           "features.8", "features.10", "features.11", "features.13", "logits"]
    assert all(r["cosine"] > 0.99 and r["relative_error"] < 0.15 for r in rows), rows
    # Flip the sign of the third conv's int8 weights: the error must jump at that layer, not before it.
    broken = flatbuffer_utils.read_model(str(ctx.path(artifact.file)))
    subgraph = broken.subgraphs[0]
    weights = next(t for t in subgraph.tensors if t.name == b"Sequential_features/Conv1d_6;1")
    buffer = broken.buffers[weights.buffer]
    buffer.data = (-buffer.data.view(np.int8).clip(-127, 127)).view(np.uint8)
    flatbuffer_utils.write_model(broken, str(tmp_path / "broken.tflite"))
    errors = {r["module"]: r["relative_error"]
              for r in tflite_layer_report(model, tmp_path / "broken.tflite", ctx.holdout_inputs)}
    assert max(errors[m] for m in ("features.1", "features.2", "features.4", "features.5")) < 0.15
    assert errors["features.7"] > 0.5


def test_layer_report_compares_a_fused_linear_relu_after_the_relu(mlp_export):
    from edgekit.export.tflite_layers import tflite_layer_report
    from edgekit.export.torch_prep import deployable_model

    ctx, artifact = mlp_export
    rows = tflite_layer_report(deployable_model(ctx.run.model), ctx.path(artifact.file), ctx.holdout_inputs)
    # The converter names these "Linear_0;;ReLU_1;": the output is the ReLU's (module 1), not the Linear's.
    assert [r["module"] for r in rows] == ["1", "3", "logits"]
    assert all(r["relative_error"] < 0.1 for r in rows), rows
