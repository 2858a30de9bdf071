"""ONNX artifacts: fp32 (static batch 1 + dynamic batch), fp16, and static int8 QDQ.

int8 is ONNX Runtime static quantization in QDQ form, per-channel weights, calibrated on the run's
calibration set, with the profile's preset: u8 activations / s8 weights for arm64, ``reduce_range`` (7-bit
weights) for AVX2 without VNNI, symmetric s8/s8 for TensorRT's explicit-QDQ path. Every op of the deployable
graph is quantized, Conv included (presets that quantize only MatMul/Add leave a 1D CNN in float).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np

from edgekit.errors import require_module
from edgekit.export.base import Artifact, ExportContext, ExportError, Exporter, register
from edgekit.export.onnx_compact import compact_qdq

OPSET = 18
INPUT_NAME, OUTPUT_NAME = "input", "logits"
QUANTIZED_OPS = ["Conv", "Gemm", "MatMul", "Relu", "MaxPool", "ReduceMean", "Add"]


@contextlib.contextmanager
def _quiet():
    """The torch/onnxscript exporters narrate every pass; keep the user's terminal for edgekit's own output."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_torch_to_onnx(model, example: np.ndarray, path: Path, dynamic_batch: bool = False) -> Path:
    """Export a deployable torch model with the dynamo exporter and check the file with ``onnx.checker``."""
    torch = require_module("torch", "train")
    onnx = require_module("onnx", "export")
    require_module("onnxscript", "export")
    x = torch.from_numpy(np.ascontiguousarray(example[:1], dtype=np.float32))
    dynamic = ({0: torch.export.Dim("batch")},) if dynamic_batch else None  # positional: forward arg names vary
    try:
        with _quiet():
            torch.onnx.export(model, (x,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              opset_version=OPSET, dynamo=True, dynamic_shapes=dynamic, verbose=False)
    except Exception as exc:  # the exporter raises many internal types; the user needs the model and the reason
        raise ExportError(f"torch -> ONNX export of {type(model).__name__} failed: {exc}") from exc
    # The exporter may write weights to a side file (path.data); a bundle artifact must be one self-contained file.
    proto = onnx.load(str(path), load_external_data=True)
    # The dynamo exporter annotates every node with its Python stack trace: useful when debugging the exporter,
    # dead weight on a device (a third of an int8 file).
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del proto.metadata_props[:]
    onnx.save(proto, str(path), save_as_external_data=False)
    path.with_name(path.name + ".data").unlink(missing_ok=True)
    onnx.checker.check_model(proto, full_check=True)
    return path


def _deployable(ctx: ExportContext):
    from edgekit.export.torch_prep import deployable_model

    return deployable_model(ctx.run.model)


@register
class OnnxFp32Exporter(Exporter):
    """The reference artifact: float32, BatchNorm folded, batch 1 (plus ``model_dynamic.onnx`` for batching)."""

    name = "onnx_fp32"

    def export(self, ctx: ExportContext) -> Artifact:
        model = _deployable(ctx)
        export_torch_to_onnx(model, ctx.calibration_inputs, ctx.path("model_fp32.onnx"))
        export_torch_to_onnx(model, ctx.calibration_inputs, ctx.path("model_dynamic.onnx"), dynamic_batch=True)
        return Artifact(file="model_fp32.onnx", target_format=self.name, format="onnx", precision="fp32",
                        engine="onnxruntime", reference="torch",
                        extra={"dynamic_batch_file": "model_dynamic.onnx", "opset": OPSET})


@register
class OnnxFp16Exporter(Exporter):
    """Half-precision weights and activations for GPUs (on CPU, ORT computes fp16 graphs in fp32)."""

    name = "onnx_fp16"

    def export(self, ctx: ExportContext) -> Artifact:
        onnx = require_module("onnx", "export")
        from onnxruntime.transformers.float16 import convert_float_to_float16

        source = ctx.path(ctx.artifacts["onnx_fp32"].extra["dynamic_batch_file"])
        with _quiet():
            # float32 inputs/outputs keep the device code identical across precisions.
            converted = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
        _sort_nodes(converted.graph)  # the converter appends its input Casts at the end of the node list
        onnx.checker.check_model(converted)
        onnx.save(converted, str(ctx.path("model_fp16.onnx")))
        return Artifact(file="model_fp16.onnx", target_format=self.name, format="onnx", precision="fp16",
                        engine="onnxruntime", reference="onnx_fp32")


def _sort_nodes(graph) -> None:
    """Reorder ``graph.node`` topologically (ONNX requires it; some converters append nodes out of order)."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        runnable = [n for n in pending if all(name in ready for name in n.input)]
        if not runnable:
            raise ExportError("the converted fp16 graph has a cycle or a dangling input; report this as a bug")
        for node in runnable:
            ordered.append(node)
            ready.update(node.output)
        pending = [n for n in pending if n not in runnable]
    del graph.node[:]
    graph.node.extend(ordered)


class _CalibrationReader:
    """Feeds calibration inputs one batch-1 sample at a time, as ORT's calibrators expect."""

    def __init__(self, inputs: np.ndarray):
        self._rows = iter(np.asarray(inputs, dtype=np.float32))

    def get_next(self):
        row = next(self._rows, None)
        return None if row is None else {INPUT_NAME: row[None]}


def quantize_onnx(source: Path, target: Path, calibration: np.ndarray, quantization) -> dict:
    """Static QDQ quantization of ``source`` with a profile's ``Quantization`` preset, compacted
    (``onnx_compact``); returns the settings used."""
    onnx = require_module("onnx", "export")
    ort_quant = require_module("onnxruntime.quantization", "runtime")
    types = {"uint8": ort_quant.QuantType.QUInt8, "int8": ort_quant.QuantType.QInt8}
    settings = {
        "format": "QDQ",
        "activation_type": quantization.activation_type,
        "weight_type": quantization.weight_type,
        "per_channel": quantization.per_channel,
        "reduce_range": quantization.reduce_range,
        "symmetric_activations": quantization.symmetric_activations,
        "calibration": "minmax",
        "calibration_samples": int(len(calibration)),
        "op_types": QUANTIZED_OPS,
    }
    prepared = target.with_suffix(".prep.onnx")
    try:
        with _quiet():
            # Shapes on every tensor let the quantizer place Q/DQ everywhere (ORT's quant_pre_process does the
            # same, but trips over the external-data layout of some exporter outputs).
            onnx.save(onnx.shape_inference.infer_shapes(onnx.load(str(source))), str(prepared))
            ort_quant.quantize_static(
                str(prepared), str(target), _CalibrationReader(calibration),
                quant_format=ort_quant.QuantFormat.QDQ,
                activation_type=types[quantization.activation_type],
                weight_type=types[quantization.weight_type],
                per_channel=quantization.per_channel,
                reduce_range=quantization.reduce_range,
                op_types_to_quantize=QUANTIZED_OPS,
                calibrate_method=ort_quant.CalibrationMethod.MinMax,
                extra_options={
                    "ActivationSymmetric": quantization.symmetric_activations,
                    "WeightSymmetric": True,
                    # TensorRT wants explicit Q/DQ around every quantized op input, including the graph input.
                    "QDQKeepRemovableActivations": False,
                },
            )
    except Exception as exc:
        raise ExportError(f"int8 quantization of {source.name} failed: {exc}") from exc
    finally:
        prepared.unlink(missing_ok=True)
    compacted = compact_qdq(onnx.load(str(target)))
    onnx.checker.check_model(compacted, full_check=True)
    onnx.save(compacted, str(target))
    return settings


def input_quantization(path: Path) -> dict | None:
    """Scale and zero point of the graph input's QuantizeLinear, so the device can feed integers if it wants."""
    onnx = require_module("onnx", "export")
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] == INPUT_NAME:
            zero_point = inits[node.input[2]]
            return {"scale": float(inits[node.input[1]]), "zero_point": int(zero_point),
                    "dtype": str(zero_point.dtype)}
    return None


@register
class OnnxInt8Exporter(Exporter):
    name = "onnx_int8"

    def export(self, ctx: ExportContext) -> Artifact:
        target = ctx.path("model_int8.onnx")
        settings = quantize_onnx(ctx.path("model_fp32.onnx"), target, ctx.calibration_inputs,
                                 ctx.profile.quantization)
        return Artifact(file=target.name, target_format=self.name, format="onnx", precision="int8",
                        engine="onnxruntime", reference="onnx_fp32", input_quantization=input_quantization(target),
                        extra={"quantization": settings})
