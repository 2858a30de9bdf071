"""Per-layer comparison of a quantized ONNX graph with its fp32 original, to find the layer that loses precision.

Every tensor the fp32 graph computes is compared, on the same inputs, with its quantized value in the QDQ graph
(the output of the DequantizeLinear that follows its QuantizeLinear): both are exposed as extra graph outputs.
Exposing them stops ONNX Runtime from fusing Q/DQ groups into integer kernels, so the quantized numbers are
simulated (fake-quant) - the standard way quantization debuggers report, and what locates a bad layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import require_module


def _with_outputs(model, names: list[str]):
    onnx = require_module("onnx", "export")
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = {v.name: v for v in inferred.graph.value_info}
    existing = {o.name for o in model.graph.output}
    for name in names:
        if name not in existing:
            model.graph.output.append(infos[name] if name in infos else onnx.helper.make_empty_tensor_value_info(name))
    return model


def _quantized_views(model) -> dict[str, str]:
    """fp32 tensor name -> the int8 graph's tensor holding its quantized value.

    That is the DequantizeLinear output of the tensor's QuantizeLinear where there is one (the value the next
    layer really sees, clipping included: a Relu folded into an unsigned Q/DQ pair exists only there), else the
    tensor itself.
    """
    by_input = {}
    for node in model.graph.node:
        by_input.setdefault(node.input[0] if node.input else "", []).append(node)
    views = {}
    for node in model.graph.node:
        for tensor in node.output:
            views[tensor] = tensor
            for q in by_input.get(tensor, []):
                if q.op_type == "QuantizeLinear":
                    dq = [d for d in by_input.get(q.output[0], []) if d.op_type == "DequantizeLinear"]
                    if dq:
                        views[tensor] = dq[0].output[0]
    return views


def layer_report(fp32_path: Path, int8_path: Path, inputs: np.ndarray, max_windows: int = 64) -> list[dict]:
    """Per layer (in graph order): op, tensor, relative L2 error, max abs error and cosine similarity."""
    onnx = require_module("onnx", "export")
    ort = require_module("onnxruntime", "runtime")
    fp32, int8 = onnx.load(str(fp32_path)), onnx.load(str(int8_path))
    quantized = _quantized_views(int8)
    layers = [(n.op_type, n.output[0], quantized[n.output[0]]) for n in fp32.graph.node
              if n.output and n.output[0] in quantized]
    names = [t for _, t, _ in layers]
    int8_names = [q for _, _, q in layers]
    batch = np.ascontiguousarray(inputs[:max_windows], dtype=np.float32)
    results = {}
    for key, model, wanted_names in (("fp32", fp32, names), ("int8", int8, int8_names)):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(_with_outputs(model, wanted_names).SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        wanted = [o.name for o in session.get_outputs() if o.name in wanted_names]
        input_name = session.get_inputs()[0].name
        rows = [session.run(wanted, {input_name: batch[i:i + 1]}) for i in range(len(batch))]
        results[key] = {name: np.concatenate([r[j] for r in rows]) for j, name in enumerate(wanted)}
    return [{"op": op, "tensor": name, **layer_errors(results["fp32"][name], results["int8"][int8_name])}
            for op, name, int8_name in layers if name in results["fp32"] and int8_name in results["int8"]]


def layer_errors(reference: np.ndarray, quantized: np.ndarray) -> dict[str, float]:
    """Relative L2 error, max abs error and cosine similarity of a quantized layer output against the float one."""
    ref = np.asarray(reference, dtype=np.float64).ravel()
    quant = np.asarray(quantized, dtype=np.float64).ravel()
    norm = np.linalg.norm(ref)
    denominator = norm * np.linalg.norm(quant)
    return {
        "relative_error": float(np.linalg.norm(quant - ref) / norm) if norm > 0 else 0.0,
        "max_abs_error": float(np.max(np.abs(quant - ref))),
        "cosine": float(ref @ quant / denominator) if denominator > 0 else 1.0,
    }
