"""Full-integer TFLite: int8 input, int8 output, int8 weights and activations, for LiteRT and TFLite Micro.

Why this route: ``litert-torch`` lowers the torch graph straight to TFLite after PT2E static quantization
(torchao observers, per-channel weights), and its STATIC QDQ conversion emits int8 input and output tensors
itself. The fallback, onnx2tf with tensorflow-cpu, re-derives the NCW layout from ONNX through Keras and must be
kept in step with a TensorFlow release; it was not needed. The file litert-torch writes is a translation of a
torch graph we can run, the calibrated fake-quantized module, and ``_check_conversion`` compares the two, so a
converter bug is caught here, apart from the quantization error that the pipeline's validation against the
float model measures. (litert-torch brings jaxlib and transformers, ~0.8 GB installed: export side only.)

The model keeps its float input layout: [1, 1, window] for the cnn1d (NCW; with one channel it is also the
NWC order, so the device passes the window as is) and [1, n_features] for the MLP, whose inputs are the
features after the device-side normalization (the ``torch_prep`` docstring says why it stays outside).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, require_module
from edgekit.export.base import Artifact, ExportContext, Exporter, ExportError, register
from edgekit.targets import Quantization

FILE_NAME = "model_int8.tflite"
# The converted file must reproduce the fake-quantized torch graph it was translated from to within this many
# output quantization steps: rounding inside integer kernels differs from float fake-quant by about one step
# per layer, so a few steps is rounding and more is a converter bug.
CONVERSION_TOLERANCE_STEPS = 4.0
CALIBRATION_BATCH = 100  # windows per observer call: a histogram update per call is what calibration costs
CHECK_WINDOWS = 64  # calibration inputs re-run for the conversion check; enough to see a wrong op, cheap on 2 cores


@register
class TfliteInt8Exporter(Exporter):
    """The run's deployable model as a full-integer ``.tflite``, calibrated on ``ctx.calibration_inputs``."""

    name = "tflite_int8"

    def export(self, ctx: ExportContext) -> Artifact:
        from edgekit.export.torch_prep import deployable_model

        torch = require_module("torch", "train")
        require_module("litert_torch", "tflite")
        quantization = ctx.profile.quantization
        _check_scheme(quantization, ctx.profile.name)
        calibration = np.asarray(ctx.calibration_inputs, dtype=np.float32)
        if len(calibration) == 0:
            raise ExportError("tflite_int8: no calibration inputs; int8 ranges need the run's calibration windows")
        label = f"{ctx.run.model_info.get('architecture', type(ctx.run.model).__name__)} from {ctx.run.path}"

        model = deployable_model(ctx.run.model)
        example = (torch.from_numpy(calibration[:1].copy()),)
        started = time.perf_counter()
        try:
            fake_quant, quantizer = _quantize(model, calibration, quantization)
            _convert(fake_quant, quantizer, example, ctx.path(FILE_NAME))
        except (ConfigError, ExportError):
            raise
        except Exception as exc:  # the converter raises anything from torch.export to MLIR lowering errors
            raise ExportError(f"tflite_int8: litert-torch could not convert {label}: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        seconds = time.perf_counter() - started

        details = tensor_quantization(ctx.path(FILE_NAME))
        ops = op_summary(ctx.path(FILE_NAME))
        float_ops = sorted(name for name, info in ops.items() if info["float"])
        if details["input"]["dtype"] != "int8" or details["output"]["dtype"] != "int8" or float_ops:
            raise ExportError(f"tflite_int8: {label} did not convert to a full-integer model (input "
                              f"{details['input']['dtype']}, output {details['output']['dtype']}, float ops: "
                              f"{', '.join(float_ops) or 'none'}): the model holds an op litert-torch's quantizer "
                              f"leaves in float, or a litert-torch release changed its output (edgekit is tested "
                              f"with {_converter_version()})")
        check = _check_conversion(fake_quant, ctx.path(FILE_NAME), calibration[:CHECK_WINDOWS],
                                  details["output"]["scale"], label)

        layout = "NCW" if ctx.run.input_kind == "window" else "NF"
        notes = "int8 activations and per-channel int8 weights (LiteRT and TFLite Micro kernels)"
        if quantization.activation_type != "int8":
            notes += f"; the profile's {quantization.activation_type} activation type applies to ONNX only"
        return Artifact(
            file=FILE_NAME, target_format=self.name, format="tflite", precision="int8", engine="litert",
            input_quantization=details["input"], output_quantization=details["output"], reference="torch",
            notes=notes,
            extra={"input_layout": layout, "input_shape": details["input_shape"],
                   "ops": {name: info["count"] for name, info in ops.items()},
                   "conversion_seconds": round(seconds, 2), "converter": _converter_version(),
                   "per_channel": quantization.per_channel,
                   "symmetric_activations": quantization.symmetric_activations,
                   "calibration_inputs": int(len(calibration)), "conversion_check": check},
        )


def _check_scheme(quantization: Quantization, profile: str) -> None:
    # TFLite's integer kernels take int8 weights only (uint8 is the deprecated TF1 scheme).
    if quantization.weight_type != "int8":
        raise ConfigError(f"target {profile}: tflite_int8 needs int8 weights, the profile asks for "
                          f"{quantization.weight_type}; set quantization.weight_type = \"int8\" or drop tflite_int8 "
                          f"from its formats")


def _quantizer(quantization: Quantization):
    """litert-torch's PT2E quantizer for the profile's scheme, with max-pooling sharing its input's qparams."""
    import dataclasses

    import torch
    from litert_torch.quantize import pt2e_quantizer
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    config = pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=quantization.per_channel)
    if quantization.symmetric_activations:
        act = dataclasses.replace(config.input_activation, qscheme=torch.per_tensor_symmetric)
        config = dataclasses.replace(config, input_activation=act, output_activation=act)

    class _Quantizer(pt2e_quantizer.PT2EQuantizer):
        def annotate(self, model):
            model = super().annotate(model)
            # litert-torch annotates max_pool2d only. An unannotated max_pool1d gets its own observer on the
            # next conv's input, and the converter then puts a requantize (and two transposes) around every
            # pool; sharing the input's qparams is exact for a max and keeps the graph at one op per layer.
            for node in model.graph.nodes:
                if node.op != "call_function" or node.target != torch.ops.aten.max_pool1d.default:
                    continue
                source = node.args[0]
                annotation = source.meta.get("quantization_annotation")
                if annotation is None or annotation.output_qspec is None:
                    continue
                shared = SharedQuantizationSpec(source)
                node.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={source: shared}, output_qspec=shared, _annotated=True)
            return model

    return _Quantizer().set_global(config)


def _quantize(model, calibration: np.ndarray, quantization: Quantization):
    """The calibrated fake-quantized graph (``convert_pt2e`` output) for litert-torch, and its quantizer."""
    import torch
    from torchao.quantization.pt2e import quantize_pt2e

    quantizer = _quantizer(quantization)
    # A dynamic batch lets the observers see the calibration set in a few calls; the converter re-exports with
    # the device's static batch of 1. torch.export specializes a batch of 1, hence an example of 2.
    example = (torch.from_numpy(np.repeat(calibration[:1], 2, axis=0)),)
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        graph = torch.export.export(model, example, dynamic_shapes=({0: batch},)).module()
        graph = quantize_pt2e.prepare_pt2e(graph, quantizer)
        for start in range(0, len(calibration), CALIBRATION_BATCH):
            graph(torch.from_numpy(calibration[start:start + CALIBRATION_BATCH].copy()))
        graph = quantize_pt2e.convert_pt2e(graph, fold_quantize=False)
    # No dropout or BatchNorm is left in the graph, so the flag changes no op; it stops litert-torch warning that it
    # converts a training-mode module (an exported graph refuses .eval(), so the flag is set directly).
    graph.training = False
    return graph, quantizer


def _convert(graph, quantizer, example: tuple, path: Path) -> None:
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    # The quant config tells the converter to fold the graph's quantize/dequantize pairs into int8 tensors.
    with _quiet_progress():
        edge = litert_torch.convert(graph, example, quant_config=QuantConfig(pt2e_quantizer=quantizer))
        edge.export(str(path))
    _shorten_tensor_names(path)


def _shorten_tensor_names(path: Path) -> None:
    """Rename tensors from the converter's Python paths to module paths a user can read, in place.

    litert-torch names each tensor by the qualified classes of its modules (``edgekit.export.torch_prep.
    _DeployedCnn/torch.nn.modules.container.Sequential_features/torch.nn.modules.conv.Conv1d_0;1``); keeping
    the last part of each module (``Sequential_features/Conv1d_0;1``) says the same to someone reading the graph
    and saves ~3 KiB, 6% of the CWRU cnn1d's int8 file. Signatures refer to tensors by index, so nothing that
    runs the file reads these names; ``tflite_layers`` matches them to torch modules.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.name = short_tensor_name(tensor.name.decode()).encode()
    flatbuffer_utils.write_model(model, str(path))


def short_tensor_name(name: str) -> str:
    """``a.B/c.D_x/e.F_0;1`` -> ``D_x/F_0;1``: the root module and the classes' packages go (``;`` joins fused ops)."""
    parts = []
    for part in name.split(";"):
        modules = [module.rsplit(".", 1)[-1] for module in part.split("/")]
        parts.append("/".join(modules[1:] if len(modules) > 1 else modules))
    return ";".join(parts)


@contextlib.contextmanager
def _quiet_progress():
    # litert-torch prints a progress line per pass; its switch is an environment variable, restored afterwards.
    key = "LITERT_TORCH_SHOW_PROGRESS"
    before = os.environ.get(key)
    os.environ[key] = "n"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _converter_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"litert-torch {version('litert-torch')}"
    except PackageNotFoundError:  # pragma: no cover - an uninstalled checkout
        return "litert-torch"


def _check_conversion(graph, path: Path, inputs: np.ndarray, output_scale: float, label: str) -> dict[str, Any]:
    """Run the .tflite (through the device's engine) and the fake-quant graph it came from; they must agree."""
    import torch

    from edgekit.runtime.engines import LiteRtEngine

    with torch.no_grad():
        expected = graph(torch.from_numpy(inputs.copy())).numpy()
    got = LiteRtEngine(path).run(inputs)
    error = float(np.abs(got - expected).max())
    agreement = float(np.mean(got.argmax(1) == expected.argmax(1)))
    limit = CONVERSION_TOLERANCE_STEPS * output_scale
    if error > limit:
        raise ExportError(f"tflite_int8: the converted {label} differs from its fake-quantized torch graph by "
                          f"{error:.4g} on calibration inputs (allowed {limit:.4g}, "
                          f"{CONVERSION_TOLERANCE_STEPS:g} output steps; top-1 agreement {agreement:.3f}); "
                          f"this is a converter fault: report it with the run directory")
    return {"max_abs_error": error, "output_steps": error / output_scale, "top1_agreement": agreement,
            "windows": int(len(inputs)), "tolerance": limit}


def tensor_quantization(path: str | Path) -> dict[str, Any]:
    """Input/output dtype, scale and zero point of a .tflite, as the interpreter reports them."""
    litert = require_module("ai_edge_litert.interpreter", "runtime")

    interpreter = litert.Interpreter(model_path=str(path))

    def describe(detail: dict) -> dict[str, Any]:
        scale, zero_point = detail["quantization"]
        return {"scale": float(scale), "zero_point": int(zero_point), "dtype": np.dtype(detail["dtype"]).name}

    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    return {"input": describe(inp), "output": describe(out), "input_shape": [int(d) for d in inp["shape"]]}


def op_summary(path: str | Path) -> dict[str, dict[str, Any]]:
    """Each builtin op in the flatbuffer: how often it occurs and whether any use of it reads or writes float32.

    The op names are what a TFLite Micro firmware registers in its ``MicroMutableOpResolver``.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    counts: Counter[str] = Counter()
    floats: set[str] = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = flatbuffer_utils.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
            name = names.get(code, f"BUILTIN_{code}")
            counts[name] += 1
            tensors = [subgraph.tensors[i] for i in list(op.inputs) + list(op.outputs) if i >= 0]
            if any(t.type == schema.TensorType.FLOAT32 for t in tensors):
                floats.add(name)
    return {name: {"count": counts[name], "float": name in floats} for name in sorted(counts)}
