"""Per-layer comparison of a full-int8 .tflite with the float torch model it was converted from.

The MCU profiles ship only the TFLite file, so this is where their bad layer is found. Every op output of the
.tflite is dequantized (``(q - zero_point) * scale``) and compared with the output of the torch module that
produced it, on the same windows. The match is by name: litert-torch names a tensor after the modules that made
it (``Sequential_features/ReLU_1;;Sequential_features/Conv1d_0;``, a conv with its ReLU fused: the output is the
ReLU's, the module torch runs last), and the torch side builds the same labels from ``named_modules``.
Intermediate tensors are read with LiteRT's builtin kernels (XNNPACK hides those inside its delegate), so the
last digits may differ from what the device's delegate computes; the layer whose error jumps is the same.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from edgekit.errors import require_module
from edgekit.export.layers import layer_errors

OUTPUT_LABEL = "logits"


def _module_labels(model) -> dict[str, str]:
    """litert-torch's label of each submodule (``Sequential_features/ReLU_1``) -> its torch path (``features.1``)."""
    labels, modules = {}, dict(model.named_modules())
    for path in modules:
        if not path:
            continue
        parts = path.split(".")
        prefixes = [".".join(parts[:i + 1]) for i in range(len(parts))]
        labels["/".join(f"{type(modules[p]).__name__}_{p.rsplit('.', 1)[-1]}" for p in prefixes)] = path
    return labels


def _torch_outputs(model, inputs: np.ndarray, paths: set[str]) -> dict[str, np.ndarray]:
    import torch

    captured: dict[str, list[np.ndarray]] = {path: [] for path in paths}
    modules = dict(model.named_modules())
    hooks = [modules[path].register_forward_hook(
        lambda module, args, output, path=path: captured[path].append(output.detach().numpy().copy()))
        for path in paths]
    try:
        with torch.no_grad():
            logits = model(torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))).numpy()
    finally:
        for hook in hooks:
            hook.remove()
    return {OUTPUT_LABEL: logits, **{path: np.concatenate(outs) for path, outs in captured.items()}}


def _as_torch_layout(value: np.ndarray, reference_shape: tuple[int, ...]) -> np.ndarray | None:
    """A batch of TFLite outputs in the torch tensor's layout, or None where the shapes do not correspond."""
    if value.shape == reference_shape:
        return value
    # A Conv1d runs as a 2D conv on [N, 1, W, C] (NHWC); torch holds [N, C, W].
    if value.ndim == 4 and value.shape[1] == 1 and len(reference_shape) == 3:
        moved = value[:, 0].transpose(0, 2, 1)
        return moved if moved.shape == reference_shape else None
    return None


def tflite_layer_report(model, tflite_path: Path, inputs: np.ndarray, max_windows: int = 64) -> list[dict]:
    """Per op output (in graph order) that maps to a torch module: op, tensor, relative L2 error, max abs error,
    cosine similarity against the float module's output."""
    litert = require_module("ai_edge_litert.interpreter", "runtime")
    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": it is, and here it is wanted
        warnings.simplefilter("ignore", UserWarning)
        interpreter = litert.Interpreter(
            model_path=str(tflite_path), experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    output_index = interpreter.get_output_details()[0]["index"]
    labels = _module_labels(model)
    order = {path: i for i, path in enumerate(dict(model.named_modules()))}
    layers, seen = [], set()  # (op, tensor index, torch path): one row per module, its first output
    for op in interpreter._get_ops_details():  # the only LiteRT API that lists ops with their tensors
        for index in op["outputs"]:
            # A fused op lists its modules in no fixed order (ReLU;;Conv1d, Linear;;ReLU): its output is the
            # last one torch runs.
            fused = [labels[part] for part in tensors[index]["name"].split(";") if part in labels]
            path = OUTPUT_LABEL if index == output_index else max(fused, key=order.get, default=None)
            if path is not None and path not in seen:
                seen.add(path)
                layers.append((op["op_name"], index, path))

    batch = np.ascontiguousarray(inputs[:max_windows], dtype=np.float32)
    detail = interpreter.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    quantized = {index: [] for _, index, _ in layers}
    for window in batch:
        value = np.clip(np.round(window[None] / scale) + zero_point, -128, 127).astype(detail["dtype"])
        interpreter.set_tensor(detail["index"], value)
        interpreter.invoke()
        for index in quantized:
            out_scale, out_zero_point = tensors[index]["quantization"]
            raw = interpreter.get_tensor(index).astype(np.float64)
            quantized[index].append((raw - out_zero_point) * out_scale if out_scale else raw)
    reference = _torch_outputs(model, batch, {path for _, _, path in layers if path != OUTPUT_LABEL})

    report = []
    for op, index, path in layers:
        value = _as_torch_layout(np.concatenate(quantized[index]), reference[path].shape)
        if value is not None:
            report.append({"op": op, "tensor": tensors[index]["name"], "module": path,
                           **layer_errors(reference[path], value)})
    return report
